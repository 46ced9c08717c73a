#include <gtest/gtest.h>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "passes/sparsify_model.h"

namespace sparq {
namespace {

std::string error_of(const nlohmann::json& j) {
    try {
        parse_sparsify_options(j);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(SparsifyOptions, ParsesEveryKey) {
    const SparsifyOptions o = parse_sparsify_options(
        {{"pattern", "2:4"}, {"method", "magnitude"}, {"layer_ratios", "uniform"}, {"targets", ".*proj.*"},
         {"ignore", ".*k_proj.*"}, {"bits", 4}, {"group", 32}, {"symmetric", false}, {"quant_method", "rtn"},
         {"embed_bits", 16}, {"head_bits", 8}});
    EXPECT_EQ(o.target().kind, SparsityTarget::Kind::NM);
    EXPECT_EQ(o.target().n, 2);
    EXPECT_EQ(o.target().m, 4);
    const QuantizeOptions q = o.quantize_options();
    EXPECT_EQ(q.bits, 4);
    EXPECT_EQ(q.group, 32);
    EXPECT_FALSE(q.symmetric);
    EXPECT_EQ(q.embed_bits, 16);
    EXPECT_EQ(q.targets, ".*proj.*");
    const SparsifyOptions c = parse_sparsify_options(
        {{"sparsity", 0.6}, {"method", "sparsegpt"}, {"layer_ratios", "owl"}, {"calib", "c.txt"},
         {"calib_samples", 16}, {"calib_len", 64}, {"seed", 3}, {"calib_cache", "c.h5"}, {"damp", 0.05},
         {"block_size", 64}, {"owl_m", 7}, {"owl_lambda", 0.1}, {"bits", 4}, {"quant_method", "gptq"},
         {"refit_iterations", 12}});
    EXPECT_FALSE(c.correct_upstream);
    EXPECT_TRUE(c.calibrated());
    EXPECT_EQ(c.calib_samples, 16);
    EXPECT_EQ(c.calib_len, 64);
    EXPECT_EQ(c.seed, 3u);
    EXPECT_EQ(c.calib_cache, "c.h5");
    EXPECT_DOUBLE_EQ(c.damp, 0.05);
    EXPECT_EQ(c.block_size, 64);
    EXPECT_EQ(c.refit_iterations, 12);
    EXPECT_DOUBLE_EQ(c.owl_m, 7);
    EXPECT_DOUBLE_EQ(c.owl_lambda, 0.1);
    EXPECT_EQ(parse_sparsify_options({{"sparsity", 0.5}, {"method", "wanda"}, {"calib", "c.txt"}, {"calib_samples", "all"}})
                  .calib_samples,
              kAllCalibrationWindows);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"calib_samples", "-1"}}).find("'all'"), std::string::npos);
    const SparsifyOptions u = parse_sparsify_options({{"sparsity", 0.5}});
    EXPECT_FALSE(u.calibrated());
    EXPECT_FALSE(u.quantizes());
    EXPECT_DOUBLE_EQ(u.target().sparsity, 0.5);
}

TEST(SparsifyOptions, RejectsWhatItCannotDo) {
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"colour", "red"}}).find("colour"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", "half"}}).find("wrong type"), std::string::npos);
    EXPECT_NE(error_of(nlohmann::json::object()).find("--sparsity"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"pattern", "2:4"}}).find("not both"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 1.0}}).find("[0, 1)"), std::string::npos);
    EXPECT_NE(error_of({{"pattern", "4:2"}}).find("N:M"), std::string::npos);
    // Calibrated methods need data; calibration nothing reads is rejected.
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"method", "wanda"}}).find("--calib"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"method", "sparsegpt"}}).find("--calib"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"layer_ratios", "owl"}}).find("--calib"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"bits", 4}, {"quant_method", "gptq"}}).find("--calib"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"calib", "c.txt"}}).find("reads no calibration"), std::string::npos);
    EXPECT_NE(error_of({{"pattern", "2:4"}, {"layer_ratios", "owl"}, {"calib", "c.txt"}}).find("owl"),
              std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"layer_ratios", "owl"}, {"calib", "c.txt"}, {"owl_m", 0}}).find("--owl-m"),
              std::string::npos);
    EXPECT_NE(error_of({{"pattern", "2:4"}, {"method", "sparsegpt"}, {"calib", "c.txt"}, {"block_size", 6}})
                  .find("block_size"),
              std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"bits", 4}, {"quant_method", "imatrix"}}).find("--quant-method"),
              std::string::npos);
    // The refit needs H, so calibration; a negative step count is refused.
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"refit_iterations", 5}}).find("--calib"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"refit_iterations", -1}, {"calib", "c.txt"}}).find("--refit"),
              std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"method", "random"}}).find("magnitude"), std::string::npos);
    // The upstream correction needs the sequential runner: calibrated
    // pruning from text, not from a cache, and not magnitude alone.
    EXPECT_TRUE(parse_sparsify_options(
                    {{"pattern", "2:4"}, {"method", "sparsegpt"}, {"calib", "c.txt"}, {"correct_upstream", true}})
                    .correct_upstream);
    EXPECT_NE(error_of({{"pattern", "2:4"}, {"method", "sparsegpt"}, {"calib_cache", "c.h5"}, {"correct_upstream", true}})
                  .find("--correct-upstream"),
              std::string::npos);
    // Any pruning method takes it, magnitude included (its scores are then
    // the corrected weights'), with calibration text.
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"correct_upstream", true}}).find("give --calib FILE"), std::string::npos);
    EXPECT_TRUE(parse_sparsify_options({{"sparsity", 0.5}, {"calib", "c.txt"}, {"correct_upstream", true}}).calibrated());
    // Its ridge is --damp x mean diag(H): read even where nothing else reads it.
    EXPECT_EQ(error_of({{"sparsity", 0.5}, {"calib", "c.txt"}, {"correct_upstream", true}, {"damp", 0.05}}), "");
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"method", "wanda"}, {"calib", "c.txt"}, {"damp", 0.05}}).find("--damp"),
              std::string::npos);
    EXPECT_NE(error_of({{"structured", "mlp=0.25"}, {"calib", "c.txt"}, {"correct_upstream", true}})
                  .find("--correct-upstream"),
              std::string::npos);
    EXPECT_NE(error_of({{"pattern", "2:4"}, {"method", "sparsegpt"}, {"calib", "c.txt"}, {"correct_upstream", 1}})
                  .find("wrong type"),
              std::string::npos);
    // Quantization settings without bits would be ignored silently.
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"group", 32}}).find("--bits"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"quant_method", "mse"}}).find("--bits"), std::string::npos);
    EXPECT_NE(error_of({{"sparsity", 0.5}, {"bits", 5}}).find("--bits"), std::string::npos);
    // N:M groups count dense columns and must hold whole runs.
    EXPECT_NE(error_of({{"pattern", "3:24"}, {"bits", 4}, {"group", 32}}).find("--group"), std::string::npos);
    EXPECT_EQ(error_of({{"pattern", "2:4"}, {"bits", 8}, {"group", 0}}), "");
}

}  // namespace
}  // namespace sparq
