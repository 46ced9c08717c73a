// Quantizing float rows into the ggml block types llama.cpp reads, for
// `sparq export --type q4_1|q4_k|q6_k` (layouts in ggml_blocks.h; Q4_0 and
// Q8_0 come from sparq's own int4/int8 codes, models/gguf_encode.h).
//
// Each block is fitted to minimize the (optionally importance-weighted)
// squared error of the values it will dequantize to, stored scales included:
//   Q4_1  x ~ d q + m, q in [0, 15]: affine fits from a few clipped ranges,
//         each refined by alternating rounding and a least-squares (d, m);
//         d and m rounded to FP16 before the final codes are chosen.
//   Q4_K  each sub-block of 32 fitted as Q4_1 with its offset kept <= 0
//         (Q4_K subtracts dmin * m, m >= 0), then the sub-block steps and
//         offsets quantized to 6 bits against the super-block's FP16 d and
//         dmin; each sub-block tries the neighbouring 6-bit pairs, and a
//         least-squares refit of (d, dmin) is kept when it lowers the error.
//   Q6_K  each sub-block of 16 fitted as x ~ s l, l in [-32, 31] (the
//         largest magnitude mapped to -32 or 31, a few clipped scales, each
//         refined by least squares), then s quantized to int8 against the
//         super-block's FP16 d, neighbours tried, and d refitted likewise.
// The error is always that of the values the ggml dequantizer produces, so
// what is minimized is what llama.cpp computes with.
#pragma once

#include <array>
#include <cstdint>

#include "formats/gguf/gguf_types.h"

namespace sparq::gguf {

// Whether quantize_ggml_row writes `type` (Q4_1, Q4_K, Q6_K).
bool can_quantize_ggml(GgmlType type);

// One block's stored parameters, its grid of representable values: what a
// quantizer that rounds values one at a time (GPTQ) fixes first.
//   Q4_1  d and m (in dmin);  Q4_K  d, dmin, 8 6-bit scales and mins;
//   Q6_K  d and 16 int8 scales. d and dmin are FP16 values.
struct GgmlBlockGrid {
    GgmlType type = GgmlType::Q4_1;
    float d = 0, dmin = 0;
    std::array<int, 16> scale{}, min{};
};

// The fitted grid of one block of x (block-size values) as
// quantize_ggml_row chooses it; `importance` as there.
GgmlBlockGrid fit_ggml_block_grid(GgmlType type, const float* x, const float* importance);
// The grid value nearest v for value i of the block, computed as the ggml
// dequantizer computes it (so packing it gives back the same value).
float round_to_ggml_grid(const GgmlBlockGrid& grid, int i, float v);
// Writes the block of `values` on `grid` (each rounded to its nearest grid
// value) at `out`.
void pack_ggml_block(const GgmlBlockGrid& grid, const float* values, uint8_t* out);

// Quantizes the n values of x (n a multiple of the type's block size, 32 or
// 256; every value finite) into n / block_size blocks at `out`.
// `importance` (n non-negative weights, or null for all 1) weights each
// value's squared error, as an importance matrix does. Deterministic.
void quantize_ggml_row(GgmlType type, const float* x, int64_t n, const float* importance, uint8_t* out);

}  // namespace sparq::gguf
