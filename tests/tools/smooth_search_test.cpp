// SmoothQuant's alpha search on stories260K: every grid alpha is quantized
// and scored on calibration windows with the int8-activation kernels, the
// lowest wins, and what it needs is checked first.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "models/model_source.h"
#include "tools/smooth_search.h"
#include "test_data.h"

namespace sparq::cli {
namespace {

QuantizeOptions smooth_options() {
    QuantizeOptions o;
    o.bits = 8;
    o.group = 0;
    o.method = "smoothquant";
    o.calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
    o.calib_samples = 8;
    o.calib_len = 64;
    return o;
}

TEST(SmoothSearch, ScoresEveryAlphaAndKeepsTheLowest) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource model = load_model(testing::data_path("stories260K/hf"));
    const std::string scratch = (std::filesystem::temp_directory_path() / "sparq-smooth-search-test.sparq").string();
    int lines = 0;
    const SmoothSearchResult r =
        search_smooth_alpha(model, smooth_options(), "", scratch, [&](const std::string&) { ++lines; });
    ASSERT_EQ(r.candidates.size(), 7u);
    EXPECT_EQ(lines, 8);  // one per alpha and the verdict
    EXPECT_TRUE(std::isfinite(r.unsmoothed_calibration_ppl) && r.unsmoothed_calibration_ppl > 1);
    const auto lowest = std::min_element(r.candidates.begin(), r.candidates.end(),
                                         [](const SmoothCandidate& a, const SmoothCandidate& b) {
                                             return a.calibration_ppl < b.calibration_ppl;
                                         });
    EXPECT_EQ(r.best.alpha, lowest->alpha);
    for (const SmoothCandidate& c : r.candidates) {
        EXPECT_TRUE(std::isfinite(c.calibration_ppl) && c.calibration_ppl > 1) << c.alpha;
    }
    // Different migration strengths round differently, so the scores differ.
    EXPECT_NE(r.candidates.front().calibration_ppl, r.candidates.back().calibration_ppl);
    EXPECT_FALSE(std::filesystem::exists(scratch));
}

TEST(SmoothSearch, RefusesWhatItCannotScore) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource model = load_model(testing::data_path("stories260K/hf"));
    // The search must refuse `options` with an error naming `flag`.
    const auto expect_refused = [&](const QuantizeOptions& options, const std::string& flag) {
        try {
            search_smooth_alpha(model, options, "", "unused.sparq", nullptr);
            ADD_FAILURE() << "expected an error naming " << flag;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(flag), std::string::npos) << e.what();
        }
    };
    QuantizeOptions rtn = smooth_options();
    rtn.method = "rtn";
    expect_refused(rtn, "--method smoothquant");
    QuantizeOptions cached = smooth_options();
    cached.calib.clear();
    cached.calib_cache = "c.h5";
    expect_refused(cached, "--calib");
    EXPECT_FALSE(std::filesystem::exists("unused.sparq"));
}

}  // namespace
}  // namespace sparq::cli
