// The dense row drivers: FP32 rows (group by group, block by block through
// the block kernels of int8/int4/lowbit_kernels-inl.h), the choice between
// decoding rows per token (decode), integer dot products (Q8 and Q16
// prefill where the target has them, int_dot_tiles-inl.h) and dequantized
// tiles, and
// DenseRows, where the switch on the scheme happens once per chunk of rows;
// everything below it is a template per bit width and symmetry. The Q8 rows
// are in q8_rows-inl.h. Compiled once per SIMD target.

#if defined(SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_DENSE_ROWS_INL_H_
#endif

#include "quant/reference_codec.h"
#include "runtime/kernels/dense_row-inl.h"
#include "runtime/kernels/int_dot_tiles-inl.h"
#include "runtime/kernels/q8_rows-inl.h"
#include "runtime/kernels/wide_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

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

// Few tokens: each row is decoded once and dotted with every token.
// kQuads: how int4 decode rows in quads scale them (RowsDotWideInt4), each
// way an instantiation of its own.
template <int kBits, bool kSym, QuadScales kQuads = QuadScales::kQuarters>
HWY_NOINLINE void DenseRowsByDot(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    alignas(64) uint8_t pad[48];
    const PreparedActivations& x = c.x;
    float* zeros = s.weight_tile;  // Q8 scratch: zero points, then combined scales
    float* combined = s.weight_tile + c.w.groups_per_row + 16;
    int64_t r = r0;
    if constexpr (kBits == 4) {
        // Decode: int4 rows kWideTileRows at a time (RowsDotWideInt4; the
        // asymmetric ones only in quads), each row's scales and combined
        // scales in its own slot of the tile buffer (which holds
        // kMaxTileRows x stride floats).
        constexpr int kWideTileRows = 4;
        const int64_t slot = (std::max(c.w.groups_per_row, x.act_blocks) + 16 + 15) / 16 * 16;
        if (x.wide && (kSym || WideInt4Quads(x)) && 2 * kWideTileRows * slot <= kMaxTileRows * x.stride) {
            float* combined_slots[kWideTileRows];
            for (int i = 0; i < kWideTileRows; ++i) combined_slots[i] = s.weight_tile + (kWideTileRows + i) * slot;
            float out[kWideTileRows] = {};
            const int64_t tile_distance = DenseRowsAheadDistance(c.w, kWideTileRows);
            const bool convert = !WideInt4HalfScales(c.w, x);  // else the tile reads the FP16 scales itself
            for (; r + kWideTileRows <= r1; r += kWideTileRows) {
                const DenseRow<kBits, kSym> rows[kWideTileRows] = {
                    DenseRow<kBits, kSym>(c.w, r, s.weight_tile, pad, convert),
                    DenseRow<kBits, kSym>(c.w, r + 1, s.weight_tile + slot, pad, convert),
                    DenseRow<kBits, kSym>(c.w, r + 2, s.weight_tile + 2 * slot, pad, convert),
                    DenseRow<kBits, kSym>(c.w, r + 3, s.weight_tile + 3 * slot, pad, convert)};
                const PrefetchSlices ahead = DenseRowsAhead(c.w, r + tile_distance, kWideTileRows, WideInt4FetchSteps(x));
                RowsDotWideInt4<kBits, kSym, kWideTileRows, kQuads>(c.w, rows, x, combined_slots, out,
                                                                             &ahead);
                for (int i = 0; i < kWideTileRows; ++i) c.y[r + i] = out[i];
            }
        }
    }
    const int64_t row_distance = DenseRowsAheadDistance(c.w, 1);
    if constexpr (kBits == 4) {
        if (x.quad_bytes) {
            // Byte-split activations only (no pair order): the tile's leftover rows one at a time.
            for (; r < r1; ++r) {
                const DenseRow<kBits, kSym> row(c.w, r, s.row_scales, pad, !WideInt4HalfScales(c.w, x));
                float* combined_one[1] = {combined};
                const PrefetchSlices ahead = DenseRowsAhead(c.w, r + row_distance, 1, WideInt4FetchSteps(x));
                RowsDotWideInt4<kBits, kSym, 1, kQuads>(c.w, &row, x, combined_one, c.y + r, &ahead);
            }
            return;
        }
    }
    for (; r < r1; ++r) {
        const DenseRow<kBits, kSym> row(c.w, r, s.row_scales, pad);
        if (!kSym && c.mode == ActivationMode::Q8) {
            for (int64_t g = 0; g < c.w.groups_per_row; ++g) zeros[g] = static_cast<float>(row.Zero(g));
        }
        if constexpr (kBits == 4 || kBits == 8) {
            if (x.wide) {
                // Rows go one at a time, each chunk one sequential stream
                // (kernels_bench, 2 threads, an AMD host: 36-46 GB/s against
                // 29-36 with 4-row tiles), and fetch the row kPrefetchAheadBytes
                // ahead a slice per segment: on an Intel Sapphire Rapids
                // host the hardware prefetcher alone left int8 rows at 0.55
                // of the probe, whole-row prefetches at 0.53-0.56, slices at
                // 0.70-0.82 (1B synth decode, docs/results.md).
                const PrefetchSlices ahead = DenseRowsAhead(c.w, r + row_distance, 1, x.act_blocks);
                c.y[r] = RowDotWide(c.w, row, x, zeros, combined, &ahead);
                continue;
            }
        }
        for (int64_t t = 0; t < x.tokens; ++t) {
            c.y[t * c.y_stride + r] =
                c.mode == ActivationMode::F32
                    ? RowDotF32(c.w, row, x.xf + t * x.stride)
                    : RowDotQ8(c.w, row, x, t, zeros, combined);
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

template <int kBits, bool kSym>
HWY_INLINE void DenseRowsFor(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    // The dispatcher prepares integer-dot activations only on targets that
    // have the instructions. Otherwise many tokens take the float tiles in
    // every mode (Q8 and Q16 activations arrive dequantized: the same values
    // the twin's integer sums see), and so do small groups, which the
    // reference codec dequantizes. One token takes the row drivers: Q8 and
    // Q16 levels alike on the integer ones.
    if (c.dot.q != nullptr) {
        DenseRowsByIntDot<kBits, kSym>(c, r0, r1, s);
    } else if (c.small_groups || c.x.tokens >= kMinTileTokens) {
        DenseRowsByTiles<kBits, kSym>(c, r0, r1, s);
    } else if (kBits == 4 && WideInt4QuadScales(c.x) == QuadScales::kHalves) {
        DenseRowsByDot<kBits, kSym, QuadScales::kHalves>(c, r0, r1, s);
    } else if (kBits == 4 && WideInt4QuadScales(c.x) == QuadScales::kWhole) {
        DenseRowsByDot<kBits, kSym, QuadScales::kWhole>(c, r0, r1, s);
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
