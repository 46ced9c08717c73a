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

namespace sparq {

class LlamaReference : public CausalLM {
public:
    // Uses F32 tensors in place (zero-copy over a mapping); F16/BF16 ones are
    // converted to owned F32 once.
    LlamaReference(const ModelConfig& config, const TensorMap& tensors);
    ~LlamaReference() override;

    const ModelConfig& config() const override { return config_; }
    std::unique_ptr<InferenceState> new_state(int64_t max_tokens) const override;
    void forward(InferenceState& state, std::span<const int32_t> tokens, float* logits,
                 bool all_logits) const override;
    std::string path_name() const override { return "reference"; }

    struct Layer {
        const float* attn_norm;
        const float* wq;
        const float* wk;
        const float* wv;
        const float* wo;
        const float* mlp_norm;
        const float* w_gate;
        const float* w_up;
        const float* w_down;
        // Qwen2 q/k/v biases (null when the architecture has none).
        const float* bq = nullptr;
        const float* bk = nullptr;
        const float* bv = nullptr;
    };

private:
    const float* weight(const TensorMap& tensors, const std::string& name, const Shape& shape);
    void attention(const Layer& layer, class ReferenceState& state, int64_t n, float* x) const;
    void mlp(const Layer& layer, int64_t n, float* x) const;

    ModelConfig config_;
    std::vector<Layer> layers_;
    const float* embed_ = nullptr;
    const float* final_norm_ = nullptr;
    const float* lm_head_ = nullptr;
    std::vector<std::shared_ptr<const void>> keep_alive_;
    std::vector<float> inv_freq_;
};

// RMSNorm of n rows of width d: out = x / sqrt(mean(x^2) + eps) * weight.
void rms_norm(const float* x, const float* weight, int64_t n, int64_t d, double eps, float* out);

}  // namespace sparq
