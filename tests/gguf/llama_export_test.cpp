// export_llama_gguf: llama.cpp's names, shapes, types and metadata, and the
// q/k row permutation (the inverse of Hugging Face's).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "formats/error_matchers.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/llama_export.h"
#include "formats/rope_permutation.h"
#include "models/model_source.h"
#include "test_data.h"

namespace sparq {
namespace {

using gguf::GgmlType;
using gguf::GgufFile;
using gguf::TensorInfo;
using sparq::testing::temp_dir;

ModelConfig tiny_config() {
    ModelConfig c;
    c.hidden_size = 8;
    c.intermediate_size = 12;
    c.num_layers = 2;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 4;
    c.vocab_size = 10;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = false;
    return c;
}

Vocabulary tiny_vocab() {
    Vocabulary v;
    v.model = "llama";
    v.pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81" "a", "b", "c", "d"};  // 8 of 10: padded
    v.scores = {0, 0, 0, 0, -1, -2, -3, -4};
    v.kinds = {TokenKind::Unknown, TokenKind::Control, TokenKind::Control, TokenKind::Byte,
               TokenKind::Normal,  TokenKind::Normal,  TokenKind::Normal,  TokenKind::Normal};
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.pad_id = -1;
    v.add_bos = true;
    v.add_space_prefix = true;
    return v;
}

// Distinct, exactly representable values: tensor id in the integer part.
Tensor filled(Shape shape, int id, DType dtype = DType::F32) {
    const int64_t n = shape_numel(shape);
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(id) + static_cast<float>(i) / 256.0f;
    if (dtype == DType::F32) return make_f32_tensor(std::move(shape), std::move(v));
    auto storage = std::make_shared<std::vector<uint16_t>>(v.size());
    for (size_t i = 0; i < v.size(); ++i) {
        (*storage)[i] = dtype == DType::F16 ? fp32_to_fp16(v[i]) : fp32_to_bf16(v[i]);
    }
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const uint8_t*>(storage->data());
    t.nbytes = storage->size() * 2;
    t.owner = storage;
    return t;
}

TensorMap tiny_tensors(const ModelConfig& c, bool with_lm_head = true) {
    TensorMap m("tiny-model");
    int id = 1;
    m.add("model.embed_tokens.weight", filled({c.vocab_size, c.hidden_size}, id++));
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [l](const std::string& s) { return layer_tensor_name(l, s); };
        m.add(name("input_layernorm.weight"), filled({c.hidden_size}, id++));
        m.add(name("self_attn.q_proj.weight"), filled({c.q_dim(), c.hidden_size}, id++));
        m.add(name("self_attn.k_proj.weight"), filled({c.kv_dim(), c.hidden_size}, id++));
        m.add(name("self_attn.v_proj.weight"), filled({c.kv_dim(), c.hidden_size}, id++, DType::BF16));
        m.add(name("self_attn.o_proj.weight"), filled({c.hidden_size, c.q_dim()}, id++));
        m.add(name("post_attention_layernorm.weight"), filled({c.hidden_size}, id++, DType::F16));
        m.add(name("mlp.gate_proj.weight"), filled({c.intermediate_size, c.hidden_size}, id++, DType::F16));
        m.add(name("mlp.up_proj.weight"), filled({c.intermediate_size, c.hidden_size}, id++));
        m.add(name("mlp.down_proj.weight"), filled({c.hidden_size, c.intermediate_size}, id++));
    }
    m.add("model.norm.weight", filled({c.hidden_size}, id++));
    if (with_lm_head) m.add("lm_head.weight", filled({c.vocab_size, c.hidden_size}, id++));
    return m;
}

std::vector<float> gguf_f32(const GgufFile& f, const std::string& name) {
    const TensorInfo* t = f.find_tensor(name);
    if (!t) ADD_FAILURE() << "missing " << name;
    return t ? f.tensor(*t).to_f32() : std::vector<float>{};
}

TEST(LlamaExport, NamesShapesTypesAndMetadata) {
    const ModelConfig c = tiny_config();
    const TensorMap tensors = tiny_tensors(c);
    const std::string path = temp_dir("gguf-export") + "/tiny-f16.gguf";
    const GgufExportSummary s = export_llama_gguf(c, tensors, tiny_vocab(), path, GgufExportType::F16);
    EXPECT_EQ(s.output, path);
    EXPECT_EQ(s.tensors, 1u + 9u * 2u + 2u);
    EXPECT_EQ(s.bytes, std::filesystem::file_size(path));

    const GgufFile f = GgufFile::open(path);
    // Names and GGUF dims (row-major shape reversed).
    std::map<std::string, std::vector<uint64_t>> expected = {
        {"token_embd.weight", {8, 10}}, {"output_norm.weight", {8}}, {"output.weight", {8, 10}}};
    for (int l = 0; l < 2; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        expected[b + "attn_norm.weight"] = {8};
        expected[b + "attn_q.weight"] = {8, 8};
        expected[b + "attn_k.weight"] = {8, 4};
        expected[b + "attn_v.weight"] = {8, 4};
        expected[b + "attn_output.weight"] = {8, 8};
        expected[b + "ffn_norm.weight"] = {8};
        expected[b + "ffn_gate.weight"] = {8, 12};
        expected[b + "ffn_up.weight"] = {8, 12};
        expected[b + "ffn_down.weight"] = {12, 8};
    }
    ASSERT_EQ(f.tensors().size(), expected.size());
    for (const TensorInfo& t : f.tensors()) {
        ASSERT_TRUE(expected.count(t.name)) << t.name;
        EXPECT_EQ(t.dims, expected[t.name]) << t.name;
        const bool norm = t.name.find("norm") != std::string::npos;
        EXPECT_EQ(t.type, norm ? GgmlType::F32 : GgmlType::F16) << t.name;
    }

    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_string("general.name"), "tiny-f16");
    EXPECT_EQ(f.get_scalar<uint32_t>("general.file_type"), 1u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.context_length"), 64u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.embedding_length"), 8u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.block_count"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.feed_forward_length"), 12u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.rope.dimension_count"), 4u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.attention.head_count"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.attention.head_count_kv"), 1u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.vocab_size"), 10u);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("llama.attention.layer_norm_rms_epsilon"), 1e-6f);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("llama.rope.freq_base"), 500000.0f);
    EXPECT_EQ(f.find("llama.attention.key_length"), nullptr);  // head_dim == hidden / heads

    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "llama");
    const auto& tokens = f.get("tokenizer.ggml.tokens").get_strings();
    ASSERT_EQ(tokens.size(), 10u);
    EXPECT_EQ(tokens[4], "\xe2\x96\x81" "a");
    EXPECT_EQ(tokens[8], "[PAD8]");
    EXPECT_EQ(tokens[9], "[PAD9]");
    const auto scores = f.get("tokenizer.ggml.scores").get_array<float>();
    EXPECT_EQ(scores, (std::vector<float>{0, 0, 0, 0, -1, -2, -3, -4, -1000, -1000}));
    const auto types = f.get("tokenizer.ggml.token_type").get_array<int32_t>();
    EXPECT_EQ(types, (std::vector<int32_t>{2, 3, 3, 6, 1, 1, 1, 1, 5, 5}));
    EXPECT_EQ(f.get_scalar<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
    EXPECT_EQ(f.get_scalar<uint32_t>("tokenizer.ggml.eos_token_id"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("tokenizer.ggml.unknown_token_id"), 0u);
    EXPECT_EQ(f.find("tokenizer.ggml.padding_token_id"), nullptr);
    EXPECT_TRUE(f.get_scalar<bool>("tokenizer.ggml.add_bos_token"));
    EXPECT_FALSE(f.get_scalar<bool>("tokenizer.ggml.add_eos_token"));
    EXPECT_TRUE(f.get_scalar<bool>("tokenizer.ggml.add_space_prefix"));

    // F16 data is the FP16 rounding of the source values (F16 and BF16 sources too).
    for (const std::string& name : {std::string("model.layers.1.mlp.up_proj.weight"),
                                    std::string("model.layers.0.self_attn.v_proj.weight"),
                                    std::string("model.layers.0.mlp.gate_proj.weight")}) {
        const std::vector<float> src = tensors.get(name).to_f32();
        const std::vector<float> out = gguf_f32(f, *gguf_name_for_hf(name));
        ASSERT_EQ(out.size(), src.size());
        for (size_t i = 0; i < src.size(); ++i) EXPECT_EQ(out[i], fp16_to_fp32(fp32_to_fp16(src[i]))) << name << i;
    }
    // Norms stay exact F32.
    EXPECT_EQ(gguf_f32(f, "blk.0.ffn_norm.weight"), tensors.get("model.layers.0.post_attention_layernorm.weight").to_f32());
    EXPECT_EQ(gguf_f32(f, "output_norm.weight"), tensors.get("model.norm.weight").to_f32());
}

TEST(LlamaExport, QueryAndKeyRowsArePermutedBackToInterleavedPairs) {
    const ModelConfig c = tiny_config();  // head_dim 4: half 2
    const TensorMap tensors = tiny_tensors(c);
    const std::string path = temp_dir("gguf-permute") + "/tiny-f32.gguf";
    export_llama_gguf(c, tensors, tiny_vocab(), path, GgufExportType::F32);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_scalar<uint32_t>("general.file_type"), 0u);

    const int64_t cols = c.hidden_size;
    for (int l = 0; l < 2; ++l) {
        const std::vector<float> hf_q = tensors.get(layer_tensor_name(l, "self_attn.q_proj.weight")).to_f32();
        const std::vector<float> hf_k = tensors.get(layer_tensor_name(l, "self_attn.k_proj.weight")).to_f32();
        const std::vector<float> gq = gguf_f32(f, "blk." + std::to_string(l) + ".attn_q.weight");
        const std::vector<float> gk = gguf_f32(f, "blk." + std::to_string(l) + ".attn_k.weight");
        ASSERT_EQ(gq.size(), hf_q.size());
        ASSERT_EQ(gk.size(), hf_k.size());
        auto row = [cols](const std::vector<float>& m, int64_t r) {
            return std::vector<float>(m.begin() + r * cols, m.begin() + (r + 1) * cols);
        };
        // Explicit rows. Head 1 (rows 4..7), head size 4: GGUF row 4 + 2*b + a <- HF row 4 + 2*a + b.
        EXPECT_EQ(row(gq, 4), row(hf_q, 4));  // a=0, b=0
        EXPECT_EQ(row(gq, 5), row(hf_q, 6));  // a=1, b=0
        EXPECT_EQ(row(gq, 6), row(hf_q, 5));  // a=0, b=1
        EXPECT_EQ(row(gq, 7), row(hf_q, 7));  // a=1, b=1
        EXPECT_EQ(row(gk, 1), row(hf_k, 2));  // one KV head
        EXPECT_EQ(row(gk, 2), row(hf_k, 1));
        EXPECT_NE(row(gq, 5), row(hf_q, 5));

        // Hugging Face's converter permutation (interleaved -> halves) undoes it exactly.
        std::vector<float> back_q(gq.size()), back_k(gk.size());
        permute_rows_interleaved_to_halves(gq.data(), back_q.data(), c.num_heads, c.head_dim, cols);
        permute_rows_interleaved_to_halves(gk.data(), back_k.data(), c.num_kv_heads, c.head_dim, cols);
        EXPECT_EQ(back_q, hf_q);
        EXPECT_EQ(back_k, hf_k);
        // v is not permuted.
        EXPECT_EQ(gguf_f32(f, "blk." + std::to_string(l) + ".attn_v.weight"),
                  tensors.get(layer_tensor_name(l, "self_attn.v_proj.weight")).to_f32());
    }
    // The helper agrees with the permutation in formats/rope_permutation.h.
    std::vector<float> rows(16), permuted(16);
    for (int i = 0; i < 16; ++i) rows[static_cast<size_t>(i)] = static_cast<float>(i);
    permute_rows_halves_to_interleaved(rows.data(), permuted.data(), 2, 8, 1);
    for (int r = 0; r < 16; ++r) EXPECT_EQ(permuted[static_cast<size_t>(r)], static_cast<float>(hf_row_for_gguf_row(r, 8)));
}

TEST(LlamaExport, TiedEmbeddingsOmitTheOutputTensor) {
    ModelConfig c = tiny_config();
    c.tie_word_embeddings = true;
    const std::string dir = temp_dir("gguf-tied");
    export_llama_gguf(c, tiny_tensors(c, false), tiny_vocab(), dir + "/a.gguf", GgufExportType::F16, "tied");
    const GgufFile f = GgufFile::open(dir + "/a.gguf");
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
    EXPECT_NE(f.find_tensor("token_embd.weight"), nullptr);
    EXPECT_EQ(f.get_string("general.name"), "tied");
    // A tied checkpoint that still stores lm_head.weight exports the same way.
    export_llama_gguf(c, tiny_tensors(c, true), tiny_vocab(), dir + "/b.gguf", GgufExportType::F16);
    EXPECT_EQ(GgufFile::open(dir + "/b.gguf").tensors().size(), f.tensors().size());
}

TEST(LlamaExport, HeadDimOtherThanHiddenOverHeadsIsStated) {
    ModelConfig c = tiny_config();
    c.head_dim = 6;  // q_dim 12 != hidden 8
    const std::string path = temp_dir("gguf-headdim") + "/h.gguf";
    export_llama_gguf(c, tiny_tensors(c), tiny_vocab(), path, GgufExportType::F32);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.attention.key_length"), 6u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.attention.value_length"), 6u);
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.rope.dimension_count"), 6u);
    EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->dims, (std::vector<uint64_t>{8, 12}));
}

TEST(LlamaExport, RejectsWhatLlamaCppWouldNotLoad) {
    const ModelConfig c = tiny_config();
    const std::string dir = temp_dir("gguf-reject");
    {
        TensorMap t = tiny_tensors(c);
        t.add("model.layers.0.self_attn.q_proj.bias", filled({8}, 99));
        EXPECT_SPARQ_ERROR(export_llama_gguf(c, t, tiny_vocab(), dir + "/x.gguf", GgufExportType::F16),
                           "tensor 'model.layers.0.self_attn.q_proj.bias'", "not part of a Llama model");
    }
    {
        ModelConfig wrong = c;
        wrong.intermediate_size = 16;
        EXPECT_SPARQ_ERROR(export_llama_gguf(wrong, tiny_tensors(c), tiny_vocab(), dir + "/x.gguf",
                                             GgufExportType::F16),
                           "tensor 'model.layers.0.mlp.gate_proj.weight'", "has shape [12, 8], expected [16, 8]");
    }
    {
        TensorMap t("no-head");
        const TensorMap full = tiny_tensors(c);
        for (const auto& [name, tensor] : full.all()) {
            if (name != "lm_head.weight") t.add(name, tensor);
        }
        EXPECT_SPARQ_ERROR(export_llama_gguf(c, t, tiny_vocab(), dir + "/x.gguf", GgufExportType::F16),
                           "tensor 'lm_head.weight'", "missing");
    }
    {
        Vocabulary v = tiny_vocab();
        for (int i = 0; i < 5; ++i) v.pieces.push_back("x" + std::to_string(i));
        v.scores.resize(v.pieces.size());
        v.kinds.resize(v.pieces.size(), TokenKind::Normal);
        EXPECT_SPARQ_ERROR(export_llama_gguf(c, tiny_tensors(c), v, dir + "/x.gguf", GgufExportType::F16),
                           "the tokenizer has 13 tokens but the model only 10");
    }
    {
        Vocabulary v = tiny_vocab();
        v.scores.pop_back();
        EXPECT_SPARQ_ERROR(export_llama_gguf(c, tiny_tensors(c), v, dir + "/x.gguf", GgufExportType::F16),
                           "7 scores for 8 tokens");
    }
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
    EXPECT_TRUE(std::filesystem::is_empty(dir));
}

TEST(LlamaExport, NameMapping) {
    EXPECT_EQ(gguf_name_for_hf("model.layers.3.mlp.down_proj.weight"), "blk.3.ffn_down.weight");
    EXPECT_EQ(gguf_name_for_hf("model.layers.12.self_attn.o_proj.weight"), "blk.12.attn_output.weight");
    EXPECT_EQ(gguf_name_for_hf("model.embed_tokens.weight"), "token_embd.weight");
    EXPECT_EQ(gguf_name_for_hf("lm_head.weight"), "output.weight");
    EXPECT_EQ(gguf_name_for_hf("model.layers.x.mlp.down_proj.weight"), std::nullopt);
    EXPECT_EQ(gguf_name_for_hf("model.layers.1.mlp.down_proj.bias"), std::nullopt);
    EXPECT_EQ(hf_name_for_gguf("blk.0.attn_norm.weight"), "model.layers.0.input_layernorm.weight");
    EXPECT_EQ(hf_name_for_gguf("blk.7.ffn_norm.weight"), "model.layers.7.post_attention_layernorm.weight");
    EXPECT_EQ(hf_name_for_gguf("output_norm.weight"), "model.norm.weight");
    EXPECT_EQ(hf_name_for_gguf("rope_freqs.weight"), std::nullopt);
}

// The real models: every tensor mapped, and as many tensor bytes per
// parameter as llama.cpp's own F16 conversion (reference/llamacpp.json).
TEST(LlamaExport, RealModelsMatchLlamaCppF16Size) {
    struct Case {
        const char* dir;
        double reference_bpw;
    };
    for (const Case& k : {Case{"small-llama-v2", 16.0088}, Case{"stories260K", 0}}) {
        const std::string hf = std::string(k.dir) + "/hf";
        SPARQ_REQUIRE_DATA(hf + "/model.safetensors");
        const ModelSource m = load_model(sparq::testing::data_path(hf));
        const std::string path = temp_dir("gguf-real") + "/" + k.dir + ".gguf";
        const GgufExportSummary s =
            export_llama_gguf(m.config, m.tensors, m.tokenizer->vocabulary(), path, GgufExportType::F16);
        const GgufFile f = GgufFile::open(path);
        const size_t expected_tensors =
            static_cast<size_t>(2 + 9 * m.config.num_layers + (m.config.tie_word_embeddings ? 0 : 1));
        EXPECT_EQ(s.tensors, expected_tensors);
        EXPECT_EQ(f.tensors().size(), expected_tensors);
        uint64_t bytes = 0, params = 0;
        for (const TensorInfo& t : f.tensors()) {
            bytes += t.nbytes;
            params += t.n_elements;
            const auto hf_name = hf_name_for_gguf(t.name);
            ASSERT_TRUE(hf_name.has_value()) << t.name;
            EXPECT_EQ(t.shape(), m.tensors.get(*hf_name).shape) << t.name;
        }
        EXPECT_EQ(f.get("tokenizer.ggml.tokens").size(), static_cast<uint64_t>(m.config.vocab_size));
        if (k.reference_bpw > 0) {
            EXPECT_NEAR(8.0 * static_cast<double>(bytes) / static_cast<double>(params), k.reference_bpw, 1e-4);
        }
    }
}

}  // namespace
}  // namespace sparq
