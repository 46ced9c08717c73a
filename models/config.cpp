#include "models/config.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {

namespace {

using nlohmann::json;

template <typename T>
T field_or(const json& j, const char* key, T fallback, const std::string& source) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    try {
        return it->get<T>();
    } catch (const json::exception&) {
        fail_in({source, "", key}, "has the wrong type (", it->type_name(), ")");
    }
}

int64_t required_int(const json& j, const char* key, const std::string& source) {
    const auto it = j.find(key);
    if (it == j.end()) fail_in({source, "", key}, "is missing");
    if (!it->is_number_integer()) fail_in({source, "", key}, "must be an integer");
    const int64_t v = it->get<int64_t>();
    if (v <= 0 || v > (int64_t{1} << 40)) fail_in({source, "", key}, "must be positive, got ", v);
    return v;
}

}  // namespace

const char* supported_architectures() {
    return "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, MiniCPMForCausalLM";
}

void ModelConfig::validate(const std::string& source) const {
    auto bad = [&](const char* field, const std::string& what) { fail_in({source, "", field}, what); };
    if (hidden_size <= 0) bad("hidden_size", "must be positive");
    if (num_heads <= 0) bad("num_attention_heads", "must be positive");
    if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0) {
        bad("num_key_value_heads", "must divide num_attention_heads (" + std::to_string(num_heads) + ")");
    }
    if (head_dim <= 0 || head_dim % 2 != 0) bad("head_dim", "must be positive and even");
    if (num_layers <= 0) bad("num_hidden_layers", "must be positive");
    if (intermediate_size <= 0) bad("intermediate_size", "must be positive");
    if (vocab_size <= 0) bad("vocab_size", "must be positive");
    if (!(rms_norm_eps > 0)) bad("rms_norm_eps", "must be positive");
    if (!(rope_theta > 0)) bad("rope_theta", "must be positive");
}

ModelConfig parse_hf_config(const std::string& json_text, const std::string& source) {
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::exception& e) {
        fail_in({source, "", ""}, "is not valid JSON: ", e.what());
    }
    if (!j.is_object()) fail_in({source, "", ""}, "must hold a JSON object");
    ModelConfig c;
    if (auto it = j.find("architectures"); it != j.end()) {
        if (!it->is_array() || it->empty() || !(*it)[0].is_string()) {
            fail_in({source, "", "architectures"}, "must be a list of names");
        }
        c.architecture = (*it)[0].get<std::string>();
    }
    c.model_type = field_or<std::string>(j, "model_type", "llama", source);
    const bool llama = c.architecture == "LlamaForCausalLM";
    const bool mistral = c.architecture == "MistralForCausalLM";
    const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
    const bool minicpm = c.architecture == "MiniCPMForCausalLM";
    if (!llama && !mistral && !qwen2 && !minicpm) {
        fail_in({source, "", "architectures"}, "unsupported architecture '", c.architecture,
                "' (supported: ", supported_architectures(), ")");
    }
    c.hidden_size = required_int(j, "hidden_size", source);
    c.intermediate_size = required_int(j, "intermediate_size", source);
    c.num_layers = required_int(j, "num_hidden_layers", source);
    c.num_heads = required_int(j, "num_attention_heads", source);
    c.num_kv_heads = j.contains("num_key_value_heads") && !j["num_key_value_heads"].is_null()
                         ? required_int(j, "num_key_value_heads", source)
                         : c.num_heads;
    c.vocab_size = required_int(j, "vocab_size", source);
    c.head_dim = j.contains("head_dim") && !j["head_dim"].is_null() ? required_int(j, "head_dim", source)
                                                                     : c.hidden_size / c.num_heads;
    if (!j.contains("head_dim") && c.hidden_size % c.num_heads != 0) {
        fail_in({source, "", "num_attention_heads"}, "must divide hidden_size");
    }
    c.max_position_embeddings = field_or<int64_t>(j, "max_position_embeddings", 2048, source);
    c.rms_norm_eps = field_or<double>(j, "rms_norm_eps", 1e-6, source);
    c.rope_theta = field_or<double>(j, "rope_theta", 10000.0, source);
    c.tie_word_embeddings = field_or<bool>(j, "tie_word_embeddings", false, source);
    c.bos_token_id = field_or<int32_t>(j, "bos_token_id", 1, source);
    c.eos_token_id = field_or<int32_t>(j, "eos_token_id", 2, source);
    c.torch_dtype = field_or<std::string>(j, "torch_dtype", "float32", source);
    const std::string act = field_or<std::string>(j, "hidden_act", "silu", source);
    if (act != "silu") fail_in({source, "", "hidden_act"}, "unsupported activation '", act, "' (expected silu)");
    // Llama configs may state attention_bias; Qwen2 always has q/k/v biases.
    c.attention_bias = qwen2 || field_or<bool>(j, "attention_bias", false, source);
    if (mistral || (qwen2 && field_or<bool>(j, "use_sliding_window", false, source))) {
        c.sliding_window = field_or<int64_t>(j, "sliding_window", 0, source);
        if (c.sliding_window < 0) fail_in({source, "", "sliding_window"}, "must not be negative");
    }
    if (minicpm) {
        c.scale_emb = field_or<double>(j, "scale_emb", 1.0, source);
        c.scale_depth = field_or<double>(j, "scale_depth", 1.0, source);
        c.dim_model_base = field_or<int64_t>(j, "dim_model_base", c.hidden_size, source);
        if (!(c.scale_emb > 0)) fail_in({source, "", "scale_emb"}, "must be positive");
        if (!(c.scale_depth > 0)) fail_in({source, "", "scale_depth"}, "must be positive");
        if (c.dim_model_base <= 0) fail_in({source, "", "dim_model_base"}, "must be positive");
    }
    if (auto it = j.find("rope_scaling"); it != j.end() && !it->is_null()) {
        fail_in({source, "", "rope_scaling"}, "RoPE scaling is not supported yet");
    }
    c.validate(source);
    return c;
}

ModelConfig load_hf_config(const std::string& path) {
    return parse_hf_config(read_text_file(path), path);
}

std::string config_to_json(const ModelConfig& c) {
    json j;
    j["architectures"] = {c.architecture};
    j["model_type"] = c.model_type;
    j["hidden_size"] = c.hidden_size;
    j["intermediate_size"] = c.intermediate_size;
    j["num_hidden_layers"] = c.num_layers;
    j["num_attention_heads"] = c.num_heads;
    j["num_key_value_heads"] = c.num_kv_heads;
    j["head_dim"] = c.head_dim;
    j["vocab_size"] = c.vocab_size;
    j["max_position_embeddings"] = c.max_position_embeddings;
    j["rms_norm_eps"] = c.rms_norm_eps;
    j["rope_theta"] = c.rope_theta;
    j["tie_word_embeddings"] = c.tie_word_embeddings;
    j["bos_token_id"] = c.bos_token_id;
    j["eos_token_id"] = c.eos_token_id;
    j["hidden_act"] = "silu";
    j["torch_dtype"] = c.torch_dtype;
    if (c.architecture == "LlamaForCausalLM" && c.attention_bias) j["attention_bias"] = true;
    if (c.sliding_window > 0) {
        j["sliding_window"] = c.sliding_window;
        if (c.architecture == "Qwen2ForCausalLM") j["use_sliding_window"] = true;
    }
    if (c.scale_emb > 0) {
        j["scale_emb"] = c.scale_emb;
        j["scale_depth"] = c.scale_depth;
        j["dim_model_base"] = c.dim_model_base;
    }
    return j.dump(2);
}

}  // namespace sparq
