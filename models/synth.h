// Deterministic random-weight models of any Llama-family shape, written as a
// Hugging Face directory. Speed and memory do not depend on weight values, so
// these stand in for real 1B-7B checkpoints in benchmarks; with `peaked`, the
// final norm is scaled until next-token distributions are sharp, so that a
// wrong bias, scale or norm in any implementation shows in the perplexity.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/dtype.h"
#include "models/config.h"

namespace sparq {

struct SynthOptions {
    uint64_t seed = 0;
    DType dtype = DType::F32;
    int64_t shard_size = 0;  // bytes per shard; 0 = one model.safetensors
    std::string tokenizer_path;  // copied into the directory
    bool peaked = false;
    std::function<void(const std::string&)> log;
};

struct SynthReport {
    int64_t n_params = 0;
    int64_t bytes = 0;
    int shards = 1;
    double final_norm_scale = 1.0;
    double mean_entropy = 0;  // of next-token distributions on random tokens (peaked only)
};

SynthReport synthesize_model(const ModelConfig& config, const SynthOptions& options, const std::string& out_dir);

// Value of element `index` of the named tensor: a counter-based hash, so any
// element can be produced independently (parallel and deterministic).
float synth_uniform(uint64_t seed, uint64_t tensor_hash, uint64_t index);

}  // namespace sparq
