// Per-target building blocks shared by the dense kernels: tags, reading a
// row's scales and zero points, unpacking one block of codes to bytes in
// block order (runtime/kernels/kernel_args.h), and the FP32 tile product
// that prefill runs on dequantized weights. Compiled once per SIMD target
// through packed_matmul.cpp's foreach_target loop.

// Per-target include guard (the Highway idiom): toggled for each target.
#if defined(SPARQ_RUNTIME_KERNELS_KERNEL_COMMON_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_KERNEL_COMMON_INL_H_
#undef SPARQ_RUNTIME_KERNELS_KERNEL_COMMON_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_KERNEL_COMMON_INL_H_
#endif

#include <hwy/highway.h>

#include <algorithm>
#include <cstring>

#include "core/half.h"
#include "runtime/kernels/kernel_args.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 float lanes, so a block of 32 columns (16 int4 bytes) is a
// whole number of vector steps on every target, SVE included.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
using DI32 = hn::RebindToSigned<DF>;
// int16 lanes for the Q8 multiply-adds: at most 16, one half-block per step.
using D16 = hn::CappedTag<int16_t, 16>;
using D32 = hn::RepartitionToWide<D16>;
using DF32 = hn::Rebind<float, D32>;

HWY_INLINE float ReduceSum(VF v) { return hn::GetLane(hn::SumOfLanes(DF(), v)); }

// The row's FP16 scales as floats (n values; `out` has n + 16 slots).
HWY_INLINE void ConvertRowScales(const uint8_t* fp16, int64_t n, float* HWY_RESTRICT out) {
    const DF df;
    const hn::Rebind<hwy::float16_t, DF> dh;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    const auto* h = reinterpret_cast<const hwy::float16_t*>(fp16);
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) hn::StoreU(hn::PromoteTo(df, hn::LoadU(dh, h + i)), df, out + i);
    for (; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, fp16 + 2 * i, 2);
        out[i] = fp16_to_fp32(bits);
    }
}

// Zero point of group g (asymmetric rows): fields of 8, 4 (int4, int3) or
// 2 bits, LSB first.
template <int kBits>
HWY_INLINE int ZeroPoint(const uint8_t* zero_row, int64_t g) {
    if constexpr (kBits == 8) {
        return zero_row[g];
    } else if constexpr (kBits == 2) {
        return (zero_row[g >> 2] >> (2 * (g & 3))) & 3;
    } else {
        return (zero_row[g >> 1] >> (4 * (g & 1))) & 15;
    }
}

// Bytes of one block's codes, and where block b starts, per code plane.
template <int kBits>
struct BlockGeometry {
    static constexpr int64_t kLowBytes = kBits == 8 ? 32 : kBits == 4 ? 16 : 8;
    static constexpr int64_t kHighBytes = kBits == 3 ? 4 : 0;
};

// Pointers to block b's codes in a row: the row itself for full blocks, a
// zero-padded copy for the short last block (so no load passes the row's
// end). `pad` holds at least 48 bytes.
template <int kBits>
struct RowBlocks {
    const uint8_t* low;
    const uint8_t* high;  // int3 bit plane
    int64_t full_blocks;
    const uint8_t* pad_low;
    const uint8_t* pad_high;

    HWY_INLINE RowBlocks(const uint8_t* row, int64_t cols, uint8_t* pad) {
        using G = BlockGeometry<kBits>;
        low = row;
        const int64_t low_bytes = kBits == 8 ? cols : kBits == 4 ? (cols + 1) / 2 : (cols + 3) / 4;
        high = row + low_bytes;
        full_blocks = cols / kBlock;
        std::memset(pad, 0, 48);
        if (full_blocks * kBlock < cols) {
            const int64_t b = full_blocks;
            std::memcpy(pad, low + b * G::kLowBytes, static_cast<size_t>(low_bytes - b * G::kLowBytes));
            if constexpr (kBits == 3) {
                const int64_t high_bytes = (cols + 7) / 8;
                std::memcpy(pad + 32, high + b * G::kHighBytes,
                            static_cast<size_t>(high_bytes - b * G::kHighBytes));
            }
        }
        pad_low = pad;
        pad_high = pad + 32;
    }
    HWY_INLINE const uint8_t* Low(int64_t b) const {
        return b < full_blocks ? low + b * BlockGeometry<kBits>::kLowBytes : pad_low;
    }
    HWY_INLINE const uint8_t* High(int64_t b) const {
        return b < full_blocks ? high + b * BlockGeometry<kBits>::kHighBytes : pad_high;
    }
};

// y[t * ys + j] = sum_k x[t * xs + k] * w[j * ws + k] for a TM x TN tile.
// Each output is summed lane-wise over k then reduced, the same whatever
// tile computes it, so tile shapes never change results.
template <int TM, int TN>
HWY_INLINE void FloatTile(const float* HWY_RESTRICT x, int64_t xs, const float* HWY_RESTRICT w, int64_t ws,
                          int64_t k, float* HWY_RESTRICT y, int64_t ys) {
    const DF df;
    const int64_t n = static_cast<int64_t>(hn::Lanes(df));
    VF acc[TM][TN];
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) acc[i][j] = hn::Zero(df);
    for (int64_t kk = 0; kk < k; kk += n) {
        VF wv[TN];
        for (int j = 0; j < TN; ++j) wv[j] = hn::LoadU(df, w + j * ws + kk);
        for (int i = 0; i < TM; ++i) {
            const VF xv = hn::LoadU(df, x + i * xs + kk);
            for (int j = 0; j < TN; ++j) acc[i][j] = hn::MulAdd(xv, wv[j], acc[i][j]);
        }
    }
    for (int i = 0; i < TM; ++i)
        for (int j = 0; j < TN; ++j) y[i * ys + j] = ReduceSum(acc[i][j]);
}

// Tokens per register tile: 32 vector registers (AVX-512, SVE) hold a 6 x 4
// tile of accumulators, 16 (AVX2, SSE, NEON) a 3 x 4 one.
#if HWY_TARGET <= HWY_AVX3 || (HWY_ARCH_ARM && HWY_TARGET != HWY_NEON)
inline constexpr int kTileTokens = 6;
#else
inline constexpr int kTileTokens = 3;
#endif
inline constexpr int kTileRows = 4;

// All `tokens` of x times `rows` (<= kTileRows) dequantized rows.
HWY_INLINE void TokensTimesRows(const float* x, int64_t xs, int64_t tokens, const float* w, int64_t ws,
                                int64_t rows, int64_t k, float* y, int64_t ys) {
    int64_t t = 0;
    if (rows == kTileRows) {
        for (; t + kTileTokens <= tokens; t += kTileTokens)
            FloatTile<kTileTokens, kTileRows>(x + t * xs, xs, w, ws, k, y + t * ys, ys);
        for (; t < tokens; ++t) FloatTile<1, kTileRows>(x + t * xs, xs, w, ws, k, y + t * ys, ys);
        return;
    }
    for (int64_t j = 0; j < rows; ++j) {
        for (t = 0; t + kTileTokens <= tokens; t += kTileTokens)
            FloatTile<kTileTokens, 1>(x + t * xs, xs, w + j * ws, ws, k, y + t * ys + j, ys);
        for (; t < tokens; ++t) FloatTile<1, 1>(x + t * xs, xs, w + j * ws, ws, k, y + t * ys + j, ys);
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
