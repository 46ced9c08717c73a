// Dispatch for the sparse kernels: checks, activations padded to whole
// blocks once per call, fixed row chunks, best SIMD target.

#include "runtime/kernels/sparse_matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels/sparse_matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "runtime/kernels/sparse_kernels-inl.h"
#include "runtime/kernels/sparse_q8-inl.h"

#if HWY_ONCE
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "runtime/kernels/kernel_args.h"

namespace sparq {
namespace kernels {

HWY_EXPORT(SparseRows);
HWY_EXPORT(SparseRowsQ8);
HWY_EXPORT(SparseQ8Native);

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
    // About 64 KiB of weights per chunk, from the shape alone.
    const int64_t grain = std::clamp<int64_t>((int64_t{64} * 1024) / std::max<int64_t>(row_bytes, 1), 4, 1024);
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

bool fast_bits(const QuantScheme& q) { return q.bits == 8 || q.bits == 4; }

void run_sparse_q8(SparseCall& c, const float* x, int64_t tokens, float* y, int64_t y_stride, int64_t row_bytes) {
    if (c.rows == 0 || tokens == 0) return;
    c.groups_per_row = groups_per_row(c.quant, c.cols);
    c.group_span = c.quant.group_span(c.cols);
    c.zero_row_bytes = zero_row_bytes(c.quant, c.cols);
    c.blocks = block_count(c.cols);
    c.y = y;
    c.y_stride = y_stride;
    const SparseQ8Activations a = prepare_sparse_q8(x, tokens, c.cols, c.group_span);
    const int64_t grain = std::clamp<int64_t>((int64_t{64} * 1024) / std::max<int64_t>(row_bytes, 1), 4, 1024);
    const size_t floats = static_cast<size_t>(c.groups_per_row + 16);
    const size_t bytes = static_cast<size_t>(c.cols + 64 + c.cols / 8 + 64);
    parallel_for(0, c.rows, grain, [&](int64_t r0, int64_t r1) {
        thread_local std::vector<float> float_scratch;
        thread_local std::vector<uint8_t> byte_scratch;
        if (float_scratch.size() < floats) float_scratch.resize(floats);
        if (byte_scratch.size() < bytes) byte_scratch.resize(bytes);
        SparseQ8Scratch s;
        s.row_scales = float_scratch.data();
        s.values = byte_scratch.data();
        s.masks = byte_scratch.data() + c.cols + 64;
        HWY_DYNAMIC_DISPATCH(SparseRowsQ8)(c, a, r0, r1, s);
    });
}

}  // namespace

SparseQ8Activations prepare_sparse_q8(const float* x, int64_t tokens, int64_t cols, int64_t group_span) {
    SparseQ8Activations a;
    a.tokens = tokens;
    a.chunks = (cols + 63) / 64;
    a.groups = (cols + group_span - 1) / group_span;
    const int64_t blocks = 2 * a.chunks;
    a.q.assign(static_cast<size_t>(tokens * a.chunks * 64), 0);
    a.block_scales.assign(static_cast<size_t>(tokens * blocks), 0.0f);
    a.lane_scales.assign(static_cast<size_t>(tokens * a.chunks * 16), 0.0f);
    a.group_sums.assign(static_cast<size_t>(tokens * a.groups), 0.0);
    a.lane_sums.assign(static_cast<size_t>(tokens * a.chunks * 16), 0);
    for (int64_t t = 0; t < tokens; ++t) {
        const float* xt = x + t * cols;
        int8_t* q = a.q.data() + t * a.chunks * 64;
        for (int64_t b = 0; b * 32 < cols; ++b) {
            const int64_t c0 = 32 * b, c1 = std::min(cols, c0 + 32);
            float amax = 0.0f;
            for (int64_t i = c0; i < c1; ++i) amax = std::max(amax, std::fabs(xt[i]));
            if (std::isnan(xt[c0])) amax = xt[c0];
            for (int64_t i = c0; i < c1; ++i) amax = std::isnan(xt[i]) ? xt[i] : amax;
            float d = 0.0f;
            int64_t qsum = 0;
            if (!std::isfinite(amax)) {
                // Levels stay 0; the NaN scale carries the non-finite input
                // into every output, as the FP32 kernels' sums would.
                d = std::numeric_limits<float>::quiet_NaN();
            } else if (amax > 0.0f) {
                d = amax / 127.0f;
                const float inv = 127.0f / amax;
                for (int64_t i = c0; i < c1; ++i) {
                    const long v = std::clamp(std::lrint(xt[i] * inv), -127L, 127L);
                    q[i] = static_cast<int8_t>(v);
                    qsum += v;
                    a.lane_sums[(t * a.chunks + i / 64) * 16 + (i % 64) / 4] += static_cast<int32_t>(v);
                }
            }
            a.block_scales[t * blocks + b] = d;
            for (int lane = 0; lane < 8; ++lane) a.lane_scales[(t * a.chunks + b / 2) * 16 + (b % 2) * 8 + lane] = d;
            a.group_sums[t * a.groups + c0 / group_span] += static_cast<double>(d) * static_cast<double>(qsum);
        }
    }
    return a;
}

}  // namespace kernels

// Not cached: tests switch the dispatched target between calls.
bool sparse_q8_native() { return HWY_DYNAMIC_DISPATCH(kernels::SparseQ8Native)(); }

bool sparse_q8_applies(const QuantScheme& q, int64_t cols) {
    return (q.bits == 8 || q.bits == 4) && cols > 0 && cols % 64 == 0 &&
           (q.group == 0 || q.group == 32 || q.group % 64 == 0);
}

void nm_sparse_matmul_q8(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    using namespace kernels;
    if (w.scheme.n != 2 || w.scheme.m != 4 || !sparse_q8_applies(w.scheme.quant, w.cols)) {
        return nm_sparse_matmul(w, x, tokens, y, y_stride);
    }
    if (!sparse_q8_native()) return nm_sparse_matmul_q8_scalar(w, x, tokens, y, y_stride);
    check_sparse_call(w.rows, tokens, x, y, y_stride);
    SparseCall c;
    c.is_nm = true;
    c.nm = w;
    c.nm_geometry = nm_sparse_geometry(w.scheme, w.rows, w.cols);
    c.quant = w.scheme.quant;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = true;
    const int64_t row_bytes = c.nm_geometry.value_row_bytes + c.nm_geometry.index_row_bytes +
                              2 * c.nm_geometry.groups_per_row + c.nm_geometry.zero_row_bytes;
    run_sparse_q8(c, x, tokens, y, y_stride, row_bytes);
}

void bitmask_sparse_matmul_q8(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                              int64_t y_stride) {
    using namespace kernels;
    if (w.scheme.bits != 8 || !sparse_q8_applies(w.scheme, w.cols)) {
        return bitmask_sparse_matmul(w, x, tokens, y, y_stride);
    }
    if (!sparse_q8_native()) return bitmask_sparse_matmul_q8_scalar(w, x, tokens, y, y_stride);
    check_sparse_call(w.rows, tokens, x, y, y_stride);
    validate_quant_scheme(w.scheme);
    SparseCall c;
    c.is_nm = false;
    c.bitmask = w;
    c.bitmask_values_size = w.rows > 0 ? w.row_offset(w.rows) : 0;
    c.quant = w.scheme;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = true;
    const int64_t row_bytes = w.rows > 0 ? static_cast<int64_t>(c.bitmask_values_size) / w.rows +
                                               w.mask_row_bytes() + 2 * groups_per_row(w.scheme, w.cols)
                                         : 1;
    run_sparse_q8(c, x, tokens, y, y_stride, row_bytes);
}


void nm_sparse_matmul(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    using namespace kernels;
    check_sparse_call(w.rows, tokens, x, y, y_stride);
    SparseCall c;
    c.is_nm = true;
    c.nm = w;
    c.nm_geometry = nm_sparse_geometry(w.scheme, w.rows, w.cols);
    c.quant = w.scheme.quant;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = w.scheme.n == 2 && w.scheme.m == 4 && fast_bits(c.quant) &&
             (c.quant.group == 0 || c.quant.group >= kBlock);
    const int64_t row_bytes = c.nm_geometry.value_row_bytes + c.nm_geometry.index_row_bytes +
                              2 * c.nm_geometry.groups_per_row + c.nm_geometry.zero_row_bytes;
    run_sparse(c, x, tokens, y, y_stride, row_bytes);
}

void nm_sparse_matvec(const NmSparseView& w, const float* x, float* y) { nm_sparse_matmul(w, x, 1, y, w.rows); }

void bitmask_sparse_matmul(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                           int64_t y_stride) {
    using namespace kernels;
    check_sparse_call(w.rows, tokens, x, y, y_stride);
    validate_quant_scheme(w.scheme);
    if (w.rows < 0 || w.cols < 1) fail("bitmask_sparse: bad shape [", w.rows, ", ", w.cols, "]");
    SparseCall c;
    c.is_nm = false;
    c.bitmask = w;
    c.bitmask_values_size = w.rows > 0 ? w.row_offset(w.rows) : 0;
    c.quant = w.scheme;
    c.rows = w.rows;
    c.cols = w.cols;
    c.fast = fast_bits(c.quant) && (c.quant.group == 0 || c.quant.group >= 16);
    const int64_t row_bytes = w.rows > 0 ? static_cast<int64_t>(c.bitmask_values_size) / w.rows +
                                               w.mask_row_bytes() + 2 * groups_per_row(w.scheme, w.cols)
                                         : 1;
    run_sparse(c, x, tokens, y, y_stride, row_bytes);
}

void bitmask_sparse_matvec(const BitmaskSparseView& w, const float* x, float* y) {
    bitmask_sparse_matmul(w, x, 1, y, w.rows);
}

}  // namespace sparq
#endif  // HWY_ONCE
