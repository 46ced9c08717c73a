// Dense FP32 matrix products for the reference forward pass:
//   out[t][r] = sum_k x[t][k] * w[r][k]      (x: tokens x K, w: rows x K)
// i.e. a linear layer applied to a batch of token vectors. SIMD through
// Highway's runtime dispatch; chunks of rows are fixed (independent of the
// thread count) so results are bit-identical for any number of threads.
#pragma once

#include <cstdint>

namespace sparq {

void matmul_f32(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k,
                float* out, int64_t out_stride);

// The same product, plain scalar loops, summed in double: the twin the SIMD
// kernel is tested against.
void matmul_f32_scalar(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k,
                       float* out, int64_t out_stride);

// Name of the SIMD target the dispatcher picks on this machine.
const char* matmul_target_name();

}  // namespace sparq
