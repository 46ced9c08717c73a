#include "models/gguf_model.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_vocabulary.h"
#include "formats/gguf/llama_export.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"

namespace sparq {

namespace {

using gguf::GgmlType;
using gguf::GgufFile;

struct ArchRead {
    const char* architecture;  // Hugging Face
    const char* model_type;
    bool interleaved_rope;     // q/k rows stored in llama.cpp's interleaved-pairs order
    bool attention_bias;
};

ArchRead arch_of(const GgufFile& f) {
    const std::string arch = f.get_string("general.architecture");
    if (arch == "llama") return {"LlamaForCausalLM", "llama", true, false};
    if (arch == "qwen2") return {"Qwen2ForCausalLM", "qwen2", false, true};
    fail_in({f.path(), "", "general.architecture"}, "'", arch,
            "' is not read (GGUF models of architecture llama and qwen2 are)");
}

int64_t required_count(const GgufFile& f, const std::string& key) {
    const gguf::Value& v = f.get(key);
    const std::optional<int64_t> n = v.is_array() ? std::nullopt : v.to_int64();
    if (!n || *n <= 0) fail_in({f.path(), "", key}, "must be a positive integer, got ", v.to_display());
    return *n;
}

std::optional<double> optional_number(const GgufFile& f, const std::string& key) {
    const gguf::Value* v = f.find(key);
    if (!v) return std::nullopt;
    const std::optional<double> d = v->is_array() ? std::nullopt : v->to_double();
    if (!d || !std::isfinite(*d)) fail_in({f.path(), "", key}, "must be a number, got ", v->to_display());
    return d;
}

ModelConfig config_of(const GgufFile& f, const ArchRead& arch, const std::string& prefix) {
    ModelConfig c;
    c.architecture = arch.architecture;
    c.model_type = arch.model_type;
    c.attention_bias = arch.attention_bias;
    c.hidden_size = required_count(f, prefix + "embedding_length");
    c.num_layers = required_count(f, prefix + "block_count");
    c.intermediate_size = required_count(f, prefix + "feed_forward_length");
    c.num_heads = required_count(f, prefix + "attention.head_count");
    c.num_kv_heads = f.find(prefix + "attention.head_count_kv") ? required_count(f, prefix + "attention.head_count_kv")
                                                                 : c.num_heads;
    c.head_dim = f.find(prefix + "attention.key_length") ? required_count(f, prefix + "attention.key_length")
                                                          : c.hidden_size / c.num_heads;
    if (f.find(prefix + "attention.value_length") && required_count(f, prefix + "attention.value_length") != c.head_dim) {
        fail_in({f.path(), "", prefix + "attention.value_length"}, "differs from the key length ", c.head_dim,
                " (one head_dim for both is read)");
    }
    if (f.find(prefix + "rope.dimension_count") && required_count(f, prefix + "rope.dimension_count") != c.head_dim) {
        fail_in({f.path(), "", prefix + "rope.dimension_count"}, "RoPE over part of a head is not read (head_dim ",
                c.head_dim, ")");
    }
    if (const gguf::Value* scaling = f.find(prefix + "rope.scaling.type")) {
        if (scaling->type() != gguf::ValueType::String || scaling->get_string() != "none") {
            fail_in({f.path(), "", prefix + "rope.scaling.type"}, "RoPE scaling is not supported yet");
        }
    }
    if (f.find(prefix + "context_length")) c.max_position_embeddings = required_count(f, prefix + "context_length");
    c.rms_norm_eps = optional_number(f, prefix + "attention.layer_norm_rms_epsilon").value_or(1e-5);
    c.rope_theta = optional_number(f, prefix + "rope.freq_base").value_or(10000.0);
    return c;
}

// The rows of a q/k weight (or the elements of its bias) back in Hugging
// Face's order, in the stored dtype: GGUF row r holds HF row
// hf_row_for_gguf_row(r).
Tensor unpermute_rows(const Tensor& t, int64_t head_size, const std::string& name) {
    const bool vector = t.shape.size() == 1;
    const int64_t rows = vector ? t.shape[0] : t.rows();
    const size_t row_bytes = vector ? dtype_size(t.dtype) : static_cast<size_t>(t.cols()) * dtype_size(t.dtype);
    if (head_size <= 0 || head_size % 2 != 0 || rows % head_size != 0 || t.nbytes != row_bytes * static_cast<size_t>(rows)) {
        fail_in({"", name, "shape"}, "cannot take the q/k RoPE permutation back: ", rows, " rows for heads of ", head_size);
    }
    auto bytes = std::make_shared<std::vector<uint8_t>>(t.nbytes);
    for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(bytes->data() + static_cast<size_t>(hf_row_for_gguf_row(r, head_size)) * row_bytes,
                    t.data + static_cast<size_t>(r) * row_bytes, row_bytes);
    }
    Tensor out = t;
    out.data = bytes->data();
    out.owner = bytes;
    return out;
}

Tensor dequantized(const GgufFile& f, const gguf::TensorInfo& info) {
    const Tensor stored = f.tensor(info);
    std::vector<float> values(static_cast<size_t>(stored.numel()));
    try {
        gguf::dequantize_ggml(info.type, stored.data, stored.nbytes, stored.numel(), values.data(), info.name);
    } catch (const Error& e) {
        throw e.with_file(f.path());
    }
    return make_f32_tensor(stored.shape, std::move(values));
}

// The tokenizer.ggml.* vocabulary as a tokenizer; sets the config's BOS/EOS.
std::shared_ptr<Tokenizer> tokenizer_of(const GgufFile& f, ModelConfig& config) {
    const std::string& path = f.path();
    std::string pre;
    Vocabulary vocab = gguf::read_gguf_vocabulary(f, &pre);
    if (static_cast<int64_t>(vocab.size()) > config.vocab_size) {
        fail_in({path, "", "tokenizer.ggml.tokens"}, vocab.size(), " tokens for a model of ", config.vocab_size);
    }
    config.bos_token_id = vocab.bos_id;
    config.eos_token_id = vocab.eos_id;
    if (vocab.model == "gpt2") {
        // Built through the tokenizer.json path, which the .sparq writer
        // then embeds as it is (kind hf-json).
        HfSpecialTokenConfig special;
        if (vocab.bos_id >= 0) special.bos_id = vocab.bos_id;
        if (vocab.eos_id >= 0) special.eos_id = vocab.eos_id;
        special.add_bos = vocab.add_bos;
        return make_hf_tokenizer(gguf::tokenizer_json_for_bpe(vocab, pre, path), path + " (tokenizer.ggml.*)", special);
    }
    std::string bytes = gguf::gguf_vocabulary_bytes(vocab, "");
    return std::make_shared<SpmTokenizer>(std::move(vocab), std::move(bytes), "gguf");
}

}  // namespace

ModelSource load_gguf_model(const std::string& path, const LoadOptions& options) {
    const GgufFile f = GgufFile::open(path);
    const ArchRead arch = arch_of(f);
    const std::string prefix = f.get_string("general.architecture") + ".";
    ModelSource m;
    m.path = path;
    m.format = "gguf";
    m.config = config_of(f, arch, prefix);
    m.tensors = TensorMap(path);
    const int64_t head_dim = m.config.head_dim;
    bool any_f16 = false;
    for (const gguf::TensorInfo& info : f.tensors()) {
        const std::optional<std::string> hf = hf_name_for_gguf(info.name);
        if (!hf) {
            fail_in({path, info.name, ""}, "is not a tensor of a ", arch.architecture,
                    " model as sparq reads it (token_embd, output_norm, output and blk.N.* are)");
        }
        Tensor t;
        if (info.type == GgmlType::F32 || info.type == GgmlType::F16 || info.type == GgmlType::BF16) {
            t = f.tensor(info);
            any_f16 = any_f16 || info.type != GgmlType::F32;
        } else {
            t = dequantized(f, info);
        }
        const bool qk = hf->find("self_attn.q_proj.") != std::string::npos || hf->find("self_attn.k_proj.") != std::string::npos;
        if (qk && arch.interleaved_rope) {
            try {
                t = unpermute_rows(t, head_dim, *hf);
            } catch (const Error& e) {
                throw e.with_file(path);
            }
        }
        m.tensors.add(*hf, std::move(t));
        m.stored_bytes[*hf] = static_cast<int64_t>(info.nbytes);
    }
    if (!m.tensors.has("model.embed_tokens.weight")) fail_in({path, "token_embd.weight", ""}, "is missing");
    const Tensor& embed = m.tensors.get("model.embed_tokens.weight");
    if (embed.shape.size() != 2) fail_in({path, "token_embd.weight", "shape"}, "must be 2-D");
    m.config.vocab_size = embed.shape[0];
    if (const gguf::Value* n = f.find(prefix + "vocab_size"); n && required_count(f, prefix + "vocab_size") != m.config.vocab_size) {
        fail_in({path, "", prefix + "vocab_size"}, "says ", n->to_display(), " but token_embd has ", m.config.vocab_size, " rows");
    }
    m.config.tie_word_embeddings = !m.tensors.has("lm_head.weight");
    m.config.torch_dtype = any_f16 ? "float16" : "float32";
    m.config.validate(path);

    if (!options.tokenizer_path.empty()) {
        m.tokenizer = load_tokenizer(options.tokenizer_path, m.config.vocab_size);
    } else if (f.find("tokenizer.ggml.model")) {
        try {
            m.tokenizer = tokenizer_of(f, m.config);
        } catch (const Error&) {
            if (options.require_tokenizer) throw;
            // Where no tokenizer is needed (inspect), one that cannot be
            // rebuilt does not keep the model from opening.
        }
    } else if (options.require_tokenizer) {
        fail_in({path, "", "tokenizer.ggml.model"}, "the file holds no tokenizer: give one with --tokenizer");
    }
    return m;
}

std::shared_ptr<Tokenizer> tokenizer_from_gguf_bytes(const std::string& bytes, int64_t expected_vocab_size,
                                                     const std::string& source) {
    const std::string name = source + " (embedded gguf tokenizer)";
    auto owner = std::make_shared<std::string>(bytes);
    const GgufFile f = GgufFile::parse(reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), name, owner);
    Vocabulary vocab = gguf::read_gguf_vocabulary(f);
    if (vocab.model != "llama") fail_in({name, "", "tokenizer.ggml.model"}, "only SentencePiece (llama) vocabularies are embedded this way");
    if (expected_vocab_size > 0 && static_cast<int64_t>(vocab.size()) > expected_vocab_size) {
        fail_in({source, "", "blobs.tokenizer"}, "the embedded tokenizer has ", vocab.size(),
                " pieces, more than the model's vocab_size ", expected_vocab_size);
    }
    return std::make_shared<SpmTokenizer>(std::move(vocab), bytes, "gguf");
}

}  // namespace sparq
