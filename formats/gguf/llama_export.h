// Export of a Llama-architecture model (Hugging Face names and layout) to a
// GGUF file that llama.cpp loads as arch "llama": llama.cpp's metadata keys
// and tensor names, the tokenizer vocabulary, and q/k rows permuted back from
// Hugging Face's rotate-half RoPE order to the interleaved-pairs order that
// llama.cpp's "llama" architecture uses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "formats/tensor_map.h"
#include "models/config.h"
#include "tokenizer/vocabulary.h"

namespace sparq {

enum class GgufExportType { F32, F16 };

struct GgufExportSummary {
    std::string output;
    uint64_t bytes = 0;
    size_t tensors = 0;
};

// Writes `out_path` atomically. Norm weights are always F32; 2-D weights are
// F32 or F16 as `type` says. Input tensors may be F32, F16 or BF16.
// `model_name` (general.name) defaults to the output file's stem.
// Throws sparq::Error naming the tensor or field at fault.
GgufExportSummary export_llama_gguf(const ModelConfig& config, const TensorMap& tensors, const Vocabulary& vocab,
                                    const std::string& out_path, GgufExportType type,
                                    const std::string& model_name = "");

// llama.cpp tensor name of a Hugging Face Llama tensor name
// ("model.layers.3.mlp.down_proj.weight" -> "blk.3.ffn_down.weight"), and back.
std::optional<std::string> gguf_name_for_hf(const std::string& hf_name);
std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name);

// The q/k row permutation: the Hugging Face row that GGUF row `row` comes
// from. For head h, a in {0,1}, b < head_size/2:
//   GGUF row h*head_size + 2*b + a  <-  HF row h*head_size + a*(head_size/2) + b.
inline int64_t hf_row_for_gguf_row(int64_t row, int64_t head_size) {
    const int64_t h = row / head_size;
    const int64_t r = row % head_size;
    const int64_t a = r % 2;
    const int64_t b = r / 2;
    return h * head_size + a * (head_size / 2) + b;
}

}  // namespace sparq
