// The channel-scaling methods of the quantize pass on the real stories260K
// (GQA: 8 heads over 4 KV heads): random folds over every layer and space
// leave the FP32 reference forward's logits unchanged; awq and smoothquant
// files keep a near-F32 model at 8 bits (so the norms and v/up rows the
// folds changed are really stored), beat RTN on the calibration output
// error at int4, and smoothquant/--act-bits mark the block linears for the
// int8-activation kernels; options reject unknown keys and bad values.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "calibration/statistics.h"
#include "core/error.h"
#include "models/llama_reference.h"
#include "passes/quantize_model.h"
#include "passes/scaled_quantize.h"
#include "quant/quantize_tensor.h"
#include "runtime/packed_model.h"
#include "test_data.h"

namespace sparq {
namespace {

std::vector<float> logits_of(const ModelConfig& config, const TensorMap& tensors, const std::vector<int32_t>& tokens) {
    const LlamaReference model(config, tensors);
    auto state = model.new_state(static_cast<int64_t>(tokens.size()));
    std::vector<float> logits(tokens.size() * static_cast<size_t>(config.vocab_size));
    model.forward(*state, tokens, logits.data(), true);
    return logits;
}

TEST(ScaledQuantize, RandomFoldsLeaveTheFullPrecisionOutputUnchanged) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    const ModelConfig& c = source.config;
    ASSERT_NE(c.num_heads, c.num_kv_heads) << "the test wants grouped-query attention";
    std::map<std::string, std::vector<float>> values;
    for (const auto& [name, t] : source.tensors.all()) values[name] = t.to_f32();
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(-1.0, 1.0);
    for (int64_t layer = 0; layer < c.num_layers; ++layer) {
        for (InputSpace space : kInputSpaces) {
            std::vector<double> s(static_cast<size_t>(input_space_dim(c, space)));
            for (double& x : s) x = std::exp(u(rng));  // within [1/e, e]
            if (space_fold_names(c, space).shared_heads) s = tie_shared_heads(s, head_sharing(c));
            const ScaleFold fold = make_space_fold(c, layer, space, values);
            fold_channel_scales(fold, std::vector<float>(s.begin(), s.end()), "test");
        }
    }
    TensorMap folded;
    for (const auto& [name, t] : source.tensors.all()) folded.add(name, make_f32_tensor(t.shape, values.at(name)));
    const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 430, 265, 300, 310, 271, 450, 302, 270, 263, 322, 13};
    const std::vector<float> a = logits_of(c, source.tensors, tokens), b = logits_of(c, folded, tokens);
    double largest = 0, worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, static_cast<double>(std::fabs(a[i])));
        worst = std::max(worst, static_cast<double>(std::fabs(a[i] - b[i])));
    }
    EXPECT_LT(worst, 1e-4 * largest) << "largest logit " << largest;
    // The folds did change the weights (else the test would prove nothing).
    EXPECT_NE(values.at("model.layers.0.input_layernorm.weight"), source.tensors.get("model.layers.0.input_layernorm.weight").to_f32());
}

TEST(ScaledQuantize, MisshapenFoldTensorsAreErrors) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    std::map<std::string, std::vector<float>> values;
    EXPECT_THROW(make_space_fold(source.config, 0, InputSpace::AttnInput, values), Error);
    for (const auto& [name, t] : source.tensors.all()) values[name] = t.to_f32();
    values["model.layers.1.mlp.up_proj.weight"].pop_back();
    try {
        make_space_fold(source.config, 1, InputSpace::MlpHidden, values);
        FAIL() << "a short up_proj was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "model.layers.1.mlp.up_proj.weight");
    }
}

QuantizeOptions calibrated(const std::string& method, int bits) {
    QuantizeOptions o;
    o.method = method;
    o.bits = bits;
    o.embed_bits = 16;
    o.head_bits = 16;
    o.calib = testing::data_path("text/tinystories-calibration-selfgen.txt");
    o.calib_samples = 4;
    o.calib_len = 64;
    o.awq_grid = 10;
    return o;
}

const ModelTensorEntry& entry_of(const QuantizeResult& r, const std::string& name) {
    for (const auto& e : r.tensors) {
        if (e.name == name) return e;
    }
    throw Error("no entry " + name);
}

// The model the file describes, as dense F32 (packed tensors dequantized).
TensorMap dense_result(const QuantizeResult& r) {
    TensorMap m;
    for (const auto& e : r.tensors) {
        m.add(e.name, e.packed ? make_f32_tensor({e.packed->rows, e.packed->cols}, dequantize_tensor(*e.packed))
                               : make_f32_tensor(e.dense.shape, e.dense.to_f32()));
    }
    return m;
}

TEST(ScaledQuantize, EightBitFilesStayCloseToTheModelAndMarkActivations) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 430, 265, 300, 310, 271, 450, 302};
    const std::vector<float> reference = logits_of(source.config, source.tensors, tokens);
    for (const std::string method : {"awq", "smoothquant"}) {
        QuantizeOptions o = calibrated(method, 8);
        o.awq_score = "rtn";  // the folds are under test here, not the search (slow per channel)
        const QuantizeResult r = quantize_model(source, o);
        // The folds changed the norms: the file must hold the folded ones.
        const std::vector<float> norm = entry_of(r, "model.layers.2.input_layernorm.weight").dense.to_f32();
        EXPECT_NE(norm, source.tensors.get("model.layers.2.input_layernorm.weight").to_f32()) << method;
        const std::vector<float> logits = logits_of(source.config, dense_result(r), tokens);
        double diff = 0, energy = 0;
        for (size_t i = 0; i < logits.size(); ++i) {
            diff += (logits[i] - reference[i]) * (logits[i] - reference[i]);
            energy += reference[i] * reference[i];
        }
        EXPECT_LT(std::sqrt(diff / energy), 0.02) << method;  // int8 weights: ~0.5% here
        const int expected_act_bits = method == "smoothquant" ? 8 : 0;
        for (const auto& e : r.tensors) {
            EXPECT_EQ(e.act_bits, is_block_linear(e.name) ? expected_act_bits : 0) << e.name;
        }
        for (const auto& t : r.reports) {
            if (!t.calibration) continue;
            ASSERT_TRUE(t.calibration->scale_alpha.has_value()) << t.name;
            if (method == "smoothquant") {
                EXPECT_EQ(*t.calibration->scale_alpha, 0.5) << t.name;
            }
        }
    }
}

TEST(ScaledQuantize, AwqBeatsRtnOnTheCalibrationOutputErrorAtFourBits) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    QuantizeOptions o = calibrated("awq", 4);
    o.group = 32;
    o.symmetric = false;
    const QuantizeResult r = quantize_model(source, o);
    double awq = 0, rtn = 0;
    int scaled = 0, reports = 0;
    for (const auto& t : r.reports) {
        if (!t.calibration) continue;
        ++reports;
        awq += t.calibration->weighted_error;
        rtn += t.calibration->weighted_error_rtn;
        scaled += *t.calibration->scale_alpha > 0;
    }
    // Per group, not per tensor: one of q/k/v may lose a little to RTN.
    EXPECT_EQ(reports, 7 * source.config.num_layers);
    EXPECT_LT(awq, 0.9 * rtn);
    EXPECT_GT(scaled, 0) << "no space chose a nonzero alpha";
}

// --smooth-weights gptq: GPTQ on the smoothed basis (with the smoothed
// inputs' Hessian) lowers the output error the RTN weights leave, at the
// same scales, and the scales are still folded (the norms change).
TEST(ScaledQuantize, SmoothQuantGptqWeightsLowerTheOutputErrorOfRtnWeights) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    SPARQ_REQUIRE_DATA("text/tinystories-calibration-selfgen.txt");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    auto total_error = [&](const std::string& weights, int bits) {
        QuantizeOptions o = calibrated("smoothquant", bits);
        o.smooth_weights = weights;
        const QuantizeResult r = quantize_model(source, o);
        EXPECT_NE(entry_of(r, "model.layers.0.post_attention_layernorm.weight").dense.to_f32(),
                  source.tensors.get("model.layers.0.post_attention_layernorm.weight").to_f32());
        double error = 0;
        int reports = 0;
        for (const auto& t : r.reports) {
            if (!t.calibration) continue;
            ++reports;
            error += t.calibration->weighted_error;
        }
        EXPECT_EQ(reports, 7 * source.config.num_layers);
        return error;
    };
    for (int bits : {8, 4}) {
        const double rtn = total_error("rtn", bits), gptq = total_error("gptq", bits);
        EXPECT_GT(rtn, 0) << bits;
        EXPECT_LT(gptq, 0.9 * rtn) << bits << " bits";
    }
}

TEST(ScaledQuantize, ActBitsOnAnyMethodReachTheRuntimeKernels) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    QuantizeOptions o;
    o.bits = 8;
    o.act_bits = 8;
    const QuantizeResult r = quantize_model(source, o);
    const std::string path = testing::temp_dir("scaled_quantize") + "/w8a8.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, r.tensors, nlohmann::json::object());
    const PackedModel m = load_packed_model(path);
    int q8 = 0;
    for (const auto& layer : m.model->weights().layers) q8 += layer.wq->kernel_name().find("+q8") != std::string::npos;
    EXPECT_EQ(q8, source.config.num_layers);
}

TEST(ScaledQuantize, OptionsParseAndRejectBadValues) {
    const QuantizeOptions o = parse_quantize_options({{"method", "smoothquant"}, {"calib", "c.txt"}, {"smooth_alpha", 0.8}});
    EXPECT_EQ(o.smooth_alpha, 0.8);
    EXPECT_EQ(o.activation_bits(), 8);
    const QuantizeOptions a = parse_quantize_options({{"method", "awq"}, {"calib", "c.txt"}, {"awq_grid", 10}, {"awq_score", "rtn"}});
    EXPECT_EQ(a.awq_grid, 10);
    EXPECT_EQ(a.awq_score, "rtn");
    EXPECT_TRUE(parse_quantize_options({{"method", "awq"}, {"calib", "c.txt"}, {"correct_upstream", true}}).correct_upstream);
    EXPECT_THROW(parse_quantize_options({{"method", "imatrix"}, {"calib", "c.txt"}, {"correct_upstream", true}}), Error);
    // Each method's options belong to it: AWQ's grid means nothing to SmoothQuant.
    EXPECT_THROW(parse_quantize_options({{"method", "smoothquant"}, {"calib", "c.txt"}, {"awq_grid", 10}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}, {"calib", "c.txt"}, {"smooth_alpha", 0.8}}), Error);
    EXPECT_EQ(parse_quantize_options({{"act_bits", 8}}).activation_bits(), 8);
    EXPECT_EQ(parse_quantize_options({{"method", "awq"}, {"calib", "c.txt"}}).activation_bits(), 0);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}, {"calib", "c.txt"}, {"awq_alpha", 0.5}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}}), Error);  // no calibration data
    EXPECT_THROW(parse_quantize_options({{"act_bits", 4}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "smoothquant"}, {"calib", "c"}, {"smooth_alpha", 1.5}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}, {"calib", "c"}, {"awq_grid", 0}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}, {"calib", "c"}, {"awq_score", "mse"}}), Error);
    EXPECT_THROW(parse_quantize_options({{"act_bits", "8"}}), Error);
    EXPECT_EQ(parse_quantize_options({{"method", "smoothquant"}, {"calib", "c"}, {"smooth_weights", "gptq"}}).smooth_weights,
              "gptq");
    EXPECT_THROW(parse_quantize_options({{"method", "smoothquant"}, {"calib", "c"}, {"smooth_weights", "awq"}}), Error);
    EXPECT_THROW(parse_quantize_options({{"method", "awq"}, {"calib", "c"}, {"smooth_weights", "gptq"}}), Error);
    EXPECT_THROW(parse_quantize_options({{"smooth_weights", "gptq"}}), Error);  // plain rtn
    try {
        parse_quantize_options({{"smooth_alpha", 0.5}, {"smoothing", 1}});
        FAIL() << "unknown key accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().field, "smoothing");
    }
}

}  // namespace
}  // namespace sparq
