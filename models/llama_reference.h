// The plain FP32 forward pass of the Llama family (Llama, Mistral, Qwen2,
// MiniCPM): the accuracy truth every compressed model is compared with.
// RMSNorm, RoPE in the Hugging Face (rotate-half) convention, grouped-query
// attention with a KV cache (and Mistral's sliding window), SwiGLU MLP,
// optionally tied embeddings, Qwen2's q/k/v biases, MiniCPM's scalings. Simple and readable before clever; only
// the matrix products are vectorized (models/matmul.h).
#pragma once

#include <memory>
#include <vector>

#include "formats/tensor_map.h"
#include "models/causal_lm.h"
#include "models/linear.h"

namespace sparq {

// The weights of a Llama-family model as the transformer uses them: linear
// layers behind the Linear interface, norms and biases as FP32 arrays.
struct LlamaWeights {
    struct Layer {
        const float* attn_norm = nullptr;
        std::unique_ptr<Linear> wq, wk, wv, wo;
        const float* mlp_norm = nullptr;
        std::unique_ptr<Linear> w_gate, w_up, w_down;
        // Qwen2 q/k/v biases (null when the architecture has none).
        const float* bq = nullptr;
        const float* bk = nullptr;
        const float* bv = nullptr;
        // Llama with attention_bias: o_proj has a bias too.
        const float* bo = nullptr;
    };
    std::unique_ptr<Linear> embed;  // rows are token embeddings
    std::unique_ptr<Linear> head;   // null when tied to embed
    const float* final_norm = nullptr;
    std::vector<Layer> layers;
    std::vector<std::shared_ptr<const void>> keep_alive;

    const Linear& output() const { return head ? *head : *embed; }
    // Weight bytes read per decoded token: every block linear and the head
    // (the embedding contributes one row).
    int64_t bytes_per_token() const;
};

// The one transformer implementation, over any weights.
class LlamaTransformer : public CausalLM {
public:
    LlamaTransformer(const ModelConfig& config, LlamaWeights weights, std::string path_name);
    ~LlamaTransformer() override;

    const ModelConfig& config() const override { return config_; }
    std::unique_ptr<InferenceState> new_state(int64_t max_tokens) const override;
    void forward(InferenceState& state, std::span<const int32_t> tokens, float* logits,
                 bool all_logits) const override;
    std::string path_name() const override { return path_name_; }
    const LlamaWeights& weights() const { return weights_; }

    // Runs one transformer block on n new tokens of hidden states x
    // [n, hidden_size] in place, exactly as forward() runs layer
    // `layer_index` (same arithmetic), with `layer`'s weights instead of the
    // model's own: the calibration runner holds one block at a time and
    // swaps in observing or quantized linears. Keys and values go to the
    // KV slot of `layer_index` at the state's position; the position is not
    // advanced (a fresh state per sequence starts at 0).
    void forward_block(const LlamaWeights::Layer& layer, size_t layer_index, InferenceState& state, int64_t n,
                       float* x) const;
    // forward_block in its three steps, so the runner can keep the heads'
    // output (o_proj's input, n x q_dim) instead of recomputing attention:
    // heads (norm, q/k/v, RoPE, softmax . V), then x += o_proj(attended),
    // then x += MLP(x). forward_block(x) == heads, residual, mlp.
    void forward_attention_heads(const LlamaWeights::Layer& layer, size_t layer_index, InferenceState& state,
                                 int64_t n, const float* x, float* attended) const;
    void forward_attention_residual(const LlamaWeights::Layer& layer, int64_t n, const float* attended,
                                    float* x) const;
    void forward_mlp(const LlamaWeights::Layer& layer, int64_t n, float* x) const;

private:
    void attention(const LlamaWeights::Layer& layer, size_t layer_index, class KvState& state, int64_t n,
                   float* x) const;
    void attention_heads(const LlamaWeights::Layer& layer, size_t layer_index, class KvState& state, int64_t n,
                         const float* x, float* out) const;
    void attention_residual(const LlamaWeights::Layer& layer, int64_t n, const float* out, float* x) const;
    void mlp(const LlamaWeights::Layer& layer, int64_t n, float* x) const;

    ModelConfig config_;
    LlamaWeights weights_;
    std::string path_name_;
    std::vector<float> inv_freq_;
};

// Dense FP32 weights from a tensor map: F32 tensors in place (zero-copy over
// a mapping), F16/BF16 converted to owned F32 once.
LlamaWeights dense_llama_weights(const ModelConfig& config, const TensorMap& tensors);

// The FP32 reference forward: the transformer over dense weights.
class LlamaReference : public LlamaTransformer {
public:
    LlamaReference(const ModelConfig& config, const TensorMap& tensors);
};

// RMSNorm of n rows of width d: out = x / sqrt(mean(x^2) + eps) * weight.
void rms_norm(const float* x, const float* weight, int64_t n, int64_t d, double eps, float* out);

}  // namespace sparq
