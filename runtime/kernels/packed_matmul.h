// Products of packed quantized weights (quant/layout.h) with activations:
// matrix-vector for decode, matrix-matrix for prefill and batched
// evaluation. One entry point serves every scheme; it picks the kernel for
// the scheme once per call (the hot loops never branch on the format) and
// the SIMD target once per process (Highway runtime dispatch: AVX-512, AVX2,
// SSE4, NEON, SVE, ... as the CPU allows).
//
// Two ways to treat the activations:
//   F32: y = W x with W dequantized exactly (w = d * (u - z)) and x in FP32.
//        Accurate to float rounding; the reference for everything else.
//   Q8:  x is first quantized to int8 per activation block with one FP32
//        scale per block (dx = max|x| / 127), then integer dot products run
//        per block. The block is the weight group clamped to [32, 256]
//        columns (256 for one group per row; see q8_block_columns): 32 for
//        g32 is llama.cpp's Q8_0, and like its Q8_K for K-quants, larger
//        groups get larger blocks so whole groups sum in integers. Adds the
//        activation rounding error (up to half a step, 0.4% of the block's
//        max|x|) for fewer instructions per weight.
//   Q16: the same with int16 levels (dx = max|x| / 32767): 256 times less
//        activation rounding (up to 0.0015% of the block's max|x|), so a
//        model keeps its next-token choices, at half Q8's integer rate.
//        The runtime takes it where it beats FP32 (packed_q16_is_faster):
//        decode (one token: the integer row drivers, whose pairwise int16
//        multiply-adds do twice the work per instruction of FP32 FMAs and
//        need no per-weight float conversion) and prefill where the target
//        has integer dot products. In between (a few tokens, or groups
//        below 32 columns) it runs the FP32 kernels on the dequantized
//        levels.
//
// Work is cut into fixed chunks of rows (core/parallel.h) whose size depends
// only on the shape, and each output is summed in an order that does not
// depend on the chunk, so results are bit-identical for any thread count.
// Every SIMD kernel has a plain scalar twin (the *_scalar functions) that the
// tests compare it with.
#pragma once

#include <cstdint>
#include <span>

#include "quant/layout.h"

namespace sparq {

enum class ActivationMode {
    F32,  // FP32 activations times exactly dequantized weights
    Q8,   // activations quantized to int8 per activation block
    Q16,  // activations quantized to int16 per activation block
};

// The unit the kernels walk a row in, and the smallest Q8 activation block.
// Weight groups are powers of two >= 8, so a group of >= 32 columns is a
// whole number of these.
inline constexpr int64_t kActivationBlock = 32;

// Columns per Q8 (and Q16) activation block for weights of scheme s: the
// group clamped to [32, 256]; 256 when one group spans the row.
int64_t q8_block_columns(const QuantScheme& s);

// y[r] = sum_c W[r][c] * x[c] for r < w.rows. x has w.cols values, y w.rows.
void packed_matvec(const PackedView& w, const float* x, float* y,
                   ActivationMode mode = ActivationMode::F32);

// y[t * y_stride + r] = sum_c W[r][c] * x[t * w.cols + c] for t < tokens.
// y_stride >= w.rows.
void packed_matmul(const PackedView& w, const float* x, int64_t tokens, float* y,
                   int64_t y_stride, ActivationMode mode = ActivationMode::F32);

// One product of packed_matmul_group: y[t * y_stride + r] = (w x_t)[r].
struct PackedProduct {
    PackedView w;
    float* y = nullptr;
    int64_t y_stride = 0;
};

// The products of several matrices with one input (q, k and v; gate and
// up): x is prepared once and all their rows run in one parallel loop, each
// matrix cut into the chunks packed_matmul cuts it into, so every y is
// bit-identical to packed_matmul's. All w have the same cols and scheme.
void packed_matmul_group(std::span<const PackedProduct> products, const float* x, int64_t tokens,
                         ActivationMode mode = ActivationMode::F32);

// The scalar twins: plain loops over the reference codec, summed in double
// (Q8, Q16: the same integer activations, integer sums per block).
void packed_matvec_scalar(const PackedView& w, const float* x, float* y,
                          ActivationMode mode = ActivationMode::F32);
void packed_matmul_scalar(const PackedView& w, const float* x, int64_t tokens, float* y,
                          int64_t y_stride, ActivationMode mode = ActivationMode::F32);

// Whether a product of `tokens` tokens runs faster with integer activations
// (Q16, and Q8) than with F32 on this CPU: true where the dispatched target
// has integer dot products (AVX-512 VNNI) and there are enough tokens to
// fill its token lanes, i.e. for prefill.
bool packed_int_dot_is_faster(int64_t tokens);
// Whether Q16 beats F32 for `tokens` tokens of weights in scheme s: for
// prefill as above, and for decode (one token) on every target when the
// groups hold whole 32-column blocks. A runtime picks Q16 for such calls
// (Q8 where a file asks for int8 activations).
bool packed_q16_is_faster(const QuantScheme& s, int64_t tokens);

// The Highway target the kernels dispatch to now ("AVX3", "AVX2", ...).
const char* packed_kernel_target();
// Every Highway target the kernels were compiled for (HWY_TARGETS bits), so
// tests can run each one this CPU supports.
int64_t packed_kernel_compiled_targets();

// Q8 activation quantization (the definition; the twins run it, and the
// SIMD path runs a bit-identical SIMD version): per block of `block` columns
// (a multiple of 32; the last block shorter), scale = max|x| / 127 and
// q = round_half_even(x * (127 / max|x|)) (x / max|x| * 127 when max|x| is so
// small that 127 / max|x| overflows). An all-zero block gets scale 0; a block
// holding NaN or Inf gets q = 0 and a NaN scale, so the non-finite input
// shows up in every output it touches. q has cols values, scales
// ceil(cols / block). The int16 overloads are the Q16 definition: the same
// with 32767 for 127.
void quantize_activation_blocks(const float* x, int64_t cols, int64_t block, int8_t* q, float* scales);
void quantize_activation_blocks(const float* x, int64_t cols, int64_t block, int16_t* q, float* scales);
void quantize_activation_blocks_simd(const float* x, int64_t cols, int64_t block, int8_t* q, float* scales);
void quantize_activation_blocks_simd(const float* x, int64_t cols, int64_t block, int16_t* q, float* scales);
// The int4 quad rows' byte-split levels (kernels::split_to_quad_bytes) and
// per-block sums dx[b] * sum(q over block b), on the SIMD target that runs;
// cols a multiple of 128.
void quad_activation_parts_simd(const int16_t* q, int64_t cols, int64_t block, const float* dx, uint8_t* quad_bytes,
                                float* sums);

}  // namespace sparq
