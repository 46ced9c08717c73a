// Dot products of one block (32 columns) of byte codes with activations in
// block order: int8 weights directly, and int2/int3 weights once unpacked to
// bytes (lowbit_kernels-inl.h). Compiled once per SIMD target.
//
// F32: each code is widened to int32, converted to float and multiplied
// into a float accumulator (one FMA per weight lane); the group's scale is
// applied once per group by the row driver, so the per-weight work is
// widen + convert + FMA. The zero point is subtracted in integers first, so
// every term is exactly d * (u - z) * x as in the reference codec.
// Q8: codes widened to int16 meet int8 activations (held as int16) in
// pairwise multiply-adds into int32 (AVX2/AVX-512 vpmaddwd, NEON smlal):
// exact integer sums per block of u * q, converted to float once per block.
// The zero point comes out once per group as z * sum(dx_b * sum q), from
// sums the dispatcher computes once per token: two subtractions fewer per
// 32 weights than subtracting z from every code.

#if defined(SPARQ_RUNTIME_KERNELS_INT8_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_INT8_KERNELS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_INT8_KERNELS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_INT8_KERNELS_INL_H_
#endif

#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Widens n byte codes at c to int32 lanes holding u - z (kSigned: the byte
// is already the signed level q, as symmetric int8 stores it).
template <bool kSigned>
HWY_INLINE hn::Vec<DI32> WidenCodes(const uint8_t* HWY_RESTRICT c, hn::Vec<DI32> z) {
    const DI32 di;
    if constexpr (kSigned) {
        return hn::PromoteTo(di, hn::LoadU(hn::Rebind<int8_t, DI32>(), reinterpret_cast<const int8_t*>(c)));
    } else {
        const hn::RebindToUnsigned<DI32> du;
        return hn::Sub(hn::BitCast(di, hn::PromoteTo(du, hn::LoadU(hn::Rebind<uint8_t, DI32>(), c))), z);
    }
}

// a0 += (u - z) * x over positions 0..15 of the block, a1 over 16..31.
template <bool kSigned>
HWY_INLINE void ByteBlockF32(const uint8_t* HWY_RESTRICT c, const float* HWY_RESTRICT x, int z, VF& a0,
                             VF& a1) {
    const DF df;
    const size_t n = hn::Lanes(df);
    const auto zv = hn::Set(DI32(), z);
    for (size_t j = 0; j < 16; j += n) {
        a0 = hn::MulAdd(hn::ConvertTo(df, WidenCodes<kSigned>(c + j, zv)), hn::LoadU(df, x + j), a0);
        a1 = hn::MulAdd(hn::ConvertTo(df, WidenCodes<kSigned>(c + 16 + j, zv)), hn::LoadU(df, x + 16 + j), a1);
    }
}

// Widens n byte codes to int16 lanes: u, or q for signed codes.
template <bool kSigned>
HWY_INLINE hn::Vec<D16> WidenCodes16(const uint8_t* HWY_RESTRICT c) {
    const D16 d16;
    if constexpr (kSigned) {
        return hn::PromoteTo(d16, hn::LoadU(hn::Rebind<int8_t, D16>(), reinterpret_cast<const int8_t*>(c)));
    } else {
        const hn::RebindToUnsigned<D16> du;
        return hn::BitCast(d16, hn::PromoteTo(du, hn::LoadU(hn::Rebind<uint8_t, D16>(), c)));
    }
}

// Exact sum over one block of u * q (signed codes: q_w * q) as int32 lanes
// to be added up; the row driver takes out the zero point per group.
// |u| <= 255 and |q| <= 127, so 32 terms stay far inside int32.
template <bool kSigned>
HWY_INLINE hn::Vec<D32> ByteBlockQ8(const uint8_t* HWY_RESTRICT c, const int16_t* HWY_RESTRICT xq) {
    const D16 d16;
    const D32 d32;
    const size_t n = hn::Lanes(d16);
    auto s0 = hn::Zero(d32);
    auto s1 = hn::Zero(d32);
    for (size_t j = 0; j < 32; j += n) {
        s0 = hn::ReorderWidenMulAccumulate(d32, WidenCodes16<kSigned>(c + j), hn::LoadU(d16, xq + j), s0, s1);
    }
    return hn::RearrangeToOddPlusEven(s0, s1);
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
