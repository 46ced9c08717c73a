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

#include "runtime/kernels/kernel_args.h"
#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// `block` is a multiple of 32 columns; blocks are walked 32 columns at a
// time (the last one zero-padded, which changes neither max nor finiteness).
// T is int8_t (levels +-127, Q8) or int16_t (levels +-32767, Q16).
//
// In batches of blocks, three passes: every block's maximum, then the
// batch's scales and reciprocals as whole vectors, then the levels. One
// block at a time, each block waited on its horizontal maximum and then on
// two scalar divisions before its levels, and copied them out through a
// buffer: ~66 cycles per block of 32 (kernels_bench QuantizeActivations,
// docs/results.md, session 26), about 1% of decode spent on the calling
// thread alone while the other waited.
template <typename T>
HWY_INLINE void QuantizeBlocks(const float* HWY_RESTRICT x, int64_t cols, int64_t block, T* HWY_RESTRICT q,
                               float* HWY_RESTRICT scales) {
    constexpr float kMax = sizeof(T) == 1 ? 127.0f : 32767.0f;
    constexpr int64_t kBatch = 64;
    const DF df;
    const DI32 di;
    const hn::Rebind<T, DI32> dq;
    const size_t n = hn::Lanes(df);
    alignas(64) float padded[kBlock];
    alignas(64) T levels[kBlock];
    // A batch's block maxima, NaN for a block with a NaN or infinity (then
    // its scale comes out NaN too), and reciprocals; padded to whole vectors.
    alignas(64) float amax[kBatch];
    alignas(64) float inverse[kBatch];
    const auto magic = hn::Set(df, 12582912.0f);  // 1.5 * 2^23: rounds to an integer, ties to even
    const auto chunk = [&](int64_t c) {  // 32 columns from c, padded past cols
        if (c + kBlock <= cols) return x + c;
        std::memset(padded, 0, sizeof padded);
        std::memcpy(padded, x + c, static_cast<size_t>(cols - c) * sizeof(float));
        return static_cast<const float*>(padded);
    };
    const int64_t blocks = (cols + block - 1) / block;
    for (int64_t first = 0; first < blocks; first += kBatch) {
        const int64_t count = std::min(kBatch, blocks - first);
        for (int64_t i = 0; i < count; ++i) {
            const int64_t begin = (first + i) * block, end = std::min(cols, begin + block);
            VF m = hn::Zero(df);
            auto finite = hn::Eq(m, m);
            for (int64_t c = begin; c < end; c += kBlock) {
                const float* in = chunk(c);
                for (size_t j = 0; j < kBlock; j += n) {
                    const VF v = hn::LoadU(df, in + j);
                    m = hn::Max(m, hn::Abs(v));
                    finite = hn::And(finite, hn::IsFinite(v));
                }
            }
            amax[i] = hn::AllTrue(df, finite) ? hn::GetLane(hn::MaxOfLanes(df, m))
                                              : std::numeric_limits<float>::quiet_NaN();
        }
        // m / kMax and kMax / m: the same IEEE divisions as one at a time
        // (a zero block's scale is 0, a NaN block's NaN).
        for (int64_t i = count; i < kBatch && i % static_cast<int64_t>(n) != 0; ++i) amax[i] = 1.0f;
        for (int64_t i = 0; i < count; i += static_cast<int64_t>(n)) {
            const VF m = hn::Load(df, amax + i);
            const VF s = hn::Div(m, hn::Set(df, kMax));
            hn::Store(hn::Div(hn::Set(df, kMax), m), df, inverse + i);
            if (i + static_cast<int64_t>(n) <= count) {
                hn::StoreU(s, df, scales + first + i);
            } else {
                hn::Store(s, df, padded);
                std::memcpy(scales + first + i, padded, static_cast<size_t>(count - i) * sizeof(float));
            }
        }
        for (int64_t i = 0; i < count; ++i) {
            const int64_t begin = (first + i) * block, end = std::min(cols, begin + block);
            const float m = amax[i];
            if (!(m > 0.0f)) {  // zero, or NaN (a NaN or infinity in the block)
                std::memset(q + begin, 0, static_cast<size_t>(end - begin) * sizeof(T));
                continue;
            }
            const float inv = inverse[i];
            // One reciprocal per block; x / m * kMax only where kMax / m
            // overflows (subnormal m).
            const bool normal = std::isfinite(inv);
            for (int64_t c = begin; c < end; c += kBlock) {
                const bool whole = c + kBlock <= cols;
                const float* in = chunk(c);
                T* out = whole ? q + c : levels;
                for (size_t j = 0; j < kBlock; j += n) {
                    const VF v = hn::LoadU(df, in + j);
                    const VF t = normal ? hn::Mul(v, hn::Set(df, inv))
                                        : hn::Mul(hn::Div(v, hn::Set(df, m)), hn::Set(df, kMax));
                    VF r = hn::Sub(hn::Add(t, magic), magic);
                    r = hn::Min(hn::Max(r, hn::Set(df, -kMax)), hn::Set(df, kMax));
                    hn::StoreU(hn::DemoteTo(dq, hn::ConvertTo(di, r)), dq, out + j);
                }
                if (!whole) std::memcpy(q + c, levels, static_cast<size_t>(cols - c) * sizeof(T));
            }
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

// The quad rows' activation parts (wide_rows-inl.h), compiled per target
// so the compiler vectorizes these plain loops with the target's
// instructions: in packed_matmul.cpp's own code (baseline x86-64, SSE2)
// they took as long as the quantization itself. quad_bytes as
// split_to_quad_bytes (kernel_args.h) writes them; sums[b] = dx[b] * (sum
// of q over block b), one product per block, as prepare_levels computes a
// group of one block (docs/results.md, session 26).
void QuadActivationParts(const int16_t* HWY_RESTRICT q, int64_t cols, int64_t block, const float* HWY_RESTRICT dx,
                         uint8_t* HWY_RESTRICT quad_bytes, float* HWY_RESTRICT sums) {
    for (int64_t i = 0; i < cols; i += kQuadColumns) {
        const int16_t* HWY_RESTRICT in = q + i;
        uint8_t* HWY_RESTRICT o = quad_bytes + 2 * i;
        for (int j = 0; j < 64; ++j) o[j] = static_cast<uint8_t>(static_cast<uint16_t>(in[2 * j]) >> 8);
        for (int j = 0; j < 64; ++j) o[64 + j] = static_cast<uint8_t>(static_cast<uint16_t>(in[2 * j + 1]) >> 8);
        for (int j = 0; j < 64; ++j) o[128 + j] = static_cast<uint8_t>(in[2 * j] & 0xFF);
        for (int j = 0; j < 64; ++j) o[192 + j] = static_cast<uint8_t>(in[2 * j + 1] & 0xFF);
    }
    for (int64_t b = 0, begin = 0; begin < cols; ++b, begin += block) {
        const int64_t end = std::min(cols, begin + block);
        int32_t qsum = 0;
        for (int64_t c = begin; c < end; ++c) qsum += q[c];
        sums[b] = dx[b] * static_cast<float>(qsum);
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
