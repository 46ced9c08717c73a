// Dense FP32 matrix products for the reference forward pass:
//   out[t][r] = sum_k x[t][k] * w[r][k]      (x: tokens x K, w: rows x K)
// i.e. a linear layer applied to a batch of token vectors. SIMD through
// Highway's runtime dispatch.
//
// The order of the sums is part of the contract. K is cut into blocks of
// kMatmulColumnBlock columns, and the blocks' totals are added to the
// output in order. Within a block:
// - from kMatmulBroadcastMinTokens tokens on (calibration batches, a
//   prefill), each output is one chain acc = x * w + acc over ascending k
//   from 0, fused where the target has FMA (AVX2, AVX-512) and separately
//   rounded on SSE4 and below: the weights are copied into K-major panels
//   and each token's activations broadcast against them, 1.7-1.9x the dot
//   kernel's speed, but the copy costs more than it saves on a few tokens;
// - below that (a decode step), dot products read the weights in place:
//   lane-wise chains over k, reduced across the vector's lanes, an order
//   that depends on the vector width.
// Neither order depends on tiling, chunking or the thread count, so every
// thread count gives the same bits; a batch's size decides the kernel.
#pragma once

#include <cstdint>

namespace sparq {

constexpr int64_t kMatmulColumnBlock = 256;
constexpr int64_t kMatmulBroadcastMinTokens = 48;

void matmul_f32(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k,
                float* out, int64_t out_stride);

// The same product, plain scalar loops, summed in double: the twin the SIMD
// kernel is tested against.
void matmul_f32_scalar(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k,
                       float* out, int64_t out_stride);

// Name of the SIMD target the dispatcher picks on this machine, whether it
// fuses the multiply-add, and the targets compiled (for the per-target tests).
const char* matmul_target_name();
bool matmul_target_fuses_multiply_add();
int64_t matmul_compiled_targets();

}  // namespace sparq
