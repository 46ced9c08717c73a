// Quantizes whole 2-D weights [rows, cols] into the packed layout of
// quant/layout.h, and back. Work is split into fixed row chunks
// (core/parallel.h), so the bytes are identical for any thread count;
// callers may also run several tensors at once.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "quant/clip_search.h"
#include "quant/layout.h"
#include "quant/scheme.h"

namespace sparq {

enum class QuantMethod {
    Rtn,  // round to nearest with the scale rules of quant/rtn.h
    Mse,     // clipping-range search, quant/clip_search.h
    Absmax,  // plain absmax rounding (absmax_group_params), a baseline
};

std::string_view quant_method_name(QuantMethod method);
// "rtn", "mse" or "absmax"; throws sparq::Error otherwise.
QuantMethod parse_quant_method(std::string_view name);

// `weight` is F32, F16, BF16 or F64 of rank 2. `importance` (cols values,
// finite and >= 0) weights the Mse search per input column; null = all 1.
// Throws sparq::Error naming `tensor_name` for a bad shape, dtype or
// importance, for the first NaN/Inf (with its row and column), and for a
// group whose scale would overflow FP16.
// With `error`, also sums the signal and the reconstruction error while the
// rows are at hand (the report's SQNR without reading the tensor again).
struct QuantizationError {
    double signal = 0;  // sum w^2
    double noise = 0;   // sum (w - dequantized)^2
    double sqnr_db() const;  // +inf when exact, -inf for a zero signal with error
};
PackedTensor quantize_tensor(const Tensor& weight, const QuantScheme& scheme, QuantMethod method,
                             const std::vector<float>* importance, const std::string& tensor_name,
                             const ClipGrid& grid = {}, QuantizationError* error = nullptr);

// Row-major [rows, cols] floats.
std::vector<float> dequantize_tensor(const PackedView& packed);
std::vector<float> dequantize_tensor(const PackedTensor& packed);

// 10 log10(sum w^2 / sum (w - dq)^2), summed in double in fixed chunks.
// An exact reconstruction gives +infinity (JSON writers must map it, e.g.
// to null); an all-zero original with any error gives -infinity.
double sqnr_db(const std::vector<float>& original, const std::vector<float>& dequantized);

}  // namespace sparq
