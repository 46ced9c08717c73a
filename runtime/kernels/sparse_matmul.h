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

// Q16 activations (decode speed): each token's activations are quantized
// to int16 per activation block exactly as the dense Q16 kernels do
// (quantize_activation_blocks with q8_block_columns(scheme) columns), and
// each row sums level * q exactly in integers per block, then d * dx in
// float. 2:4 rows gather the activations their kept values meet in
// registers, so the integer work is per kept weight; bitmask rows expand
// their stored values to their columns. Applies to symmetric int8 and int4
// 2:4 and symmetric int8 bitmask with cols % 64 == 0 and groups of 32 or
// more (or per row) (sparse_q16_applies); other shapes run the FP32
// kernels above. Native on AVX3_DL (VBMI, VBMI2, VNNI); elsewhere the
// twin's math runs (correct, not fast): the runtime takes these only where
// sparse_q16_native() is true. Layout details: sparse_q16-inl.h.
bool sparse_q16_native();

// How the bitmask Q16 rows spread their stored values to columns: the
// vpexpandb instruction, or permutes and popcounts. The same sums either
// way; which is faster depends on the CPU (Intel runs vpexpandb in about 2
// cycles, AMD's Zen 4/5 in about 15), so Auto takes the instruction on
// Intel CPUs only. Tests force each.
enum class ByteExpand { Auto, Instruction, Permutes };
void set_bitmask_byte_expand(ByteExpand method);
bool bitmask_expand_instruction();  // the method Auto (or the forced one) resolves to

bool sparse_q16_applies(const NmSparseScheme& s, int64_t cols);
bool sparse_q16_applies(const QuantScheme& bitmask_scheme, int64_t cols);
void nm_sparse_matmul_q16(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride);
void bitmask_sparse_matmul_q16(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                               int64_t y_stride);
// Scalar twins of the Q16 kernels (same quantized activations, integer
// block sums, then double); where sparse_q16_applies is false they are the
// FP32 twins.
void nm_sparse_matmul_q16_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y,
                                 int64_t y_stride);
void bitmask_sparse_matmul_q16_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                      int64_t y_stride);

namespace kernels {
// The quantized activations both the Q16 kernels and their twins read, made
// by one function so they are identical.
struct SparseQ16Activations {
    int64_t tokens = 0;
    int64_t padded_cols = 0;          // cols rounded up to 64
    int64_t block = 0;                // columns per activation block
    int64_t blocks = 0;               // per token
    std::vector<int16_t> q;           // tokens x padded_cols
    std::vector<float> block_scales;  // tokens x blocks, + 16 floats of padding
    // With byte_split (the bitmask kernels' byte dot products), q's levels
    // as two unsigned bytes each, tokens x padded_cols, column order:
    // low = q & 255, high = (q >> 8) + 128, so q = 256 * high + low - 32768.
    std::vector<uint8_t> low_bytes, high_bytes;
};
// Rows the kernels process together; the scratch holds one slot per row.
inline constexpr int kSparseQ16TileRows = 4;
// Floats per row of SparseQ16Scratch::combined: the 2:4 int4 pair kernel
// stores each group's combined scale twice, and reads (and writes) up to a
// whole vector past the groups.
inline int64_t sparse_q16_combined_slot(int64_t groups_per_row) { return 2 * groups_per_row + 32; }
struct SparseQ16Scratch {
    float* row_scales = nullptr;  // tile rows x (groups_per_row + 16)
    float* combined = nullptr;    // tile rows x sparse_q16_combined_slot: d_g * dx per group of 32
    uint8_t* values = nullptr;    // tile rows x (cols + 64): padded copies of bitmask rows' values
};
SparseQ16Activations prepare_sparse_q16(const float* x, int64_t tokens, int64_t cols, int64_t block,
                                        bool byte_split = false);
// The same into `a`, reusing its buffers.
void prepare_sparse_q16(const float* x, int64_t tokens, int64_t cols, int64_t block, bool byte_split,
                        SparseQ16Activations& a);
}  // namespace kernels

}  // namespace sparq
