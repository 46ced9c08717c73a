// Quantized GGUF export (models/gguf_encode.h): symmetric int4 / int8 codes
// become Q4_0 / Q8_0 blocks that dequantize to exactly sparq's values,
// asymmetric int4 Q4_1 blocks within the FP16 rounding of the offset, other
// schemes are not mapped; a .sparq model exported with --type q4_0 reads
// back with every tensor bit for bit as the .sparq file holds it; float
// weights exported as q4_k / q6_k keep their block types' accuracy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "formats/error_matchers.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/llama_export.h"
#include "models/gguf_encode.h"
#include "models/model_source.h"
#include "models/sparq_model.h"
#include "passes/quantize_model.h"
#include "quant/quantize_tensor.h"
#include "test_data.h"

namespace sparq {
namespace {

using gguf::GgmlType;

PackedTensor random_packed(int bits, int64_t group, bool symmetric, int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& v : w) v = normal(rng);
    w[5] = 40.0f;  // an outlier
    for (int64_t c = 0; c < std::min<int64_t>(cols, 32); ++c) w[static_cast<size_t>(cols + c)] = 0.0f;  // an all-zero block
    QuantScheme s;
    s.bits = bits;
    s.group = group;
    s.symmetric = symmetric;
    return quantize_tensor(borrowed_f32_tensor(w.data(), rows, cols), s, QuantMethod::Rtn, nullptr, "w");
}

TEST(QuantizedExport, SymmetricInt4AndInt8MapToBlocksExactly) {
    int mapped = 0;
    for (const auto& [bits, group] : std::vector<std::pair<int, int64_t>>{{4, 32}, {4, 64}, {4, 128}, {4, 0}, {8, 0}, {8, 32}}) {
        const PackedTensor p = random_packed(bits, group, true, 6, 256, 17u + static_cast<uint32_t>(bits * 1000 + group));
        const std::optional<EncodedTensor> e = ggml_blocks_of(p.view());
        ASSERT_TRUE(e) << bits << " g" << group;
        EXPECT_EQ(e->type, bits == 4 ? GgmlType::Q4_0 : GgmlType::Q8_0);
        std::vector<float> got(static_cast<size_t>(6 * 256));
        gguf::dequantize_ggml(e->type, e->bytes.data(), e->bytes.size(), 6 * 256, got.data(), "w");
        const std::vector<float> want = dequantize_tensor(p);
        ASSERT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float))) << bits << " g" << group;
        ++mapped;
    }
    EXPECT_EQ(mapped, 6);
    // No ggml block holds these.
    EXPECT_FALSE(ggml_blocks_of(random_packed(8, 0, false, 2, 64, 3).view()));    // int8 asymmetric
    EXPECT_FALSE(ggml_blocks_of(random_packed(3, 32, true, 2, 64, 4).view()));    // int3
    EXPECT_FALSE(ggml_blocks_of(random_packed(4, 16, true, 2, 64, 5).view()));    // groups of 16
    EXPECT_FALSE(ggml_blocks_of(random_packed(4, 0, true, 2, 48, 6).view()));     // rows of 48
}

TEST(QuantizedExport, AsymmetricInt4MapsToQ4_1) {
    for (const int64_t group : {32, 64, 0}) {
        const PackedTensor p = random_packed(4, group, false, 5, 128, 40u + static_cast<uint32_t>(group));
        const std::optional<EncodedTensor> e = ggml_blocks_of(p.view());
        ASSERT_TRUE(e) << "g" << group;
        EXPECT_EQ(e->type, GgmlType::Q4_1);
        std::vector<float> got(5 * 128);
        gguf::dequantize_ggml(e->type, e->bytes.data(), e->bytes.size(), 5 * 128, got.data(), "w");
        const std::vector<float> want = dequantize_tensor(p);
        // d u + m against d (u - z): only m = -d z is rounded, to FP16 (half
        // an FP16 ulp of at most 15 steps, plus the float products).
        for (size_t i = 0; i < want.size(); ++i) {
            const int64_t r = static_cast<int64_t>(i) / 128, g = group == 0 ? 0 : (static_cast<int64_t>(i) % 128) / group;
            const float d = fp16_to_fp32(p.view().scale_bits(r, g));
            EXPECT_NEAR(got[i], want[i], 15 * d * 0x1p-11f + 1e-6f * std::fabs(want[i])) << "g" << group << " at " << i;
        }
    }
}

// Relative RMS error of `got` against `want`.
double relative_rms(const std::vector<float>& want, const std::vector<float>& got) {
    double e = 0, energy = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        e += (double(want[i]) - got[i]) * (double(want[i]) - got[i]);
        energy += double(want[i]) * want[i];
    }
    return energy > 0 ? std::sqrt(e / energy) : 0.0;
}

TEST(QuantizedExport, FloatWeightsToKQuantsReadBackWithinTheirAccuracy) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/config.json");
    const ModelSource hf = load_model(testing::data_path("small-llama-v2/hf"));
    const std::string dir = testing::temp_dir("kquant_export");
    // small-llama-v2's rows are 256 and 768 columns: every matrix takes the k-quant itself.
    for (const auto& [type, file_type, bound] : std::vector<std::tuple<GgmlType, uint32_t, double>>{
             {GgmlType::Q4_K, 14u, 0.09}, {GgmlType::Q6_K, 18u, 0.03}, {GgmlType::Q4_1, 3u, 0.09}}) {
        SCOPED_TRACE(std::string(gguf::ggml_type_name(type)));
        const GgufEncoding enc = encode_for_gguf(hf, type);
        EXPECT_TRUE(enc.exact.empty());
        EXPECT_TRUE(enc.kept_float.empty());
        EXPECT_EQ(enc.requantized.size(), 4u * 7 + 2);
        for (const auto& [name, e] : enc.tensors) EXPECT_EQ(e.type, type) << name;
        const std::string out = dir + "/m.gguf";
        export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), out, GgufExportType::F32, "", "", enc.tensors);
        EXPECT_EQ(gguf::GgufFile::open(out).get_scalar<uint32_t>("general.file_type"), file_type);
        const ModelSource back = load_model(out);
        double worst = 0;
        for (const auto& [name, e] : enc.tensors) {
            const double r = relative_rms(hf.tensors.get(name).to_f32(), back.tensors.get(name).to_f32());
            EXPECT_LT(r, bound) << name;
            worst = std::max(worst, r);
        }
        EXPECT_GT(worst, 0.0);  // really quantized
    }
}

TEST(QuantizedExport, HeadAndEmbeddingTypesOverrideTheFileType) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/config.json");
    const ModelSource hf = load_model(testing::data_path("small-llama-v2/hf"));
    const TypeOverrides overrides = {{"lm_head.weight", GgmlType::Q6_K}, {"model.embed_tokens.weight", GgmlType::F16}};
    const GgufEncoding enc = encode_for_gguf(hf, GgmlType::Q4_K, {}, {}, overrides);
    EXPECT_EQ(enc.tensors.at("lm_head.weight").type, GgmlType::Q6_K);
    EXPECT_EQ(enc.tensors.at("model.embed_tokens.weight").type, GgmlType::F16);
    EXPECT_EQ(enc.tensors.at("model.layers.2.mlp.down_proj.weight").type, GgmlType::Q4_K);
    EXPECT_EQ(enc.kept_f16, std::vector<std::string>{"model.embed_tokens.weight"});
    const std::string out = testing::temp_dir("override_export") + "/m.gguf";
    export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), out, GgufExportType::F32, "", "", enc.tensors);
    EXPECT_EQ(gguf::GgufFile::open(out).get_scalar<uint32_t>("general.file_type"), 14u);  // mostly Q4_K
    const ModelSource back = load_model(out);
    // The F16 source embedding comes back bit for bit; the head within Q6_K's accuracy.
    const std::vector<float> e0 = hf.tensors.get("model.embed_tokens.weight").to_f32();
    EXPECT_EQ(e0, back.tensors.get("model.embed_tokens.weight").to_f32());
    EXPECT_LT(relative_rms(hf.tensors.get("lm_head.weight").to_f32(), back.tensors.get("lm_head.weight").to_f32()), 0.03);
    // F32 keeps the weight float; unknown names and non-exported tensors are errors.
    const GgufEncoding kept = encode_for_gguf(hf, GgmlType::Q4_K, {}, {}, {{"lm_head.weight", GgmlType::F32}});
    EXPECT_EQ(kept.tensors.count("lm_head.weight"), 0u);
    EXPECT_EQ(kept.kept_float, std::vector<std::string>{"lm_head.weight"});
    EXPECT_SPARQ_ERROR(encode_for_gguf(hf, GgmlType::Q4_K, {}, {}, {{"lm_head.bias", GgmlType::Q6_K}}), "lm_head.bias");
    EXPECT_SPARQ_ERROR(encode_for_gguf(hf, GgmlType::Q4_K, {}, {}, {{"model.norm.weight", GgmlType::Q8_0}}),
                       "model.norm.weight");
}

TEST(QuantizedExport, KQuantRowsOfOtherLengthsFallBack) {
    EXPECT_EQ(gguf_block_type_for(GgmlType::Q4_K, 512), GgmlType::Q4_K);
    EXPECT_EQ(gguf_block_type_for(GgmlType::Q4_K, 64), GgmlType::Q4_1);
    EXPECT_EQ(gguf_block_type_for(GgmlType::Q6_K, 96), GgmlType::Q8_0);
    EXPECT_EQ(gguf_block_type_for(GgmlType::Q4_0, 96), GgmlType::Q4_0);
    EXPECT_EQ(gguf_block_type_for(GgmlType::Q6_K, 172), std::nullopt);
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    // stories260K: 64-column rows fall back to Q4_1, down_proj's 172 columns stay F32.
    const GgufEncoding enc = encode_for_gguf(load_model(testing::data_path("stories260K/hf")), GgmlType::Q4_K);
    EXPECT_EQ(enc.kept_float.size(), 5u);
    EXPECT_EQ(enc.requantized.size(), 5u * 6 + 1);
    for (const auto& [name, e] : enc.tensors) EXPECT_EQ(e.type, GgmlType::Q4_1) << name;
}

TEST(QuantizedExport, NonFiniteWeightsAreRefusedByName) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    ModelSource hf = load_model(testing::data_path("stories260K/hf"));
    const std::string name = "model.layers.1.mlp.up_proj.weight";
    TensorMap edited(hf.tensors.source());
    for (const auto& [n, t] : hf.tensors.all()) {
        if (n != name) {
            edited.add(n, t);
            continue;
        }
        std::vector<float> values = t.to_f32();
        values[70] = std::numeric_limits<float>::quiet_NaN();
        edited.add(n, make_f32_tensor(t.shape, std::move(values)));
    }
    hf.tensors = std::move(edited);
    EXPECT_SPARQ_ERROR(encode_for_gguf(hf, GgmlType::Q4_K), name);
    EXPECT_SPARQ_ERROR(encode_for_gguf(hf, GgmlType::Q8_0), "non-finite");
}

TEST(QuantizedExport, SparqModelReadsBackBitForBit) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource hf = load_model(testing::data_path("stories260K/hf"));
    const std::string dir = testing::temp_dir("quantized_export");
    QuantizeOptions o;
    o.bits = 4;
    o.group = 32;
    const QuantizeResult q = quantize_model(hf, o);
    write_sparq_model(dir + "/m.sparq", hf.config, *hf.tokenizer, q.tensors, nlohmann::json::object());
    const ModelSource packed = load_model(dir + "/m.sparq");
    const GgufEncoding enc = encode_for_gguf(packed, GgmlType::Q4_0);
    // stories260K: q/k/v/o, gate/up (64 columns) int4 g32 -> Q4_0, the int8
    // embedding -> Q8_0; down_proj (172 columns) fits no block.
    EXPECT_EQ(enc.exact.size(), 5u * 6 + 1);
    EXPECT_EQ(enc.kept_float.size(), 5u);
    EXPECT_TRUE(enc.requantized.empty());
    EXPECT_EQ(enc.tensors.at("model.embed_tokens.weight").type, GgmlType::Q8_0);
    EXPECT_EQ(enc.tensors.at("model.layers.0.self_attn.q_proj.weight").type, GgmlType::Q4_0);
    export_llama_gguf(packed.config, packed.tensors, packed.tokenizer->vocabulary(), dir + "/m.gguf",
                      GgufExportType::F32, "", "", enc.tensors);
    EXPECT_EQ(gguf::GgufFile::open(dir + "/m.gguf").get_scalar<uint32_t>("general.file_type"), 2u);  // MOSTLY_Q4_0
    const ModelSource back = load_model(dir + "/m.gguf");
    for (const auto& [name, t] : packed.tensors.all()) {
        ASSERT_TRUE(back.tensors.has(name)) << name;
        const std::vector<float> x = t.to_f32(), y = back.tensors.get(name).to_f32();
        ASSERT_EQ(x.size(), y.size()) << name;
        ASSERT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << name;
    }
    // From float weights: RTN at group 32, within half a step.
    const GgufEncoding fresh = encode_for_gguf(hf, GgmlType::Q8_0);
    EXPECT_TRUE(fresh.exact.empty());
    EXPECT_EQ(fresh.requantized.size(), 5u * 6 + 1);
    EXPECT_THROW(encode_for_gguf(hf, GgmlType::Q5_K), Error);
}

}  // namespace
}  // namespace sparq
