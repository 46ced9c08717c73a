#include "models/matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "models/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <vector>

#include "core/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace sparq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Outputs are computed as outer products: a panel of the weights, two
// vectors' worth of rows (32 on AVX-512), is copied transposed (K-major) so
// one K step of the panel is two vector loads, and each token's x[t][k] is
// broadcast against them. A tile of TM tokens keeps TM x 2 accumulators in
// registers and needs no horizontal sums. Each output is one FMA chain over
// each K block in ascending k, added to the previous blocks' total: the same
// bits whatever tile, chunk, thread or vector width computes it.
template <int TM>
HWY_INLINE void tile(const float* HWY_RESTRICT x, int64_t x_stride, const float* HWY_RESTRICT panel,
                     int64_t depth, float* HWY_RESTRICT out, int64_t out_stride, int64_t valid, bool accumulate) {
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    using V = hn::Vec<decltype(d)>;
    V low[TM], high[TM];
    for (int i = 0; i < TM; ++i) low[i] = high[i] = hn::Zero(d);
    for (int64_t kk = 0; kk < depth; ++kk) {
        const V w_low = hn::LoadU(d, panel + kk * 2 * lanes);
        const V w_high = hn::LoadU(d, panel + kk * 2 * lanes + lanes);
        for (int i = 0; i < TM; ++i) {
            const V xv = hn::Set(d, x[i * x_stride + kk]);
            low[i] = hn::MulAdd(xv, w_low, low[i]);
            high[i] = hn::MulAdd(xv, w_high, high[i]);
        }
    }
    if (valid == 2 * lanes) {
        for (int i = 0; i < TM; ++i) {
            float* o = out + i * out_stride;
            if (accumulate) {
                low[i] = hn::Add(hn::LoadU(d, o), low[i]);
                high[i] = hn::Add(hn::LoadU(d, o + lanes), high[i]);
            }
            hn::StoreU(low[i], d, o);
            hn::StoreU(high[i], d, o + lanes);
        }
        return;
    }
    // The last panel of a chunk: only `valid` rows exist.
    HWY_ALIGN float buffer[2 * (HWY_MAX_BYTES / sizeof(float))];
    for (int i = 0; i < TM; ++i) {
        hn::StoreU(low[i], d, buffer);
        hn::StoreU(high[i], d, buffer + lanes);
        float* o = out + i * out_stride;
        for (int64_t j = 0; j < valid; ++j) o[j] = accumulate ? o[j] + buffer[j] : buffer[j];
    }
}

template <int TM>
HWY_INLINE void tokens_remainder(const float* x, int64_t x_stride, const float* panel, int64_t depth, float* out,
                                 int64_t out_stride, int64_t valid, bool accumulate, int64_t count) {
    if constexpr (TM > 1) {
        if (count < TM) {
            tokens_remainder<TM - 1>(x, x_stride, panel, depth, out, out_stride, valid, accumulate, count);
            return;
        }
    }
    tile<TM>(x, x_stride, panel, depth, out, out_stride, valid, accumulate);
}

// Tokens per register tile: 6 x 2 accumulators + 2 weight vectors + one
// broadcast fit AVX2's 16 registers as well as AVX-512's 32.
constexpr int kTileTokens = 6;
// Columns per K block (kMatmulColumnBlock, part of the sum order): one
// packed panel (256 x 32 floats, 32 KiB) stays in L1 while every token of a
// token block passes over it.
constexpr int64_t kColumnBlock = kMatmulColumnBlock;
// Tokens per pass over a K block: their activations (256 x 1 KiB) stay in
// L2 while the chunk's panels go by.
constexpr int64_t kTokenBlock = 256;

float* panel_scratch(size_t floats) {
    thread_local std::vector<float> scratch;
    if (scratch.size() < floats) scratch.resize(floats);
    return scratch.data();
}

// panel[kk * width + j] = src[j * stride + kk] for j < valid, kk < depth,
// and 0 for valid <= j < width. A plain copy; the bits of the products do
// not depend on how it is done. 4 x 4 blocks go through 128-bit registers
// (two rounds of interleaves): a quarter of the loads and stores of the
// element-wise loop (64-token products 1.17x; from 256 tokens on the copy
// is hidden behind the weights' own reads from memory).
void pack_panel(const float* HWY_RESTRICT src, int64_t stride, int64_t valid, int64_t depth, int64_t width,
                float* HWY_RESTRICT panel) {
    int64_t j0 = 0, k4 = 0;
#if HWY_TARGET != HWY_SCALAR
    const hn::Full128<float> d4;
    const int64_t full_rows = valid / 4 * 4;
    k4 = depth / 4 * 4;
    for (; j0 < full_rows; j0 += 4) {
        const float* row = src + j0 * stride;
        for (int64_t kk = 0; kk < k4; kk += 4) {
            const auto a = hn::LoadU(d4, row + kk), b = hn::LoadU(d4, row + stride + kk);
            const auto c = hn::LoadU(d4, row + 2 * stride + kk), e = hn::LoadU(d4, row + 3 * stride + kk);
            const auto ab_low = hn::InterleaveLower(d4, a, b), ce_low = hn::InterleaveLower(d4, c, e);
            const auto ab_high = hn::InterleaveUpper(d4, a, b), ce_high = hn::InterleaveUpper(d4, c, e);
            float* out = panel + kk * width + j0;
            hn::StoreU(hn::ConcatLowerLower(d4, ce_low, ab_low), d4, out);
            hn::StoreU(hn::ConcatUpperUpper(d4, ce_low, ab_low), d4, out + width);
            hn::StoreU(hn::ConcatLowerLower(d4, ce_high, ab_high), d4, out + 2 * width);
            hn::StoreU(hn::ConcatUpperUpper(d4, ce_high, ab_high), d4, out + 3 * width);
        }
    }
#endif
    // What the blocks left: the last depth % 4 columns of the blocked rows,
    // then the rows past the last block of 4, then the zero rows.
    for (int64_t kk = k4; kk < depth; ++kk) {
        for (int64_t j = 0; j < j0; ++j) panel[kk * width + j] = src[j * stride + kk];
    }
    for (int64_t kk = 0; kk < depth; ++kk) {
        float* out = panel + kk * width;
        for (int64_t j = j0; j < valid; ++j) out[j] = src[j * stride + kk];
        for (int64_t j = valid; j < width; ++j) out[j] = 0.0f;
    }
}

void MatmulRowsBroadcast(const float* x, int64_t tokens, const float* w, int64_t row_begin, int64_t row_end,
                         int64_t k, float* out, int64_t out_stride) {
    const hn::ScalableTag<float> d;
    const int64_t width = 2 * static_cast<int64_t>(hn::Lanes(d));
    const int64_t rows = row_end - row_begin, panels = (rows + width - 1) / width;
    float* packed = panel_scratch(static_cast<size_t>(panels * width * kColumnBlock));
    for (int64_t k0 = 0; k0 < k; k0 += kColumnBlock) {
        const int64_t depth = std::min(kColumnBlock, k - k0);
        const bool accumulate = k0 > 0;
        // Transpose this K block of the chunk's rows into panels; rows past
        // the end are zero and never stored.
        for (int64_t p = 0; p < panels; ++p) {
            const int64_t r = row_begin + p * width;
            pack_panel(w + r * k + k0, k, std::min(width, row_end - r), depth, width, packed + p * width * depth);
        }
        for (int64_t t0 = 0; t0 < tokens; t0 += kTokenBlock) {
            const int64_t t_end = std::min(tokens, t0 + kTokenBlock);
            for (int64_t p = 0; p < panels; ++p) {
                const float* panel = packed + p * width * depth;
                const int64_t r = row_begin + p * width, valid = std::min(width, row_end - r);
                int64_t t = t0;
                for (; t + kTileTokens <= t_end; t += kTileTokens) {
                    tile<kTileTokens>(x + t * k + k0, k, panel, depth, out + t * out_stride + r, out_stride, valid,
                                      accumulate);
                }
                if (t < t_end) {
                    tokens_remainder<kTileTokens - 1>(x + t * k + k0, k, panel, depth, out + t * out_stride + r,
                                                      out_stride, valid, accumulate, t_end - t);
                }
            }
        }
    }
}

// The last partial vector of a row, through a zero-padded copy: on SSE4
// and below Highway's MaskedLoad loads the whole vector, past the end of
// the buffer (a crash when that end is a page's).
template <class D>
HWY_INLINE hn::Vec<D> load_tail(D d, const float* p, int64_t count) {
    HWY_ALIGN float tail[HWY_MAX_BYTES / sizeof(float)] = {};
    std::copy(p, p + count, tail);
    return hn::Load(d, tail);
}

// Computes a TM x TN tile of outputs with TM*TN vector accumulators, so each
// loaded vector of x and w is reused TN / TM times. Every output is summed
// lane-wise over k and reduced the same way whatever tile computes it.
template <int TM, int TN>
HWY_INLINE void dot_tile(const float* HWY_RESTRICT x, int64_t x_stride, const float* HWY_RESTRICT w,
                         int64_t w_stride, int64_t k, float* HWY_RESTRICT out, int64_t out_stride,
                         bool accumulate) {
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    using V = hn::Vec<decltype(d)>;
    V acc[TM][TN];
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] = hn::Zero(d);
    int64_t kk = 0;
    for (; kk + lanes <= k; kk += lanes) {
        V wv[TN];
        for (int j = 0; j < TN; ++j) wv[j] = hn::LoadU(d, w + j * w_stride + kk);
        for (int i = 0; i < TM; ++i) {
            const V xv = hn::LoadU(d, x + i * x_stride + kk);
            for (int j = 0; j < TN; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
        }
    }
    if (kk < k) {
        V wv[TN];
        for (int j = 0; j < TN; ++j) wv[j] = load_tail(d, w + j * w_stride + kk, k - kk);
        for (int i = 0; i < TM; ++i) {
            const V xv = load_tail(d, x + i * x_stride + kk, k - kk);
            for (int j = 0; j < TN; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < TM; ++i) {
        for (int j = 0; j < TN; ++j) {
            const float partial = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
            out[i * out_stride + j] = accumulate ? out[i * out_stride + j] + partial : partial;
        }
    }
}

template <int TN>
HWY_INLINE void dot_rows_block(const float* x, int64_t tokens, const float* w, int64_t k, int64_t block,
                               float* out, int64_t out_stride, bool accumulate) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4) {
        dot_tile<4, TN>(x + t * k, k, w, k, block, out + t * out_stride, out_stride, accumulate);
    }
    for (; t < tokens; ++t) dot_tile<1, TN>(x + t * k, k, w, k, block, out + t * out_stride, out_stride, accumulate);
}

// The dot-product kernel, for small batches: no packing, each weight row
// read in place. Sums over K in fixed blocks, so each output is added up in
// the same order whatever chunk or thread computes it.
void MatmulRowsDot(const float* x, int64_t tokens, const float* w, int64_t row_begin, int64_t row_end,
                   int64_t k, float* out, int64_t out_stride) {
    for (int64_t k0 = 0; k0 < k; k0 += kColumnBlock) {
        const int64_t block = std::min(kColumnBlock, k - k0);
        const bool accumulate = k0 > 0;
        for (int64_t t0 = 0; t0 < tokens; t0 += kTokenBlock) {
            const int64_t n = std::min(kTokenBlock, tokens - t0);
            const float* xs = x + t0 * k + k0;
            float* os = out + t0 * out_stride;
            int64_t r = row_begin;
            for (; r + 4 <= row_end; r += 4) {
                dot_rows_block<4>(xs, n, w + r * k + k0, k, block, os + r, out_stride, accumulate);
            }
            for (; r < row_end; ++r) dot_rows_block<1>(xs, n, w + r * k + k0, k, block, os + r, out_stride, accumulate);
        }
    }
}

int64_t CompiledTarget() { return HWY_TARGET; }
int64_t FusesMultiplyAdd() { return HWY_NATIVE_FMA; }

}  // namespace HWY_NAMESPACE
}  // namespace sparq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sparq {

HWY_EXPORT(MatmulRowsBroadcast);
HWY_EXPORT(MatmulRowsDot);
HWY_EXPORT(CompiledTarget);
HWY_EXPORT(FusesMultiplyAdd);

void matmul_f32(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k, float* out,
                int64_t out_stride) {
    if (k <= 0) {  // empty sums: both kernels would leave the output unwritten
        for (int64_t t = 0; t < tokens; ++t) std::fill(out + t * out_stride, out + t * out_stride + rows, 0.0f);
        return;
    }
    // Chunks of rows sized so one chunk of weights stays in L2 while every
    // token passes over it: whole panels of 32 rows (16 on AVX2) for the
    // broadcast kernel, 4-row tiles for the dot kernel. Chunk boundaries
    // never change the sums, only which thread computes them.
    const int64_t bytes_per_row = std::max<int64_t>(1, k * 4);
    int64_t grain = std::clamp<int64_t>((256 * 1024) / bytes_per_row, 32, 256);
    if (tokens >= kMatmulBroadcastMinTokens) {
        grain = (grain + 31) / 32 * 32;
        parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
            HWY_DYNAMIC_DISPATCH(MatmulRowsBroadcast)(x, tokens, w, b, e, k, out, out_stride);
        });
    } else {
        grain = (grain + 3) / 4 * 4;
        parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
            HWY_DYNAMIC_DISPATCH(MatmulRowsDot)(x, tokens, w, b, e, k, out, out_stride);
        });
    }
}

void matmul_f32_scalar(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k,
                       float* out, int64_t out_stride) {
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            double s = 0;
            for (int64_t i = 0; i < k; ++i) s += static_cast<double>(x[t * k + i]) * w[r * k + i];
            out[t * out_stride + r] = static_cast<float>(s);
        }
    }
}

const char* matmul_target_name() {
    return hwy::TargetName(HWY_DYNAMIC_DISPATCH(CompiledTarget)());
}

bool matmul_target_fuses_multiply_add() { return HWY_DYNAMIC_DISPATCH(FusesMultiplyAdd)() != 0; }

int64_t matmul_compiled_targets() { return HWY_TARGETS; }

}  // namespace sparq
#endif
