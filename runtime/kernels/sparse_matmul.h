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

}  // namespace sparq
