// One dense row as the kernels see it: its blocks unpacked or dequantized,
// the block kernels of its scheme chosen at compile time, and DenseRow, the
// per-row state (scales as floats, zero points, which blocks can be read in
// place). Shared by the FP32 and Q8 row drivers. Compiled once per SIMD
// target.

#if defined(SPARQ_RUNTIME_KERNELS_DENSE_ROW_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_DENSE_ROW_INL_H_
#undef SPARQ_RUNTIME_KERNELS_DENSE_ROW_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_DENSE_ROW_INL_H_
#endif

#include "runtime/kernels/int4_kernels-inl.h"
#include "runtime/kernels/int8_kernels-inl.h"
#include "runtime/kernels/kernel_common-inl.h"
#include "runtime/kernels/lowbit_kernels-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Unpacks one block of any width to 32 unsigned codes in block order.
template <int kBits, bool kSym>
HWY_INLINE void UnpackBlock(const RowBlocks<kBits>& rb, int64_t b, uint8_t* HWY_RESTRICT out) {
    const hn::CappedTag<uint8_t, 16> d8;
    const size_t n = hn::Lanes(d8);
    const uint8_t* low = rb.Low(b);
    if constexpr (kBits == 8) {
        // Symmetric int8 stores q = u ^ 0x80.
        const auto flip = hn::Set(d8, kSym ? 0x80 : 0);
        for (size_t j = 0; j < 32; j += n) hn::StoreU(hn::Xor(hn::LoadU(d8, low + j), flip), d8, out + j);
    } else if constexpr (kBits == 4) {
        const auto mask = hn::Set(d8, 0x0F);
        for (size_t j = 0; j < 16; j += n) {
            const auto v = hn::LoadU(d8, low + j);
            hn::StoreU(hn::And(v, mask), d8, out + j);
            hn::StoreU(hn::ShiftRight<4>(v), d8, out + 16 + j);
        }
    } else {
        UnpackLowBitBlock<kBits>(low, rb.High(b), out);
    }
}

// out[p] = d * (u[p] - z): exact, as the reference codec computes it.
HWY_INLINE void DequantizeCodes(const uint8_t* HWY_RESTRICT u, int z, float d, float* HWY_RESTRICT out) {
    const DF df;
    const DI32 di;
    const hn::Rebind<uint8_t, DF> d8;
    const size_t n = hn::Lanes(df);
    const auto zv = hn::Set(di, z);
    const auto dv = hn::Set(df, d);
    for (size_t j = 0; j < 32; j += n) {
        const auto q = hn::Sub(hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<DI32>(), hn::LoadU(d8, u + j))), zv);
        hn::StoreU(hn::Mul(hn::ConvertTo(df, q), dv), df, out + j);
    }
}

// Dequantizes row r into `out` (blocks * 32 floats in block order), for
// groups of >= 32 columns or one group per row.
template <int kBits, bool kSym>
HWY_INLINE void DequantizeRow(const DenseWeights& w, int64_t r, float* HWY_RESTRICT scales,
                              float* HWY_RESTRICT out) {
    const PackedView& v = w.view;
    alignas(64) uint8_t pad[48];
    alignas(64) uint8_t codes[32];
    const RowBlocks<kBits> rb(w.code_row(r), v.cols, pad);
    ConvertRowScales(v.scales + 2 * r * w.groups_per_row, w.groups_per_row, scales);
    const uint8_t* zero_row = kSym ? nullptr : v.zeros + r * w.zero_row_bytes;
    const int64_t blocks_per_group = block_count(w.group_span);
    for (int64_t g = 0; g < w.groups_per_row; ++g) {
        const int z = kSym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, g);
        const int64_t end = std::min(w.blocks, (g + 1) * blocks_per_group);
        for (int64_t b = g * blocks_per_group; b < end; ++b) {
            UnpackBlock<kBits, kSym>(rb, b, codes);
            DequantizeCodes(codes, z, scales[g], out + b * kBlock);
        }
    }
    // Padding columns of the last block hold d * (0 - z), finite, and meet
    // zero activations.
}

// The block kernels of one scheme, chosen at compile time. `low` and `high`
// point at the block's bytes in the code plane(s).
template <int kBits, bool kSym>
struct BlockKernels {
    static HWY_INLINE void F32(const uint8_t* HWY_RESTRICT low, const uint8_t* HWY_RESTRICT high, int z,
                               const float* HWY_RESTRICT x, VF& a0, VF& a1) {
        if constexpr (kBits == 8) {
            ByteBlockF32<kSym>(low, x, z, a0, a1);
        } else if constexpr (kBits == 4) {
            Int4BlockF32(low, x, z, a0, a1);
        } else {
            alignas(32) uint8_t codes[32];
            UnpackLowBitBlock<kBits>(low, high, codes);
            ByteBlockF32<false>(codes, x, z, a0, a1);
        }
    }
    // sum u * q (symmetric int8: q_w * q) over the block, without the zero point.
    static HWY_INLINE hn::Vec<D32> Q8(const uint8_t* HWY_RESTRICT low, const uint8_t* HWY_RESTRICT high,
                                      const int16_t* HWY_RESTRICT xq) {
        if constexpr (kBits == 8) {
            return ByteBlockQ8<kSym>(low, xq);
        } else if constexpr (kBits == 4) {
            return Int4BlockQ8(low, xq);
        } else {
            alignas(32) uint8_t codes[32];
            UnpackLowBitBlock<kBits>(low, high, codes);
            return ByteBlockQ8<false>(codes, xq);
        }
    }
    // Symmetric int8 stores signed levels: no zero point to take out.
    static constexpr bool kUnsignedCodes = !(kBits == 8 && kSym);
};

// One row's codes, scales and zero points, decoded once and then used for
// every token.
template <int kBits, bool kSym>
struct DenseRow {
    RowBlocks<kBits> blocks;
    const float* scales;       // the row's scales as floats (unset without convert_scales)
    const uint8_t* half_scales;  // the row's FP16 scales in the file
    const uint8_t* zero_row;
    int64_t blocks_per_group;
    // Groups [0, whole_groups) hold only whole blocks, read in place; the
    // rest (at most one) holds the zero-padded short last block.
    int64_t whole_groups;

    HWY_INLINE DenseRow(const DenseWeights& w, int64_t r, float* scale_buffer, uint8_t* pad,
                        bool convert_scales = true)
        : blocks(w.code_row(r), w.view.cols, pad),
          scales(scale_buffer),
          half_scales(w.view.scales + 2 * r * w.groups_per_row) {
        if (convert_scales) ConvertRowScales(half_scales, w.groups_per_row, scale_buffer);
        zero_row = kSym ? nullptr : w.view.zeros + r * w.zero_row_bytes;
        blocks_per_group = block_count(w.group_span);
        whole_groups = std::min(w.groups_per_row, blocks.full_blocks / blocks_per_group);
    }
    HWY_INLINE int Zero(int64_t g) const { return kSym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, g); }
    // Block b's bytes: in place when kInPlace, else maybe the padded copy.
    template <bool kInPlace>
    HWY_INLINE const uint8_t* Low(int64_t b) const {
        return kInPlace ? blocks.low + b * BlockGeometry<kBits>::kLowBytes : blocks.Low(b);
    }
    template <bool kInPlace>
    HWY_INLINE const uint8_t* High(int64_t b) const {
        return kInPlace ? blocks.high + b * BlockGeometry<kBits>::kHighBytes : blocks.High(b);
    }
};

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
