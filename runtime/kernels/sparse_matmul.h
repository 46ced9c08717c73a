// Products of sparse quantized weights (runtime/kernels/sparse_layout.h)
// with FP32 activations: matrix-vector for decode, matrix-matrix for
// prefill. Same contract as packed_matmul.h: the scheme is dispatched once
// per call, rows are cut into fixed chunks (bit-identical results for any
// thread count), and every SIMD kernel has a scalar twin.
//
// Fast SIMD paths: 2:4 with int8 or int4 values, and bitmask with int8 or
// int4 values, for groups of >= 32 columns (bitmask: >= 16) or per row.
// Other N:M patterns, bit widths and small groups are correct but go
// through a generic path (rows decoded to floats, then an FP32 dot).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/kernels/sparse_layout.h"

namespace sparq {

// y[r] = sum_c W[r][c] x[c];  y[t * y_stride + r] for t < tokens.
void nm_sparse_matvec(const NmSparseView& w, const float* x, float* y);
void nm_sparse_matmul(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride);
void bitmask_sparse_matvec(const BitmaskSparseView& w, const float* x, float* y);
void bitmask_sparse_matmul(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                           int64_t y_stride);

// Scalar twins: stored values only, dequantized by the reference codec,
// summed in double.
void nm_sparse_matmul_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y,
                             int64_t y_stride);
void bitmask_sparse_matmul_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                  int64_t y_stride);
inline void nm_sparse_matvec_scalar(const NmSparseView& w, const float* x, float* y) {
    nm_sparse_matmul_scalar(w, x, 1, y, w.rows);
}
inline void bitmask_sparse_matvec_scalar(const BitmaskSparseView& w, const float* x, float* y) {
    bitmask_sparse_matmul_scalar(w, x, 1, y, w.rows);
}

// Q8 activations (decode speed): each token's activations are quantized
// once per call to int8 per block of 32 columns (q = round(x * 127 /
// amax), dx = amax / 127), and each row sums (u - z) * q exactly in
// integers per block, then dx * d in float. On AVX3_DL (VNNI + VBMI2) the
// kept codes expand to dense 64-byte blocks (vpexpandb, pruned columns
// filled with the zero point) and meet the activations in vpdpbusd, so the
// cost per kept value is a fraction of the FP32 gather's. Applies to 2:4
// and bitmask int8/int4 with cols % 64 == 0 and groups of 32 (symmetric),
// multiples of 64, or per row (sparse_q8_applies); other shapes run the
// FP32 kernels above. Elsewhere the twin's math runs (correct, not fast):
// callers pick it only where sparse_q8_native() is true.
bool sparse_q8_native();
bool sparse_q8_applies(const QuantScheme& q, int64_t cols);
void nm_sparse_matmul_q8(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride);
void bitmask_sparse_matmul_q8(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                              int64_t y_stride);
// Scalar twins of the Q8 kernels (same quantized activations, sums in
// double); where sparse_q8_applies is false they are the FP32 twins.
void nm_sparse_matmul_q8_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y,
                                int64_t y_stride);
void bitmask_sparse_matmul_q8_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                     int64_t y_stride);

namespace kernels {
// The quantized activations both the Q8 kernels and their twins read, made
// by one function so they are identical. Columns padded to chunks of 64.
struct SparseQ8Activations {
    int64_t tokens = 0;
    int64_t chunks = 0;               // ceil(cols / 64)
    int64_t groups = 0;               // weight groups per row
    std::vector<int8_t> q;            // tokens x chunks x 64
    std::vector<float> block_scales;  // tokens x chunks * 2: dx per block of 32
    std::vector<float> lane_scales;   // tokens x chunks x 16: dx of the block each dot lane covers
    std::vector<double> group_sums;   // tokens x groups: sum over the group's blocks of dx * sum q
    std::vector<int32_t> lane_sums;   // tokens x chunks x 16: sum of q over each dot lane's 4 columns
};
struct SparseQ8Scratch {
    float* row_scales = nullptr;  // groups_per_row + 16
    uint8_t* masks = nullptr;     // cols / 8: a row's 64-bit expand masks
    uint8_t* values = nullptr;    // cols + 64: padded copy of a bitmask row's values
};
SparseQ8Activations prepare_sparse_q8(const float* x, int64_t tokens, int64_t cols, int64_t group_span);
}  // namespace kernels

}  // namespace sparq
