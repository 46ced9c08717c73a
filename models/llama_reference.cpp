#include "models/llama_reference.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/parallel.h"
#include "models/activations.h"
#include "models/attention.h"
#include "models/matmul.h"
#include "models/llama_weights_builder.h"
#include "models/model_source.h"

namespace sparq {

class KvState : public InferenceState {
public:
    std::vector<float> keys;    // [layer][position][kv_dim]
    std::vector<float> values;  // [layer][position][kv_dim]
    // cos and sin of the RoPE angles of positions [0, rope_positions),
    // [position][head_dim / 2]: every layer, q and k alike, rotates by the
    // same angles, so each position's are computed once, not twice per layer.
    std::vector<float> rope_cos, rope_sin;
    int64_t rope_positions = 0;
};

void rms_norm(const float* x, const float* weight, int64_t n, int64_t d, double eps, float* out) {
    for (int64_t t = 0; t < n; ++t) {
        const float* row = x + t * d;
        // Eight running sums in a fixed order: one chain of dependent double
        // adds took ~3 us per 2048 values, twice per layer on the decode
        // thread while the others waited.
        double sums[8] = {};
        int64_t i = 0;
        for (; i + 8 <= d; i += 8)
            for (int j = 0; j < 8; ++j) sums[j] += static_cast<double>(row[i + j]) * row[i + j];
        for (; i < d; ++i) sums[i % 8] += static_cast<double>(row[i]) * row[i];
        const double sum = ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]));
        const float scale = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(d)) + static_cast<float>(eps));
        for (int64_t i = 0; i < d; ++i) out[t * d + i] = (row[i] * scale) * weight[i];
    }
}

int64_t LlamaWeights::bytes_per_token() const {
    int64_t bytes = output().weight_bytes();
    for (const auto& l : layers) {
        for (const Linear* w : {l.wq.get(), l.wk.get(), l.wv.get(), l.wo.get(), l.w_gate.get(), l.w_up.get(),
                                l.w_down.get()}) {
            bytes += w->weight_bytes();
        }
    }
    return bytes;
}

namespace {

struct DenseLoader {
    const TensorMap& tensors;
    std::vector<std::shared_ptr<const void>> keep_alive;

    bool has(const std::string& name) const { return tensors.has(name); }
    const float* array(const std::string& name, const Shape& shape) {
        const Tensor& t = tensors.get(name, shape);
        if (t.dtype == DType::F32) {
            keep_alive.push_back(t.owner);
            return t.as<float>();
        }
        auto converted = std::make_shared<std::vector<float>>(t.to_f32());
        keep_alive.push_back(converted);
        return converted->data();
    }
    std::unique_ptr<Linear> linear(const std::string& name, int64_t rows, int64_t cols) {
        const float* w = array(name, {rows, cols});
        return std::make_unique<DenseLinear>(w, rows, cols, keep_alive.back());
    }
};

}  // namespace

LlamaWeights dense_llama_weights(const ModelConfig& config, const TensorMap& tensors) {
    DenseLoader load{tensors, {}};
    return build_llama_weights(config, load);
}

LlamaReference::LlamaReference(const ModelConfig& config, const TensorMap& tensors)
    : LlamaTransformer(config, dense_llama_weights(config, tensors), "reference") {}

LlamaTransformer::LlamaTransformer(const ModelConfig& config, LlamaWeights weights, std::string path_name)
    : config_(config), weights_(std::move(weights)), path_name_(std::move(path_name)) {
    const int64_t half = config.head_dim / 2;
    inv_freq_.resize(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        inv_freq_[i] = static_cast<float>(std::pow(config.rope_theta, -2.0 * static_cast<double>(i) /
                                                                         static_cast<double>(config.head_dim)));
    }
}

LlamaTransformer::~LlamaTransformer() = default;

std::unique_ptr<InferenceState> LlamaTransformer::new_state(int64_t max_tokens) const {
    if (max_tokens <= 0) fail("the context must hold at least one token");
    auto state = std::make_unique<KvState>();
    const size_t n = static_cast<size_t>(config_.num_layers * max_tokens * config_.kv_dim());
    state->keys.assign(n, 0.0f);
    state->values.assign(n, 0.0f);
    set_capacity(*state, max_tokens);
    return state;
}

namespace {

// Rotates each head's halves (i, i + head_dim/2) of the n rows by position
// * inv_freq[i] (the Hugging Face convention), the cos and sin read from
// tables of head_dim/2 values per position, from the rows' first position.
void apply_rope(float* rows, int64_t n, int64_t heads, int64_t head_dim, const float* cos_table,
                const float* sin_table, int64_t row_stride) {
    const int64_t half = head_dim / 2;
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t i = 0; i < half; ++i) {
            const float c = cos_table[t * half + i];
            const float s = sin_table[t * half + i];
            for (int64_t h = 0; h < heads; ++h) {
                float* v = rows + t * row_stride + h * head_dim;
                const float x0 = v[i], x1 = v[i + half];
                v[i] = x0 * c - x1 * s;
                v[i + half] = x0 * s + x1 * c;
            }
        }
    }
}

// The RoPE table of `state` through position `positions` - 1.
void extend_rope_table(KvState& state, const std::vector<float>& inv_freq, int64_t positions) {
    const int64_t half = static_cast<int64_t>(inv_freq.size());
    if (positions <= state.rope_positions) return;
    state.rope_cos.resize(static_cast<size_t>(positions * half));
    state.rope_sin.resize(static_cast<size_t>(positions * half));
    for (int64_t p = state.rope_positions; p < positions; ++p) {
        const double pos = static_cast<double>(p);
        for (int64_t i = 0; i < half; ++i) {
            const double angle = pos * static_cast<double>(inv_freq[i]);
            state.rope_cos[p * half + i] = static_cast<float>(std::cos(angle));
            state.rope_sin[p * half + i] = static_cast<float>(std::sin(angle));
        }
    }
    state.rope_positions = positions;
}

void add_bias(float* rows, int64_t n, int64_t width, const float* bias, int64_t stride) {
    for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < width; ++i) rows[t * stride + i] += bias[i];
}

// x += branch * multiplier (multiplier 1 except for MiniCPM's scale_depth).
void add_residual(float* x, const std::vector<float>& branch, float multiplier) {
    if (multiplier == 1.0f) {
        for (size_t i = 0; i < branch.size(); ++i) x[i] += branch[i];
    } else {
        for (size_t i = 0; i < branch.size(); ++i) x[i] += branch[i] * multiplier;
    }
}

}  // namespace

void LlamaTransformer::attention(const LlamaWeights::Layer& layer, size_t layer_index, KvState& state, int64_t n,
                                 float* x) const {
    std::vector<float> out(static_cast<size_t>(n * config_.q_dim()));
    attention_heads(layer, layer_index, state, n, x, out.data());
    attention_residual(layer, n, out.data(), x);
}

void LlamaTransformer::attention_heads(const LlamaWeights::Layer& layer, size_t layer_index, KvState& state, int64_t n,
                                       const float* x, float* out) const {
    const int64_t d = config_.hidden_size, qd = config_.q_dim(), kvd = config_.kv_dim();
    const int64_t hd = config_.head_dim, heads = config_.num_heads;
    const int64_t group = config_.num_heads / config_.num_kv_heads;
    const int64_t pos = state.position();
    float* keys = state.keys.data() + layer_index * state.capacity() * kvd;
    float* values = state.values.data() + layer_index * state.capacity() * kvd;

    std::vector<float> xn(static_cast<size_t>(n * d)), q(static_cast<size_t>(n * qd));
    rms_norm(x, layer.attn_norm, n, d, config_.rms_norm_eps, xn.data());
    const Linear* const qkv[] = {layer.wq.get(), layer.wk.get(), layer.wv.get()};
    const LinearOutput qkv_out[] = {{q.data(), qd}, {keys + pos * kvd, kvd}, {values + pos * kvd, kvd}};
    forward_same_input(qkv, xn.data(), n, qkv_out);
    if (layer.bq) {
        add_bias(q.data(), n, qd, layer.bq, qd);
        add_bias(keys + pos * kvd, n, kvd, layer.bk, kvd);
        add_bias(values + pos * kvd, n, kvd, layer.bv, kvd);
    }
    extend_rope_table(state, inv_freq_, pos + n);
    const int64_t half = static_cast<int64_t>(inv_freq_.size());
    const float* cos_table = state.rope_cos.data() + pos * half;
    const float* sin_table = state.rope_sin.data() + pos * half;
    apply_rope(q.data(), n, heads, hd, cos_table, sin_table, qd);
    apply_rope(keys + pos * kvd, n, config_.num_kv_heads, hd, cos_table, sin_table, kvd);

    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    parallel_for(0, heads, 1, [&](int64_t h_begin, int64_t h_end) {
        std::vector<float> scores(static_cast<size_t>(pos + n));
        for (int64_t h = h_begin; h < h_end; ++h) {
            const int64_t kvh = h / group;
            for (int64_t t = 0; t < n; ++t) {
                const int64_t span = pos + t + 1;  // causal: positions 0 .. pos+t
                // Mistral's sliding window: only the last `window` positions.
                const int64_t window = config_.sliding_window;
                const int64_t first_visible = window > 0 ? std::max<int64_t>(0, span - window) : 0;
                attend_one_head(q.data() + t * qd + h * hd, keys + kvh * hd, values + kvh * hd, kvd, hd,
                                first_visible, span, scale, scores.data(), out + t * qd + h * hd);
            }
        }
    });
}

void LlamaTransformer::attention_residual(const LlamaWeights::Layer& layer, int64_t n, const float* out, float* x) const {
    const int64_t d = config_.hidden_size;
    std::vector<float> projected(static_cast<size_t>(n * d));
    layer.wo->forward(out, n, projected.data(), d);
    if (layer.bo) add_bias(projected.data(), n, d, layer.bo, d);
    add_residual(x, projected, static_cast<float>(config_.residual_multiplier()));
}

void LlamaTransformer::mlp(const LlamaWeights::Layer& layer, int64_t n, float* x) const {
    const int64_t d = config_.hidden_size, ff = config_.intermediate_size;
    std::vector<float> xn(static_cast<size_t>(n * d));
    rms_norm(x, layer.mlp_norm, n, d, config_.rms_norm_eps, xn.data());
    std::vector<float> gate(static_cast<size_t>(n * ff)), up(static_cast<size_t>(n * ff));
    const Linear* const gate_up[] = {layer.w_gate.get(), layer.w_up.get()};
    const LinearOutput gate_up_out[] = {{gate.data(), ff}, {up.data(), ff}};
    forward_same_input(gate_up, xn.data(), n, gate_up_out);
    silu_times(gate.data(), up.data(), static_cast<int64_t>(gate.size()));
    std::vector<float> down(static_cast<size_t>(n * d));
    layer.w_down->forward(gate.data(), n, down.data(), d);
    add_residual(x, down, static_cast<float>(config_.residual_multiplier()));
}

void LlamaTransformer::forward_block(const LlamaWeights::Layer& layer, size_t layer_index, InferenceState& base_state,
                                     int64_t n, float* x) const {
    auto& state = dynamic_cast<KvState&>(base_state);
    if (layer_index >= static_cast<size_t>(config_.num_layers)) {
        fail("block ", layer_index, " is outside the model's ", config_.num_layers, " layers");
    }
    if (n <= 0) return;
    if (state.position() + n > state.capacity()) {
        fail("context overflow: ", state.position() + n, " tokens do not fit a context of ", state.capacity());
    }
    attention(layer, layer_index, state, n, x);
    mlp(layer, n, x);
}

void LlamaTransformer::forward_attention_heads(const LlamaWeights::Layer& layer, size_t layer_index,
                                               InferenceState& base_state, int64_t n, const float* x,
                                               float* attended) const {
    auto& state = dynamic_cast<KvState&>(base_state);
    if (layer_index >= static_cast<size_t>(config_.num_layers)) {
        fail("block ", layer_index, " is outside the model's ", config_.num_layers, " layers");
    }
    if (n <= 0) return;
    if (state.position() + n > state.capacity()) {
        fail("context overflow: ", state.position() + n, " tokens do not fit a context of ", state.capacity());
    }
    attention_heads(layer, layer_index, state, n, x, attended);
}

void LlamaTransformer::forward_attention_residual(const LlamaWeights::Layer& layer, int64_t n, const float* attended,
                                                  float* x) const {
    if (n > 0) attention_residual(layer, n, attended, x);
}

void LlamaTransformer::forward_mlp(const LlamaWeights::Layer& layer, int64_t n, float* x) const {
    if (n > 0) mlp(layer, n, x);
}

void LlamaTransformer::forward(InferenceState& base_state, std::span<const int32_t> tokens, float* logits,
                               bool all_logits) const {
    auto& state = dynamic_cast<KvState&>(base_state);
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n == 0) return;
    if (state.position() + n > state.capacity()) {
        fail("context overflow: ", state.position() + n, " tokens do not fit a context of ", state.capacity());
    }
    const int64_t d = config_.hidden_size, vocab = config_.vocab_size;
    std::vector<float> x(static_cast<size_t>(n * d));
    for (int64_t t = 0; t < n; ++t) {
        const int32_t id = tokens[t];
        if (id < 0 || id >= vocab) fail("token id ", id, " is outside the vocabulary (", vocab, ")");
        weights_.embed->row(id, x.data() + t * d);
    }
    if (config_.embedding_multiplier() != 1.0) {
        const float m = static_cast<float>(config_.embedding_multiplier());
        for (float& v : x) v *= m;
    }
    for (size_t l = 0; l < weights_.layers.size(); ++l) {
        attention(weights_.layers[l], l, state, n, x.data());
        mlp(weights_.layers[l], n, x.data());
    }
    const int64_t first = all_logits ? 0 : n - 1;
    const int64_t rows = n - first;
    std::vector<float> xn(static_cast<size_t>(rows * d));
    rms_norm(x.data() + first * d, weights_.final_norm, rows, d, config_.rms_norm_eps, xn.data());
    if (config_.logit_multiplier() != 1.0) {
        const float m = static_cast<float>(config_.logit_multiplier());
        for (float& v : xn) v *= m;
    }
    weights_.output().forward(xn.data(), rows, logits, vocab);
    advance(state, n);
}

}  // namespace sparq
