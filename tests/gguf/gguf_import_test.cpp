// Reading GGUF models (models/gguf_model.h): a model exported to GGUF and
// read back is the model it came from (config, every tensor bit for bit with
// q/k rows back in Hugging Face order, the tokenizer's vocabulary and ids),
// ggml's Q8_0 / Q4_0 / Q4_1 and Q4_K / Q5_K / Q6_K blocks dequantize by
// their documented layouts, a GGUF with
// Q8_0 matrices reads within half a step of the float weights, a tokenizer
// read from GGUF survives being embedded in a .sparq file, and what is not
// read is a clear error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"
#include "formats/gguf/llama_export.h"
#include "models/gguf_model.h"
#include "models/model_source.h"
#include "models/sparq_model.h"
#include "passes/quantize_model.h"
#include "test_data.h"

namespace sparq {
namespace {

using gguf::GgmlType;

TEST(GgmlBlocks, DequantizeByTheirFormulas) {
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> byte(0, 255);
    const int blocks = 3;
    const uint16_t d = fp32_to_fp16(0.125f), m = fp32_to_fp16(-0.75f);
    std::vector<uint8_t> q8(blocks * sizeof(gguf::BlockQ8_0)), q4(blocks * sizeof(gguf::BlockQ4_0)),
        q41(blocks * sizeof(gguf::BlockQ4_1));
    for (int b = 0; b < blocks; ++b) {
        gguf::BlockQ8_0 b8{};
        gguf::BlockQ4_0 b4{};
        gguf::BlockQ4_1 b41{};
        b8.d = b4.d = b41.d = d;
        b41.m = m;
        for (int j = 0; j < 32; ++j) b8.q[j] = static_cast<int8_t>(byte(rng) - 128);
        for (int j = 0; j < 16; ++j) b4.qs[j] = b41.qs[j] = static_cast<uint8_t>(byte(rng));
        std::memcpy(q8.data() + b * sizeof b8, &b8, sizeof b8);
        std::memcpy(q4.data() + b * sizeof b4, &b4, sizeof b4);
        std::memcpy(q41.data() + b * sizeof b41, &b41, sizeof b41);
    }
    const int n = blocks * 32;
    std::vector<float> out(n);
    gguf::dequantize_ggml(GgmlType::Q8_0, q8.data(), q8.size(), n, out.data(), "t");
    for (int i = 0; i < n; ++i) {
        const auto* blk = reinterpret_cast<const gguf::BlockQ8_0*>(q8.data() + (i / 32) * sizeof(gguf::BlockQ8_0));
        ASSERT_EQ(out[i], 0.125f * blk->q[i % 32]) << i;
    }
    gguf::dequantize_ggml(GgmlType::Q4_0, q4.data(), q4.size(), n, out.data(), "t");
    for (int i = 0; i < n; ++i) {
        const uint8_t byte_i = q4[(i / 32) * sizeof(gguf::BlockQ4_0) + 2 + (i % 16)];
        const int code = i % 32 < 16 ? (byte_i & 15) : (byte_i >> 4);
        ASSERT_EQ(out[i], 0.125f * (code - 8)) << i;
    }
    gguf::dequantize_ggml(GgmlType::Q4_1, q41.data(), q41.size(), n, out.data(), "t");
    for (int i = 0; i < n; ++i) {
        const uint8_t byte_i = q41[(i / 32) * sizeof(gguf::BlockQ4_1) + 4 + (i % 16)];
        const int code = i % 32 < 16 ? (byte_i & 15) : (byte_i >> 4);
        ASSERT_EQ(out[i], 0.125f * code - 0.75f) << i;
    }
    EXPECT_THROW(gguf::dequantize_ggml(GgmlType::Q8_0, q8.data(), q8.size() - 1, n, out.data(), "t"), Error);
    EXPECT_THROW(gguf::dequantize_ggml(GgmlType::Q8_0, q8.data(), q8.size(), n - 1, out.data(), "t"), Error);
    try {
        gguf::dequantize_ggml(GgmlType::Q3_K, q8.data(), q8.size(), n, out.data(), "blk.0.ffn_up.weight");
        FAIL() << "a type sparq does not read was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "blk.0.ffn_up.weight");
        EXPECT_NE(std::string(e.what()).find("Q3_K"), std::string::npos) << e.what();
    }
}

// The k-quants: each value given as (sub-block scale, min, code) and packed
// into the bytes by the layout gguf/ggml_blocks.h documents, value by value;
// the dequantizer must give d sc q - dmin m (Q4_K, Q5_K) or d sc (q - 32)
// (Q6_K) for every one.
TEST(GgmlBlocks, KQuantsDequantizeByTheirLayout) {
    std::mt19937 rng(11);
    const auto uniform = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
    const float d = fp16_to_fp32(fp32_to_fp16(0.0625f)), dmin = fp16_to_fp32(fp32_to_fp16(0.03125f));
    for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K}) {
        const bool five = type == GgmlType::Q5_K;
        gguf::BlockQ5_K b5{};  // Q4_K is its prefix without qh
        gguf::BlockQ4_K b4{};
        int sc[8], mn[8];
        std::vector<float> expected(256);
        uint8_t scales[12] = {};
        for (int j = 0; j < 8; ++j) {
            sc[j] = uniform(0, 63);
            mn[j] = uniform(0, 63);
            if (j < 4) {
                scales[j] |= static_cast<uint8_t>(sc[j]);
                scales[j + 4] |= static_cast<uint8_t>(mn[j]);
            } else {
                scales[j + 4] |= static_cast<uint8_t>((sc[j] & 15) | ((mn[j] & 15) << 4));
                scales[j - 4] |= static_cast<uint8_t>((sc[j] >> 4) << 6);
                scales[j] |= static_cast<uint8_t>((mn[j] >> 4) << 6);
            }
        }
        for (int i = 0; i < 256; ++i) {
            const int c = i / 64, within = i % 64, half = within / 32, l = within % 32, sub = 2 * c + half;
            const int q = uniform(0, five ? 31 : 15);
            uint8_t* qs = five ? b5.qs : b4.qs;
            qs[32 * c + l] |= static_cast<uint8_t>((q & 15) << (4 * half));
            if (five && (q & 16)) b5.qh[l] |= static_cast<uint8_t>(1 << sub);
            expected[static_cast<size_t>(i)] = d * static_cast<float>(sc[sub]) * static_cast<float>(q) - dmin * static_cast<float>(mn[sub]);
        }
        std::vector<uint8_t> bytes;
        if (five) {
            b5.d = fp32_to_fp16(d);
            b5.dmin = fp32_to_fp16(dmin);
            std::memcpy(b5.scales, scales, 12);
            bytes.resize(sizeof b5);
            std::memcpy(bytes.data(), &b5, sizeof b5);
        } else {
            b4.d = fp32_to_fp16(d);
            b4.dmin = fp32_to_fp16(dmin);
            std::memcpy(b4.scales, scales, 12);
            bytes.resize(sizeof b4);
            std::memcpy(bytes.data(), &b4, sizeof b4);
        }
        std::vector<float> out(256);
        gguf::dequantize_ggml(type, bytes.data(), bytes.size(), 256, out.data(), "t");
        for (int i = 0; i < 256; ++i) ASSERT_FLOAT_EQ(out[i], expected[static_cast<size_t>(i)]) << ggml_type_name(type) << " " << i;
    }
    gguf::BlockQ6_K b6{};
    b6.d = fp32_to_fp16(d);
    std::vector<float> expected(256);
    for (int k = 0; k < 16; ++k) b6.scales[k] = static_cast<int8_t>(uniform(-128, 127));
    for (int i = 0; i < 256; ++i) {
        const int h = i / 128, within = i % 128, quarter = within / 32, l = within % 32;
        const int q = uniform(0, 63);
        const int ql_index = 64 * h + l + (quarter % 2 == 1 ? 32 : 0);
        b6.ql[ql_index] |= static_cast<uint8_t>((q & 15) << (quarter >= 2 ? 4 : 0));
        b6.qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
        expected[static_cast<size_t>(i)] = d * static_cast<float>(b6.scales[i / 16]) * static_cast<float>(q - 32);
    }
    std::vector<uint8_t> bytes(sizeof b6);
    std::memcpy(bytes.data(), &b6, sizeof b6);
    std::vector<float> out(256);
    gguf::dequantize_ggml(GgmlType::Q6_K, bytes.data(), bytes.size(), 256, out.data(), "t");
    for (int i = 0; i < 256; ++i) ASSERT_FLOAT_EQ(out[i], expected[static_cast<size_t>(i)]) << "Q6_K " << i;
    EXPECT_THROW(gguf::dequantize_ggml(GgmlType::Q6_K, bytes.data(), bytes.size(), 128, out.data(), "t"), Error);
}

void expect_same_model(const ModelSource& a, const ModelSource& b) {
    EXPECT_EQ(a.config.architecture, b.config.architecture);
    EXPECT_EQ(a.config.hidden_size, b.config.hidden_size);
    EXPECT_EQ(a.config.intermediate_size, b.config.intermediate_size);
    EXPECT_EQ(a.config.num_layers, b.config.num_layers);
    EXPECT_EQ(a.config.num_heads, b.config.num_heads);
    EXPECT_EQ(a.config.num_kv_heads, b.config.num_kv_heads);
    EXPECT_EQ(a.config.head_dim, b.config.head_dim);
    EXPECT_EQ(a.config.vocab_size, b.config.vocab_size);
    EXPECT_EQ(a.config.tie_word_embeddings, b.config.tie_word_embeddings);
    EXPECT_FLOAT_EQ(static_cast<float>(a.config.rms_norm_eps), static_cast<float>(b.config.rms_norm_eps));
    EXPECT_FLOAT_EQ(static_cast<float>(a.config.rope_theta), static_cast<float>(b.config.rope_theta));
    size_t compared = 0;
    for (const auto& [name, t] : a.tensors.all()) {
        if (name == "lm_head.weight" && a.config.tie_word_embeddings) continue;
        ASSERT_TRUE(b.tensors.has(name)) << name;
        const Tensor& u = b.tensors.get(name);
        ASSERT_EQ(t.shape, u.shape) << name;
        const std::vector<float> x = t.to_f32(), y = u.to_f32();
        ASSERT_EQ(0, std::memcmp(x.data(), y.data(), x.size() * sizeof(float))) << name;
        ++compared;
    }
    EXPECT_GT(compared, 10u);
    const Vocabulary& va = a.tokenizer->vocabulary();
    const Vocabulary& vb = b.tokenizer->vocabulary();
    ASSERT_EQ(va.size(), vb.size());
    EXPECT_EQ(va.pieces, vb.pieces);
    EXPECT_EQ(va.scores, vb.scores);
    EXPECT_EQ(va.bos_id, vb.bos_id);
    EXPECT_EQ(va.eos_id, vb.eos_id);
    EXPECT_EQ(va.add_space_prefix, vb.add_space_prefix);
    const std::string text = "Once upon a time, a little girl named Lily found 3 shiny stones.\n\"Look!\" she said.";
    EXPECT_EQ(a.tokenizer->encode(text, true), b.tokenizer->encode(text, true));
}

TEST(GgufImport, ExportedModelsReadBackExactly) {
    for (const auto& [model, type] : std::vector<std::pair<std::string, GgufExportType>>{
             {"stories260K", GgufExportType::F32}, {"small-llama-v2", GgufExportType::F16}}) {
        SPARQ_REQUIRE_DATA(model + "/hf/model.safetensors");
        const ModelSource hf = load_model(testing::data_path(model + "/hf"));
        const std::string path = testing::temp_dir("gguf_import_" + model) + "/m.gguf";
        export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), path, type);
        const ModelSource back = load_model(path);
        EXPECT_EQ(back.format, "gguf");
        EXPECT_EQ(back.tokenizer->source_kind(), "gguf");
        SCOPED_TRACE(model);
        expect_same_model(hf, back);
    }
}

// A GGUF whose matrices are Q8_0 (encoded here by the format's rule):
// every weight reads back within half a step of its float value, q/k rows
// in Hugging Face order included.
TEST(GgufImport, Q8_0MatricesReadWithinHalfAStep) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource hf = load_model(testing::data_path("stories260K/hf"));
    const std::string dir = testing::temp_dir("gguf_import_q8");
    export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), dir + "/f32.gguf", GgufExportType::F32);
    const gguf::GgufFile f32 = gguf::GgufFile::open(dir + "/f32.gguf");
    gguf::GgufWriter w;
    for (const auto& [key, value] : f32.kvs()) w.set(key, value);
    std::vector<std::vector<uint8_t>> keep;
    for (const gguf::TensorInfo& info : f32.tensors()) {
        const Tensor t = f32.tensor(info);
        if (t.shape.size() != 2 || t.shape[1] % 32 != 0) {  // ggml blocks never straddle rows
            w.add_tensor_data(info.name, t.shape, GgmlType::F32, t.data, t.nbytes);
            continue;
        }
        const float* x = t.as<float>();
        const int64_t n = t.numel();
        std::vector<uint8_t>& bytes = keep.emplace_back(static_cast<size_t>(n / 32) * sizeof(gguf::BlockQ8_0));
        for (int64_t b = 0; b < n / 32; ++b) {
            gguf::BlockQ8_0 block{};
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::abs(x[b * 32 + j]));
            const float d = amax / 127.0f;
            block.d = fp32_to_fp16(d);
            const float inv = d > 0 ? 1.0f / fp16_to_fp32(block.d) : 0.0f;
            for (int j = 0; j < 32; ++j) {
                block.q[j] = static_cast<int8_t>(std::clamp(std::lround(x[b * 32 + j] * inv), -127L, 127L));
            }
            std::memcpy(bytes.data() + b * sizeof block, &block, sizeof block);
        }
        w.add_tensor_data(info.name, t.shape, GgmlType::Q8_0, bytes.data(), bytes.size());
    }
    w.write(dir + "/q8.gguf");
    const ModelSource back = load_model(dir + "/q8.gguf");
    int quantized = 0;
    for (const auto& [name, t] : hf.tensors.all()) {
        if (t.shape.size() != 2 || t.shape[1] % 32 != 0) continue;
        ++quantized;
        const Tensor& u = back.tensors.get(name);
        EXPECT_EQ(u.dtype, DType::F32) << name;
        const std::vector<float> x = t.to_f32(), y = u.to_f32();
        for (size_t i = 0; i < x.size(); i += 32) {
            float amax = 0;
            for (size_t j = i; j < i + 32 && j < x.size(); ++j) amax = std::max(amax, std::abs(x[j]));
            // Half a step, plus the FP16 rounding of the step itself.
            const float tolerance = amax / 127.0f * 0.5f * 1.01f + 1e-7f;
            for (size_t j = i; j < i + 32 && j < x.size(); ++j) ASSERT_NEAR(x[j], y[j], tolerance) << name << " " << j;
        }
    }
    EXPECT_GT(quantized, 20);  // q/k/v/o, gate/up and the embedding of every block
}

TEST(GgufImport, GgufTokenizerSurvivesEmbeddingInSparq) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource hf = load_model(testing::data_path("stories260K/hf"));
    const std::string dir = testing::temp_dir("gguf_import_sparq");
    export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), dir + "/m.gguf", GgufExportType::F16);
    const ModelSource g = load_model(dir + "/m.gguf");
    QuantizeOptions o;
    o.bits = 8;
    QuantizeResult r = quantize_model(g, o);
    write_sparq_model(dir + "/m.sparq", g.config, *g.tokenizer, r.tensors, nlohmann::json::object());
    const ModelSource packed = load_sparq_model(dir + "/m.sparq", true);
    EXPECT_EQ(packed.tokenizer->source_kind(), "gguf");
    const std::string text = "The cat sat on the mat. It was happy!";
    EXPECT_EQ(packed.tokenizer->encode(text, true), hf.tokenizer->encode(text, true));
    EXPECT_EQ(packed.tokenizer->vocabulary().pieces, hf.tokenizer->vocabulary().pieces);
}

// Copies `from` with `edit` applied to the KVs and tensor infos.
std::string rewritten(const std::string& from, const std::string& to,
                      const std::function<void(gguf::GgufWriter&, const gguf::GgufFile&)>& edit) {
    const gguf::GgufFile f = gguf::GgufFile::open(from);
    gguf::GgufWriter w;
    for (const auto& [key, value] : f.kvs()) w.set(key, value);
    for (const gguf::TensorInfo& info : f.tensors()) {
        const Tensor t = f.tensor(info);
        w.add_tensor_data(info.name, t.shape, info.type, t.data, t.nbytes);
    }
    edit(w, f);
    w.write(to);
    return to;
}

TEST(GgufImport, WhatIsNotReadIsAClearError) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource hf = load_model(testing::data_path("stories260K/hf"));
    const std::string dir = testing::temp_dir("gguf_import_errors");
    const std::string base = dir + "/m.gguf";
    export_llama_gguf(hf.config, hf.tensors, hf.tokenizer->vocabulary(), base, GgufExportType::F32);
    const auto error_of = [](const std::string& path) -> std::pair<std::string, std::string> {
        try {
            load_model(path);
        } catch (const Error& e) {
            return {e.context().tensor, e.context().field};
        }
        return {"", "(no error)"};
    };
    const std::vector<float> extra(64, 1.0f);
    EXPECT_EQ(error_of(rewritten(base, dir + "/extra.gguf", [&](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.add_tensor_data("rope_freqs.weight", {64}, GgmlType::F32, extra.data(), 256);
              })).first,
              "rope_freqs.weight");
    EXPECT_EQ(error_of(rewritten(base, dir + "/arch.gguf", [](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.set_string("general.architecture", "falcon");
              })).second,
              "general.architecture");
    EXPECT_EQ(error_of(rewritten(base, dir + "/scaling.gguf", [](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.set_string("llama.rope.scaling.type", "linear");
              })).second,
              "llama.rope.scaling.type");
    EXPECT_EQ(error_of(rewritten(base, dir + "/heads.gguf", [](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.set_scalar<uint32_t>("llama.attention.head_count", 0);
              })).second,
              "llama.attention.head_count");
    EXPECT_EQ(error_of(rewritten(base, dir + "/tok.gguf", [](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.set_string("tokenizer.ggml.model", "bert");
              })).second,
              "tokenizer.ggml.model");
    EXPECT_EQ(error_of(rewritten(base, dir + "/bos.gguf", [](gguf::GgufWriter& w, const gguf::GgufFile&) {
                  w.set_scalar<uint32_t>("tokenizer.ggml.bos_token_id", 100000);
              })).second,
              "tokenizer.ggml.bos_token_id");
}

}  // namespace
}  // namespace sparq
