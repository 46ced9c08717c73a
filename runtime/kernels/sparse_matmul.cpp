// Dispatch for the sparse kernels: checks, activations padded to whole
// blocks once per call, fixed row chunks, best SIMD target.

#include "runtime/kernels/sparse_matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels/sparse_matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "runtime/kernels/sparse_kernels-inl.h"
#include "runtime/kernels/sparse_q16-inl.h"

#if HWY_ONCE
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "core/error.h"
#include "core/parallel.h"
#include "runtime/kernels/kernel_args.h"
#include "runtime/kernels/kept_input.h"
#include "runtime/kernels/packed_matmul.h"

namespace sparq {
namespace kernels {

HWY_EXPORT(SparseRows);
HWY_EXPORT(SparseRowsQ16);
HWY_EXPORT(SparseQ16Native);
HWY_EXPORT(SplitQ16Bytes);

namespace {

void check_sparse_call(int64_t rows, int64_t tokens, const float* x, const float* y, int64_t y_stride) {
    if (tokens < 0) fail("sparse matmul: negative token count ", tokens);
    if (y_stride < rows) fail("sparse matmul: output stride ", y_stride, " < rows ", rows);
    if (rows > 0 && tokens > 0 && (!x || !y)) fail("sparse matmul: null activations or output");
}

void run_sparse(SparseCall& c, const float* x, int64_t tokens, float* y, int64_t y_stride, int64_t row_bytes) {
    if (c.rows == 0 || tokens == 0) return;
    c.groups_per_row = groups_per_row(c.quant, c.cols);
    c.group_span = c.quant.group_span(c.cols);
    c.zero_row_bytes = zero_row_bytes(c.quant, c.cols);
    c.blocks = block_count(c.cols);
    std::vector<float> xf(static_cast<size_t>(tokens * c.blocks * kBlock));
    for (int64_t t = 0; t < tokens; ++t)
        permute_to_block_order(x + t * c.cols, c.cols, 8, xf.data() + t * c.blocks * kBlock);
    c.x.tokens = tokens;
    c.x.stride = c.blocks * kBlock;
    c.x.xf = xf.data();
    c.y = y;
    c.y_stride = y_stride;
    const int64_t grain = kernels::rows_per_chunk(c.rows, row_bytes, tokens, 4);
    const size_t floats = static_cast<size_t>(c.groups_per_row + 16 + c.x.stride);
    const size_t bytes = static_cast<size_t>(std::max(c.cols, c.x.stride) + 64);
    parallel_for(0, c.rows, grain, [&](int64_t r0, int64_t r1) {
        thread_local std::vector<float> float_scratch;
        thread_local std::vector<uint8_t> byte_scratch;
        thread_local std::vector<int64_t> column_scratch;
        if (float_scratch.size() < floats) float_scratch.resize(floats);
        if (byte_scratch.size() < bytes) byte_scratch.resize(bytes);
        if (column_scratch.size() < static_cast<size_t>(c.cols)) column_scratch.resize(static_cast<size_t>(c.cols));
        SparseScratch s;
        s.row_scales = float_scratch.data();
        s.dense_row = float_scratch.data() + c.groups_per_row + 16;
        s.values = byte_scratch.data();
        s.columns = column_scratch.data();
        HWY_DYNAMIC_DISPATCH(SparseRows)(c, r0, r1, s);
    });
}

}  // namespace

bool fast_bits(const QuantScheme& q) { return q.bits == 8 || q.bits == 4; }

namespace {

// The activations last prepared on this thread, for the next call on the
// same input (kept_input.h); prepare_sparse_q16's quantization is the same
// on every SIMD target, so the key has no target.
struct SparseQ16Prepared {
    struct Key {
        int64_t tokens = 0, cols = 0, block = 0;
        bool byte_split = false;
        bool operator==(const Key&) const = default;
    };
    KeptInput<Key> kept;
    SparseQ16Activations activations;

    const SparseQ16Activations& get(const float* x, int64_t tokens, int64_t cols, int64_t block, bool byte_split) {
        const Key key{tokens, cols, block, byte_split};
        if (kept.same(key, x, tokens * cols)) return activations;
        kept.forget();
        prepare_sparse_q16(x, tokens, cols, block, byte_split, activations);
        kept.keep(key, x, tokens * cols);
        return activations;
    }
};

}  // namespace

void run_sparse_q16(SparseCall& c, const float* x, int64_t tokens, float* y, int64_t y_stride, int64_t row_bytes) {
    if (c.rows == 0 || tokens == 0) return;
    c.groups_per_row = groups_per_row(c.quant, c.cols);
    c.group_span = c.quant.group_span(c.cols);
    c.y = y;
    c.y_stride = y_stride;
    c.expand_instruction = bitmask_expand_instruction();
    c.row_bytes = row_bytes;
    // Byte-split activations feed the bitmask rows and the 2:4 int4 pairs
    // of chunks (groups of 32, an even number of chunks; sparse_q16-inl.h).
    const int64_t block = q8_block_columns(c.quant);
    const bool nm_int4_pairs = c.is_nm && c.quant.bits == 4 && block == 32 && c.cols % 128 == 0;
    thread_local SparseQ16Prepared prepared;
    const SparseQ16Activations& a = prepared.get(x, tokens, c.cols, block, !c.is_nm || nm_int4_pairs);
    const int64_t grain = kernels::rows_per_chunk(c.rows, row_bytes, tokens, kSparseQ16TileRows);
    const size_t floats = static_cast<size_t>(
        kSparseQ16TileRows * (c.groups_per_row + 16 + sparse_q16_combined_slot(c.groups_per_row)));
    const size_t bytes = static_cast<size_t>(kSparseQ16TileRows * (c.cols + 64));
    parallel_for(0, c.rows, grain, [&](int64_t r0, int64_t r1) {
        thread_local std::vector<float> float_scratch;
        thread_local std::vector<uint8_t> byte_scratch;
        if (float_scratch.size() < floats) float_scratch.resize(floats);
        if (byte_scratch.size() < bytes) byte_scratch.resize(bytes);
        SparseQ16Scratch s;
        s.row_scales = float_scratch.data();
        s.combined = float_scratch.data() + kSparseQ16TileRows * (c.groups_per_row + 16);
        s.values = byte_scratch.data();
        HWY_DYNAMIC_DISPATCH(SparseRowsQ16)(c, a, r0, r1, s);
    });
}

void prepare_sparse_q16(const float* x, int64_t tokens, int64_t cols, int64_t block, bool byte_split,
                        SparseQ16Activations& a) {
    a.tokens = tokens;
    a.padded_cols = (cols + 63) / 64 * 64;
    a.block = block;
    a.blocks = (cols + block - 1) / block;
    // Buffers kept from call to call: every element is written below.
    a.q.resize(static_cast<size_t>(tokens * a.padded_cols));
    a.block_scales.resize(static_cast<size_t>(tokens * a.blocks + 16));
    std::fill(a.block_scales.end() - 16, a.block_scales.end(), 0.0f);
    for (int64_t t = 0; t < tokens; ++t) {
        int16_t* q = a.q.data() + t * a.padded_cols;
        quantize_activation_blocks_simd(x + t * cols, cols, block, q, a.block_scales.data() + t * a.blocks);
        std::fill(q + cols, q + a.padded_cols, int16_t{0});
    }
    if (byte_split) {
        a.low_bytes.resize(a.q.size());
        a.high_bytes.resize(a.q.size());
        HWY_DYNAMIC_DISPATCH(SplitQ16Bytes)(a.q.data(), static_cast<int64_t>(a.q.size()), a.low_bytes.data(),
                                            a.high_bytes.data());
    } else {
        a.low_bytes.clear();
        a.high_bytes.clear();
    }
}

SparseQ16Activations prepare_sparse_q16(const float* x, int64_t tokens, int64_t cols, int64_t block,
                                        bool byte_split) {
    SparseQ16Activations a;
    prepare_sparse_q16(x, tokens, cols, block, byte_split, a);
    return a;
}

}  // namespace kernels

// Not cached: tests switch the dispatched target between calls.
bool sparse_q16_native() { return HWY_DYNAMIC_DISPATCH(kernels::SparseQ16Native)(); }

namespace {
std::atomic<ByteExpand> forced_byte_expand{ByteExpand::Auto};

bool cpu_is_intel() {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "GenuineIntel") == 0;
#else
    return false;
#endif
}
}  // namespace

void set_bitmask_byte_expand(ByteExpand method) { forced_byte_expand.store(method); }

bool bitmask_expand_instruction() {
    static const bool intel = cpu_is_intel();
    const ByteExpand m = forced_byte_expand.load();
    return m == ByteExpand::Auto ? intel : m == ByteExpand::Instruction;
}

namespace {
bool q16_shape(const QuantScheme& q, int64_t cols) {
    return q.symmetric && (q.bits == 8 || q.bits == 4) && cols > 0 && cols % 64 == 0 &&
           (q.group == 0 || q.group >= 32);
}
}  // namespace

bool sparse_q16_applies(const NmSparseScheme& s, int64_t cols) {
    return s.n == 2 && s.m == 4 && q16_shape(s.quant, cols);
}

bool sparse_q16_applies(const QuantScheme& bitmask_scheme, int64_t cols) {
    return bitmask_scheme.bits == 8 && q16_shape(bitmask_scheme, cols);
}

namespace {

// The call for one tensor (validated) and the bytes a row streams, which
// size the row chunks.
struct PreparedCall {
    kernels::SparseCall call;
    int64_t row_bytes = 1;
};

PreparedCall nm_call(const NmSparseView& w, const float* x, int64_t tokens, const float* y, int64_t y_stride) {
    kernels::check_sparse_call(w.rows, tokens, x, y, y_stride);
    PreparedCall p;
    kernels::SparseCall& c = p.call;
    c.is_nm = true;
    c.nm = w;
    c.nm_geometry = nm_sparse_geometry(w.scheme, w.rows, w.cols);
    c.quant = w.scheme.quant;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = w.scheme.n == 2 && w.scheme.m == 4 && kernels::fast_bits(c.quant) &&
             (c.quant.group == 0 || c.quant.group >= kernels::kBlock);
    p.row_bytes = c.nm_geometry.value_row_bytes + c.nm_geometry.index_row_bytes + 2 * c.nm_geometry.groups_per_row +
                  c.nm_geometry.zero_row_bytes;
    return p;
}

PreparedCall bitmask_call(const BitmaskSparseView& w, const float* x, int64_t tokens, const float* y,
                          int64_t y_stride) {
    kernels::check_sparse_call(w.rows, tokens, x, y, y_stride);
    validate_quant_scheme(w.scheme);
    if (w.rows < 0 || w.cols < 1) fail("bitmask_sparse: bad shape [", w.rows, ", ", w.cols, "]");
    PreparedCall p;
    kernels::SparseCall& c = p.call;
    c.is_nm = false;
    c.bitmask = w;
    c.bitmask_values_size = w.rows > 0 ? w.row_offset(w.rows) : 0;
    c.quant = w.scheme;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = kernels::fast_bits(c.quant) && (c.quant.group == 0 || c.quant.group >= 16);
    if (w.rows > 0) {
        p.row_bytes = static_cast<int64_t>(c.bitmask_values_size) / w.rows + w.mask_row_bytes() +
                      2 * groups_per_row(w.scheme, w.cols);
    }
    return p;
}

}  // namespace

void nm_sparse_matmul_q16(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return nm_sparse_matmul(w, x, tokens, y, y_stride);
    if (!sparse_q16_native()) return nm_sparse_matmul_q16_scalar(w, x, tokens, y, y_stride);
    PreparedCall p = nm_call(w, x, tokens, y, y_stride);
    kernels::run_sparse_q16(p.call, x, tokens, y, y_stride, p.row_bytes);
}

void bitmask_sparse_matmul_q16(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                               int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return bitmask_sparse_matmul(w, x, tokens, y, y_stride);
    if (!sparse_q16_native()) return bitmask_sparse_matmul_q16_scalar(w, x, tokens, y, y_stride);
    PreparedCall p = bitmask_call(w, x, tokens, y, y_stride);
    kernels::run_sparse_q16(p.call, x, tokens, y, y_stride, p.row_bytes);
}

void nm_sparse_matmul(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    PreparedCall p = nm_call(w, x, tokens, y, y_stride);
    kernels::run_sparse(p.call, x, tokens, y, y_stride, p.row_bytes);
}

void bitmask_sparse_matmul(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                           int64_t y_stride) {
    PreparedCall p = bitmask_call(w, x, tokens, y, y_stride);
    kernels::run_sparse(p.call, x, tokens, y, y_stride, p.row_bytes);
}

void nm_sparse_matvec(const NmSparseView& w, const float* x, float* y) { nm_sparse_matmul(w, x, 1, y, w.rows); }

void bitmask_sparse_matvec(const BitmaskSparseView& w, const float* x, float* y) {
    bitmask_sparse_matmul(w, x, 1, y, w.rows);
}

}  // namespace sparq
#endif  // HWY_ONCE
