// The Q8 row drivers: rows of packed codes times int8 activations quantized
// per activation block of A = q8_block_columns(scheme) columns (the weight
// group, clamped to [32, 256]). Integer sums run over a whole activation
// block before one convert and one FMA, so groups of 128 pay that float work
// once per 128 weights, not once per 32.
//
//   y = sum_g d_g * ( sum_a dx_a * sum_{c in a} u_c q_c  -  z_g * S_g ),
//   S_g = sum_{a in g} dx_a * sum_{c in a} q_c   (per token, shared by rows)
//
// so codes need no zero point subtracted in the hot loop; the z_g * S_g part
// is one vector dot over the row's groups. Symmetric int8 stores signed
// levels and has no such part. Compiled once per SIMD target.

#if defined(SPARQ_RUNTIME_KERNELS_Q8_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_Q8_ROWS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_Q8_ROWS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_Q8_ROWS_INL_H_
#endif

#include "runtime/kernels/dense_row-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Block sums of a packed row: kInPlace blocks are whole and read in place.
template <bool kInPlace, int kBits, bool kSym>
struct PackedBlocks {
    const DenseRow<kBits, kSym>& row;
    const int16_t* HWY_RESTRICT xq;
    HWY_INLINE hn::Vec<D32> operator()(int64_t b) const {
        return BlockKernels<kBits, kSym>::Q8(row.template Low<kInPlace>(b), row.template High<kInPlace>(b),
                                             xq + b * kBlock);
    }
};

// Exact int32 sum over blocks [b, end) (end > b), two chains in flight.
template <class Blocks>
HWY_INLINE hn::Vec<D32> SumBlocks(const Blocks& blocks, int64_t b, int64_t end) {
    auto s0 = blocks(b++);
    if (b == end) return s0;
    auto s1 = blocks(b++);
    for (; b + 2 <= end; b += 2) {
        s0 = hn::Add(s0, blocks(b));
        s1 = hn::Add(s1, blocks(b + 1));
    }
    if (b < end) s0 = hn::Add(s0, blocks(b));
    return hn::Add(s0, s1);
}

// sum over the activation blocks in blocks [b, end) of dx_a * integer sum.
template <class Blocks>
HWY_INLINE hn::Vec<DF32> GroupQ8(const Blocks& blocks, int64_t b, int64_t end, int64_t per_act,
                                 const float* HWY_RESTRICT act_scales) {
    const DF32 df;
    auto acc = hn::Zero(df);
    for (; b < end; b += per_act) {
        const auto s = SumBlocks(blocks, b, std::min(end, b + per_act));
        acc = hn::MulAdd(hn::ConvertTo(df, s), hn::Set(df, act_scales[b / per_act]), acc);
    }
    return acc;
}

// sum_g d_g * sum_a dx_a * (integer sums). `whole` blocks of the row read in
// place; the group holding the short last block (if any) reads `tail`.
// When each group is one activation block the two scales merge into one
// per group (`combined`, with room for the groups plus one vector).
template <class Whole, class Tail>
HWY_INLINE float RowSumsQ8(const DenseWeights& w, const float* HWY_RESTRICT scales, int64_t per,
                           int64_t whole_groups, const Whole& whole, const Tail& tail, int64_t per_act,
                           const float* HWY_RESTRICT act_scales, float* HWY_RESTRICT combined) {
    const DF32 df;
    auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t g = 0;
    if (per_act == per) {
        const DF dfull;
        const int64_t lanes = static_cast<int64_t>(hn::Lanes(dfull));
        for (int64_t i = 0; i < whole_groups; i += lanes) {
            hn::StoreU(hn::Mul(hn::LoadU(dfull, act_scales + i), hn::LoadU(dfull, scales + i)), dfull, combined + i);
        }
        for (; g + 2 <= whole_groups; g += 2) {
            const auto s0 = SumBlocks(whole, g * per, (g + 1) * per);
            const auto s1 = SumBlocks(whole, (g + 1) * per, (g + 2) * per);
            acc0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::Set(df, combined[g]), acc0);
            acc1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::Set(df, combined[g + 1]), acc1);
        }
    }
    for (; g < whole_groups; ++g) {
        acc0 = hn::MulAdd(GroupQ8(whole, g * per, (g + 1) * per, per_act, act_scales), hn::Set(df, scales[g]), acc0);
    }
    for (; g < w.groups_per_row; ++g) {
        const auto sum = GroupQ8(tail, g * per, std::min(w.blocks, (g + 1) * per), per_act, act_scales);
        acc1 = hn::MulAdd(sum, hn::Set(df, scales[g]), acc1);
    }
    return hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
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

// What the zero points take out of a row's integer sums for one token:
// sum_g d_g * z_g * S_g (S_g from group_sums; `zeros` holds an asymmetric
// row's zero points as floats). Symmetric int8 stores signed levels: none.
template <int kBits, bool kSym>
HWY_INLINE float ZeroPointPart(const DenseWeights& w, const float* HWY_RESTRICT scales,
                               const float* HWY_RESTRICT group_sums, const float* HWY_RESTRICT zeros) {
    if constexpr (!BlockKernels<kBits, kSym>::kUnsignedCodes) return 0.0f;
    return kSym ? static_cast<float>(1 << (kBits - 1)) * DotFloats(scales, group_sums, nullptr, w.groups_per_row)
                : DotFloats(scales, group_sums, zeros, w.groups_per_row);
}

// One packed row times one token's Q8 activations. `zeros` holds an
// asymmetric row's zero points as floats.
template <int kBits, bool kSym>
HWY_INLINE float RowDotQ8(const DenseWeights& w, const DenseRow<kBits, kSym>& row, const PreparedActivations& x,
                          int64_t t, const float* HWY_RESTRICT zeros, float* HWY_RESTRICT combined) {
    const int16_t* xq = x.xq + t * x.stride;
    const float* act_scales = x.block_scales + t * x.act_blocks;
    const float* group_sums = x.group_sums + t * w.groups_per_row;
    const PackedBlocks<true, kBits, kSym> whole{row, xq};
    const PackedBlocks<false, kBits, kSym> tail{row, xq};
    const float sums = RowSumsQ8(w, row.scales, row.blocks_per_group, row.whole_groups, whole, tail,
                                 x.act_block / kBlock, act_scales, combined);
    if constexpr (!BlockKernels<kBits, kSym>::kUnsignedCodes) return sums;
    return sums - ZeroPointPart<kBits, kSym>(w, row.scales, group_sums, zeros);
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
