// The row drivers of the dense kernels: walk a row group by group and block
// by block, calling the block kernels of int8/int4/lowbit_kernels-inl.h, and
// the prefill path that dequantizes a few rows and multiplies them by tiles
// of tokens. The switch on the scheme happens once per chunk of rows
// (DenseRows); everything below it is a template per bit width and
// symmetry. Compiled once per SIMD target.

#if defined(SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#endif

#include "quant/reference_codec.h"
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

// Dequantizes row r into `out` (blocks * 32 floats, block order, padded
// with zeros), for groups of >= 32 columns or one group per row.
template <int kBits, bool kSym>
HWY_INLINE void DequantizeRow(const DenseWeights& w, int64_t r, float* HWY_RESTRICT scales,
                              float* HWY_RESTRICT out) {
    const PackedView& v = w.view;
    alignas(64) uint8_t pad[48];
    alignas(64) uint8_t codes[32];
    const RowBlocks<kBits> rb(v.code_row(r), v.cols, pad);
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
    const float* scales;
    const uint8_t* zero_row;
    int64_t blocks_per_group;
    // Groups [0, whole_groups) hold only whole blocks, read in place; the
    // rest (at most one) holds the zero-padded short last block.
    int64_t whole_groups;

    HWY_INLINE DenseRow(const DenseWeights& w, int64_t r, float* scale_buffer, uint8_t* pad)
        : blocks(w.view.code_row(r), w.view.cols, pad), scales(scale_buffer) {
        ConvertRowScales(w.view.scales + 2 * r * w.groups_per_row, w.groups_per_row, scale_buffer);
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

// sum (u - z) x over blocks [b, end) of group g, two blocks in flight into
// four accumulators so FMA latency does not chain from block to block.
template <bool kInPlace, int kBits, bool kSym>
HWY_INLINE VF GroupDotF32(const DenseRow<kBits, kSym>& row, int64_t g, int64_t b, int64_t end,
                          const float* HWY_RESTRICT x) {
    using K = BlockKernels<kBits, kSym>;
    const DF df;
    const int z = row.Zero(g);
    VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
    for (; b + 2 <= end; b += 2) {
        K::F32(row.template Low<kInPlace>(b), row.template High<kInPlace>(b), z, x + b * kBlock, a0, a1);
        K::F32(row.template Low<kInPlace>(b + 1), row.template High<kInPlace>(b + 1), z, x + (b + 1) * kBlock, a2,
               a3);
    }
    if (b < end) K::F32(row.template Low<kInPlace>(b), row.template High<kInPlace>(b), z, x + b * kBlock, a0, a1);
    return hn::Add(hn::Add(a0, a1), hn::Add(a2, a3));
}

// sum over groups of d_g * sum (u - z) x with FP32 activations.
template <int kBits, bool kSym>
HWY_INLINE float RowDotF32(const DenseWeights& w, const DenseRow<kBits, kSym>& row,
                           const float* HWY_RESTRICT x) {
    using K = BlockKernels<kBits, kSym>;
    const DF df;
    const int64_t per = row.blocks_per_group;
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t g = 0;
    if (per == 1) {
        // Groups of one block (32 columns): pairs of groups, one scale each.
        for (; g + 2 <= row.whole_groups; g += 2) {
            VF a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
            K::F32(row.template Low<true>(g), row.template High<true>(g), row.Zero(g), x + g * kBlock, a0, a1);
            K::F32(row.template Low<true>(g + 1), row.template High<true>(g + 1), row.Zero(g + 1),
                   x + (g + 1) * kBlock, a2, a3);
            acc0 = hn::MulAdd(hn::Add(a0, a1), hn::Set(df, row.scales[g]), acc0);
            acc1 = hn::MulAdd(hn::Add(a2, a3), hn::Set(df, row.scales[g + 1]), acc1);
        }
    }
    for (; g < row.whole_groups; ++g) {
        acc0 = hn::MulAdd(GroupDotF32<true>(row, g, g * per, (g + 1) * per, x), hn::Set(df, row.scales[g]), acc0);
    }
    for (; g < w.groups_per_row; ++g) {
        const VF sum = GroupDotF32<false>(row, g, g * per, std::min(w.blocks, (g + 1) * per), x);
        acc1 = hn::MulAdd(sum, hn::Set(df, row.scales[g]), acc1);
    }
    return ReduceSum(hn::Add(acc0, acc1));
}

// Q8: sum over blocks [b, end) of dx_b * (exact integer sum of u * q).
template <bool kInPlace, int kBits, bool kSym>
HWY_INLINE hn::Vec<DF32> GroupDotQ8(const DenseRow<kBits, kSym>& row, int64_t b, int64_t end,
                                    const int16_t* HWY_RESTRICT xq, const float* HWY_RESTRICT block_scales) {
    using K = BlockKernels<kBits, kSym>;
    const DF32 df;
    auto a0 = hn::Zero(df), a1 = hn::Zero(df);
    for (; b + 2 <= end; b += 2) {
        const auto s0 = K::Q8(row.template Low<kInPlace>(b), row.template High<kInPlace>(b), xq + b * kBlock);
        const auto s1 =
            K::Q8(row.template Low<kInPlace>(b + 1), row.template High<kInPlace>(b + 1), xq + (b + 1) * kBlock);
        a0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, block_scales[b]), a0);
        a1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::Set(df, block_scales[b + 1]), a1);
    }
    if (b < end) {
        const auto s0 = K::Q8(row.template Low<kInPlace>(b), row.template High<kInPlace>(b), xq + b * kBlock);
        a0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, block_scales[b]), a0);
    }
    return hn::Add(a0, a1);
}

// sum a[i] * b[i] (* c[i]) over n floats, vector lanes then a scalar tail.
HWY_INLINE float DotFloats(const float* HWY_RESTRICT a, const float* HWY_RESTRICT b, const float* HWY_RESTRICT c,
                           int64_t n) {
    const DF df;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    VF acc = hn::Zero(df);
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        VF p = hn::Mul(hn::LoadU(df, a + i), hn::LoadU(df, b + i));
        if (c) p = hn::Mul(p, hn::LoadU(df, c + i));
        acc = hn::Add(acc, p);
    }
    float sum = ReduceSum(acc);
    for (; i < n; ++i) sum += a[i] * b[i] * (c ? c[i] : 1.0f);
    return sum;
}

// Q8 row: sum over groups of d_g * (sum_b dx_b * sum u q  -  z_g * S_g), with
// S_g = sum_b dx_b * sum q over the group's blocks (group_sums). The zero
// point part is one vector dot over the row's groups; `zeros` holds the
// asymmetric row's zero points as floats. `combined` has room for the
// row's blocks: groups of one block use one scale dx_b * d_g per block.
template <int kBits, bool kSym>
HWY_INLINE float RowDotQ8(const DenseWeights& w, const DenseRow<kBits, kSym>& row,
                          const int16_t* HWY_RESTRICT xq, const float* HWY_RESTRICT block_scales,
                          const float* HWY_RESTRICT group_sums, const float* HWY_RESTRICT zeros,
                          float* HWY_RESTRICT combined) {
    using K = BlockKernels<kBits, kSym>;
    const DF32 df;
    const int64_t per = row.blocks_per_group;
    auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t g = 0;
    if (per == 1) {
        const DF dfull;
        const int64_t lanes = static_cast<int64_t>(hn::Lanes(dfull));
        for (int64_t i = 0; i < row.whole_groups; i += lanes) {  // combined has slack for the last vector
            hn::StoreU(hn::Mul(hn::LoadU(dfull, block_scales + i), hn::LoadU(dfull, row.scales + i)), dfull,
                       combined + i);
        }
        for (; g + 2 <= row.whole_groups; g += 2) {
            const auto s0 = K::Q8(row.template Low<true>(g), row.template High<true>(g), xq + g * kBlock);
            const auto s1 = K::Q8(row.template Low<true>(g + 1), row.template High<true>(g + 1), xq + (g + 1) * kBlock);
            acc0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, combined[g]), acc0);
            acc1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::Set(df, combined[g + 1]), acc1);
        }
    }
    for (; g < row.whole_groups; ++g) {
        const auto sum = GroupDotQ8<true>(row, g * per, (g + 1) * per, xq, block_scales);
        acc0 = hn::MulAdd(sum, hn::Set(df, row.scales[g]), acc0);
    }
    for (; g < w.groups_per_row; ++g) {
        const auto sum = GroupDotQ8<false>(row, g * per, std::min(w.blocks, (g + 1) * per), xq, block_scales);
        acc1 = hn::MulAdd(sum, hn::Set(df, row.scales[g]), acc1);
    }
    float zero_part = 0.0f;
    if constexpr (K::kUnsignedCodes) {
        zero_part = kSym ? static_cast<float>(1 << (kBits - 1)) *
                               DotFloats(row.scales, group_sums, nullptr, w.groups_per_row)
                         : DotFloats(row.scales, group_sums, zeros, w.groups_per_row);
    }
    return hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1))) - zero_part;
}

// Few tokens: each row is decoded once and dotted with every token.
template <int kBits, bool kSym>
HWY_NOINLINE void DenseRowsByDot(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    alignas(64) uint8_t pad[48];
    const PreparedActivations& x = c.x;
    float* zeros = s.weight_tile;  // Q8 scratch: zero points, then combined scales
    float* combined = s.weight_tile + c.w.groups_per_row + 16;
    for (int64_t r = r0; r < r1; ++r) {
        const DenseRow<kBits, kSym> row(c.w, r, s.row_scales, pad);
        if (!kSym && c.mode == ActivationMode::Q8) {
            for (int64_t g = 0; g < c.w.groups_per_row; ++g) zeros[g] = static_cast<float>(row.Zero(g));
        }
        for (int64_t t = 0; t < x.tokens; ++t) {
            c.y[t * c.y_stride + r] =
                c.mode == ActivationMode::F32
                    ? RowDotF32(c.w, row, x.xf + t * x.stride)
                    : RowDotQ8(c.w, row, x.xq + t * x.stride, x.block_scales + t * c.w.blocks,
                               x.group_sums + t * c.w.groups_per_row, zeros, combined);
        }
    }
}

// Q8 with many tokens: widen each row once to int16 levels u - z in block
// order, then every token is pure multiply-adds over that row (no
// unpacking per token). The sums and scalings are those of RowDotQ8.
template <int kBits, bool kSym>
HWY_INLINE void WidenRow(const DenseWeights& w, const DenseRow<kBits, kSym>& row, int16_t* HWY_RESTRICT out) {
    const D16 d16;
    const hn::RebindToUnsigned<D16> du16;
    const hn::Rebind<uint8_t, D16> d8;
    const size_t n = hn::Lanes(d16);
    alignas(64) uint8_t codes[32];
    for (int64_t g = 0; g < w.groups_per_row; ++g) {
        const auto z = hn::Set(d16, static_cast<int16_t>(row.Zero(g)));
        const int64_t end = std::min(w.blocks, (g + 1) * row.blocks_per_group);
        for (int64_t b = g * row.blocks_per_group; b < end; ++b) {
            UnpackBlock<kBits, kSym>(row.blocks, b, codes);
            for (size_t j = 0; j < 32; j += n) {
                const auto u = hn::BitCast(d16, hn::PromoteTo(du16, hn::LoadU(d8, codes + j)));
                hn::StoreU(hn::Sub(u, z), d16, out + b * kBlock + j);
            }
        }
    }
}

HWY_INLINE hn::Vec<D32> WidenedBlockQ8(const int16_t* HWY_RESTRICT w16, const int16_t* HWY_RESTRICT xq) {
    const D16 d16;
    const D32 d32;
    const size_t n = hn::Lanes(d16);
    auto s0 = hn::Zero(d32), s1 = hn::Zero(d32);
    for (size_t j = 0; j < 32; j += n) {
        s0 = hn::ReorderWidenMulAccumulate(d32, hn::LoadU(d16, w16 + j), hn::LoadU(d16, xq + j), s0, s1);
    }
    return hn::RearrangeToOddPlusEven(s0, s1);
}

// Group g's blocks: sum of dx_b * (integer block sum).
HWY_INLINE hn::Vec<DF32> WidenedGroupQ8(const int16_t* HWY_RESTRICT w16, const int16_t* HWY_RESTRICT xq,
                                        const float* HWY_RESTRICT block_scales, int64_t b, int64_t end) {
    const DF32 df;
    auto a0 = hn::Zero(df), a1 = hn::Zero(df);
    for (; b + 2 <= end; b += 2) {
        const auto s0 = WidenedBlockQ8(w16 + b * kBlock, xq + b * kBlock);
        const auto s1 = WidenedBlockQ8(w16 + (b + 1) * kBlock, xq + (b + 1) * kBlock);
        a0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, block_scales[b]), a0);
        a1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::Set(df, block_scales[b + 1]), a1);
    }
    if (b < end) {
        a0 = hn::MulAdd(hn::ConvertTo(df, WidenedBlockQ8(w16 + b * kBlock, xq + b * kBlock)),
                        hn::Set(df, block_scales[b]), a0);
    }
    return hn::Add(a0, a1);
}

template <int kBits, bool kSym>
HWY_INLINE float WidenedRowDotQ8(const DenseWeights& w, const DenseRow<kBits, kSym>& row,
                                 const int16_t* HWY_RESTRICT w16, const int16_t* HWY_RESTRICT xq,
                                 const float* HWY_RESTRICT block_scales) {
    const DF32 df;
    const int64_t per = row.blocks_per_group;
    auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t g = 0;
    if (per == 1) {  // one block per group: one combined scale per block
        for (; g + 2 <= w.groups_per_row; g += 2) {
            const auto s0 = WidenedBlockQ8(w16 + g * kBlock, xq + g * kBlock);
            const auto s1 = WidenedBlockQ8(w16 + (g + 1) * kBlock, xq + (g + 1) * kBlock);
            acc0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, block_scales[g] * row.scales[g]), acc0);
            acc1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::Set(df, block_scales[g + 1] * row.scales[g + 1]), acc1);
        }
    }
    for (; g + 2 <= w.groups_per_row; g += 2) {
        const auto s0 = WidenedGroupQ8(w16, xq, block_scales, g * per, (g + 1) * per);
        const auto s1 = WidenedGroupQ8(w16, xq, block_scales, (g + 1) * per, std::min(w.blocks, (g + 2) * per));
        acc0 = hn::MulAdd(s0, hn::Set(df, row.scales[g]), acc0);
        acc1 = hn::MulAdd(s1, hn::Set(df, row.scales[g + 1]), acc1);
    }
    if (g < w.groups_per_row) {
        const auto s0 = WidenedGroupQ8(w16, xq, block_scales, g * per, std::min(w.blocks, (g + 1) * per));
        acc0 = hn::MulAdd(s0, hn::Set(df, row.scales[g]), acc0);
    }
    return hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
}

template <int kBits, bool kSym>
HWY_NOINLINE void DenseRowsByWidenedQ8(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    alignas(64) uint8_t pad[48];
    const PreparedActivations& x = c.x;
    int16_t* w16 = reinterpret_cast<int16_t*>(s.weight_tile);  // room for 4 float rows, 8 int16 ones
    for (int64_t r = r0; r < r1; ++r) {
        const DenseRow<kBits, kSym> row(c.w, r, s.row_scales, pad);
        WidenRow(c.w, row, w16);
        for (int64_t t = 0; t < x.tokens; ++t) {
            c.y[t * c.y_stride + r] =
                WidenedRowDotQ8(c.w, row, w16, x.xq + t * x.stride, x.block_scales + t * c.w.blocks);
        }
    }
}

// Tokens per pass over a row tile: enough to amortize dequantizing the tile,
// few enough that their activations stay in L2 (about 512 KiB).
HWY_INLINE int64_t TokenBlock(int64_t stride) {
    const int64_t fit = (int64_t{128} * 1024) / std::max<int64_t>(stride, 1);
    return std::max<int64_t>(kTileTokens, fit / kTileTokens * kTileTokens);
}

// Many tokens, FP32: dequantize kMaxTileRows rows to floats, then register
// tiles of tokens x rows.
template <int kBits, bool kSym>
HWY_NOINLINE void DenseRowsByTiles(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    const PreparedActivations& x = c.x;
    const int64_t token_block = TokenBlock(x.stride);
    for (int64_t t0 = 0; t0 < x.tokens; t0 += token_block) {
        const int64_t tokens = std::min(token_block, x.tokens - t0);
        for (int64_t r = r0; r < r1; r += kMaxTileRows) {
            const int64_t rows = std::min(kMaxTileRows, r1 - r);
            for (int64_t j = 0; j < rows; ++j) {
                float* out = s.weight_tile + j * x.stride;
                if (c.small_groups) {
                    dequantize_rows(c.w.view, r + j, r + j + 1, out);
                    std::fill(out + c.w.view.cols, out + x.stride, 0.0f);
                } else {
                    DequantizeRow<kBits, kSym>(c.w, r + j, s.row_scales, out);
                }
            }
            TokensTimesRows(x.xf + t0 * x.stride, x.stride, tokens, s.weight_tile, x.stride, rows, x.stride,
                            c.y + t0 * c.y_stride + r, c.y_stride);
        }
    }
}

// Tokens at which dequantizing a tile beats decoding each row per token.
inline constexpr int64_t kMinTileTokens = 2;

template <int kBits, bool kSym>
HWY_INLINE void DenseRowsFor(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    // Small groups always take the tiles: the reference codec dequantizes
    // and every mode multiplies floats (Q8 activations arrive dequantized).
    if (c.small_groups || (c.mode == ActivationMode::F32 && c.x.tokens >= kMinTileTokens)) {
        DenseRowsByTiles<kBits, kSym>(c, r0, r1, s);
    } else if (c.x.tokens >= kMinTileTokens) {
        DenseRowsByWidenedQ8<kBits, kSym>(c, r0, r1, s);
    } else {
        DenseRowsByDot<kBits, kSym>(c, r0, r1, s);
    }
}

void DenseRows(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    const QuantScheme& q = c.w.view.scheme;
    switch (q.bits * 2 + (q.symmetric ? 1 : 0)) {
        case 17: return DenseRowsFor<8, true>(c, r0, r1, s);
        case 16: return DenseRowsFor<8, false>(c, r0, r1, s);
        case 9: return DenseRowsFor<4, true>(c, r0, r1, s);
        case 8: return DenseRowsFor<4, false>(c, r0, r1, s);
        case 7: return DenseRowsFor<3, true>(c, r0, r1, s);
        case 6: return DenseRowsFor<3, false>(c, r0, r1, s);
        case 5: return DenseRowsFor<2, true>(c, r0, r1, s);
        case 4: return DenseRowsFor<2, false>(c, r0, r1, s);
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
