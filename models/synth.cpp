#include "models/synth.h"

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <map>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "core/atomic_file.h"
#include "core/parallel.h"
#include "formats/safetensors.h"
#include "models/llama_reference.h"
#include "models/model_source.h"
#include "tokenizer/tokenizer.h"

namespace sparq {

namespace fs = std::filesystem;

namespace {

uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t name_hash(const std::string& name) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ull;
    return h;
}

struct SynthTensor {
    std::string name;
    Shape shape;
    float center;      // values are center + half_width * U(-1, 1)
    float half_width;
};

std::vector<SynthTensor> plan_tensors(const ModelConfig& c) {
    const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size, v = c.vocab_size;
    // Uniform U(-a, a) has standard deviation a / sqrt(3): a linear layer with
    // std 1/sqrt(fan_in) keeps each branch's activations O(1).
    auto linear_width = [](int64_t fan_in) { return static_cast<float>(std::sqrt(3.0 / static_cast<double>(fan_in))); };
    std::vector<SynthTensor> t;
    // Embeddings of std 1/sqrt(d), as trained models have small ones; a tied
    // head then gives logits of order 1, like an untied one.
    t.push_back({"model.embed_tokens.weight", {v, d}, 0.0f, linear_width(d)});
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto n = [&](const char* s) { return layer_tensor_name(l, s); };
        // Norm weights vary around 1 so a misapplied norm changes the output.
        t.push_back({n("input_layernorm.weight"), {d}, 1.0f, 0.5f});
        t.push_back({n("self_attn.q_proj.weight"), {q, d}, 0.0f, linear_width(d)});
        t.push_back({n("self_attn.k_proj.weight"), {kv, d}, 0.0f, linear_width(d)});
        t.push_back({n("self_attn.v_proj.weight"), {kv, d}, 0.0f, linear_width(d)});
        if (c.attention_bias) {
            t.push_back({n("self_attn.q_proj.bias"), {q}, 0.0f, 0.5f});
            t.push_back({n("self_attn.k_proj.bias"), {kv}, 0.0f, 0.5f});
            t.push_back({n("self_attn.v_proj.bias"), {kv}, 0.0f, 0.5f});
        }
        t.push_back({n("self_attn.o_proj.weight"), {d, q}, 0.0f, linear_width(q)});
        t.push_back({n("post_attention_layernorm.weight"), {d}, 1.0f, 0.5f});
        t.push_back({n("mlp.gate_proj.weight"), {ff, d}, 0.0f, linear_width(d)});
        t.push_back({n("mlp.up_proj.weight"), {ff, d}, 0.0f, linear_width(d)});
        t.push_back({n("mlp.down_proj.weight"), {d, ff}, 0.0f, linear_width(ff)});
    }
    t.push_back({"model.norm.weight", {d}, 1.0f, 0.5f});
    if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {v, d}, 0.0f, linear_width(d)});
    return t;
}

// Fills the tensor's values as F32 (the model dtype is applied on write).
std::vector<float> generate_values(const SynthTensor& t, uint64_t seed, float scale) {
    const int64_t n = shape_numel(t.shape);
    std::vector<float> values(static_cast<size_t>(n));
    const uint64_t h = name_hash(t.name);
    parallel_for(0, n, 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            values[i] = (t.center + t.half_width * synth_uniform(seed, h, static_cast<uint64_t>(i))) * scale;
    });
    return values;
}

std::vector<uint8_t> encode(const std::vector<float>& values, DType dtype) {
    std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
    if (dtype == DType::F32) {
        std::memcpy(bytes.data(), values.data(), bytes.size());
    } else if (dtype == DType::F16) {
        fp32_to_fp16_row(values.data(), reinterpret_cast<uint16_t*>(bytes.data()), values.size());
    } else {
        fp32_to_bf16_row(values.data(), reinterpret_cast<uint16_t*>(bytes.data()), values.size());
    }
    return bytes;
}

// Mean entropy of next-token distributions over a few random sequences.
double mean_entropy(const ModelConfig& c, const TensorMap& tensors, uint64_t seed) {
    LlamaReference model(c, tensors);
    const int64_t n = std::min<int64_t>(32, c.max_position_embeddings);
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) tokens[i] = static_cast<int32_t>(mix(seed + 7919 * static_cast<uint64_t>(i)) % static_cast<uint64_t>(c.vocab_size));
    auto state = model.new_state(n);
    std::vector<float> logits(static_cast<size_t>(n * c.vocab_size));
    model.forward(*state, tokens, logits.data(), true);
    double total = 0;
    for (int64_t t = 0; t < n; ++t) {
        const float* row = logits.data() + t * c.vocab_size;
        double mx = row[0], sum = 0, weighted = 0;
        for (int64_t i = 0; i < c.vocab_size; ++i) mx = std::max(mx, static_cast<double>(row[i]));
        for (int64_t i = 0; i < c.vocab_size; ++i) {
            const double e = std::exp(row[i] - mx);
            sum += e;
            weighted += e * (row[i] - mx);
        }
        total += std::log(sum) - weighted / sum;
    }
    return total / static_cast<double>(n);
}

}  // namespace

float synth_uniform(uint64_t seed, uint64_t tensor_hash, uint64_t index) {
    const uint64_t r = mix(mix(seed * 0x9e3779b97f4a7c15ull + tensor_hash) + index * 0xd1b54a32d192ed03ull);
    return static_cast<float>(static_cast<double>(r >> 40) * 0x1.0p-23 - 1.0);  // [-1, 1)
}

SynthReport synthesize_model(const ModelConfig& config, const SynthOptions& options, const std::string& out_dir) {
    config.validate("--config");
    if (options.dtype != DType::F32 && options.dtype != DType::F16 && options.dtype != DType::BF16) {
        fail("--dtype must be f32, f16 or bf16");
    }
    if (options.tokenizer_path.empty()) fail("--tokenizer is required (the model directory must run alone)");
    const auto tokenizer = load_tokenizer(options.tokenizer_path, 0);
    if (tokenizer->vocab_size() > config.vocab_size) {
        fail_in({options.tokenizer_path, "", ""}, "the tokenizer has ", tokenizer->vocab_size(),
                " pieces, more than the config's vocab_size ", config.vocab_size);
    }
    fs::create_directories(out_dir);
    auto log = [&](const std::string& s) { if (options.log) options.log(s); };
    SynthReport report;
    const auto plan = plan_tensors(config);

    // Peaked: scale the final norm (logits are linear in it, tied or not)
    // until the mean entropy is between a quarter and a half of log(vocab):
    // peaked enough that errors show, not so peaked that every prediction is
    // a confident miss.
    double norm_scale = 1.0;
    if (options.peaked) {
        TensorMap tensors("synth");
        for (const auto& t : plan) tensors.add(t.name, make_f32_tensor(t.shape, generate_values(t, options.seed, 1.0f)));
        const double target = 0.5 * std::log(static_cast<double>(config.vocab_size));
        const double floor = 0.25 * std::log(static_cast<double>(config.vocab_size));
        for (int step = 0; step < 60; ++step) {
            TensorMap scaled("synth");
            for (const auto& [name, t] : tensors.all()) {
                if (name == "model.norm.weight") {
                    auto v = t.to_f32();
                    for (float& x : v) x = static_cast<float>(x * norm_scale);
                    scaled.add(name, make_f32_tensor(t.shape, std::move(v)));
                } else {
                    scaled.add(name, t);
                }
            }
            report.mean_entropy = mean_entropy(config, scaled, options.seed);
            log("synth: final norm x" + std::to_string(norm_scale) + " -> mean entropy " +
                std::to_string(report.mean_entropy) + " (target < " + std::to_string(target) + ")");
            if (report.mean_entropy < target && report.mean_entropy > floor) break;
            norm_scale *= report.mean_entropy >= target ? 1.25 : 0.85;
        }
    }
    report.final_norm_scale = norm_scale;

    // Shards: consecutive tensors up to shard_size bytes (a larger tensor
    // gets a shard of its own).
    std::vector<std::vector<size_t>> shards(1);
    int64_t shard_bytes = 0;
    for (size_t i = 0; i < plan.size(); ++i) {
        const int64_t bytes = shape_numel(plan[i].shape) * static_cast<int64_t>(dtype_size(options.dtype));
        if (options.shard_size > 0 && !shards.back().empty() && shard_bytes + bytes > options.shard_size) {
            shards.emplace_back();
            shard_bytes = 0;
        }
        shards.back().push_back(i);
        shard_bytes += bytes;
    }
    const bool sharded = options.shard_size > 0;
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t s = 0; s < shards.size(); ++s) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        const std::string file = sharded ? std::string(name) : "model.safetensors";
        std::vector<TensorSpec> specs;
        for (size_t i : shards[s]) specs.push_back({plan[i].name, options.dtype, plan[i].shape});
        SafetensorsStreamWriter writer(out_dir + "/" + file, specs, {{"format", "pt"}, {"generator", "sparq synth"}});
        for (size_t i : shards[s]) {
            const auto& t = plan[i];
            const float scale = t.name == "model.norm.weight" ? static_cast<float>(norm_scale) : 1.0f;
            const auto bytes = encode(generate_values(t, options.seed, scale), options.dtype);
            writer.write_next(bytes.data(), bytes.size());
            report.n_params += shape_numel(t.shape);
            report.bytes += static_cast<int64_t>(bytes.size());
            weight_map[t.name] = file;
        }
        writer.commit();
        log("synth: wrote " + out_dir + "/" + file);
    }
    report.shards = static_cast<int>(shards.size());
    if (sharded) {
        nlohmann::json index = {{"metadata", {{"total_size", report.bytes}}}, {"weight_map", weight_map}};
        write_file_atomic(out_dir + "/model.safetensors.index.json", index.dump(2));
    }
    ModelConfig written = config;
    written.torch_dtype = options.dtype == DType::F32 ? "float32" : options.dtype == DType::F16 ? "float16" : "bfloat16";
    write_file_atomic(out_dir + "/config.json", config_to_json(written));
    const std::string kind = tokenizer->source_kind();
    const std::string tokenizer_name = kind == "hf-json" ? "tokenizer.json" : "tokenizer.model";
    if (kind == "llama2c") fail_in({options.tokenizer_path, "", ""}, "give a SentencePiece tokenizer.model or a tokenizer.json");
    write_file_atomic(out_dir + "/" + tokenizer_name, read_text_file(options.tokenizer_path));
    return report;
}

}  // namespace sparq
