// Unpacking int2 and int3 blocks. Their codes are too narrow to feed a
// multiply directly, so a block (8 bytes of 2-bit fields, plus 4 bytes of
// high bits for int3) is spread to one byte per code with shifts and masks,
// in block order, and then takes the byte-code path of int8_kernels-inl.h.
// Compiled once per SIMD target.
//
// int3's high bits sit in their own plane, 1 bit per column. The block's 32
// high bits are first spread, one nibble per byte, with three scalar
// shift-or-mask steps on a 64-bit word; then each of the four planes takes
// its bit with one mask and one shift, in vector lanes.

#if defined(SPARQ_RUNTIME_KERNELS_LOWBIT_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_LOWBIT_KERNELS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_LOWBIT_KERNELS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_LOWBIT_KERNELS_INL_H_
#endif

#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Unpacks one int2 or int3 block to 32 codes (one byte each) in block
// order: plane k (columns 4j + k) at positions 8k .. 8k + 7.
template <int kBits>
HWY_INLINE void UnpackLowBitBlock(const uint8_t* HWY_RESTRICT low, const uint8_t* HWY_RESTRICT high,
                                  uint8_t* HWY_RESTRICT out) {
    const hn::CappedTag<uint8_t, 8> d8;
    const size_t n = hn::Lanes(d8);
    // int3: column 4j + k's bit 2 is bit 4 * (j % 2) + k of high byte j / 2,
    // i.e. bit k of nibble j of the block's 32 high bits. Spreading the 8
    // nibbles into 8 bytes lets plane k read bit k of byte j.
    alignas(8) uint8_t nibbles[8] = {};
    if constexpr (kBits == 3) {
        uint32_t h32;
        std::memcpy(&h32, high, 4);
        uint64_t x = h32;
        x = (x | (x << 16)) & 0x0000FFFF0000FFFFull;
        x = (x | (x << 8)) & 0x00FF00FF00FF00FFull;
        x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0Full;
        std::memcpy(nibbles, &x, 8);
    }
    const auto three = hn::Set(d8, 3);
    for (size_t j = 0; j < 8; j += n) {
        const auto v = hn::LoadU(d8, low + j);
        auto c0 = hn::And(v, three);
        auto c1 = hn::And(hn::ShiftRight<2>(v), three);
        auto c2 = hn::And(hn::ShiftRight<4>(v), three);
        auto c3 = hn::ShiftRight<6>(v);
        if constexpr (kBits == 3) {
            const auto t = hn::LoadU(d8, nibbles + j);
            c0 = hn::Or(c0, hn::ShiftLeft<2>(hn::And(t, hn::Set(d8, 1))));
            c1 = hn::Or(c1, hn::ShiftLeft<1>(hn::And(t, hn::Set(d8, 2))));
            c2 = hn::Or(c2, hn::And(t, hn::Set(d8, 4)));
            c3 = hn::Or(c3, hn::ShiftRight<1>(hn::And(t, hn::Set(d8, 8))));
        }
#if HWY_TARGET == HWY_SCALAR
        hn::StoreU(c0, d8, out + j);
        hn::StoreU(c1, d8, out + 8 + j);
        hn::StoreU(c2, d8, out + 16 + j);
        hn::StoreU(c3, d8, out + 24 + j);
#else
        // 16-byte stores, so the consumers' 16-byte loads forward from one
        // store each instead of stalling on two (n is 8 here).
        const hn::Twice<decltype(d8)> d16;
        hn::StoreU(hn::Combine(d16, c1, c0), d16, out);
        hn::StoreU(hn::Combine(d16, c3, c2), d16, out + 16);
#endif
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
