#include "formats/gguf/llama_export.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "formats/gguf/gguf_vocabulary.h"
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
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.bias", "attn_output.bias"},
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
    int64_t permute_head_size = 0;  // > 0: apply the q/k RoPE permutation (to rows, or a bias's elements)
    const EncodedTensor* encoded = nullptr;  // blocks given by the caller, copied row by row
};

// Copies encoded rows, q/k rows moved back to llama.cpp's order.
void copy_encoded_rows(const Plan& p, uint8_t* out) {
    const int64_t rows = p.source->rows();
    const std::vector<uint8_t>& bytes = p.encoded->bytes;
    if (rows <= 0 || bytes.size() % static_cast<size_t>(rows) != 0) {
        fail_in({"", p.hf_name, ""}, "encoded blocks of ", bytes.size(), " bytes do not split into ", rows, " rows");
    }
    const size_t row_bytes = bytes.size() / static_cast<size_t>(rows);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t src = p.permute_head_size > 0 ? hf_row_for_gguf_row(r, p.permute_head_size) : r;
        std::memcpy(out + static_cast<size_t>(r) * row_bytes, bytes.data() + static_cast<size_t>(src) * row_bytes, row_bytes);
    }
}

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
    if (t.shape.size() == 1 && p.permute_head_size > 0) {
        // A q/k bias: its elements follow the rows of the projection.
        std::vector<float> v(static_cast<size_t>(cols));
        t.rows_to_f32(0, 1, v.data());
        std::vector<float> permuted(v.size());
        for (int64_t i = 0; i < cols; ++i) permuted[static_cast<size_t>(i)] = v[hf_row_for_gguf_row(i, p.permute_head_size)];
        if (f16) {
            fp32_to_fp16_row(permuted.data(), reinterpret_cast<uint16_t*>(out), permuted.size());
        } else {
            std::memcpy(out, permuted.data(), permuted.size() * sizeof(float));
        }
        return;
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

// How llama.cpp runs one Hugging Face architecture.
struct ArchInfo {
    const char* gguf_arch;  // general.architecture and key prefix
    const char* display;    // for messages
    bool interleaved_rope;  // LLAMA_ROPE_TYPE_NORM (q/k rows permuted) vs NEOX
    bool biases_required;   // q/k/v biases always loaded (qwen2) vs optional (llama)
    bool output_bias_allowed;
};

ArchInfo arch_info(const ModelConfig& config, const std::string& src) {
    const std::string& a = config.architecture;
    if (a == "LlamaForCausalLM") return {"llama", "Llama", true, false, true};
    if (a == "MistralForCausalLM") return {"llama", "Mistral", true, false, true};
    if (a == "Qwen2ForCausalLM") return {"qwen2", "Qwen2", false, true, false};
    if (a == "MiniCPMForCausalLM") return {"minicpm", "MiniCPM", true, false, true};
    fail_in({src, "", "architectures"}, "GGUF export does not support architecture '", a,
            "' (supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, MiniCPMForCausalLM)");
}

std::string describe_pre_tokenizer(const HfTokenizerJson& spec) {
    std::string d;
    for (const HfPreTokenizerStep& s : spec.pre_tokenizer) {
        if (!d.empty()) d += ", ";
        if (s.type == HfPreTokenizerStep::Type::ByteLevel) {
            d += std::string("ByteLevel(add_prefix_space=") + (s.add_prefix_space ? "true" : "false") +
                 ", use_regex=" + (s.use_regex ? "true" : "false") + ")";
        } else {
            d += "Split('" + s.pattern + "'" + (s.literal ? ", literal" : "") + (s.invert ? ", inverted" : "") +
                 (s.behavior == SplitBehavior::Isolated ? "" : ", not isolated") + ")";
        }
    }
    return d.empty() ? "none" : d;
}

}  // namespace

std::string llamacpp_arch(const ModelConfig& config) { return arch_info(config, "").gguf_arch; }

bool llamacpp_rope_is_interleaved(const ModelConfig& config) { return arch_info(config, "").interleaved_rope; }

std::string llamacpp_tokenizer_pre(const HfTokenizerJson& spec) {
    const auto& steps = spec.pre_tokenizer;
    auto is_split = [](const HfPreTokenizerStep& s, std::string_view pattern) {
        return s.type == HfPreTokenizerStep::Type::Split && !s.literal && !s.invert &&
               s.behavior == SplitBehavior::Isolated && s.pattern == pattern;
    };
    auto is_byte_level = [](const HfPreTokenizerStep& s, bool use_regex) {
        return s.type == HfPreTokenizerStep::Type::ByteLevel && !s.add_prefix_space && s.use_regex == use_regex;
    };
    std::string pre;
    if (steps.size() == 1 && is_byte_level(steps[0], true)) {
        pre = "gpt-2";
    } else if (steps.size() == 2 && is_split(steps[0], R"(\p{N})") && is_byte_level(steps[1], true)) {
        // Digits(individual_digits) then GPT-2's regex: llama.cpp's "smollm" (same regexes as "starcoder").
        pre = "smollm";
    } else if (steps.size() == 2 && is_split(steps[0], gguf::kLlama3SplitPattern) && is_byte_level(steps[1], false)) {
        pre = "llama-bpe";
    } else if (steps.size() == 2 && is_split(steps[0], gguf::kQwen2SplitPattern) && is_byte_level(steps[1], false)) {
        pre = "qwen2";
    } else {
        fail_in({"", "", "tokenizer.ggml.pre"}, "no llama.cpp pre-tokenizer type is known to split like this "
                "tokenizer.json's pre-tokenizer (", describe_pre_tokenizer(spec),
                "); supported: ByteLevel (gpt-2), Digits+ByteLevel (smollm), Llama 3's and Qwen2's Split+ByteLevel");
    }
    // llama.cpp ignores merges (whole-word vocabulary lookups first) exactly for "llama-bpe".
    const bool llamacpp_ignores_merges = pre == "llama-bpe";
    if (spec.ignore_merges != llamacpp_ignores_merges) {
        fail_in({"", "", "tokenizer.ggml.pre"}, "tokenizer.json has ignore_merges ",
                spec.ignore_merges ? "true" : "false", " but llama.cpp's \"", pre, "\" pre-tokenizer type ",
                llamacpp_ignores_merges ? "ignores" : "applies", " merges");
    }
    return pre;
}

std::string llamacpp_tokenizer_pre(const Tokenizer& tokenizer) {
    if (tokenizer.vocabulary().model != "gpt2") return "";
    if (tokenizer.source_kind() != "hf-json") {
        fail_in({"", "", "tokenizer"}, "a byte-level BPE tokenizer of kind '", tokenizer.source_kind(),
                "' has no tokenizer.json to take the pre-tokenizer from");
    }
    return llamacpp_tokenizer_pre(parse_tokenizer_json(tokenizer.source_bytes(), "tokenizer.json"));
}

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
                                    const std::string& out_path, GgufExportType type, const std::string& model_name,
                                    const std::string& tokenizer_pre,
                                    const std::map<std::string, EncodedTensor>& encoded) {
    const std::string& src = tensors.source();
    const ArchInfo arch = arch_info(config, src);
    const std::string prefix = std::string(arch.gguf_arch) + ".";
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
    if (std::string(arch.gguf_arch) == "qwen2" && q_dim != hidden) {
        // llama.cpp's "qwen2" loads attn_q/attn_output as [hidden, hidden].
        fail_in({src, "", "head_dim"}, "llama.cpp's \"qwen2\" architecture needs num_attention_heads x head_dim (",
                q_dim, ") equal to hidden_size (", hidden, ")");
    }
    if (config.attention_bias && config.architecture == "MiniCPMForCausalLM") {
        fail_in({src, "", "attention_bias"}, "MiniCPM with attention biases is not supported");
    }
    const bool minicpm = config.architecture == "MiniCPMForCausalLM";
    if (minicpm && !(config.scale_emb > 0 && config.scale_depth > 0 && config.dim_model_base > 0)) {
        fail_in({src, "", "scale_emb"}, "a MiniCPM config needs positive scale_emb, scale_depth and dim_model_base");
    }

    GgufWriter w;
    auto key = [&prefix](const char* k) { return prefix + k; };
    w.set_string("general.architecture", arch.gguf_arch);
    w.set_string("general.name", model_name.empty() ? default_name(out_path) : model_name);
    gguf::FileType file_type = type == GgufExportType::F16 ? gguf::FileType::MostlyF16 : gguf::FileType::AllF32;
    // "Mostly" the block type most encoded weights have (ties to the fewer bits).
    static constexpr std::pair<GgmlType, gguf::FileType> kMostly[] = {
        {GgmlType::Q4_0, gguf::FileType::MostlyQ4_0}, {GgmlType::Q4_1, gguf::FileType::MostlyQ4_1},
        {GgmlType::Q4_K, gguf::FileType::MostlyQ4_K_S}, {GgmlType::Q6_K, gguf::FileType::MostlyQ6_K},
        {GgmlType::Q8_0, gguf::FileType::MostlyQ8_0}};
    size_t most = 0;
    for (const auto& [block_type, mostly] : kMostly) {
        const auto n = static_cast<size_t>(std::count_if(encoded.begin(), encoded.end(),
                                                         [&](const auto& e) { return e.second.type == block_type; }));
        if (n > most) {
            most = n;
            file_type = mostly;
        }
    }
    for (const auto& [name, e] : encoded) {
        if (e.type != GgmlType::F16 &&
            std::none_of(std::begin(kMostly), std::end(kMostly), [&](const auto& k) { return k.first == e.type; })) {
            fail_in({src, name, "type"}, "encoded as ", gguf::ggml_type_name(e.type),
                    "; the exporter writes F16 rows and Q4_0, Q4_1, Q4_K, Q6_K and Q8_0 blocks");
        }
    }
    w.set_scalar<uint32_t>("general.file_type", static_cast<uint32_t>(file_type));
    w.set_scalar<uint32_t>(key("vocab_size"), to_u32(vocab_size, "vocab_size"));
    w.set_scalar<uint32_t>(key("context_length"), to_u32(config.max_position_embeddings, "max_position_embeddings"));
    w.set_scalar<uint32_t>(key("embedding_length"), to_u32(hidden, "hidden_size"));
    w.set_scalar<uint32_t>(key("block_count"), to_u32(config.num_layers, "num_hidden_layers"));
    w.set_scalar<uint32_t>(key("feed_forward_length"), to_u32(config.intermediate_size, "intermediate_size"));
    w.set_scalar<uint32_t>(key("rope.dimension_count"), to_u32(head_dim, "head_dim"));
    w.set_scalar<uint32_t>(key("attention.head_count"), to_u32(config.num_heads, "num_attention_heads"));
    w.set_scalar<uint32_t>(key("attention.head_count_kv"), to_u32(config.num_kv_heads, "num_key_value_heads"));
    if (head_dim * config.num_heads != hidden) {
        // llama.cpp assumes hidden_size / num_heads unless told otherwise.
        w.set_scalar<uint32_t>(key("attention.key_length"), to_u32(head_dim, "head_dim"));
        w.set_scalar<uint32_t>(key("attention.value_length"), to_u32(head_dim, "head_dim"));
    }
    w.set_scalar<float>(key("attention.layer_norm_rms_epsilon"), static_cast<float>(config.rms_norm_eps));
    w.set_scalar<float>(key("rope.freq_base"), static_cast<float>(config.rope_theta));
    if (minicpm) {
        // llama.cpp multiplies the embeddings by embedding_scale and each residual branch by
        // residual_scale, and divides the logits by logit_scale (convert_hf_to_gguf.py's values).
        w.set_scalar<float>(key("embedding_scale"), static_cast<float>(config.scale_emb));
        w.set_scalar<float>(key("residual_scale"), static_cast<float>(config.residual_multiplier()));
        w.set_scalar<float>(key("logit_scale"), static_cast<float>(static_cast<double>(hidden) /
                                                                    static_cast<double>(config.dim_model_base)));
    }

    set_gguf_vocabulary(w, vocab, vocab_size, tokenizer_pre, src);

    // Tensors.
    const GgmlType matrix_type = type == GgufExportType::F16 ? GgmlType::F16 : GgmlType::F32;
    std::vector<Plan> plans;
    std::set<std::string> used;
    // q/k rows (and biases) go to llama.cpp's interleaved-pairs order only where its RoPE uses it.
    const int64_t rope_permute = arch.interleaved_rope ? head_dim : 0;
    auto plan = [&](const std::string& hf, const Shape& shape, bool is_vector, int64_t permute_head_size) {
        const Tensor& t = tensors.get(hf, shape);
        Plan p;
        p.gguf_name = *gguf_name_for_hf(hf);
        p.source = &t;
        p.hf_name = hf;
        p.type = is_vector ? GgmlType::F32 : matrix_type;
        p.permute_head_size = permute_head_size;
        if (const auto e = encoded.find(hf); e != encoded.end() && !is_vector) {
            p.encoded = &e->second;
            p.type = e->second.type;
            const uint64_t want = gguf::ggml_tensor_bytes(p.type, t.shape);
            if (want != e->second.bytes.size()) {
                fail_in({src, hf, ""}, "encoded as ", gguf::ggml_type_name(p.type), " in ", e->second.bytes.size(),
                        " bytes, expected ", want);
            }
        }
        plans.push_back(std::move(p));
        used.insert(hf);
    };
    plan("model.embed_tokens.weight", {vocab_size, hidden}, false, 0);
    for (int64_t l = 0; l < config.num_layers; ++l) {
        const std::string pre = "model.layers." + std::to_string(l) + ".";
        plan(pre + "input_layernorm.weight", {hidden}, true, 0);
        plan(pre + "self_attn.q_proj.weight", {q_dim, hidden}, false, rope_permute);
        plan(pre + "self_attn.k_proj.weight", {kv_dim, hidden}, false, rope_permute);
        plan(pre + "self_attn.v_proj.weight", {kv_dim, hidden}, false, 0);
        plan(pre + "self_attn.o_proj.weight", {hidden, q_dim}, false, 0);
        if (config.attention_bias || arch.biases_required) {
            plan(pre + "self_attn.q_proj.bias", {q_dim}, true, rope_permute);
            plan(pre + "self_attn.k_proj.bias", {kv_dim}, true, rope_permute);
            plan(pre + "self_attn.v_proj.bias", {kv_dim}, true, 0);
            // Hugging Face's Llama gives o_proj a bias too when attention_bias is set; llama.cpp's
            // "llama" loads it where present.
            if (arch.output_bias_allowed && tensors.has(pre + "self_attn.o_proj.bias")) {
                plan(pre + "self_attn.o_proj.bias", {hidden}, true, 0);
            }
        }
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
        fail_in({src, name, ""}, "is not part of a ", arch.display, " model as llama.cpp's \"", arch.gguf_arch,
                "\" architecture loads it");
    }

    for (const auto& [name, e] : encoded) {
        const bool planned = std::any_of(plans.begin(), plans.end(), [&](const Plan& p) { return p.encoded == &e; });
        if (!planned) fail_in({src, name, ""}, "has encoded blocks but is not a 2-D weight the export writes");
    }
    for (const Plan& p : plans) {
        const Plan* pp = &p;
        w.add_tensor(p.gguf_name, p.source->shape, p.type, [pp](uint8_t* out) {
            try {
                if (pp->encoded) {
                    copy_encoded_rows(*pp, out);
                    return;
                }
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
