// OWL's hyperparameter search on stories260K: every grid point is scored on
// calibration windows, the lowest wins, and what it needs is checked first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "models/model_source.h"
#include "tools/owl_search.h"
#include "test_data.h"

namespace sparq::cli {
namespace {

SparsifyOptions owl_options() {
    SparsifyOptions o;
    o.sparsity = 0.7;
    o.method = "wanda";
    o.layer_ratios = "owl";
    o.calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
    o.calib_samples = 8;
    o.calib_len = 64;
    return o;
}

TEST(OwlSearch, ScoresEveryGridPointAndKeepsTheLowest) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource model = load_model(testing::data_path("stories260K/hf"));
    const std::string scratch = (std::filesystem::temp_directory_path() / "sparq-owl-search-test.sparq").string();
    int lines = 0;
    const OwlSearchResult r =
        search_owl_hyperparameters(model, owl_options(), "", scratch, [&](const std::string&) { ++lines; });
    ASSERT_EQ(r.candidates.size(), 12u);
    EXPECT_EQ(lines, 12);
    const auto lowest = std::min_element(r.candidates.begin(), r.candidates.end(),
                                         [](const OwlCandidate& a, const OwlCandidate& b) {
                                             return a.calibration_ppl < b.calibration_ppl;
                                         });
    EXPECT_EQ(r.best.m, lowest->m);
    EXPECT_EQ(r.best.lambda, lowest->lambda);
    for (const OwlCandidate& c : r.candidates) {
        EXPECT_TRUE(std::isfinite(c.calibration_ppl) && c.calibration_ppl > 1) << c.m << " " << c.lambda;
    }
    // Different spreads prune differently, so the scores differ.
    EXPECT_NE(r.candidates.front().calibration_ppl, r.candidates.back().calibration_ppl);
    EXPECT_FALSE(std::filesystem::exists(scratch));
}

TEST(OwlSearch, RefusesWhatItCannotScore) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource model = load_model(testing::data_path("stories260K/hf"));
    SparsifyOptions uniform = owl_options();
    uniform.layer_ratios = "uniform";
    EXPECT_THROW(search_owl_hyperparameters(model, uniform, "", "unused.sparq", nullptr), Error);
    SparsifyOptions cached = owl_options();
    cached.calib.clear();
    cached.calib_cache = "c.h5";
    try {
        search_owl_hyperparameters(model, cached, "", "unused.sparq", nullptr);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--calib"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sparq::cli
