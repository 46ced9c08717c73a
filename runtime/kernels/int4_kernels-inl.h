// Dot products of one block (32 columns, 16 bytes) of int4 codes with
// activations in block order. Compiled once per SIMD target.
//
// The layout keeps column 2i in the low nibble and 2i+1 in the high nibble
// of byte i, and the activations arrive de-interleaved (even columns, then
// odd), so a vector of packed bytes yields two vectors of codes with one
// mask and one shift, each lined up with a contiguous run of activations:
// no shuffles in the hot loop. The zero point (8 for symmetric, the group's
// stored one otherwise) is subtracted in integers before widening, so every
// term is exactly (u - z) * x.

#if defined(SPARQ_RUNTIME_KERNELS_INT4_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_INT4_KERNELS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_INT4_KERNELS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_INT4_KERNELS_INL_H_
#endif

#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// a0 += (lo - z) * x_even, a1 += (hi - z) * x_odd over one block.
HWY_INLINE void Int4BlockF32(const uint8_t* HWY_RESTRICT c, const float* HWY_RESTRICT x, int z, VF& a0,
                             VF& a1) {
    const DF df;
    const DI32 di;
    const hn::Rebind<uint8_t, DF> d8;
    const hn::Rebind<int8_t, DF> d8s;
    const size_t n = hn::Lanes(df);
    const auto mask = hn::Set(d8, 0x0F);
    const auto zv = hn::Set(d8, static_cast<uint8_t>(z));
    for (size_t j = 0; j < 16; j += n) {
        const auto v = hn::LoadU(d8, c + j);
        // u - z wraps in uint8 and reads back as the int8 level (|u - z| < 16).
        const auto lo = hn::BitCast(d8s, hn::Sub(hn::And(v, mask), zv));
        const auto hi = hn::BitCast(d8s, hn::Sub(hn::ShiftRight<4>(v), zv));
        a0 = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(di, lo)), hn::LoadU(df, x + j), a0);
        a1 = hn::MulAdd(hn::ConvertTo(df, hn::PromoteTo(di, hi)), hn::LoadU(df, x + 16 + j), a1);
    }
}

// Exact sum over one block of u * q as int32 lanes (the zero point is
// taken out per group by the row driver, from the activations' sums). Bytes
// widen to int16 lanes whose high half is zero, so the high nibble needs
// only a shift and the low one a mask.
HWY_INLINE hn::Vec<D32> Int4BlockQ8(const uint8_t* HWY_RESTRICT c, const int16_t* HWY_RESTRICT xq) {
    const D16 d16;
    const D32 d32;
    const hn::RebindToUnsigned<D16> du16;
    const hn::Rebind<uint8_t, D16> d8;
    const size_t n = hn::Lanes(d16);
    const auto mask = hn::Set(d16, 0x0F);
    auto s0 = hn::Zero(d32);
    auto s1 = hn::Zero(d32);
    for (size_t j = 0; j < 16; j += n) {
        const auto v = hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(d8, c + j)));
        s0 = hn::ReorderWidenMulAccumulate(d32, hn::And(v, mask), hn::LoadU(d16, xq + j), s0, s1);
        s0 = hn::ReorderWidenMulAccumulate(d32, hn::ShiftRight<4>(v), hn::LoadU(d16, xq + 16 + j), s0, s1);
    }
    return hn::RearrangeToOddPlusEven(s0, s1);
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
