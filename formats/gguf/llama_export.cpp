#include "formats/gguf/llama_export.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "formats/gguf/gguf_writer.h"

namespace sparq {
namespace {

using gguf::GgmlType;
using gguf::GgufWriter;
using gguf::Value;

struct NamePair {
    const char* hf;    // suffix after "model.layers.N."
    const char* gguf;  // suffix after "blk.N."
};

constexpr NamePair kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};

constexpr NamePair kGlobalNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};

// Parses "<prefix><digits>.<rest>"; returns false if it does not match.
bool split_layer(const std::string& name, const std::string& prefix, int64_t& layer, std::string& rest) {
    if (name.rfind(prefix, 0) != 0) return false;
    size_t i = prefix.size();
    const size_t digits_begin = i;
    while (i < name.size() && name[i] >= '0' && name[i] <= '9') ++i;
    if (i == digits_begin || i - digits_begin > 9 || i >= name.size() || name[i] != '.') return false;
    layer = std::stoll(name.substr(digits_begin, i - digits_begin));
    rest = name.substr(i + 1);
    return true;
}

uint32_t to_u32(int64_t v, const char* field) {
    if (v < 0 || v > static_cast<int64_t>(UINT32_MAX)) fail_in({"", "", field}, "value ", v, " does not fit in uint32");
    return static_cast<uint32_t>(v);
}

// How one GGUF tensor is produced from one Hugging Face tensor.
struct Plan {
    std::string gguf_name;
    const Tensor* source = nullptr;
    std::string hf_name;
    GgmlType type = GgmlType::F32;
    int64_t permute_head_size = 0;  // > 0: apply the q/k RoPE permutation
};

void convert_rows(const Plan& p, uint8_t* out) {
    const Tensor& t = *p.source;
    const int64_t rows = t.rows();
    const int64_t cols = t.cols();
    const bool f16 = p.type == GgmlType::F16;
    const size_t out_elem = f16 ? 2 : 4;
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16) {
        fail_in({"", p.hf_name, ""}, "has dtype ", dtype_name(t.dtype), "; GGUF export takes F32, F16 or BF16 tensors");
    }
    if (t.nbytes != static_cast<size_t>(t.numel()) * dtype_size(t.dtype)) {
        fail_in({"", p.hf_name, ""}, "holds ", t.nbytes, " bytes, expected ", t.numel() * dtype_size(t.dtype));
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(cols, 1));
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        std::vector<float> row(static_cast<size_t>(cols));
        for (int64_t r = begin; r < end; ++r) {
            const int64_t src = p.permute_head_size > 0 ? hf_row_for_gguf_row(r, p.permute_head_size) : r;
            t.rows_to_f32(src, src + 1, row.data());
            uint8_t* dst = out + static_cast<size_t>(r) * static_cast<size_t>(cols) * out_elem;
            if (f16) {
                fp32_to_fp16_row(row.data(), reinterpret_cast<uint16_t*>(dst), static_cast<size_t>(cols));
            } else {
                std::memcpy(dst, row.data(), static_cast<size_t>(cols) * sizeof(float));
            }
        }
    });
}

std::string default_name(const std::string& out_path) {
    std::string stem = std::filesystem::path(out_path).stem().string();
    return stem.empty() ? "model" : stem;
}

}  // namespace

std::optional<std::string> gguf_name_for_hf(const std::string& hf_name) {
    for (const NamePair& p : kGlobalNames) {
        if (hf_name == p.hf) return std::string(p.gguf);
    }
    int64_t layer = 0;
    std::string rest;
    if (!split_layer(hf_name, "model.layers.", layer, rest)) return std::nullopt;
    for (const NamePair& p : kBlockNames) {
        if (rest == p.hf) return "blk." + std::to_string(layer) + "." + p.gguf;
    }
    return std::nullopt;
}

std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name) {
    for (const NamePair& p : kGlobalNames) {
        if (gguf_name == p.gguf) return std::string(p.hf);
    }
    int64_t layer = 0;
    std::string rest;
    if (!split_layer(gguf_name, "blk.", layer, rest)) return std::nullopt;
    for (const NamePair& p : kBlockNames) {
        if (rest == p.gguf) return "model.layers." + std::to_string(layer) + "." + p.hf;
    }
    return std::nullopt;
}

GgufExportSummary export_llama_gguf(const ModelConfig& config, const TensorMap& tensors, const Vocabulary& vocab,
                                    const std::string& out_path, GgufExportType type, const std::string& model_name) {
    const std::string& src = tensors.source();
    const int64_t hidden = config.hidden_size;
    const int64_t head_dim = config.head_dim > 0 ? config.head_dim
                             : config.num_heads > 0 ? hidden / config.num_heads : 0;
    if (hidden <= 0 || config.num_layers <= 0 || config.num_heads <= 0 || config.num_kv_heads <= 0 ||
        config.intermediate_size <= 0 || config.vocab_size <= 0 || head_dim <= 0) {
        fail_in({src, "", "config"}, "incomplete model config (hidden_size ", hidden, ", num_layers ",
                config.num_layers, ", num_heads ", config.num_heads, ", num_kv_heads ", config.num_kv_heads,
                ", intermediate_size ", config.intermediate_size, ", vocab_size ", config.vocab_size, ")");
    }
    if (head_dim % 2 != 0) fail_in({src, "", "head_dim"}, "must be even for RoPE, got ", head_dim);
    const int64_t q_dim = config.num_heads * head_dim;
    const int64_t kv_dim = config.num_kv_heads * head_dim;
    const int64_t vocab_size = config.vocab_size;

    // Vocabulary (padded to the model's vocab_size the way llama.cpp's converter pads).
    const size_t n_pieces = vocab.pieces.size();
    if (n_pieces == 0) fail_in({src, "", "tokenizer"}, "the vocabulary is empty");
    if (static_cast<int64_t>(n_pieces) > vocab_size) {
        fail_in({src, "", "vocab_size"}, "the tokenizer has ", n_pieces, " tokens but the model only ", vocab_size);
    }
    if (!vocab.scores.empty() && vocab.scores.size() != n_pieces) {
        fail_in({src, "", "tokenizer.scores"}, vocab.scores.size(), " scores for ", n_pieces, " tokens");
    }
    if (!vocab.kinds.empty() && vocab.kinds.size() != n_pieces) {
        fail_in({src, "", "tokenizer.kinds"}, vocab.kinds.size(), " token kinds for ", n_pieces, " tokens");
    }
    std::vector<std::string> pieces = vocab.pieces;
    std::vector<float> scores = vocab.scores.empty() ? std::vector<float>(n_pieces, 0.0f) : vocab.scores;
    std::vector<int32_t> kinds(n_pieces, static_cast<int32_t>(TokenKind::Normal));
    for (size_t i = 0; i < vocab.kinds.size(); ++i) kinds[i] = static_cast<int32_t>(vocab.kinds[i]);
    for (int64_t i = static_cast<int64_t>(n_pieces); i < vocab_size; ++i) {
        pieces.push_back("[PAD" + std::to_string(i) + "]");
        scores.push_back(-1000.0f);
        kinds.push_back(static_cast<int32_t>(TokenKind::Unused));
    }

    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set_string("general.name", model_name.empty() ? default_name(out_path) : model_name);
    w.set_scalar<uint32_t>("general.file_type", static_cast<uint32_t>(type == GgufExportType::F16
                                                                         ? gguf::FileType::MostlyF16
                                                                         : gguf::FileType::AllF32));
    w.set_scalar<uint32_t>("llama.vocab_size", to_u32(vocab_size, "vocab_size"));
    w.set_scalar<uint32_t>("llama.context_length", to_u32(config.max_position_embeddings, "max_position_embeddings"));
    w.set_scalar<uint32_t>("llama.embedding_length", to_u32(hidden, "hidden_size"));
    w.set_scalar<uint32_t>("llama.block_count", to_u32(config.num_layers, "num_hidden_layers"));
    w.set_scalar<uint32_t>("llama.feed_forward_length", to_u32(config.intermediate_size, "intermediate_size"));
    w.set_scalar<uint32_t>("llama.rope.dimension_count", to_u32(head_dim, "head_dim"));
    w.set_scalar<uint32_t>("llama.attention.head_count", to_u32(config.num_heads, "num_attention_heads"));
    w.set_scalar<uint32_t>("llama.attention.head_count_kv", to_u32(config.num_kv_heads, "num_key_value_heads"));
    if (head_dim * config.num_heads != hidden) {
        // llama.cpp assumes hidden_size / num_heads unless told otherwise.
        w.set_scalar<uint32_t>("llama.attention.key_length", to_u32(head_dim, "head_dim"));
        w.set_scalar<uint32_t>("llama.attention.value_length", to_u32(head_dim, "head_dim"));
    }
    w.set_scalar<float>("llama.attention.layer_norm_rms_epsilon", static_cast<float>(config.rms_norm_eps));
    w.set_scalar<float>("llama.rope.freq_base", static_cast<float>(config.rope_theta));

    w.set_string("tokenizer.ggml.model", vocab.model);
    w.set("tokenizer.ggml.tokens", Value::string_array(std::move(pieces)));
    w.set("tokenizer.ggml.scores", Value::array(scores));
    w.set("tokenizer.ggml.token_type", Value::array(kinds));
    if (!vocab.merges.empty()) w.set("tokenizer.ggml.merges", Value::string_array(vocab.merges));
    auto set_id = [&](const char* key, int32_t id) {
        if (id < 0) return;
        if (id >= vocab_size) fail_in({src, "", key}, "token id ", id, " is outside the vocabulary of ", vocab_size);
        w.set_scalar<uint32_t>(key, static_cast<uint32_t>(id));
    };
    set_id("tokenizer.ggml.bos_token_id", vocab.bos_id);
    set_id("tokenizer.ggml.eos_token_id", vocab.eos_id);
    set_id("tokenizer.ggml.unknown_token_id", vocab.unk_id);
    set_id("tokenizer.ggml.padding_token_id", vocab.pad_id);
    w.set_scalar<bool>("tokenizer.ggml.add_bos_token", vocab.add_bos);
    w.set_scalar<bool>("tokenizer.ggml.add_eos_token", false);
    w.set_scalar<bool>("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);

    // Tensors.
    const GgmlType matrix_type = type == GgufExportType::F16 ? GgmlType::F16 : GgmlType::F32;
    std::vector<Plan> plans;
    std::set<std::string> used;
    auto plan = [&](const std::string& hf, const Shape& shape, bool is_norm, int64_t permute_head_size) {
        const Tensor& t = tensors.get(hf, shape);
        Plan p;
        p.gguf_name = *gguf_name_for_hf(hf);
        p.source = &t;
        p.hf_name = hf;
        p.type = is_norm ? GgmlType::F32 : matrix_type;
        p.permute_head_size = permute_head_size;
        plans.push_back(std::move(p));
        used.insert(hf);
    };
    plan("model.embed_tokens.weight", {vocab_size, hidden}, false, 0);
    for (int64_t l = 0; l < config.num_layers; ++l) {
        const std::string pre = "model.layers." + std::to_string(l) + ".";
        plan(pre + "input_layernorm.weight", {hidden}, true, 0);
        plan(pre + "self_attn.q_proj.weight", {q_dim, hidden}, false, head_dim);
        plan(pre + "self_attn.k_proj.weight", {kv_dim, hidden}, false, head_dim);
        plan(pre + "self_attn.v_proj.weight", {kv_dim, hidden}, false, 0);
        plan(pre + "self_attn.o_proj.weight", {hidden, q_dim}, false, 0);
        plan(pre + "post_attention_layernorm.weight", {hidden}, true, 0);
        plan(pre + "mlp.gate_proj.weight", {config.intermediate_size, hidden}, false, 0);
        plan(pre + "mlp.up_proj.weight", {config.intermediate_size, hidden}, false, 0);
        plan(pre + "mlp.down_proj.weight", {hidden, config.intermediate_size}, false, 0);
    }
    plan("model.norm.weight", {hidden}, true, 0);
    if (!config.tie_word_embeddings) {
        plan("lm_head.weight", {vocab_size, hidden}, false, 0);
    } else {
        used.insert("lm_head.weight");  // a tied checkpoint may still store it: llama.cpp reuses token_embd
    }
    // Anything else (biases, extra layers) would be silently lost: refuse it.
    for (const auto& [name, t] : tensors.all()) {
        if (used.count(name)) continue;
        if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
        fail_in({src, name, ""}, "is not part of a Llama model as llama.cpp's \"llama\" architecture loads it");
    }

    for (const Plan& p : plans) {
        const Plan* pp = &p;
        w.add_tensor(p.gguf_name, p.source->shape, p.type, [pp](uint8_t* out) {
            try {
                convert_rows(*pp, out);
            } catch (const Error& e) {
                throw e.with_tensor(pp->hf_name);
            }
        });
    }

    GgufExportSummary summary;
    summary.output = out_path;
    summary.tensors = w.tensor_count();
    summary.bytes = w.write(out_path);
    return summary;
}

}  // namespace sparq
