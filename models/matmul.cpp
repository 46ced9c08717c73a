#include "models/matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "models/matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>

#include "core/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace sparq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Computes a TM x TN tile of outputs with TM*TN vector accumulators, so each
// loaded vector of x and w is reused TN / TM times. Every output is summed
// lane-wise over k and reduced the same way whatever tile computes it.
template <int TM, int TN>
HWY_INLINE void tile(const float* HWY_RESTRICT x, int64_t x_stride, const float* HWY_RESTRICT w,
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
        const auto mask = hn::FirstN(d, static_cast<size_t>(k - kk));
        V wv[TN];
        for (int j = 0; j < TN; ++j) wv[j] = hn::MaskedLoad(mask, d, w + j * w_stride + kk);
        for (int i = 0; i < TM; ++i) {
            const V xv = hn::MaskedLoad(mask, d, x + i * x_stride + kk);
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

// Columns per K block: a block of a row chunk's weights plus four tokens'
// activations (32 rows x 1 KiB + 4 KiB) stays in L1 while every token
// passes over it, so the tiles load from L1 instead of L2.
constexpr int64_t kColumnBlock = 256;

template <int TN>
HWY_INLINE void rows_block(const float* x, int64_t tokens, const float* w, int64_t k, int64_t block,
                           float* out, int64_t out_stride, bool accumulate) {
    int64_t t = 0;
    for (; t + 4 <= tokens; t += 4) {
        tile<4, TN>(x + t * k, k, w, k, block, out + t * out_stride, out_stride, accumulate);
    }
    for (; t < tokens; ++t) tile<1, TN>(x + t * k, k, w, k, block, out + t * out_stride, out_stride, accumulate);
}

// Tokens per pass over a K block of the chunk's rows: their activations
// (256 x 1 KiB) stay in L2 while the chunk's rows go by, instead of every
// 4 rows streaming all tokens' block from L3 or memory (calibration runs
// thousands of tokens at once).
constexpr int64_t kTokenBlock = 256;

// Sums over K in fixed blocks (boundaries depend only on k), so each output
// is added up in the same order whatever chunk or thread computes it; the
// token blocks only change which outputs are computed first.
void MatmulRows(const float* x, int64_t tokens, const float* w, int64_t row_begin, int64_t row_end,
                int64_t k, float* out, int64_t out_stride) {
    for (int64_t k0 = 0; k0 < k; k0 += kColumnBlock) {
        const int64_t block = std::min(kColumnBlock, k - k0);
        const bool accumulate = k0 > 0;
        for (int64_t t0 = 0; t0 < tokens; t0 += kTokenBlock) {
            const int64_t n = std::min(kTokenBlock, tokens - t0);
            const float* xs = x + t0 * k + k0;
            float* os = out + t0 * out_stride;
            int64_t r = row_begin;
            for (; r + 4 <= row_end; r += 4) rows_block<4>(xs, n, w + r * k + k0, k, block, os + r, out_stride, accumulate);
            for (; r < row_end; ++r) rows_block<1>(xs, n, w + r * k + k0, k, block, os + r, out_stride, accumulate);
        }
    }
}

int64_t CompiledTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace sparq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sparq {

HWY_EXPORT(MatmulRows);
HWY_EXPORT(CompiledTarget);

void matmul_f32(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k, float* out,
                int64_t out_stride) {
    // Chunks of rows sized so one chunk of weights stays in L2 while every
    // token passes over it; a multiple of 4 so the 4-row tile boundaries never
    // depend on where a chunk starts.
    const int64_t bytes_per_row = std::max<int64_t>(1, k * 4);
    int64_t grain = std::clamp<int64_t>((256 * 1024) / bytes_per_row, 32, 256);
    grain = (grain + 3) / 4 * 4;
    parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
        HWY_DYNAMIC_DISPATCH(MatmulRows)(x, tokens, w, b, e, k, out, out_stride);
    });
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

}  // namespace sparq
#endif
