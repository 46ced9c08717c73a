// The plain scalar encoder and decoder of quant/layout.h: given a group's
// scale and zero point, turn floats into codes and codes into floats. Every
// SIMD kernel is tested against these functions, so they favour obviousness
// over speed (the one concession: branch-free rounding and clamping, which
// the clipping search runs millions of times). Choosing the scale (RTN, clipping search) lives in
// quant/rtn.h and quant/clip_search.h.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/half.h"
#include "quant/layout.h"
#include "quant/scheme.h"

#ifdef __FAST_MATH__
#error "quant/reference_codec.h needs IEEE float arithmetic (round_half_even); build without -ffast-math"
#endif

namespace sparq {

// One group's parameters. `zero` is the effective zero point: the stored
// one for asymmetric schemes, 2^(bits-1) for symmetric ones.
struct GroupParams {
    uint16_t scale = 0;  // FP16 bits
    int zero = 0;

    float scale_value() const { return fp16_to_fp32(scale); }
    bool operator==(const GroupParams&) const = default;
};

// Codes a scheme may emit: [1, 255] for int8 symmetric (q = -128 is never
// used), [0, 2^bits - 1] otherwise.
inline int min_code(const QuantScheme& s) { return s.bits == 8 && s.symmetric ? 1 : 0; }
inline int max_code(const QuantScheme& s) { return max_code(s.bits); }
inline int implicit_zero_point(const QuantScheme& s) {
    return s.symmetric ? symmetric_zero_point(s.bits) : 0;
}

// Round to nearest, ties to even, for |v| <= 2^22: adding 1.5 * 2^23 makes
// the FPU round at the units digit (default rounding mode, IEEE float
// arithmetic; the build never enables -ffast-math). Unlike std::nearbyint
// this inlines and vectorizes in a portable build, and it is what SIMD
// conversions do.
inline float round_half_even(float v) { return (v + 12582912.0f) - 12582912.0f; }

// The signed level q = code - zero that x quantizes to, clamped to
// [lowest_level, highest_level]. Branch-free so error loops vectorize.
inline float quantize_level(float x, float scale, float lowest_level, float highest_level) {
    float v = x / scale;
    v = v < -1024.0f ? -1024.0f : (v > 1024.0f ? 1024.0f : v);  // levels are within +-255
    const float q = round_half_even(v);
    return q < lowest_level ? lowest_level : (q > highest_level ? highest_level : q);
}

// The stored code of x. A zero scale gives the zero point, so all-zero
// groups need no division; NaN (rejected before quantization) maps to the
// lowest code rather than to undefined behaviour.
inline uint8_t quantize_value(float x, float scale, int zero, int lowest, int highest) {
    if (scale == 0.0f) return static_cast<uint8_t>(zero);
    if (x != x) return static_cast<uint8_t>(lowest);
    const float q = quantize_level(x, scale, static_cast<float>(lowest - zero),
                                   static_cast<float>(highest - zero));
    return static_cast<uint8_t>(static_cast<int>(q) + zero);
}

// Exact: |code - zero| < 256 times an FP16 value fits in a float.
inline float dequantize_value(int code, float scale, int zero) {
    return scale * static_cast<float>(code - zero);
}

void quantize_group(const QuantScheme& scheme, const float* x, int64_t n, GroupParams params,
                    uint8_t* codes);
void dequantize_group(const uint8_t* codes, int64_t n, GroupParams params, float* out);

// Squared error of quantizing x with params, each term weighted by
// importance[i] (null = all 1). Summed in a fixed order, so the value is
// the same for any thread count and machine.
double group_squared_error(const QuantScheme& scheme, const float* x, int64_t n,
                           const float* importance, GroupParams params);

// Reads group g of row r's parameters from a packed tensor.
GroupParams read_group_params(const PackedView& view, int64_t row, int64_t group);

// Encodes rows [row_begin, row_end) of `values` (row-major, out.cols wide)
// into out.codes with the scales and zero points already stored in `out`.
void quantize_rows(const float* values, int64_t row_begin, int64_t row_end, PackedTensor& out);

// Decodes rows [row_begin, row_end) into out (row-major, view.cols wide).
void dequantize_rows(const PackedView& view, int64_t row_begin, int64_t row_end, float* out);

}  // namespace sparq
