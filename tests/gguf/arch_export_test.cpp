// export_llama_gguf for the architectures besides Llama: Mistral (arch
// "llama"), Qwen2 (arch "qwen2": biases, q/k rows NOT permuted since
// llama.cpp's NEOX RoPE rotates halves as Hugging Face does), MiniCPM (arch
// "minicpm": the three muP scales as llama.cpp applies them), and byte-level
// BPE (gpt2) vocabularies with their tokenizer.ggml.pre.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "formats/error_matchers.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/llama_export.h"
#include "models/model_source.h"
#include "tokenizer/tokenizer_test_files.h"
#include "test_data.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace sparq {
namespace {

using gguf::GgmlType;
using gguf::GgufFile;
using gguf::TensorInfo;
using sparq::testing::temp_dir;

ModelConfig base_config(const std::string& architecture) {
    ModelConfig c;
    c.architecture = architecture;
    c.hidden_size = 8;
    c.intermediate_size = 12;
    c.num_layers = 2;
    c.num_heads = 2;
    c.num_kv_heads = 1;
    c.head_dim = 4;
    c.vocab_size = 10;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-6;
    c.rope_theta = 1000000.0;
    if (architecture == "Qwen2ForCausalLM") {
        c.attention_bias = true;
        c.tie_word_embeddings = true;
    }
    if (architecture == "MistralForCausalLM") c.sliding_window = 32;
    if (architecture == "MiniCPMForCausalLM") {
        c.scale_emb = 12;
        c.scale_depth = 1.4;
        c.dim_model_base = 2;
        c.tie_word_embeddings = true;
    }
    return c;
}

Vocabulary spm_vocab() {
    Vocabulary v;
    v.model = "llama";
    v.pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "\xe2\x96\x81" "a", "b", "c", "d", "e", "f"};
    v.scores = {0, 0, 0, 0, -1, -2, -3, -4, -5, -6};
    v.kinds = {TokenKind::Unknown, TokenKind::Control, TokenKind::Control, TokenKind::Byte, TokenKind::Normal,
               TokenKind::Normal,  TokenKind::Normal,  TokenKind::Normal,  TokenKind::Normal, TokenKind::Normal};
    return v;
}

Vocabulary bpe_vocab() {
    Vocabulary v;
    v.model = "gpt2";
    v.pieces = {"<|endoftext|>", "a", "b", "ab", "\xc4\xa0", "\xc4\xa0" "a", "c", "[PAD7]"};  // 8 of 10
    v.scores.assign(v.pieces.size(), 0.0f);
    v.kinds = {TokenKind::Control, TokenKind::Normal, TokenKind::Normal, TokenKind::Normal,
               TokenKind::Normal,  TokenKind::Normal, TokenKind::Normal, TokenKind::Unused};
    v.merges = {"a b", "\xc4\xa0 a"};
    v.bos_id = 0;
    v.eos_id = 0;
    v.unk_id = -1;
    v.add_bos = false;
    v.add_space_prefix = false;
    return v;
}

// Distinct values per tensor and element (tensor id in the integer part).
Tensor filled(Shape shape, int id) {
    const int64_t n = shape_numel(shape);
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(id) + static_cast<float>(i) / 256.0f;
    return make_f32_tensor(std::move(shape), std::move(v));
}

TensorMap model_tensors(const ModelConfig& c, bool biases, bool output_bias = false) {
    TensorMap m("tiny-" + c.architecture);
    int id = 1;
    m.add("model.embed_tokens.weight", filled({c.vocab_size, c.hidden_size}, id++));
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [l](const std::string& s) { return layer_tensor_name(l, s); };
        m.add(name("input_layernorm.weight"), filled({c.hidden_size}, id++));
        m.add(name("self_attn.q_proj.weight"), filled({c.q_dim(), c.hidden_size}, id++));
        m.add(name("self_attn.k_proj.weight"), filled({c.kv_dim(), c.hidden_size}, id++));
        m.add(name("self_attn.v_proj.weight"), filled({c.kv_dim(), c.hidden_size}, id++));
        m.add(name("self_attn.o_proj.weight"), filled({c.hidden_size, c.q_dim()}, id++));
        if (biases) {
            m.add(name("self_attn.q_proj.bias"), filled({c.q_dim()}, id++));
            m.add(name("self_attn.k_proj.bias"), filled({c.kv_dim()}, id++));
            m.add(name("self_attn.v_proj.bias"), filled({c.kv_dim()}, id++));
        }
        if (output_bias) m.add(name("self_attn.o_proj.bias"), filled({c.hidden_size}, id++));
        m.add(name("post_attention_layernorm.weight"), filled({c.hidden_size}, id++));
        m.add(name("mlp.gate_proj.weight"), filled({c.intermediate_size, c.hidden_size}, id++));
        m.add(name("mlp.up_proj.weight"), filled({c.intermediate_size, c.hidden_size}, id++));
        m.add(name("mlp.down_proj.weight"), filled({c.hidden_size, c.intermediate_size}, id++));
    }
    m.add("model.norm.weight", filled({c.hidden_size}, id++));
    if (!c.tie_word_embeddings) m.add("lm_head.weight", filled({c.vocab_size, c.hidden_size}, id++));
    return m;
}

std::vector<float> gguf_f32(const GgufFile& f, const std::string& name) {
    const TensorInfo* t = f.find_tensor(name);
    if (!t) ADD_FAILURE() << "missing " << name;
    return t ? f.tensor(*t).to_f32() : std::vector<float>{};
}

std::vector<float> hf_f32(const TensorMap& m, int64_t layer, const std::string& suffix) {
    return m.get(layer_tensor_name(layer, suffix)).to_f32();
}

// Rows of `hf` ([rows, cols]) in GGUF order: permuted (interleaved pairs) or not.
std::vector<float> expected_rows(const std::vector<float>& hf, int64_t cols, int64_t head_size, bool permute) {
    std::vector<float> out(hf.size());
    const int64_t rows = static_cast<int64_t>(hf.size()) / cols;
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t src = permute ? hf_row_for_gguf_row(r, head_size) : r;
        for (int64_t c = 0; c < cols; ++c) out[static_cast<size_t>(r * cols + c)] = hf[static_cast<size_t>(src * cols + c)];
    }
    return out;
}

size_t keys_with_prefix(const GgufFile& f, const std::string& prefix) {
    size_t n = 0;
    for (const auto& [key, value] : f.kvs()) n += key.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
}

TEST(ArchExport, ArchitectureMapping) {
    EXPECT_EQ(llamacpp_arch(base_config("LlamaForCausalLM")), "llama");
    EXPECT_EQ(llamacpp_arch(base_config("MistralForCausalLM")), "llama");
    EXPECT_EQ(llamacpp_arch(base_config("Qwen2ForCausalLM")), "qwen2");
    EXPECT_EQ(llamacpp_arch(base_config("MiniCPMForCausalLM")), "minicpm");
    EXPECT_TRUE(llamacpp_rope_is_interleaved(base_config("LlamaForCausalLM")));
    EXPECT_TRUE(llamacpp_rope_is_interleaved(base_config("MistralForCausalLM")));
    EXPECT_TRUE(llamacpp_rope_is_interleaved(base_config("MiniCPMForCausalLM")));
    EXPECT_FALSE(llamacpp_rope_is_interleaved(base_config("Qwen2ForCausalLM")));
    EXPECT_SPARQ_ERROR(llamacpp_arch(base_config("GemmaForCausalLM")), "architecture 'GemmaForCausalLM'");
    EXPECT_EQ(gguf_name_for_hf("model.layers.2.self_attn.q_proj.bias"), "blk.2.attn_q.bias");
    EXPECT_EQ(gguf_name_for_hf("model.layers.2.self_attn.k_proj.bias"), "blk.2.attn_k.bias");
    EXPECT_EQ(gguf_name_for_hf("model.layers.2.self_attn.v_proj.bias"), "blk.2.attn_v.bias");
    EXPECT_EQ(gguf_name_for_hf("model.layers.2.self_attn.o_proj.bias"), "blk.2.attn_output.bias");
    EXPECT_EQ(hf_name_for_gguf("blk.5.attn_v.bias"), "model.layers.5.self_attn.v_proj.bias");
}

TEST(ArchExport, Qwen2KeysBiasesAndUnpermutedQueryKeyRows) {
    const ModelConfig c = base_config("Qwen2ForCausalLM");
    const TensorMap tensors = model_tensors(c, true);
    const std::string path = temp_dir("gguf-qwen2") + "/q.gguf";
    const GgufExportSummary s = export_llama_gguf(c, tensors, spm_vocab(), path, GgufExportType::F16);
    EXPECT_EQ(s.tensors, 1u + 12u * 2u + 1u);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_string("general.architecture"), "qwen2");
    EXPECT_EQ(keys_with_prefix(f, "llama."), 0u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.context_length"), 64u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.embedding_length"), 8u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.block_count"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.feed_forward_length"), 12u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.attention.head_count"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.attention.head_count_kv"), 1u);
    EXPECT_EQ(f.get_scalar<uint32_t>("qwen2.rope.dimension_count"), 4u);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("qwen2.rope.freq_base"), 1000000.0f);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("qwen2.attention.layer_norm_rms_epsilon"), 1e-6f);
    EXPECT_EQ(f.find("qwen2.embedding_scale"), nullptr);
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);  // tied

    const int64_t cols = c.hidden_size;
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        // Biases: present, F32 (also in an F16 file), values as they are (no permutation).
        for (const char* t : {"attn_q.bias", "attn_k.bias", "attn_v.bias"}) {
            const TensorInfo* info = f.find_tensor(b + t);
            ASSERT_NE(info, nullptr) << b + t;
            EXPECT_EQ(info->type, GgmlType::F32) << t;
        }
        EXPECT_EQ(f.find_tensor(b + "attn_q.bias")->dims, (std::vector<uint64_t>{8}));
        EXPECT_EQ(f.find_tensor(b + "attn_k.bias")->dims, (std::vector<uint64_t>{4}));
        EXPECT_EQ(gguf_f32(f, b + "attn_q.bias"), hf_f32(tensors, l, "self_attn.q_proj.bias"));
        EXPECT_EQ(gguf_f32(f, b + "attn_k.bias"), hf_f32(tensors, l, "self_attn.k_proj.bias"));
        EXPECT_EQ(gguf_f32(f, b + "attn_v.bias"), hf_f32(tensors, l, "self_attn.v_proj.bias"));
        EXPECT_EQ(f.find_tensor(b + "attn_output.bias"), nullptr);
    }

    // q/k rows in Hugging Face's order: exported to F32 they are the source exactly.
    const std::string path32 = temp_dir("gguf-qwen2-f32") + "/q.gguf";
    export_llama_gguf(c, tensors, spm_vocab(), path32, GgufExportType::F32);
    const GgufFile f32 = GgufFile::open(path32);
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        const std::vector<float> hq = hf_f32(tensors, l, "self_attn.q_proj.weight");
        const std::vector<float> hk = hf_f32(tensors, l, "self_attn.k_proj.weight");
        EXPECT_EQ(gguf_f32(f32, b + "attn_q.weight"), hq);
        EXPECT_EQ(gguf_f32(f32, b + "attn_k.weight"), hk);
        EXPECT_NE(gguf_f32(f32, b + "attn_q.weight"), expected_rows(hq, cols, c.head_dim, true));
    }
}

TEST(ArchExport, Qwen2RefusesWhatLlamaCppsQwen2WouldNotLoad) {
    const ModelConfig c = base_config("Qwen2ForCausalLM");
    const std::string dir = temp_dir("gguf-qwen2-reject");
    // Biases are required.
    EXPECT_SPARQ_ERROR(export_llama_gguf(c, model_tensors(c, false), spm_vocab(), dir + "/x.gguf", GgufExportType::F16),
                       "tensor 'model.layers.0.self_attn.q_proj.bias'", "missing");
    // "qwen2" has no attention output bias.
    EXPECT_SPARQ_ERROR(
        export_llama_gguf(c, model_tensors(c, true, true), spm_vocab(), dir + "/x.gguf", GgufExportType::F16),
        "tensor 'model.layers.0.self_attn.o_proj.bias'", "not part of a Qwen2 model", "\"qwen2\" architecture");
    // attn_q is [hidden, hidden] there.
    ModelConfig wide = c;
    wide.head_dim = 6;
    EXPECT_SPARQ_ERROR(
        export_llama_gguf(wide, model_tensors(wide, true), spm_vocab(), dir + "/x.gguf", GgufExportType::F16),
        "num_attention_heads x head_dim (12) equal to hidden_size (8)");
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

TEST(ArchExport, MistralIsLlamaWithPermutedRows) {
    const ModelConfig c = base_config("MistralForCausalLM");
    const TensorMap tensors = model_tensors(c, false);
    const std::string path = temp_dir("gguf-mistral") + "/m.gguf";
    export_llama_gguf(c, tensors, spm_vocab(), path, GgufExportType::F32);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.get_scalar<uint32_t>("llama.block_count"), 2u);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("llama.rope.freq_base"), 1000000.0f);
    // llama.cpp has no sliding-window key for "llama": nothing is written.
    for (const auto& [key, value] : f.kvs()) EXPECT_EQ(key.find("sliding"), std::string::npos) << key;
    EXPECT_EQ(f.tensors().size(), 1u + 9u * 2u + 2u);
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        EXPECT_EQ(gguf_f32(f, b + "attn_q.weight"),
                  expected_rows(hf_f32(tensors, l, "self_attn.q_proj.weight"), c.hidden_size, c.head_dim, true));
        EXPECT_EQ(gguf_f32(f, b + "attn_k.weight"),
                  expected_rows(hf_f32(tensors, l, "self_attn.k_proj.weight"), c.hidden_size, c.head_dim, true));
    }
}

TEST(ArchExport, LlamaAttentionBiasesFollowThePermutedRows) {
    ModelConfig c = base_config("LlamaForCausalLM");
    c.attention_bias = true;
    const TensorMap tensors = model_tensors(c, true, true);
    const std::string path = temp_dir("gguf-llama-bias") + "/b.gguf";
    export_llama_gguf(c, tensors, spm_vocab(), path, GgufExportType::F16);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        const std::vector<float> q = hf_f32(tensors, l, "self_attn.q_proj.bias");
        const std::vector<float> k = hf_f32(tensors, l, "self_attn.k_proj.bias");
        EXPECT_EQ(gguf_f32(f, b + "attn_q.bias"), expected_rows(q, 1, c.head_dim, true));
        EXPECT_EQ(gguf_f32(f, b + "attn_k.bias"), expected_rows(k, 1, c.head_dim, true));
        EXPECT_NE(gguf_f32(f, b + "attn_q.bias"), q);
        EXPECT_EQ(gguf_f32(f, b + "attn_v.bias"), hf_f32(tensors, l, "self_attn.v_proj.bias"));
        EXPECT_EQ(gguf_f32(f, b + "attn_output.bias"), hf_f32(tensors, l, "self_attn.o_proj.bias"));
        EXPECT_EQ(f.find_tensor(b + "attn_q.bias")->type, GgmlType::F32);
    }
}

TEST(ArchExport, MiniCPMScalesAsLlamaCppAppliesThem) {
    const ModelConfig c = base_config("MiniCPMForCausalLM");
    const TensorMap tensors = model_tensors(c, false);
    const std::string path = temp_dir("gguf-minicpm") + "/c.gguf";
    export_llama_gguf(c, tensors, spm_vocab(), path, GgufExportType::F32);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_string("general.architecture"), "minicpm");
    EXPECT_EQ(keys_with_prefix(f, "llama."), 0u);
    EXPECT_EQ(f.get_scalar<uint32_t>("minicpm.block_count"), 2u);
    EXPECT_EQ(f.get_scalar<uint32_t>("minicpm.attention.head_count_kv"), 1u);
    // llama.cpp: embeddings x embedding_scale; each residual branch x residual_scale; logits / logit_scale.
    EXPECT_FLOAT_EQ(f.get_scalar<float>("minicpm.embedding_scale"), 12.0f);
    EXPECT_FLOAT_EQ(f.get_scalar<float>("minicpm.residual_scale"), static_cast<float>(1.4 / std::sqrt(2.0)));
    EXPECT_FLOAT_EQ(f.get_scalar<float>("minicpm.logit_scale"), 4.0f);  // hidden 8 / dim_model_base 2
    EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        EXPECT_EQ(gguf_f32(f, b + "attn_q.weight"),
                  expected_rows(hf_f32(tensors, l, "self_attn.q_proj.weight"), c.hidden_size, c.head_dim, true));
        EXPECT_EQ(gguf_f32(f, b + "attn_k.weight"),
                  expected_rows(hf_f32(tensors, l, "self_attn.k_proj.weight"), c.hidden_size, c.head_dim, true));
    }
    ModelConfig broken = c;
    broken.dim_model_base = 0;
    EXPECT_SPARQ_ERROR(export_llama_gguf(broken, tensors, spm_vocab(), path + ".x", GgufExportType::F32),
                       "scale_emb, scale_depth and dim_model_base");
}

TEST(ArchExport, Gpt2VocabularyWithPreTokenizer) {
    const ModelConfig c = base_config("Qwen2ForCausalLM");
    const std::string dir = temp_dir("gguf-bpe");
    export_llama_gguf(c, model_tensors(c, true), bpe_vocab(), dir + "/b.gguf", GgufExportType::F16, "", "qwen2");
    const GgufFile f = GgufFile::open(dir + "/b.gguf");
    EXPECT_EQ(f.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "qwen2");
    const auto& tokens = f.get("tokenizer.ggml.tokens").get_strings();
    ASSERT_EQ(tokens.size(), 10u);
    EXPECT_EQ(tokens[5], "\xc4\xa0" "a");
    EXPECT_EQ(tokens[9], "[PAD9]");
    EXPECT_EQ(f.get("tokenizer.ggml.merges").get_strings(), (std::vector<std::string>{"a b", "\xc4\xa0 a"}));
    EXPECT_EQ(f.get("tokenizer.ggml.token_type").get_array<int32_t>(),
              (std::vector<int32_t>{3, 1, 1, 1, 1, 1, 1, 5, 5, 5}));
    EXPECT_EQ(f.find("tokenizer.ggml.scores"), nullptr);  // as llama.cpp's converter: BPE has none
    EXPECT_EQ(f.find("tokenizer.ggml.add_space_prefix"), nullptr);
    EXPECT_EQ(f.get_scalar<uint32_t>("tokenizer.ggml.bos_token_id"), 0u);
    EXPECT_EQ(f.get_scalar<uint32_t>("tokenizer.ggml.eos_token_id"), 0u);
    EXPECT_EQ(f.find("tokenizer.ggml.unknown_token_id"), nullptr);
    EXPECT_FALSE(f.get_scalar<bool>("tokenizer.ggml.add_bos_token"));

    // Without a pre-tokenizer type llama.cpp would fall back to its "default" regexes: refused.
    EXPECT_SPARQ_ERROR(
        export_llama_gguf(c, model_tensors(c, true), bpe_vocab(), dir + "/x.gguf", GgufExportType::F16),
        "tokenizer.ggml.pre");
    // A SentencePiece vocabulary gets no tokenizer.ggml.pre.
    export_llama_gguf(c, model_tensors(c, true), spm_vocab(), dir + "/s.gguf", GgufExportType::F16);
    EXPECT_EQ(GgufFile::open(dir + "/s.gguf").find("tokenizer.ggml.pre"), nullptr);
    EXPECT_FALSE(std::filesystem::exists(dir + "/x.gguf"));
}

HfPreTokenizerStep byte_level(bool use_regex) {
    HfPreTokenizerStep s;
    s.type = HfPreTokenizerStep::Type::ByteLevel;
    s.use_regex = use_regex;
    return s;
}

HfPreTokenizerStep split(const std::string& pattern) {
    HfPreTokenizerStep s;
    s.type = HfPreTokenizerStep::Type::Split;
    s.pattern = pattern;
    return s;
}

TEST(ArchExport, PreTokenizerNames) {
    const std::string llama3 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    const std::string qwen2 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    HfTokenizerJson spec;
    spec.pre_tokenizer = {byte_level(true)};
    EXPECT_EQ(llamacpp_tokenizer_pre(spec), "gpt-2");
    spec.pre_tokenizer = {split(R"(\p{N})"), byte_level(true)};
    EXPECT_EQ(llamacpp_tokenizer_pre(spec), "smollm");
    spec.pre_tokenizer = {split(qwen2), byte_level(false)};
    EXPECT_EQ(llamacpp_tokenizer_pre(spec), "qwen2");
    spec.pre_tokenizer = {split(llama3), byte_level(false)};
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "ignore_merges false", "\"llama-bpe\"");
    spec.ignore_merges = true;
    EXPECT_EQ(llamacpp_tokenizer_pre(spec), "llama-bpe");
    spec.pre_tokenizer = {byte_level(true)};
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "ignore_merges true", "\"gpt-2\"");
    spec.ignore_merges = false;

    // Anything llama.cpp has no exact counterpart for is refused, naming the steps.
    spec.pre_tokenizer = {split(R"(\p{N}+)"), byte_level(true)};  // Digits without individual_digits
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "Split('\\p{N}+')", "ByteLevel(add_prefix_space=false");
    spec.pre_tokenizer = {byte_level(true)};
    spec.pre_tokenizer[0].add_prefix_space = true;
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "ByteLevel(add_prefix_space=true, use_regex=true)");
    spec.pre_tokenizer = {split(qwen2), byte_level(true)};  // the GPT-2 regex after Qwen2's: not "qwen2"
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "no llama.cpp pre-tokenizer type");
    HfPreTokenizerStep inverted = split(R"(\p{N})");
    inverted.invert = true;
    spec.pre_tokenizer = {inverted, byte_level(true)};
    EXPECT_SPARQ_ERROR(llamacpp_tokenizer_pre(spec), "inverted");
}

TEST(ArchExport, PreTokenizerOfRealTokenizers) {
    SPARQ_REQUIRE_DATA("tokenizers/smollm2/tokenizer.json");
    SPARQ_REQUIRE_DATA("small-llama/hf/tokenizer.model");
    const auto smollm2 = load_tokenizer(sparq::testing::data_path("tokenizers/smollm2/tokenizer.json"), 0);
    EXPECT_EQ(llamacpp_tokenizer_pre(*smollm2), "smollm");
    const auto gpt2 = load_tokenizer(sparq::testing::data_path("tokenizers/gpt2/tokenizer.json"), 0);
    EXPECT_EQ(llamacpp_tokenizer_pre(*gpt2), "gpt-2");
    const auto spm = load_tokenizer(sparq::testing::data_path("small-llama/hf/tokenizer.model"), 0);
    EXPECT_EQ(llamacpp_tokenizer_pre(*spm), "");

    // The whole SmolLM2 vocabulary: every token and merge, no scores.
    ModelConfig c = base_config("LlamaForCausalLM");
    c.vocab_size = static_cast<int64_t>(smollm2->vocabulary().size());
    const std::string path = temp_dir("gguf-smollm2") + "/s.gguf";
    export_llama_gguf(c, model_tensors(c, false), smollm2->vocabulary(), path, GgufExportType::F16, "", "smollm");
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.get_string("tokenizer.ggml.pre"), "smollm");
    EXPECT_EQ(f.get("tokenizer.ggml.tokens").get_strings(), smollm2->vocabulary().pieces);
    EXPECT_EQ(f.get("tokenizer.ggml.merges").get_strings(), smollm2->vocabulary().merges);
    EXPECT_GT(smollm2->vocabulary().merges.size(), 40000u);
}

// Read back (models/gguf_model.h): each architecture's tensors come out as
// they went in (q/k rows un-permuted for llama, as stored for qwen2, biases
// included), with the config's fields; an unknown BPE pre-tokenizer is an
// error naming tokenizer.ggml.pre.
TEST(ArchExport, ReadBackGivesTheSourceTensors) {
    for (const std::string arch : {"LlamaForCausalLM", "Qwen2ForCausalLM"}) {
        SCOPED_TRACE(arch);
        ModelConfig c = base_config(arch);
        if (arch == "LlamaForCausalLM") c.attention_bias = true;  // llama's optional q/k/v/o biases
        const TensorMap tensors = model_tensors(c, c.attention_bias);
        const std::string path = temp_dir("gguf-readback-" + arch) + "/m.gguf";
        export_llama_gguf(c, tensors, spm_vocab(), path, GgufExportType::F32);
        const ModelSource m = load_model(path);
        EXPECT_EQ(m.config.architecture, arch);
        EXPECT_EQ(m.config.attention_bias, arch == "Qwen2ForCausalLM");
        EXPECT_EQ(m.config.tie_word_embeddings, c.tie_word_embeddings);
        EXPECT_EQ(m.config.head_dim, c.head_dim);
        EXPECT_EQ(m.config.num_kv_heads, c.num_kv_heads);
        EXPECT_FLOAT_EQ(static_cast<float>(m.config.rope_theta), static_cast<float>(c.rope_theta));
        size_t compared = 0;
        for (const auto& [name, t] : tensors.all()) {
            if (name == "lm_head.weight" && c.tie_word_embeddings) continue;
            ASSERT_TRUE(m.tensors.has(name)) << name;
            EXPECT_EQ(m.tensors.get(name).to_f32(), t.to_f32()) << name;
            ++compared;
        }
        EXPECT_EQ(compared, m.tensors.size());
    }
    // A byte-level BPE vocabulary whose llama.cpp pre-tokenizer is not rebuilt.
    const ModelConfig c = base_config("LlamaForCausalLM");
    const std::string path = temp_dir("gguf-readback-bpe") + "/m.gguf";
    export_llama_gguf(c, model_tensors(c, false), bpe_vocab(), path, GgufExportType::F32, "", "command-r");
    try {
        load_model(path);
        FAIL() << "an unknown pre-tokenizer was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().field, "tokenizer.ggml.pre");
    }
    LoadOptions no_tokenizer;  // inspect: the model opens without one
    no_tokenizer.require_tokenizer = false;
    const ModelSource bare = load_model(path, no_tokenizer);
    EXPECT_EQ(bare.tokenizer, nullptr);
    EXPECT_EQ(bare.config.num_layers, c.num_layers);
}

// Byte-level BPE vocabularies (GPT-2: "gpt-2", SmolLM2: "smollm") exported to
// GGUF and read back encode as their tokenizer.json does: GPT-2's llama.cpp
// conformance vectors all match, and a .sparq file embeds the rebuilt
// tokenizer as tokenizer.json text.
TEST(ArchExport, BpeVocabulariesReadBackAsTheirTokenizerJson) {
    for (const std::string name : {"gpt2", "smollm2"}) {
        SCOPED_TRACE(name);
        SPARQ_REQUIRE_DATA("tokenizers/" + name + "/tokenizer.json");
        const auto original = load_tokenizer(testing::data_path("tokenizers/" + name + "/tokenizer.json"), 0);
        ModelConfig c = base_config("LlamaForCausalLM");
        c.vocab_size = original->vocab_size();
        const std::string path = temp_dir("gguf-bpe-" + name) + "/m.gguf";
        export_llama_gguf(c, model_tensors(c, false), original->vocabulary(), path, GgufExportType::F16, "",
                          llamacpp_tokenizer_pre(*original));
        const ModelSource m = load_model(path);
        ASSERT_TRUE(m.tokenizer);
        EXPECT_EQ(m.tokenizer->source_kind(), "hf-json");
        EXPECT_EQ(m.tokenizer->vocabulary().pieces, original->vocabulary().pieces);
        EXPECT_EQ(m.tokenizer->bos_id(), original->bos_id());
        EXPECT_EQ(m.tokenizer->vocabulary().add_bos, original->vocabulary().add_bos);
        // The exporter reads the rebuilt tokenizer's pre-tokenizer back to the same llama.cpp name.
        EXPECT_EQ(llamacpp_tokenizer_pre(*m.tokenizer), llamacpp_tokenizer_pre(*original));
        const std::string text =
            "Hello world! It's 2024-11-26, and 12345 apples cost $3.50.\n\n  Indented\tcode: x += 1 # done\n"
            "Ünïcödé naïve café — 東京 🚀 <|endoftext|>";
        EXPECT_EQ(m.tokenizer->encode(text, true), original->encode(text, true));
        EXPECT_EQ(m.tokenizer->decode(m.tokenizer->encode(text, false)), text);
        if (name == "gpt2") {
            SPARQ_REQUIRE_DATA("tokenizers/gpt2/vectors.inp");
            const auto vectors = testing::read_conformance_vectors(testing::data_path("tokenizers/gpt2/vectors.inp"),
                                                                   testing::data_path("tokenizers/gpt2/vectors.out"));
            ASSERT_FALSE(vectors.strings.empty());
            for (size_t i = 0; i < vectors.strings.size(); ++i) {
                EXPECT_EQ(m.tokenizer->encode(vectors.strings[i], false), vectors.ids[i]) << "vector " << i;
            }
        }
    }
}

}  // namespace
}  // namespace sparq
