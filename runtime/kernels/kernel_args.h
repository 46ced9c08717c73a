// What the dispatching code (packed_matmul.cpp) hands the per-target kernels:
// the block order of prepared activations, and the argument bundles. Plain
// C++, compiled once.
//
// Block order. A row is walked in blocks of kActivationBlock = 32 columns.
// Inside a block, the kernels unpack codes plane by plane: int4 gives the 16
// low nibbles (even columns) then the 16 high nibbles (odd columns); int2
// and int3 give four planes of 8 (columns 4j, 4j+1, 4j+2, 4j+3). So the
// activations are permuted once per token into the same order,
//     position p = k * (32 / P) + j  <->  column 32 * block + P * j + k,
// with P = 1, 2 or 4 planes, and the hot loops need only masks and shifts per
// weight byte. The last block is padded with zero activations; kernels read
// whole blocks of codes (a short last block is copied to a zeroed buffer
// first), and padding codes meet zero activations, so they add nothing.
#pragma once

#include <algorithm>
#include <cstdint>

#include "quant/layout.h"
#include "runtime/kernels/packed_matmul.h"
#include "runtime/kernels/sparse_layout.h"

namespace sparq::kernels {

inline constexpr int64_t kBlock = kActivationBlock;

// Rows per parallel chunk of a product, a multiple of `row_multiple`, from
// the shape alone (never the thread count). Several tokens: about 64 KiB of
// weights per chunk. One token (decode): a sixteenth of the matrix, 64 KiB
// to 1 MiB, so each thread reads long sequential runs, which the hardware
// prefetcher follows best, and switches tasks less often (kernels_bench,
// 2 threads, int8 and 2:4 rows: 10-20% faster than 64 KiB chunks); sixteen
// chunks still balance a few threads. Small matrices (k and v) are cut into
// a multiple of four chunks of equal rows: 64 KiB pieces of a 2:4 int8 k
// (320 KiB) made five, three for one thread and two for the other, and a
// 2:4 int4 k four of 76, 76, 76 and 28 rows, so one thread waited a chunk
// at the end of each (docs/results.md, session 26).
inline int64_t rows_per_chunk(int64_t rows, int64_t row_bytes, int64_t tokens, int64_t row_multiple) {
    row_bytes = std::max<int64_t>(row_bytes, 1);
    const int64_t kib = 1024;
    const auto round_up = [](int64_t v, int64_t m) { return (v + m - 1) / m * m; };
    if (tokens != 1) return round_up(std::clamp<int64_t>(64 * kib / row_bytes, row_multiple, 1024), row_multiple);
    const int64_t bytes = std::clamp<int64_t>(rows * row_bytes / 16, 64 * kib, 1024 * kib);
    const int64_t chunk = std::clamp<int64_t>(bytes / row_bytes, row_multiple, 65536);
    const int64_t chunks = (rows + chunk - 1) / chunk;
    if (chunks >= 16 || rows <= row_multiple) return round_up(chunk, row_multiple);
    return round_up((rows + round_up(chunks, 4) - 1) / round_up(chunks, 4), row_multiple);
}

inline int64_t block_count(int64_t cols) { return (cols + kBlock - 1) / kBlock; }

inline int block_planes(int bits) { return bits == 8 ? 1 : bits == 4 ? 2 : 4; }

// Column (within its block) of block position p.
inline int block_position_column(int planes, int p) {
    const int per_plane = static_cast<int>(kBlock) / planes;
    return planes * (p % per_plane) + p / per_plane;
}

// out[block * 32 + p] = x[block * 32 + column(p)], zero past cols.
template <class From, class To>
void permute_to_block_order(const From* x, int64_t cols, int bits, To* out) {
    const int planes = block_planes(bits);
    const int64_t blocks = block_count(cols);
    const int per_plane = static_cast<int>(kBlock) / planes;
    const int64_t whole = cols / kBlock;
    for (int64_t b = 0; b < whole; ++b) {
        const From* in = x + b * kBlock;
        To* o = out + b * kBlock;
        for (int k = 0; k < planes; ++k)
            for (int j = 0; j < per_plane; ++j) o[k * per_plane + j] = static_cast<To>(in[planes * j + k]);
    }
    for (int64_t b = whole; b < blocks; ++b) {
        for (int p = 0; p < kBlock; ++p) {
            const int64_t c = b * kBlock + block_position_column(planes, p);
            out[b * kBlock + p] = c < cols ? static_cast<To>(x[c]) : To(0);
        }
    }
}

// Pair order, for the wide int4 decode rows (wide_rows-inl.h): per 64
// columns (blocks A and B, whole), the even columns of A, of B, then the odd
// columns of A, of B: out[64 * i + 32 * h + 16 * k + j] = x[64 * i + 32 * k
// + 2 * j + h]. cols is a multiple of 64.
template <class From, class To>
void permute_to_pair_order(const From* x, int64_t cols, To* out) {
    for (int64_t i = 0; i < cols; i += 2 * kBlock)
        for (int h = 0; h < 2; ++h)
            for (int k = 0; k < 2; ++k)
                for (int j = 0; j < 16; ++j) out[i + 32 * h + 16 * k + j] = static_cast<To>(x[i + 32 * k + 2 * j + h]);
}

// Byte-split quad order, for the wide int4 rows (either symmetry) of
// groups of 32 to 256 columns (their activation blocks;
// wide_rows-inl.h): per 128 columns (blocks A-D, whole), 256 bytes: the
// high bytes (x >> 8, signed) of the even columns, of the odd columns,
// then the low bytes (x & 255, unsigned) of the even and of the odd columns,
// 64 each, byte j of a run standing for column 32 * (j / 16) + 2 * (j % 16)
// = 2j of the quad (+ 1 for odd). A row's 64 code bytes line up with them
// as they are stored (byte j holds those two columns), so byte dot products
// (vpdpbusd) sum code * x exactly as 256 * (code * high) + code * low, and
// int32 lane k belongs to block k / 4. cols is a multiple of 128.
inline constexpr int64_t kQuadColumns = 128;
inline void split_to_quad_bytes(const int16_t* x, int64_t cols, uint8_t* out) {
    // A four-way deinterleave of the quad's level bytes, one plain loop per
    // plane. The definition: decode runs the same loops compiled per SIMD
    // target (QuadActivationParts, activation_kernels-inl.h), tested
    // against this.
    for (int64_t i = 0; i < cols; i += kQuadColumns) {
        const int16_t* in = x + i;
        uint8_t* o = out + 2 * i;
        for (int j = 0; j < 64; ++j) o[j] = static_cast<uint8_t>(static_cast<uint16_t>(in[2 * j]) >> 8);
        for (int j = 0; j < 64; ++j) o[64 + j] = static_cast<uint8_t>(static_cast<uint16_t>(in[2 * j + 1]) >> 8);
        for (int j = 0; j < 64; ++j) o[128 + j] = static_cast<uint8_t>(in[2 * j] & 0xFF);
        for (int j = 0; j < 64; ++j) o[192 + j] = static_cast<uint8_t>(in[2 * j + 1] & 0xFF);
    }
}

// One weight matrix as the kernels read it, with its derived sizes.
struct DenseWeights {
    PackedView view;
    int64_t groups_per_row = 0;
    int64_t group_span = 0;      // columns per group (cols for per-channel)
    int64_t code_row_bytes = 0;
    int64_t zero_row_bytes = 0;
    int64_t blocks = 0;          // blocks of 32 columns per row, the last maybe short

    // Row r's codes (PackedView::code_row computes the row size out of
    // line: a call per row, ~0.6% of int4 g32 decode).
    const uint8_t* code_row(int64_t r) const { return view.codes + r * code_row_bytes; }
};

inline DenseWeights dense_weights(const PackedView& v) {
    DenseWeights w;
    w.view = v;
    w.groups_per_row = groups_per_row(v.scheme, v.cols);
    w.group_span = v.scheme.group_span(v.cols);
    w.code_row_bytes = code_row_bytes(v.scheme, v.cols);
    w.zero_row_bytes = zero_row_bytes(v.scheme, v.cols);
    w.blocks = block_count(v.cols);
    return w;
}

// Activations prepared once per call, `tokens` rows of `blocks * 32` values
// in block order. F32 mode fills xf; Q8 mode fills xq (int8 values widened
// to int16 for the multiply-add instructions) and one scale per block.
struct PreparedActivations {
    int64_t tokens = 0;
    int64_t stride = 0;  // blocks * 32
    const float* xf = nullptr;
    const int16_t* xq = nullptr;
    int64_t act_block = kBlock;            // Q8 activation block, a multiple of 32 columns
    int64_t act_blocks = 0;                // Q8 activation blocks per token
    const float* block_scales = nullptr;   // tokens x act_blocks (+ one vector of slack)
    // Q8: per token and weight group, sum over the group's activation blocks
    // of dx_a * sum q (tokens x groups_per_row), to take zero points out.
    const float* group_sums = nullptr;
    // One token for the wide integer rows (wide_rows-inl.h); int4 levels
    // then come in pair order.
    bool wide = false;
    // Wide int4 rows (either symmetry) of groups of 32 to 256 columns
    // (their activation blocks), cols a multiple of 128: the same levels
    // split into bytes in quad order (split_to_quad_bytes).
    const uint8_t* quad_bytes = nullptr;
};

// Integer activations for the integer-dot prefill (int8_dot_tiles-inl.h),
// whose vector lanes are tokens: kTokenLanes tokens per token vector, the
// last vector padded with zero activations. A step is the 4 bytes one lane
// takes per instruction: a quad of int8 levels (Q8) or a pair of int16
// levels (Q16, `wide`), positions in block order. q holds, per token vector
// and step k, the 16 tokens' 4 bytes in a row: q[(v * steps + k) * 64 +
// lane * 4 + byte]. Scales and sums are per token vector and activation
// block, one lane per token.
inline constexpr int64_t kTokenLanes = 16;
struct IntDotActivations {
    bool wide = false;                 // int16 levels (Q16), else int8 (Q8)
    int64_t tokens = 0;
    int64_t vectors = 0;               // ceil(tokens / kTokenLanes)
    int64_t steps = 0;                 // blocks * 32 / (4 or 2)
    int64_t act_block = kBlock;        // columns per activation block
    int64_t act_blocks = 0;
    const uint8_t* q = nullptr;        // vectors x steps x 64 bytes
    const float* scales = nullptr;     // vectors x act_blocks x 16: dx
    const int32_t* sums = nullptr;     // Q8: vectors x act_blocks x 16, sum of q over the block
};

// The integer-dot prefill prepares a chunk's rows in groups of
// kDotGroupRows, interleaved step by step. Its scratch, in bytes from a
// 64-byte boundary, for rows of `stride` columns, `act_blocks` activation
// blocks and `rows` rows: float accumulators (3 token vectors x 8 rows x
// 16 lanes), the prepared groups (int16 levels at most), 16 padded rows
// before transposition, one row of byte codes, per-row-and-block scales
// and zero points.
inline constexpr int64_t kDotGroupRows = 16;
struct IntDotScratch {
    int64_t facc, prepared, temp, bytes, scales, zeros, total;
    IntDotScratch(int64_t stride, int64_t act_blocks, int64_t rows) {
        const auto up = [](int64_t n) { return (n + 63) / 64 * 64; };
        const int64_t groups = (rows + kDotGroupRows - 1) / kDotGroupRows;
        const int64_t row_bytes = up(2 * stride);
        facc = 0;
        prepared = up(3 * 8 * kTokenLanes * 4);
        temp = prepared + groups * kDotGroupRows * row_bytes;
        bytes = temp + kDotGroupRows * row_bytes;
        scales = bytes + up(stride);
        zeros = scales + up(groups * kDotGroupRows * act_blocks * 4);
        total = zeros + up(groups * kDotGroupRows * act_blocks * 4);
    }
};

// Tokens at which dequantizing a tile beats decoding each row per token.
inline constexpr int64_t kMinTileTokens = 2;

// Prefill takes integer dot products from this many tokens on (when the
// target has them): below it most of a token vector's lanes would idle.
inline constexpr int64_t kMinIntDotTokens = 8;

// Per-thread buffers the kernels may use, sized by the dispatcher.
struct KernelScratch {
    float* row_scales = nullptr;   // groups_per_row + 16
    // 64-byte aligned: kMaxTileRows x (blocks * 32) dequantized rows, or
    // the integer-dot prefill's IntDotScratch, whichever is larger.
    float* weight_tile = nullptr;
};
inline constexpr int64_t kMaxTileRows = 4;

// One dense product: y[t * y_stride + r] for every token and the rows a
// chunk asks for.
struct DenseCall {
    DenseWeights w;
    PreparedActivations x;
    ActivationMode mode = ActivationMode::F32;
    // Groups of 8 or 16 columns (several per block): rows are dequantized by
    // the reference codec and x is in plain column order (as for 1 plane).
    bool small_groups = false;
    // Set (q non-null) when prefill runs on integer dot products.
    IntDotActivations dot;
    float* y = nullptr;
    int64_t y_stride = 0;
};

inline bool has_small_groups(const QuantScheme& s) { return s.group != 0 && s.group < kBlock; }

// One sparse product (nm_sparse or bitmask_sparse), FP32 activations in
// plain column order (xf, padded to whole blocks).
struct SparseCall {
    bool is_nm = true;
    NmSparseView nm;
    NmSparseGeometry nm_geometry;
    BitmaskSparseView bitmask;
    uint64_t bitmask_values_size = 0;
    QuantScheme quant;
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t groups_per_row = 0;
    int64_t group_span = 0;
    int64_t zero_row_bytes = 0;
    int64_t blocks = 0;
    // Whether the SIMD fast path applies (2:4 or bitmask, 8 or 4 bits,
    // large enough groups); otherwise rows are decoded to floats.
    bool fast = false;
    // Bitmask Q16 rows: spread values with vpexpandb (bitmask_expand_instruction()).
    bool expand_instruction = false;
    // Bytes a row streams (values, metadata, scales): sizes row chunks and
    // the prefetch distance.
    int64_t row_bytes = 0;
    PreparedActivations x;
    float* y = nullptr;
    int64_t y_stride = 0;
};

struct SparseScratch {
    float* row_scales = nullptr;  // groups_per_row + 16
    float* dense_row = nullptr;   // cols stored weights (generic path)
    int64_t* columns = nullptr;   // cols columns of those weights (generic path)
    uint8_t* values = nullptr;    // one row of values + 64 bytes, zero-padded copies
};

}  // namespace sparq::kernels
