#include "formats/llama2c.h"

#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/rope_permutation.h"
#include "formats/tensor_view.h"

namespace sparq {
namespace {

constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kVersion1HeaderBytes = 256;

// Sanity limits far above any real model; they keep every size computed
// below well inside 64 bits and refuse garbage headers early.
constexpr int64_t kMaxDim = int64_t{1} << 20;
constexpr int64_t kMaxHiddenDim = int64_t{1} << 22;
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxSeqLen = int64_t{1} << 24;

int32_t read_i32_le(const uint8_t* p) {
    const uint32_t u = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    int32_t v;
    std::memcpy(&v, &u, sizeof v);
    return v;
}

struct Params {
    int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

Params read_params(const uint8_t* p) {
    return {read_i32_le(p),      read_i32_le(p + 4),  read_i32_le(p + 8), read_i32_le(p + 12),
            read_i32_le(p + 16), read_i32_le(p + 20), read_i32_le(p + 24)};
}

void check_range(int64_t value, int64_t low, int64_t high, const char* field, const std::string& source) {
    if (value < low || value > high) {
        fail_in({source, "", field}, "header value ", value, " is outside the accepted range [", low, ", ", high, "]");
    }
}

// `p.vocab_size` must already be the real (positive) vocabulary size.
void check_params(const Params& p, const std::string& source) {
    check_range(p.dim, 1, kMaxDim, "dim", source);
    check_range(p.hidden_dim, 1, kMaxHiddenDim, "hidden_dim", source);
    check_range(p.n_layers, 1, kMaxLayers, "n_layers", source);
    check_range(p.n_heads, 1, p.dim, "n_heads", source);
    if (p.dim % p.n_heads != 0) fail_in({source, "", "n_heads"}, p.n_heads, " does not divide dim ", p.dim);
    const int64_t head_size = p.dim / p.n_heads;
    if (head_size % 2 != 0) fail_in({source, "", "n_heads"}, "head size dim/n_heads = ", head_size, " must be even for RoPE");
    check_range(p.n_kv_heads, 1, p.n_heads, "n_kv_heads", source);
    if (p.n_heads % p.n_kv_heads != 0) {
        fail_in({source, "", "n_kv_heads"}, p.n_kv_heads, " does not divide n_heads ", p.n_heads);
    }
    check_range(p.vocab_size, 1, kMaxVocab, "vocab_size", source);
    check_range(p.seq_len, 1, kMaxSeqLen, "seq_len", source);
}

// One float32 array of the file, in file order. Arrays without a Hugging Face
// name (the RoPE tables) are skipped over but still counted.
struct PlannedTensor {
    std::string name;
    Shape shape;
    bool keep = true;
    int64_t permute_heads = 0;  // > 0: q/k rows to reorder for HF's RoPE layout
    uint64_t offset = 0;
    uint64_t nbytes = 0;
};

std::string layer_name(int64_t layer, const char* suffix) {
    return "model.layers." + std::to_string(layer) + "." + suffix;
}

// The sizes are bounded by check_params, yet computed with overflow checks so
// that a future change of limits cannot silently wrap.
uint64_t checked_add(uint64_t a, uint64_t b, const std::string& source) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) fail_in({source, "", ""}, "header describes more than 2^64 bytes");
    return r;
}

uint64_t checked_nbytes(const Shape& shape, const std::string& source) {
    uint64_t n = sizeof(float);
    for (int64_t d : shape) {
        if (__builtin_mul_overflow(n, static_cast<uint64_t>(d), &n)) {
            fail_in({source, "", ""}, "header describes more than 2^64 bytes");
        }
    }
    return n;
}

std::vector<PlannedTensor> plan_layout(const Params& p, int version, bool shared, const std::string& source) {
    const int64_t head_size = p.dim / p.n_heads;
    const int64_t kv_dim = p.dim * p.n_kv_heads / p.n_heads;
    std::vector<PlannedTensor> plan;
    const auto add = [&](std::string name, Shape shape, int64_t permute_heads = 0, bool keep = true) {
        plan.push_back({std::move(name), std::move(shape), keep, permute_heads, 0, 0});
    };
    // llama2.c stores each kind of weight for all layers together.
    const auto add_per_layer = [&](const char* suffix, const Shape& shape, int64_t permute_heads = 0) {
        for (int64_t i = 0; i < p.n_layers; ++i) add(layer_name(i, suffix), shape, permute_heads);
    };
    const auto add_projections = [&] {
        add_per_layer("self_attn.q_proj.weight", {p.dim, p.dim}, p.n_heads);
        add_per_layer("self_attn.k_proj.weight", {kv_dim, p.dim}, p.n_kv_heads);
        add_per_layer("self_attn.v_proj.weight", {kv_dim, p.dim});
        add_per_layer("self_attn.o_proj.weight", {p.dim, p.dim});
    };
    const auto add_mlp = [&] {  // w1, w2, w3
        add_per_layer("mlp.gate_proj.weight", {p.hidden_dim, p.dim});
        add_per_layer("mlp.down_proj.weight", {p.dim, p.hidden_dim});
        add_per_layer("mlp.up_proj.weight", {p.hidden_dim, p.dim});
    };
    if (version == 0) {
        add("model.embed_tokens.weight", {p.vocab_size, p.dim});
        add_per_layer("input_layernorm.weight", {p.dim});
        add_projections();
        add_per_layer("post_attention_layernorm.weight", {p.dim});
        add_mlp();
        add("model.norm.weight", {p.dim});
        add("freq_cis_real", {p.seq_len, head_size / 2}, 0, false);
        add("freq_cis_imag", {p.seq_len, head_size / 2}, 0, false);
    } else {
        add_per_layer("input_layernorm.weight", {p.dim});
        add_per_layer("post_attention_layernorm.weight", {p.dim});
        add("model.norm.weight", {p.dim});
        add("model.embed_tokens.weight", {p.vocab_size, p.dim});
        add_projections();
        add_mlp();
    }
    if (!shared) add("lm_head.weight", {p.vocab_size, p.dim});

    uint64_t offset = version == 0 ? kLegacyHeaderBytes : kVersion1HeaderBytes;
    for (PlannedTensor& t : plan) {
        t.offset = offset;
        t.nbytes = checked_nbytes(t.shape, source);
        offset = checked_add(offset, t.nbytes, source);
    }
    return plan;
}

void check_file_size(const std::vector<PlannedTensor>& plan, uint64_t size, uint64_t header_bytes,
                     const std::string& source) {
    const uint64_t expected = plan.empty() ? header_bytes : plan.back().offset + plan.back().nbytes;
    if (size < expected) {
        for (const PlannedTensor& t : plan) {
            if (t.offset + t.nbytes > size) {
                fail_in({source, t.name, ""}, "file is truncated: it is ", size, " bytes but its header describes ",
                        expected, " bytes; this tensor needs bytes [", t.offset, ", ", t.offset + t.nbytes, ")");
            }
        }
    }
    if (size > expected) {
        fail_in({source, "", ""}, "file has ", size - expected, " trailing bytes after the ", expected,
                " bytes its header describes");
    }
}

ModelConfig make_config(const Params& p, bool shared) {
    ModelConfig c;
    c.architecture = "LlamaForCausalLM";
    c.model_type = "llama";
    c.hidden_size = p.dim;
    c.intermediate_size = p.hidden_dim;
    c.num_layers = p.n_layers;
    c.num_heads = p.n_heads;
    c.num_kv_heads = p.n_kv_heads;
    c.head_dim = p.dim / p.n_heads;
    c.vocab_size = p.vocab_size;
    c.max_position_embeddings = p.seq_len;
    c.rms_norm_eps = 1e-5;
    c.rope_theta = 10000.0;
    c.tie_word_embeddings = shared;
    c.bos_token_id = 1;
    c.eos_token_id = 2;
    c.torch_dtype = "float32";
    return c;
}

}  // namespace

Llama2cCheckpoint parse_llama2c(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                const std::string& source) {
    Llama2cCheckpoint out;
    Params params{};
    uint64_t header_bytes = kLegacyHeaderBytes;
    if (size >= 4 && static_cast<uint32_t>(read_i32_le(data)) == kLlama2cMagic) {
        if (size < 8) fail_in({source, "", ""}, "file is ", size, " bytes, too short to hold its version number");
        const int32_t version = read_i32_le(data + 4);
        if (version == 2) {
            fail_in({source, "", "version"}, "llama2.c checkpoint version 2 (int8 Q8_0 export) is not supported; "
                                             "export it as version 0 or 1 (float32)");
        }
        if (version != 1) fail_in({source, "", "version"}, "unsupported llama2.c checkpoint version ", version);
        header_bytes = kVersion1HeaderBytes;
        if (size < header_bytes) {
            fail_in({source, "", ""}, "file is ", size, " bytes, too short for the ", header_bytes,
                    "-byte version 1 header");
        }
        params = read_params(data + 8);
        const uint8_t shared_flag = data[8 + 7 * 4];
        if (shared_flag > 1) fail_in({source, "", "shared_classifier"}, "must be 0 or 1, found ", int{shared_flag});
        out.version = 1;
        out.shared_classifier = shared_flag == 1;
    } else {
        if (size < header_bytes) {
            fail_in({source, "", ""}, "file is ", size, " bytes, too short for the ", header_bytes,
                    "-byte llama2.c header");
        }
        params = read_params(data);
        out.version = 0;
        out.shared_classifier = params.vocab_size > 0;
        // The sign of vocab_size only flags an untied classifier.
        if (params.vocab_size < 0) params.vocab_size = -params.vocab_size;
    }
    check_params(params, source);

    const std::vector<PlannedTensor> plan = plan_layout(params, out.version, out.shared_classifier, source);
    check_file_size(plan, size, header_bytes, source);

    out.config = make_config(params, out.shared_classifier);
    out.tensors.set_source(source);
    const int64_t head_size = params.dim / params.n_heads;
    for (const PlannedTensor& t : plan) {
        if (!t.keep) continue;
        Tensor view = make_view_tensor(owner, data + t.offset, static_cast<size_t>(t.nbytes), DType::F32, t.shape);
        if (t.permute_heads > 0) {
            std::vector<float> permuted(static_cast<size_t>(t.nbytes / sizeof(float)));
            permute_rows_interleaved_to_halves(view.as<float>(), permuted.data(), t.permute_heads, head_size,
                                               t.shape[1]);
            view = make_f32_tensor(t.shape, std::move(permuted));
        }
        out.tensors.add(t.name, std::move(view));
    }
    return out;
}

Llama2cCheckpoint read_llama2c(const std::string& path) {
    const std::shared_ptr<MappedFile> file = MappedFile::open(path);
    return parse_llama2c(file, file->data(), file->size(), path);
}

}  // namespace sparq
