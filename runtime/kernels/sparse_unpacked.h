// Many-token products of sparse weights on the dense kernels: the rows are
// unpacked to the dense code plane once per call (pruned weights at their
// group's zero point, i.e. exactly 0), then packed_matmul multiplies them
// with the tensor's own scales and zero points, in place. The sparse kernels
// decode every stored weight once per token; prefill has tens to hundreds
// of tokens, and the dense integer-dot tiles reuse each unpacked row across
// all of them. Results equal packed_matmul on unpack_*_sparse(w) bit for bit.
#pragma once

#include <cstdint>

#include "runtime/kernels/packed_matmul.h"
#include "runtime/kernels/sparse_layout.h"

namespace sparq {

// Tokens from which unpacking pays (measured on the 1B synth's 2:4 and 50%
// files: at 128 tokens, see docs/results.md).
inline constexpr int64_t kSparseUnpackTokens = 32;

// Whether a product should take the unpacked path: at least
// kSparseUnpackTokens tokens, and every activation finite (a pruned weight
// is a stored 0 there, and 0 x Inf is NaN where the sparse kernels never let
// a pruned weight meet its activation).
bool sparse_unpacked_applies(const float* x, int64_t tokens, int64_t cols);

// y[t * y_stride + r] = sum_c W[r][c] x[t * cols + c], as packed_matmul in
// `mode` on the unpacked tensor. The code plane lives in a buffer the
// calling thread reuses (rows x code_row_bytes).
void nm_sparse_matmul_unpacked(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride,
                               ActivationMode mode);
void bitmask_sparse_matmul_unpacked(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                    int64_t y_stride, ActivationMode mode);

}  // namespace sparq
