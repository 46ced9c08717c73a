// Reader for Karpathy's llama2.c checkpoints (float32 only):
//  - version 0, the legacy run.c layout: 7 int32 header fields, then the
//    weights grouped by kind, with RoPE tables and (when the classifier is
//    not tied) wcls at the end; a negative vocab_size means "not tied";
//  - version 1, export.py's version1_export: a 256-byte header starting with
//    the magic "ak42", then norms, embeddings and weights.
// Tensors come out under Hugging Face names and in Hugging Face layout:
// q_proj and k_proj rows are permuted to the rotate-half RoPE order (owned
// copies); every other tensor is a zero-copy view of the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "formats/tensor_map.h"
#include "models/config.h"

namespace sparq {

inline constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42" read as little-endian uint32

struct Llama2cCheckpoint {
    ModelConfig config;
    TensorMap tensors;
    int version = 0;
    bool shared_classifier = true;
};

// Parses a whole checkpoint held in memory; tensors hold `owner`, which must
// keep `data` alive. `source` names the input in errors.
Llama2cCheckpoint parse_llama2c(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                const std::string& source);

// Memory-maps `path` and parses it.
Llama2cCheckpoint read_llama2c(const std::string& path);

}  // namespace sparq
