// Model hyperparameters, as Hugging Face's config.json states them.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

namespace sparq {

struct ModelConfig {
    std::string architecture = "LlamaForCausalLM";  // config.json "architectures"[0]
    std::string model_type = "llama";
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_layers = 0;
    int64_t num_heads = 0;
    int64_t num_kv_heads = 0;
    int64_t head_dim = 0;  // hidden_size / num_heads unless config says otherwise
    int64_t vocab_size = 0;
    int64_t max_position_embeddings = 2048;
    double rms_norm_eps = 1e-5;
    double rope_theta = 10000.0;
    bool tie_word_embeddings = false;
    int32_t bos_token_id = 1;
    int32_t eos_token_id = 2;
    std::string torch_dtype = "float32";

    // Qwen2: q/k/v projections carry biases.
    bool attention_bias = false;
    // Mistral: each token attends to at most this many previous positions
    // (0 = unlimited).
    int64_t sliding_window = 0;
    // MiniCPM (muP-style scaling), as its modeling code defines them:
    // embeddings x scale_emb; each residual branch x scale_depth /
    // sqrt(num_layers); the final hidden state / (hidden_size / dim_model_base)
    // before the head. Zero means "not a MiniCPM model".
    double scale_emb = 0;
    double scale_depth = 0;
    int64_t dim_model_base = 0;

    double embedding_multiplier() const { return scale_emb > 0 ? scale_emb : 1.0; }
    // Inline, so the GGUF exporter (formats/gguf) reads a config without
    // linking the models library.
    double residual_multiplier() const {
        return scale_depth > 0 ? scale_depth / std::sqrt(static_cast<double>(num_layers)) : 1.0;
    }
    double logit_multiplier() const {
        return dim_model_base > 0 ? static_cast<double>(dim_model_base) / static_cast<double>(hidden_size) : 1.0;
    }

    int64_t kv_dim() const { return num_kv_heads * head_dim; }
    int64_t q_dim() const { return num_heads * head_dim; }

    // Throws sparq::Error (field named) when the numbers are inconsistent.
    void validate(const std::string& source) const;
};

// Architectures the reference forward runs.
const char* supported_architectures();

// Parses a Hugging Face config.json. Unsupported architectures are an error
// that names the architecture.
ModelConfig parse_hf_config(const std::string& json_text, const std::string& source);
ModelConfig load_hf_config(const std::string& path);

// Serializes back to config.json form (used by .sparq metadata and synth).
std::string config_to_json(const ModelConfig& config);

}  // namespace sparq
