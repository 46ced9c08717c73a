// GPTQ onto the ggml block grids (`sparq export --type q4_1|q4_k|q6_k
// --method gptq`): GPTQ's column loop (quant/gptq.h gptq_round) with each
// block's stored scales as its grid. A block's grid is fitted
// (formats/gguf/ggml_quantize.h, its error weighted by the inputs' mean
// squares, diag(H)) when the block's first column comes up, from the
// weights as GPTQ has updated them so far, or from the original weights
// with act-order (static groups); then its columns are rounded one at a
// time, each rounding error spread over the columns still to come. So a
// K-quant file llama.cpp runs as it is carries GPTQ's error compensation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf/gguf_types.h"
#include "quant/gptq.h"

namespace sparq {

// The blocks of `weight` ([rows, cols] row-major F32, cols a multiple of the
// type's block size) as `type` (Q4_1, Q4_K or Q6_K), or nullopt when H
// (cols x cols) cannot be factored: then `info` says why and the caller
// quantizes without GPTQ. Throws sparq::Error naming `tensor_name` for bad
// shapes or non-finite weights. Bytes are the same for any thread count.
std::optional<std::vector<uint8_t>> gptq_quantize_ggml(const float* weight, int64_t rows, int64_t cols,
                                                       const std::vector<double>& hessian, gguf::GgmlType type,
                                                       const GptqOptions& options, const std::string& tensor_name,
                                                       GptqResult& info);

}  // namespace sparq
