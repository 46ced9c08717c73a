// Opens any MODEL argument (see CONTRACT.md): a Hugging Face directory, a
// llama2.c checkpoint, (later) .sparq and .gguf files. Whatever the format,
// tensors come out under their Hugging Face names and in Hugging Face layout
// (q/k rows in the rotate-half RoPE order).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "formats/tensor_map.h"
#include "models/config.h"
#include "tokenizer/tokenizer.h"

namespace sparq {

struct LoadOptions {
    std::string tokenizer_path;  // overrides the tokenizer found beside the model
    bool require_tokenizer = true;
};

struct ModelSource {
    std::string path;
    std::string format;  // "hf-safetensors", "llama2c", ...
    ModelConfig config;
    TensorMap tensors;
    std::shared_ptr<Tokenizer> tokenizer;  // null only when !require_tokenizer
    // Bytes a tensor takes in the file where that is not its in-memory size
    // (GGUF blocks and .sparq encodings are dequantized on load).
    std::map<std::string, int64_t> stored_bytes;
};

// Bytes tensor `name` of `model` takes in its source file.
int64_t stored_tensor_bytes(const ModelSource& model, const std::string& name);

ModelSource load_model(const std::string& path, const LoadOptions& options = {});

// Hugging Face tensor names of a Llama block.
std::string layer_tensor_name(int64_t layer, const std::string& suffix);

// True for the linear layers inside transformer blocks (q/k/v/o, gate/up/
// down): the weights compression passes act on by default.
bool is_block_linear(const std::string& name);

}  // namespace sparq
