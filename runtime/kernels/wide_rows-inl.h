// Decode (one token) with integer activations at the full width of
// AVX-512: the row driver for int4 and int8 rows whose shape is regular
// (every group and activation block whole, int4 rows a whole number of
// 64-column pairs of blocks). Elsewhere, and on narrower targets, the
// block-at-a-time drivers of q8_rows-inl.h run (on AVX2 one block already
// fills a vector).
//
// Why a separate driver: decode reads each weight once, so its speed is the
// instructions per weight byte. One 512-bit vector of int16 lanes holds 32
// codes. int8: one block of 32 codes, widened, meets 32 activation levels
// in one pairwise multiply-add (vpdpwssd on VNNI CPUs, vpmaddwd + add
// before them). int4: 32 packed bytes are two blocks; widening them to
// int16 lanes and taking the low and the high nibble gives the even and the
// odd columns of both blocks, so the activations are prepared in "pair
// order" (per 64 columns: evens of block A, evens of block B, odds of A,
// odds of B; permute_to_pair_order in kernel_args.h) and each int32 lane
// of the sums belongs to one block: lanes 0-7 to A, 8-15 to B.
//
// Sums are exact integers per activation block (segment s), then
//     y = sum_s (d_g(s) * dx_s) * I_s  -  zero part
// as in q8_rows-inl.h; for 32-column groups the two blocks of a pair take
// their two scales from one lane permutation.
//
// int4 rows of groups of 32 to 256 columns (= their activation blocks),
// symmetric or not (g32 symmetric is the most common decode layout, and
// the one where the float step per group costs most), go 128 columns at a
// time: 64 code bytes are taken as they are stored, their low and high
// nibbles (even and odd columns) meet the activation levels split into a
// signed high and an unsigned low byte in byte dot products (vpdpbusd:
// code . high on one side, low . code on the other, since the instruction
// multiplies unsigned by signed bytes), 256 * high + low is the exact int16
// product sum, and int32 lane k belongs to 32-column block k / 4, so one
// float step covers four groups of 32, two of 64, or one of 128 or 256
// (QuadScales; split_to_quad_bytes in kernel_args.h). Compiled once per
// SIMD target.

#if defined(SPARQ_RUNTIME_KERNELS_WIDE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_WIDE_ROWS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_WIDE_ROWS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_WIDE_ROWS_INL_H_
#endif

#include "runtime/kernels/prefetch_slices.h"
#include "runtime/kernels/q8_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// How the int4 quad loop (RowsDotWideInt4) scales a quad's sums, by the
// activation block (= weight group) its rows take: each 32-column quarter
// by its own combined scale (blocks of 32, one lane permutation), each half
// (64, one permutation), or the whole quad by one (128 or 256, a broadcast
// from memory). Each is a template argument of the row drivers, so each
// loop is compiled in a function of its own: beside the g32 loop in one
// function, GCC allocated the g32 loop's registers differently and int4
// g32 decoded 3-4% slower.
enum class QuadScales { kQuarters, kHalves, kWhole };

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3

inline constexpr bool kHasWideRows = true;

using DW16 = hn::Full512<int16_t>;
using DW32 = hn::Full512<int32_t>;
using DWF = hn::Full512<float>;

// acc += pairwise products of a and b (int16 lanes) into int32 lanes, in
// order (lane k takes lanes 2k and 2k + 1). Inline assembly on VNNI CPUs,
// as in int_dot_tiles-inl.h: GCC 12 copies intrinsic accumulators around.
HWY_INLINE hn::Vec<DW32> PairwiseMulAdd(hn::Vec<DW32> acc, hn::Vec<DW16> a, hn::Vec<DW16> b) {
#if HWY_TARGET == HWY_AVX3_DL
    __m512i raw = acc.raw;
    asm("vpdpwssd %2, %1, %0" : "+v"(raw) : "v"(a.raw), "v"(b.raw));
    return hn::Vec<DW32>{raw};
#else
    return hn::Add(acc, hn::Vec<DW32>{_mm512_madd_epi16(a.raw, b.raw)});
#endif
}

// acc += byte products of u (unsigned) and v (signed) into int32 lanes, in
// order (lane k takes bytes 4k..4k+3); exact, no saturation.
HWY_INLINE hn::Vec<DW32> ByteMulAdd(hn::Vec<DW32> acc, hn::Vec<DW32> u, hn::Vec<DW32> v) {
#if HWY_TARGET == HWY_AVX3_DL
    __m512i raw = acc.raw;
    asm("vpdpbusd %2, %1, %0" : "+v"(raw) : "v"(u.raw), "v"(v.raw));
    return hn::Vec<DW32>{raw};
#else
    // Pairs of u8 x s8 products fit int16 here (codes <= 15: at most 2 * 15 * 255).
    const __m512i pairs = _mm512_maddubs_epi16(u.raw, v.raw);
    return hn::Add(acc, hn::Vec<DW32>{_mm512_madd_epi16(pairs, _mm512_set1_epi16(1))});
#endif
}

// Integer sums of one int4 quad of blocks (64 code bytes at c, 256
// activation bytes in quad order at xb, kernel_args.h): lane k block k / 4.
HWY_INLINE hn::Vec<DW32> Int4QuadSums(const uint8_t* HWY_RESTRICT c, const hn::Vec<DW32> high_even,
                                      const hn::Vec<DW32> high_odd, const hn::Vec<DW32> low_even,
                                      const hn::Vec<DW32> low_odd) {
    const DW32 d32;
    const hn::Repartition<uint8_t, DW32> d8;
    const auto v = hn::BitCast(d32, hn::LoadU(d8, c));
    const auto nibble = hn::Set(d32, 0x0F0F0F0F);
    const auto even = hn::And(v, nibble), odd = hn::And(hn::ShiftRight<4>(v), nibble);
    auto high = ByteMulAdd(hn::Zero(d32), even, high_even);
    high = ByteMulAdd(high, odd, high_odd);
    // 256 * (code . high) + code . low, the low products added onto the shifted high ones.
    auto sums = ByteMulAdd(hn::ShiftLeft<8>(high), low_even, even);
    return ByteMulAdd(sums, low_odd, odd);
}

// One quad's activation bytes in quad order (256 bytes at xb,
// split_to_quad_bytes), as Int4QuadSums takes them.
struct QuadActivations {
    hn::Vec<DW32> high_even, high_odd, low_even, low_odd;
};
HWY_INLINE QuadActivations LoadQuadActivations(const uint8_t* HWY_RESTRICT xb) {
    const DW32 d32;
    const hn::Repartition<uint8_t, DW32> d8;
    return {hn::BitCast(d32, hn::LoadU(d8, xb)), hn::BitCast(d32, hn::LoadU(d8, xb + 64)),
            hn::BitCast(d32, hn::LoadU(d8, xb + 128)), hn::BitCast(d32, hn::LoadU(d8, xb + 192))};
}
HWY_INLINE hn::Vec<DW32> Int4QuadSums(const uint8_t* HWY_RESTRICT c, const QuadActivations& x) {
    return Int4QuadSums(c, x.high_even, x.high_odd, x.low_even, x.low_odd);
}

// Integer sums of one int4 pair of blocks (32 packed bytes at c, 64
// activation levels in pair order at xq): lanes 0-7 block A, 8-15 block B.
HWY_INLINE hn::Vec<DW32> Int4PairSums(const uint8_t* HWY_RESTRICT c, const int16_t* HWY_RESTRICT xq,
                                      hn::Vec<DW32> acc) {
    const DW16 d16;
    const hn::Rebind<uint8_t, DW16> d8;
    const auto v = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<DW16>(), hn::LoadU(d8, c)));
    acc = PairwiseMulAdd(acc, hn::And(v, hn::Set(d16, 0x0F)), hn::LoadU(d16, xq));
    return PairwiseMulAdd(acc, hn::ShiftRight<4>(v), hn::LoadU(d16, xq + 32));
}

// Integer sums of one int8 block (32 codes, block order): u, or the signed
// level for symmetric int8.
template <bool kSigned>
HWY_INLINE hn::Vec<DW32> Int8BlockSums(const uint8_t* HWY_RESTRICT c, const int16_t* HWY_RESTRICT xq,
                                       hn::Vec<DW32> acc) {
    const DW16 d16;
    hn::Vec<DW16> v;
    if constexpr (kSigned) {
        v = hn::PromoteTo(d16, hn::LoadU(hn::Rebind<int8_t, DW16>(), reinterpret_cast<const int8_t*>(c)));
    } else {
        v = hn::BitCast(d16, hn::PromoteTo(hn::RebindToUnsigned<DW16>(), hn::LoadU(hn::Rebind<uint8_t, DW16>(), c)));
    }
    return PairwiseMulAdd(acc, v, hn::LoadU(d16, xq));
}

// Decode streams each weight from DRAM once: the row loops fetch the
// codes, scales and zero points of the rows about kPrefetchAheadBytes
// further on, a slice per activation segment (prefetch_slices.h).
HWY_INLINE int64_t DenseRowsAheadDistance(const DenseWeights& w, int64_t rows) {
    return RowsAheadDistance(w.code_row_bytes, rows);
}

// Rows [r, r + n) of every plane, to fetch over `steps` loop steps (none
// past the last row).
HWY_INLINE PrefetchSlices DenseRowsAhead(const DenseWeights& w, int64_t r, int64_t n, int64_t steps) {
    PrefetchSlices slices(steps);
    n = std::min(n, w.view.rows - r);
    if (n <= 0) return slices;
    slices.add(w.code_row(r), n * w.code_row_bytes);
    slices.add_scales(w.view.scales + 2 * r * w.groups_per_row, 2 * n * w.groups_per_row);
    if (w.zero_row_bytes > 0 && w.view.zeros) slices.add(w.view.zeros + r * w.zero_row_bytes, n * w.zero_row_bytes);
    return slices;
}

// combined[s] = d_g(s) * dx_s for every activation block s of a row
// (room for act_blocks + 16 floats): groups of >= 256 columns (and
// per-channel rows) span several activation blocks of 256.
HWY_INLINE void CombineScales(const DenseWeights& w, const PreparedActivations& x, const float* HWY_RESTRICT scales,
                              float* HWY_RESTRICT combined) {
    const DWF df;
    const float* HWY_RESTRICT dx = x.block_scales;
    const int64_t segments = x.act_blocks;
    const int64_t segments_per_group = w.group_span / x.act_block;
    if (segments_per_group == 1) {
        const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
        for (int64_t s = 0; s < segments; s += lanes)
            hn::StoreU(hn::Mul(hn::LoadU(df, dx + s), hn::LoadU(df, scales + s)), df, combined + s);
    } else {
        for (int64_t s = 0; s < segments; ++s) combined[s] = dx[s] * scales[s / segments_per_group];
    }
}

// One row times one token. `scales` holds the row's group scales as floats,
// `combined` room for act_blocks + 16 floats, `zeros` the asymmetric
// row's zero points as floats.
template <int kBits, bool kSym>
HWY_INLINE float RowDotWide(const DenseWeights& w, const DenseRow<kBits, kSym>& row, const PreparedActivations& x,
                            const float* HWY_RESTRICT zeros, float* HWY_RESTRICT combined,
                            const PrefetchSlices* ahead) {
    static_assert(kBits == 4 || kBits == 8, "wide rows are int4 and int8");
    const DWF df;
    const DW32 d32;
    const int16_t* HWY_RESTRICT xq = x.xq;
    const uint8_t* HWY_RESTRICT codes = row.blocks.low;
    const int64_t segments = x.act_blocks;
    const int64_t blocks_per_segment = x.act_block / kBlock;
    CombineScales(w, x, row.scales, combined);
    auto acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    constexpr int64_t kCodeBytes = kBits == 4 ? 16 : 32;  // per block
    if (kBits == 4 && blocks_per_segment == 1) {
        // 32-column groups: a pair is two segments.
        alignas(64) static constexpr int32_t kHalves[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        const auto halves = hn::SetTableIndices(df, kHalves);
        int64_t s = 0;
        for (; s + 4 <= segments; s += 4) {
            FetchSlices(ahead, s, 4);
            const auto s0 = Int4PairSums(codes + s * kCodeBytes, xq + s * kBlock, hn::Zero(d32));
            const auto s1 = Int4PairSums(codes + (s + 2) * kCodeBytes, xq + (s + 2) * kBlock, hn::Zero(d32));
            acc0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::TableLookupLanes(hn::LoadU(df, combined + s), halves), acc0);
            acc1 = hn::MulAdd(hn::ConvertTo(df, s1), hn::TableLookupLanes(hn::LoadU(df, combined + s + 2), halves),
                              acc1);
        }
        if (s < segments) {
            FetchSlices(ahead, s, segments - s);
            const auto s0 = Int4PairSums(codes + s * kCodeBytes, xq + s * kBlock, hn::Zero(d32));
            acc0 = hn::MulAdd(hn::ConvertTo(df, s0), hn::TableLookupLanes(hn::LoadU(df, combined + s), halves), acc0);
        }
    } else {
        // Segments of >= 2 blocks (int4) or >= 1 block (int8): every lane of
        // a segment's sums takes the segment's one scale.
        constexpr int64_t kStep = kBits == 4 ? 2 : 1;  // blocks per vector
        for (int64_t s = 0; s < segments; ++s) {
            FetchSlices(ahead, s, 1);
            const int64_t b0 = s * blocks_per_segment, b1 = b0 + blocks_per_segment;
            auto i0 = hn::Zero(d32), i1 = hn::Zero(d32);
            int64_t b = b0;
            for (; b + 2 * kStep <= b1; b += 2 * kStep) {
                if constexpr (kBits == 4) {
                    i0 = Int4PairSums(codes + b * kCodeBytes, xq + b * kBlock, i0);
                    i1 = Int4PairSums(codes + (b + 2) * kCodeBytes, xq + (b + 2) * kBlock, i1);
                } else {
                    i0 = Int8BlockSums<kSym>(codes + b * kCodeBytes, xq + b * kBlock, i0);
                    i1 = Int8BlockSums<kSym>(codes + (b + 1) * kCodeBytes, xq + (b + 1) * kBlock, i1);
                }
            }
            if (b < b1) {
                if constexpr (kBits == 4) {
                    i0 = Int4PairSums(codes + b * kCodeBytes, xq + b * kBlock, i0);
                } else {
                    i0 = Int8BlockSums<kSym>(codes + b * kCodeBytes, xq + b * kBlock, i0);
                }
            }
            const auto sums = hn::ConvertTo(df, hn::Add(i0, i1));
            if (s & 1) {
                acc1 = hn::MulAdd(sums, hn::Set(df, combined[s]), acc1);
            } else {
                acc0 = hn::MulAdd(sums, hn::Set(df, combined[s]), acc0);
            }
        }
    }
    const float sums = hn::GetLane(hn::SumOfLanes(df, hn::Add(acc0, acc1)));
    if constexpr (!BlockKernels<kBits, kSym>::kUnsignedCodes) return sums;
    return sums - ZeroPointPart<kBits, kSym>(w, row.scales, x.group_sums, zeros);
}

// Whether RowsDotWideInt4 runs its quad loop over x: 128 columns per step,
// one float step per quad (four 32-column activation blocks, two of 64, all
// of one of 128 or half of one of 256). prepare_levels splits the levels
// into quad bytes only where the weight groups are these activation
// blocks.
HWY_INLINE bool WideInt4Quads(const PreparedActivations& x) { return x.quad_bytes != nullptr; }

// Whether RowsDotWideInt4 sets a row up from its FP16 scales in one pass
// (CombineHalfScales): the quad loop over groups that are its activation
// blocks. Its rows need no float copy of their scales.
HWY_INLINE bool WideInt4HalfScales(const DenseWeights& w, const PreparedActivations& x) {
    return WideInt4Quads(x) && w.group_span == x.act_block;
}

// The quad loop's per-row set-up in one pass over the row's FP16 scales
// d_g (groups = activation blocks): combined[g] = d_g * dx_g and the lanes
// of sum_g d_g * S_g (symmetric: the activation sums the codes' offset of 8
// takes out, times 8 by the caller) or of sum_g d_g * z_g * S_g
// (asymmetric: z_g the group's zero point from zero_row); *tail gets the
// groups past the last whole vector; left unreduced so the row ends in one
// horizontal sum. Converting, combining and the zero-point part in three
// passes took ~14% of the cached int4 g32 loop (kernels_bench MatvecCached,
// docs/results.md, session 23).
template <bool kSym>
HWY_INLINE hn::Vec<DWF> CombineHalfScales(const DenseWeights& w, const PreparedActivations& x,
                                          const uint8_t* HWY_RESTRICT fp16, const uint8_t* HWY_RESTRICT zero_row,
                                          float* HWY_RESTRICT combined, float* tail) {
    const DWF df;
    const hn::Rebind<hwy::float16_t, DWF> dh;
    const auto* h = reinterpret_cast<const hwy::float16_t*>(fp16);
    const float* HWY_RESTRICT dx = x.block_scales;
    const float* HWY_RESTRICT sums = x.group_sums;
    const int64_t n = w.groups_per_row;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
    auto zero_part = hn::Zero(df);
    int64_t g = 0;
    for (; g + lanes <= n; g += lanes) {
        const auto d = hn::PromoteTo(df, hn::LoadU(dh, h + g));
        hn::StoreU(hn::Mul(d, hn::LoadU(df, dx + g)), df, combined + g);
        if constexpr (kSym) {
            zero_part = hn::MulAdd(d, hn::LoadU(df, sums + g), zero_part);
        } else {
            // 16 zero points (DWF is 512 bits) from 8 bytes, low nibble
            // first: the nibbles interleaved into bytes, widened to float.
            const __m128i packed = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(zero_row + g / 2));
            const __m128i nibble = _mm_set1_epi8(15);
            const __m128i bytes = _mm_unpacklo_epi8(_mm_and_si128(packed, nibble),
                                                    _mm_and_si128(_mm_srli_epi16(packed, 4), nibble));
            const hn::Vec<DWF> z{_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes))};
            zero_part = hn::MulAdd(hn::Mul(d, z), hn::LoadU(df, sums + g), zero_part);
        }
    }
    float rest = 0.0f;
    for (; g < n; ++g) {
        uint16_t bits;
        std::memcpy(&bits, fp16 + 2 * g, 2);
        const float d = fp16_to_fp32(bits);
        combined[g] = d * dx[g];
        rest += (kSym ? d : d * static_cast<float>(ZeroPoint<4>(zero_row, g))) * sums[g];
    }
    *tail = rest;
    return zero_part;
}

// How many fetch steps RowsDotWideInt4's loop takes over x: one per
// 128-column quad where it runs the quad loop (a step per 32-column segment
// would split each line of codes over four steps and take each line of
// scales several times: a fifth more instructions in the loop, all of them
// scalar bookkeeping and repeated prefetches), else one per segment.
HWY_INLINE int64_t WideInt4FetchSteps(const PreparedActivations& x) {
    return WideInt4Quads(x) ? x.act_blocks * x.act_block / kQuadColumns : x.act_blocks;
}

// The QuadScales of x's quad loop (kQuarters also where x has no quads).
HWY_INLINE QuadScales WideInt4QuadScales(const PreparedActivations& x) {
    if (!WideInt4Quads(x) || x.act_block == kBlock) return QuadScales::kQuarters;
    return x.act_block == 2 * kBlock ? QuadScales::kHalves : QuadScales::kWhole;
}

// kRows int4 rows times one token (out[i] for rows[i]): the same sums as
// RowDotWide, with the rows' steps interleaved so their chains overlap and
// the activation loads are shared (int4 decode is compute-bound: every 64
// or 128 columns end in a float step). Symmetric rows of every wide
// layout; asymmetric rows only with quad bytes (WideInt4Quads), where the
// codes' sums are the same and only the zero-point part differs. int8 rows
// do not come here: they are lighter per byte and stream faster one at a
// time (dense_rows-inl.h). combined[i]: room for act_blocks + 16 floats per
// row.
template <int kBits, bool kSym, int kRows, QuadScales kQuads = QuadScales::kQuarters>
HWY_INLINE void RowsDotWideInt4(const DenseWeights& w, const DenseRow<kBits, kSym>* rows,
                               const PreparedActivations& x, float* const* combined, float* HWY_RESTRICT out,
                               const PrefetchSlices* ahead) {
    static_assert(kBits == 4, "tiles of rows are for int4");
    const DWF df;
    const DW32 d32;
    const int16_t* HWY_RESTRICT xq = x.xq;
    const int64_t segments = x.act_blocks;
    const int64_t blocks_per_segment = x.act_block / kBlock;
    const bool half_scales = WideInt4HalfScales(w, x);
    hn::Vec<DWF> zero_part[kRows];
    float zero_tail[kRows] = {};
    if (half_scales) {
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i)
            zero_part[i] = CombineHalfScales<kSym>(w, x, rows[i].half_scales, rows[i].zero_row, combined[i],
                                                   &zero_tail[i]);
    } else {
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i) CombineScales(w, x, rows[i].scales, combined[i]);
    }
    hn::Vec<DWF> acc[kRows];
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) acc[i] = hn::Zero(df);
    constexpr int64_t kCodeBytes = 16;  // int4 bytes per block
    constexpr int64_t kQuadCodeBytes = 64;
    if constexpr (kQuads == QuadScales::kWhole) {
        // Groups (= activation blocks) of 128 or 256 columns: a quad lies
        // in one, whose combined scale every lane takes, broadcast from
        // memory (no shuffle).
        // Quads per segment (groups are powers of two, so 128 or 256
        // columns: 1 or 2) as a shift: a division per quad took an idiv in
        // the loop.
        const int quad_shift = x.act_block == 2 * kQuadColumns ? 1 : 0;
        const int64_t quads = segments << quad_shift;
        for (int64_t q = 0; q < quads; ++q) {
            FetchSlices(ahead, q, 1);  // one step per quad: WideInt4FetchSteps
            const QuadActivations quad = LoadQuadActivations(x.quad_bytes + q * 256);
            const int64_t segment = q >> quad_shift;
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) {
                const auto sums = Int4QuadSums(rows[i].blocks.low + q * kQuadCodeBytes, quad);
                acc[i] = hn::MulAdd(hn::ConvertTo(df, sums), hn::Set(df, combined[i][segment]), acc[i]);
            }
        }
    } else if constexpr (kQuads == QuadScales::kHalves) {
        // Groups (= activation blocks) of 64 columns: each half of a quad
        // takes its block's combined scale (one lane permutation). Not one
        // loop with the quarters' below: so merged, GCC's code for it
        // decoded int4 g64 2.5% slower (47.4 against 49.1 tokens/s).
        alignas(64) static constexpr int32_t kHalves[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        const auto halves = hn::SetTableIndices(df, kHalves);
        for (int64_t s = 0; s < segments; s += 2) {
            FetchSlices(ahead, s / 2, 1);  // one step per quad: WideInt4FetchSteps
            const QuadActivations quad = LoadQuadActivations(x.quad_bytes + s * 128);
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) {
                const auto sums = Int4QuadSums(rows[i].blocks.low + s / 2 * kQuadCodeBytes, quad);
                acc[i] = hn::MulAdd(hn::ConvertTo(df, sums),
                                    hn::TableLookupLanes(hn::LoadU(df, combined[i] + s), halves), acc[i]);
            }
        }
    } else if (WideInt4Quads(x)) {
        // 128 columns per step: one float step per four groups.
        alignas(64) static constexpr int32_t kQuarters[16] = {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3};
        const auto quarters = hn::SetTableIndices(df, kQuarters);
        for (int64_t s = 0; s < segments; s += 4) {
            FetchSlices(ahead, s / 4, 1);  // one step per quad: WideInt4FetchSteps
            const QuadActivations quad = LoadQuadActivations(x.quad_bytes + s * 64);
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) {
                const auto sums = Int4QuadSums(rows[i].blocks.low + s * kCodeBytes, quad);
                acc[i] = hn::MulAdd(hn::ConvertTo(df, sums),
                                    hn::TableLookupLanes(hn::LoadU(df, combined[i] + s), quarters), acc[i]);
            }
        }
    } else if (kBits == 4 && blocks_per_segment == 1) {
        alignas(64) static constexpr int32_t kHalves[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
        const auto halves = hn::SetTableIndices(df, kHalves);
        for (int64_t s = 0; s < segments; s += 2) {
            FetchSlices(ahead, s, 2);
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) {
                const auto sums = Int4PairSums(rows[i].blocks.low + s * kCodeBytes, xq + s * kBlock, hn::Zero(d32));
                acc[i] = hn::MulAdd(hn::ConvertTo(df, sums), hn::TableLookupLanes(hn::LoadU(df, combined[i] + s), halves),
                                    acc[i]);
            }
        }
    } else {
        for (int64_t s = 0; s < segments; ++s) {
            FetchSlices(ahead, s, 1);
            const int64_t b0 = s * blocks_per_segment, b1 = b0 + blocks_per_segment;
            hn::Vec<DW32> isum[kRows];
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) isum[i] = hn::Zero(d32);
            for (int64_t b = b0; b < b1; b += 2) {  // two blocks per vector
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i)
                    isum[i] = Int4PairSums(rows[i].blocks.low + b * kCodeBytes, xq + b * kBlock, isum[i]);
            }
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i)
                acc[i] = hn::MulAdd(hn::ConvertTo(df, isum[i]), hn::Set(df, combined[i][s]), acc[i]);
        }
    }
    // int4 codes are offset (u = level + z, z = 8 when symmetric): the
    // zero-point part d_g z_g sum(x) comes out.
    static_assert(BlockKernels<kBits, kSym>::kUnsignedCodes, "int4 codes are offset");
    if (half_scales) {
        const auto eight = hn::Set(df, 8.0f);
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i) {
            if constexpr (kSym) {
                out[i] = hn::GetLane(hn::SumOfLanes(df, hn::NegMulAdd(eight, zero_part[i], acc[i]))) -
                         8.0f * zero_tail[i];
            } else {
                out[i] = hn::GetLane(hn::SumOfLanes(df, hn::Sub(acc[i], zero_part[i]))) - zero_tail[i];
            }
        }
    } else {
        // Symmetric rows only (asymmetric ones come with quad bytes, whose
        // groups are their activation blocks: half_scales).
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i) {
            out[i] = hn::GetLane(hn::SumOfLanes(df, acc[i]));
            out[i] -= ZeroPointPart<kBits, true>(w, rows[i].scales, x.group_sums, nullptr);
        }
    }
}

#else

inline constexpr bool kHasWideRows = false;

template <int kBits, bool kSym>
HWY_INLINE float RowDotWide(const DenseWeights&, const DenseRow<kBits, kSym>&, const PreparedActivations&,
                            const float*, float*, const PrefetchSlices*) {
    return 0.0f;  // never called: the dispatcher prepares wide rows only where kHasWideRows
}

HWY_INLINE int64_t DenseRowsAheadDistance(const DenseWeights&, int64_t rows) { return rows; }
HWY_INLINE int64_t WideInt4FetchSteps(const PreparedActivations& x) { return x.act_blocks; }
HWY_INLINE bool WideInt4HalfScales(const DenseWeights&, const PreparedActivations&) { return false; }
HWY_INLINE bool WideInt4Quads(const PreparedActivations&) { return false; }
HWY_INLINE QuadScales WideInt4QuadScales(const PreparedActivations&) { return QuadScales::kQuarters; }
HWY_INLINE PrefetchSlices DenseRowsAhead(const DenseWeights&, int64_t, int64_t, int64_t steps) {
    return PrefetchSlices(steps);
}

template <int kBits, bool kSym, int kRows, QuadScales kQuads = QuadScales::kQuarters>
HWY_INLINE void RowsDotWideInt4(const DenseWeights&, const DenseRow<kBits, kSym>*, const PreparedActivations&,
                               float* const*, float*, const PrefetchSlices*) {}  // never called, as RowDotWide

#endif

// Whether one-token products of w take the wide rows on this target, and
// then whether their activations come in pair order (int4).
HWY_INLINE bool WideRowsApply(const DenseWeights& w, int64_t act_block) {
    const int bits = w.view.scheme.bits;
    if (!kHasWideRows || (bits != 4 && bits != 8)) return false;
    const int64_t cols = w.view.cols;
    const int64_t unit = bits == 4 ? 2 * kBlock : kBlock;
    return cols % unit == 0 && cols % act_block == 0 && cols % w.group_span == 0 &&
           (w.group_span % act_block == 0);
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
