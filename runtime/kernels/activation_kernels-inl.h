// Q8 and Q16 activation quantization with SIMD, bit-identical to the scalar
// definitions quantize_activation_blocks (packed_matmul_scalar.cpp): the
// block maximum is order-independent, and the rounding is the same
// add-and-subtract of 1.5 * 2^23 in IEEE float. Compiled once per SIMD
// target through packed_matmul.cpp.

#if defined(SPARQ_RUNTIME_KERNELS_ACTIVATION_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_ACTIVATION_KERNELS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_ACTIVATION_KERNELS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_ACTIVATION_KERNELS_INL_H_
#endif

#include <cmath>
#include <cstring>
#include <limits>

#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// `block` is a multiple of 32 columns; blocks are walked 32 columns at a
// time (the last one zero-padded, which changes neither max nor finiteness).
// T is int8_t (levels +-127, Q8) or int16_t (levels +-32767, Q16).
template <typename T>
HWY_INLINE void QuantizeBlocks(const float* HWY_RESTRICT x, int64_t cols, int64_t block, T* HWY_RESTRICT q,
                               float* HWY_RESTRICT scales) {
    constexpr float kMax = sizeof(T) == 1 ? 127.0f : 32767.0f;
    const DF df;
    const DI32 di;
    const hn::Rebind<T, DI32> dq;
    const size_t n = hn::Lanes(df);
    alignas(64) float padded[kBlock];
    alignas(64) T levels[kBlock];
    const auto magic = hn::Set(df, 12582912.0f);  // 1.5 * 2^23: rounds to an integer, ties to even
    const auto chunk = [&](int64_t c) {  // 32 columns from c, padded past cols
        if (c + kBlock <= cols) return x + c;
        std::memset(padded, 0, sizeof padded);
        std::memcpy(padded, x + c, static_cast<size_t>(cols - c) * sizeof(float));
        return static_cast<const float*>(padded);
    };
    for (int64_t begin = 0, b = 0; begin < cols; begin += block, ++b) {
        const int64_t end = std::min(cols, begin + block);
        VF amax = hn::Zero(df);
        auto finite = hn::Eq(amax, amax);
        for (int64_t c = begin; c < end; c += kBlock) {
            const float* in = chunk(c);
            for (size_t j = 0; j < kBlock; j += n) {
                const VF v = hn::LoadU(df, in + j);
                amax = hn::Max(amax, hn::Abs(v));
                finite = hn::And(finite, hn::IsFinite(v));
            }
        }
        const float m = hn::GetLane(hn::MaxOfLanes(df, amax));
        const bool all_finite = hn::AllTrue(df, finite);
        if (!all_finite || m == 0.0f) {
            std::memset(q + begin, 0, static_cast<size_t>(end - begin) * sizeof(T));
            scales[b] = all_finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        scales[b] = m / kMax;
        const float inv = kMax / m;
        const bool normal = std::isfinite(inv);
        for (int64_t c = begin; c < end; c += kBlock) {
            const float* in = chunk(c);
            for (size_t j = 0; j < kBlock; j += n) {
                const VF v = hn::LoadU(df, in + j);
                const VF t =
                    normal ? hn::Mul(v, hn::Set(df, inv)) : hn::Mul(hn::Div(v, hn::Set(df, m)), hn::Set(df, kMax));
                VF r = hn::Sub(hn::Add(t, magic), magic);
                r = hn::Min(hn::Max(r, hn::Set(df, -kMax)), hn::Set(df, kMax));
                hn::StoreU(hn::DemoteTo(dq, hn::ConvertTo(di, r)), dq, levels + j);
            }
            std::memcpy(q + c, levels, static_cast<size_t>(std::min(kBlock, end - c)) * sizeof(T));
        }
    }
}

void QuantizeActivationBlocks(const float* HWY_RESTRICT x, int64_t cols, int64_t block, int8_t* HWY_RESTRICT q,
                              float* HWY_RESTRICT scales) {
    QuantizeBlocks(x, cols, block, q, scales);
}

void QuantizeActivationBlocks16(const float* HWY_RESTRICT x, int64_t cols, int64_t block, int16_t* HWY_RESTRICT q,
                                float* HWY_RESTRICT scales) {
    QuantizeBlocks(x, cols, block, q, scales);
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
