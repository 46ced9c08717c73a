// The calibrated sparsify pass reports the block runner's warnings in its
// calibration summary on both of its statistics paths, as the calibrated
// quantize pass does. The sequential path (no cache: the runner goes stage
// by stage over the pruned linears) once dropped them, so a run whose
// samples exceeded the model's context reported only the pass's own
// --calib-len note and lost the runner's.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "passes/sparsify_model.h"
#include "test_data.h"

namespace sparq {
namespace {

// What block_runner.cpp says when samples are longer than the context.
constexpr const char* kRunnerWarningStart = "calibration samples of ";

// stories260K's context is 512 tokens; two 520-token samples exceed it
// while keeping the run short.
SparsifyOptions overlong_wanda() {
    SparsifyOptions o;
    o.method = "wanda";
    o.sparsity = 0.5;
    o.calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
    o.calib_samples = 2;
    o.calib_len = 520;
    return o;
}

int64_t runner_warning_count(const CalibrationSummary& summary) {
    return std::count_if(summary.warnings.begin(), summary.warnings.end(), [](const std::string& w) {
        return w.rfind(kRunnerWarningStart, 0) == 0 && w.find("max_position_embeddings 512") != std::string::npos;
    });
}

TEST(CalibrationWarnings, SequentialSparsifyKeepsTheRunnersWarnings) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    const SparsifyResult r = sparsify_model(source, overlong_wanda());
    ASSERT_TRUE(r.calibration.has_value());
    ASSERT_TRUE(r.calibration->sequential);
    EXPECT_EQ(r.calibration->len, 520);
    EXPECT_EQ(runner_warning_count(*r.calibration), 1) << ::testing::PrintToString(r.calibration->warnings);
}

TEST(CalibrationWarnings, CachedSparsifyKeepsTheRunnersWarningsToo) {
    // The other path (statistics computed once and written to a cache) gets
    // them through record_statistics_outcome: both paths agree.
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    SparsifyOptions o = overlong_wanda();
    o.calib_cache = testing::temp_dir("calibration-warnings") + "/stats.h5";
    const SparsifyResult r = sparsify_model(source, o);
    ASSERT_TRUE(r.calibration.has_value());
    EXPECT_FALSE(r.calibration->sequential);
    EXPECT_EQ(r.calibration->cache, "written");
    EXPECT_EQ(runner_warning_count(*r.calibration), 1) << ::testing::PrintToString(r.calibration->warnings);
}

}  // namespace
}  // namespace sparq
