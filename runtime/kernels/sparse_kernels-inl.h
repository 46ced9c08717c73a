// SIMD kernels of the sparse encodings (runtime/kernels/sparse_layout.h),
// FP32 activations. Compiled once per SIMD target via sparse_matmul.cpp.
//
// 2:4. A block of 32 dense columns holds 16 kept values (16 bytes of int8
// or 8 of int4) and 16 two-bit index fields (one 32-bit word). Rather than
// expanding weights to dense, the kernel gathers the activations the kept
// values meet: lane j's column is 4 * run(j) + field(j), found with one
// variable shift and a mask, and the activations come from two in-register
// table lookups (the 2 x L floats the step spans) merged by a constant
// lane mask. So each kept weight costs a widen, a convert and an FMA as in
// the dense kernels, plus ~5 vector ops per L kept values for the gather,
// while the weight bytes streamed drop to 5/8 (int8) or 3/4 (int4).
// int4 blocks unpack as [low nibbles | high nibbles], i.e. the first kept
// value of each run, then the second, and the lane pattern follows suit.
//
// Bitmask. Per L columns the row's mask bits select the activations of the
// stored values with one Compress; the stored values are contiguous, so
// they load as a plain vector from a running position. Lanes past the
// count are zeroed on the activation side.

#if defined(SPARQ_RUNTIME_KERNELS_SPARSE_KERNELS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_SPARSE_KERNELS_INL_H_
#undef SPARQ_RUNTIME_KERNELS_SPARSE_KERNELS_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_SPARSE_KERNELS_INL_H_
#endif

#include <bit>

#include "quant/reference_codec.h"
#include "runtime/kernels/int8_kernels-inl.h"
#include "runtime/kernels/kernel_common-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DU32 = hn::RebindToUnsigned<DI32>;

// The gathers need at least 4 lanes (two runs of 4 columns per table).
#if HWY_TARGET == HWY_SCALAR
inline constexpr bool kSparseSimd = false;
#else
inline constexpr bool kSparseSimd = true;

// Activations of L kept values whose runs span the 2 * L floats at xs:
// lane j takes xs[4 * run_in_table + field] from the first table (runs in
// the first L columns) or the second.
HWY_INLINE VF GatherRuns(const float* HWY_RESTRICT xs, uint32_t fields, hn::Vec<DU32> shift,
                         hn::Vec<DI32> base, hn::Mask<DF> second_table) {
    const DF df;
    const DI32 di;
    const auto f = hn::And(hn::BitCast(di, hn::Set(DU32(), fields) >> shift), hn::Set(di, 3));
    const auto idx = hn::IndicesFromVec(df, hn::Add(f, base));
    const size_t n = hn::Lanes(df);
    return hn::IfThenElse(second_table, hn::TableLookupLanes(hn::LoadU(df, xs + n), idx),
                          hn::TableLookupLanes(hn::LoadU(df, xs), idx));
}

// acc += w * x over one 2:4 block: int8 values in column order, so lane j
// is kept value s + j, of run (s + j) / 2, field s + j.
template <bool kSigned>
HWY_INLINE void Nm24Int8Block(const uint8_t* HWY_RESTRICT values, uint32_t fields, const float* HWY_RESTRICT x,
                              int z, VF& acc) {
    const DF df;
    const DI32 di;
    const size_t n = hn::Lanes(df);
    const auto iota = hn::Iota(di, 0);
    const auto run = hn::ShiftRight<1>(iota);
    const auto base = hn::ShiftLeft<2>(hn::And(run, hn::Set(di, static_cast<int32_t>(n / 4 - 1))));
    const auto shift = hn::BitCast(DU32(), hn::ShiftLeft<1>(iota));
    const auto second = hn::RebindMask(df, hn::Gt(iota, hn::Set(di, static_cast<int32_t>(n / 2 - 1))));
    const auto zv = hn::Set(di, z);
    for (size_t s = 0; s < 16; s += n) {
        const VF gx = GatherRuns(x + 2 * s, fields >> (2 * s), shift, base, second);
        acc = hn::MulAdd(hn::ConvertTo(df, WidenCodes<kSigned>(values + s, zv)), gx, acc);
    }
}

// int4: a step of L kept values is L / 2 bytes; lanes [0, L/2) are the low
// nibbles (first kept value of runs 0..L/2-1), lanes [L/2, L) the high ones.
HWY_INLINE void Nm24Int4Block(const uint8_t* HWY_RESTRICT values, uint32_t fields, const float* HWY_RESTRICT x,
                              int z, VF& acc) {
    const DF df;
    const DI32 di;
    const hn::Half<DI32> dh;
    const hn::Rebind<uint8_t, decltype(dh)> d8;
    const size_t n = hn::Lanes(df);
    const auto iota = hn::Iota(di, 0);
    const auto high = hn::Gt(iota, hn::Set(di, static_cast<int32_t>(n / 2 - 1)));
    const auto run = hn::And(iota, hn::Set(di, static_cast<int32_t>(n / 2 - 1)));
    const auto second_field = hn::IfThenElseZero(high, hn::Set(di, 2));
    const auto shift = hn::BitCast(DU32(), hn::Add(hn::ShiftLeft<2>(run), second_field));
    const auto base = hn::ShiftLeft<2>(hn::And(run, hn::Set(di, static_cast<int32_t>(n / 4 - 1))));
    const auto second = hn::RebindMask(df, hn::Gt(run, hn::Set(di, static_cast<int32_t>(n / 4 - 1))));
    const auto zv = hn::Set(di, z);
    const auto mask = hn::Set(dh, 15);
    for (size_t s = 0; s < 16; s += n) {
        const auto v = hn::BitCast(dh, hn::PromoteTo(hn::RebindToUnsigned<decltype(dh)>(), hn::LoadU(d8, values + s / 2)));
        const auto q = hn::Sub(hn::Combine(di, hn::ShiftRight<4>(v), hn::And(v, mask)), zv);
        const VF gx = GatherRuns(x + 2 * s, fields >> (2 * s), shift, base, second);
        acc = hn::MulAdd(hn::ConvertTo(df, q), gx, acc);
    }
}
#endif  // HWY_TARGET != HWY_SCALAR

HWY_INLINE uint32_t LoadU32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

template <int kBits, bool kSym>
HWY_INLINE void Nm24Block(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT indices,
                          const float* HWY_RESTRICT x, int z, VF& acc) {
#if HWY_TARGET == HWY_SCALAR
    (void)values, (void)indices, (void)x, (void)z, (void)acc;
#else
    if constexpr (kBits == 8) {
        Nm24Int8Block<kSym>(values, LoadU32(indices), x, z, acc);
    } else {
        Nm24Int4Block(values, LoadU32(indices), x, z, acc);
    }
#endif
}

// y = sum over groups of d_g * sum over kept (u - z) x, one 2:4 row. Whole
// groups read the row in place with two blocks (or, for groups of 32, two
// groups) in flight; the group holding a short last block reads padded
// copies.
template <int kBits, bool kSym>
HWY_INLINE float Nm24Row(const SparseCall& c, int64_t r, const float* HWY_RESTRICT scales,
                         const float* HWY_RESTRICT x, uint8_t* HWY_RESTRICT pad) {
    constexpr int64_t kValueBytes = kBits == 8 ? 16 : 8;  // per block of 32 columns
    const NmSparseGeometry& geo = c.nm_geometry;
    const uint8_t* values = c.nm.values + r * geo.value_row_bytes;
    const uint8_t* indices = c.nm.indices + r * geo.index_row_bytes;
    const uint8_t* zero_row = kSym ? nullptr : c.nm.zeros + r * c.zero_row_bytes;
    const auto zero_point = [zero_row](int64_t g) { return kSym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, g); };
    const int64_t whole = c.cols / kBlock;
    const int64_t per = block_count(c.group_span);
    const int64_t whole_groups = std::min(c.groups_per_row, whole / per);
    const DF df;
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    int64_t g = 0;
    if (per == 1) {
        for (; g + 2 <= whole_groups; g += 2) {
            VF a0 = hn::Zero(df), a1 = hn::Zero(df);
            Nm24Block<kBits, kSym>(values + g * kValueBytes, indices + 4 * g, x + g * kBlock, zero_point(g), a0);
            Nm24Block<kBits, kSym>(values + (g + 1) * kValueBytes, indices + 4 * (g + 1), x + (g + 1) * kBlock,
                                   zero_point(g + 1), a1);
            acc0 = hn::MulAdd(a0, hn::Set(df, scales[g]), acc0);
            acc1 = hn::MulAdd(a1, hn::Set(df, scales[g + 1]), acc1);
        }
    }
    for (; g < whole_groups; ++g) {
        const int z = zero_point(g);
        VF a0 = hn::Zero(df), a1 = hn::Zero(df);
        int64_t b = g * per;
        for (; b + 2 <= (g + 1) * per; b += 2) {
            Nm24Block<kBits, kSym>(values + b * kValueBytes, indices + 4 * b, x + b * kBlock, z, a0);
            Nm24Block<kBits, kSym>(values + (b + 1) * kValueBytes, indices + 4 * (b + 1), x + (b + 1) * kBlock, z, a1);
        }
        if (b < (g + 1) * per) Nm24Block<kBits, kSym>(values + b * kValueBytes, indices + 4 * b, x + b * kBlock, z, a0);
        acc0 = hn::MulAdd(hn::Add(a0, a1), hn::Set(df, scales[g]), acc0);
    }
    if (g < c.groups_per_row) {  // the group with the short last block
        std::memset(pad, 0, 32);
        std::memcpy(pad, values + whole * kValueBytes, static_cast<size_t>(geo.value_row_bytes - whole * kValueBytes));
        std::memcpy(pad + 16, indices + whole * 4, static_cast<size_t>(geo.index_row_bytes - whole * 4));
        const int z = zero_point(g);
        VF a0 = hn::Zero(df);
        for (int64_t b = g * per; b < c.blocks; ++b) {
            const bool padded = b == whole;
            Nm24Block<kBits, kSym>(padded ? pad : values + b * kValueBytes, padded ? pad + 16 : indices + 4 * b,
                                   x + b * kBlock, z, a0);
        }
        acc1 = hn::MulAdd(a0, hn::Set(df, scales[g]), acc1);
    }
    return ReduceSum(hn::Add(acc0, acc1));
}

// The next L mask bits of a row from column col (col % L == 0, L <= 16),
// never reading past the row's mask bytes.
HWY_INLINE uint64_t MaskBits(const uint8_t* mask_row, int64_t mask_bytes, int64_t col, size_t n) {
    const int64_t byte = col / 8;
    uint64_t bits = mask_row[byte];
    if (byte + 1 < mask_bytes) bits |= static_cast<uint64_t>(mask_row[byte + 1]) << 8;
    bits >>= col % 8;
    return n >= 64 ? bits : bits & ((uint64_t{1} << n) - 1);
}

// Stored int4 values pos .. pos + 15 (nibble pos of `values`) as one byte
// each in `out`: realign to the nibble, then spread nibbles to bytes.
HWY_INLINE void Int4RunToBytes(const uint8_t* HWY_RESTRICT values, int64_t pos, uint8_t* HWY_RESTRICT out) {
    uint64_t v;
    std::memcpy(&v, values + pos / 2, 8);
    if (pos & 1) v = (v >> 4) | (static_cast<uint64_t>(values[pos / 2 + 8]) << 60);
    for (int half = 0; half < 2; ++half) {
        uint64_t s = (v >> (32 * half)) & 0xFFFFFFFFull;
        s = (s | (s << 16)) & 0x0000FFFF0000FFFFull;
        s = (s | (s << 8)) & 0x00FF00FF00FF00FFull;
        s = (s | (s << 4)) & 0x0F0F0F0F0F0F0F0Full;
        std::memcpy(out + 8 * half, &s, 8);
    }
}

// The 16 codes of Int4RunToBytes as int32 lanes u - z. The codes were just
// written as two 8-byte words; loading each half on its own lets the loads
// forward from those stores instead of stalling on a wider load.
HWY_INLINE hn::Vec<DI32> WidenInt4Run(const uint8_t* HWY_RESTRICT codes, hn::Vec<DI32> z) {
#if HWY_TARGET == HWY_SCALAR
    return WidenCodes<false>(codes, z);
#else
    const DI32 di;
    const hn::Half<DI32> dh;
    const hn::Rebind<uint8_t, decltype(dh)> d8;
    const hn::RebindToUnsigned<decltype(dh)> du;
    const size_t half = hn::Lanes(dh);
    const auto lo = hn::BitCast(dh, hn::PromoteTo(du, hn::LoadU(d8, codes)));
    const auto hi = hn::BitCast(dh, hn::PromoteTo(du, hn::LoadU(d8, codes + half)));
    return hn::Sub(hn::Combine(di, hi, lo), z);
#endif
}

// The activations of a chunk's stored values, in order, zero past `count`.
template <class D = DF>
HWY_INLINE VF CompressActivations(const float* HWY_RESTRICT x, uint64_t bits, size_t count) {
    const DF df;
#if HWY_TARGET <= HWY_AVX3
    if constexpr (hn::MaxLanes(D()) == 16) {
        // vcompressps with a zeroing mask clears the lanes past the count.
        (void)count;
        return VF{_mm512_maskz_compress_ps(static_cast<__mmask16>(bits), hn::LoadU(df, x).raw)};
    }
#endif
    const auto selected = hn::LoadMaskBits(df, reinterpret_cast<const uint8_t*>(&bits));
    return hn::IfThenElseZero(hn::FirstN(df, count), hn::Compress(hn::LoadU(df, x), selected));
}

// Stored int4 values pos .. pos + L - 1 as int32 lanes u - z. On x86 the
// nibbles spread to bytes in a 128-bit register (mask, shift, interleave;
// an odd start takes the bytes one further); elsewhere a scalar spread.
template <class D = DF>  // a template, so only the taken `if constexpr` branch compiles
HWY_INLINE hn::Vec<DI32> Int4Run(const uint8_t* HWY_RESTRICT values, int64_t pos, hn::Vec<DI32> z,
                                 uint8_t* HWY_RESTRICT codes) {
#if HWY_ARCH_X86 && HWY_TARGET != HWY_SCALAR
    constexpr size_t kLanes = hn::MaxLanes(D());
    const hn::Full128<uint8_t> d16;
    const auto v = hn::LoadU(d16, values + pos / 2);
    const auto lo = hn::And(v, hn::Set(d16, 15));
    const auto hi = hn::ShiftRight<4>(v);
    const auto first = hn::InterleaveLower(d16, lo, hi);
    const auto shifted = hn::CombineShiftRightBytes<1>(d16, hn::InterleaveUpper(d16, lo, hi), first);
    const auto odd = hn::MaskFromVec(hn::Set(d16, static_cast<uint8_t>(-(pos & 1))));
    const auto bytes = hn::IfThenElse(odd, shifted, first);
    const hn::Rebind<int32_t, D> di;
    const hn::Rebind<uint32_t, D> du;
    if constexpr (kLanes == 16) {
        return hn::Sub(hn::BitCast(di, hn::PromoteTo(du, bytes)), z);
    } else if constexpr (kLanes == 8) {
        return hn::Sub(hn::BitCast(di, hn::PromoteTo(du, hn::LowerHalf(bytes))), z);
    } else {
        return hn::Sub(hn::BitCast(di, hn::PromoteTo(du, hn::LowerHalf(hn::LowerHalf(bytes)))), z);
    }
#else
    Int4RunToBytes(values, pos, codes);
    return WidenInt4Run(codes, z);
#endif
}

// a += stored weights (u - z) times their activations over the L columns
// whose mask bits are `bits`; pos advances past the stored values used.
template <int kBits, bool kSym>
HWY_INLINE void BitmaskChunk(uint64_t bits, const float* HWY_RESTRICT x, const uint8_t* HWY_RESTRICT values,
                             int64_t& pos, hn::Vec<DI32> zv, uint8_t* HWY_RESTRICT codes, VF& a) {
    const DF df;
    const size_t count = static_cast<size_t>(std::popcount(bits));
    const VF xc = CompressActivations(x, bits, count);
    hn::Vec<DI32> q;
    if constexpr (kBits == 8) {
        q = WidenCodes<kSym>(values + pos, zv);
    } else {
        q = Int4Run(values, pos, zv, codes);
    }
    a = hn::MulAdd(hn::ConvertTo(df, q), xc, a);
    pos += static_cast<int64_t>(count);
}

// One bitmask row. `values` holds the row's stored values with at least 16
// readable bytes past them. Chunks go in pairs into two accumulators, and
// groups alternate between two, so no FMA waits on the one before.
template <int kBits, bool kSym>
HWY_INLINE float BitmaskRow(const SparseCall& c, int64_t r, const float* HWY_RESTRICT scales,
                            const uint8_t* HWY_RESTRICT values, const float* HWY_RESTRICT x) {
    const DF df;
    const DI32 di;
    const int64_t n = static_cast<int64_t>(hn::Lanes(df));
    const int64_t mask_bytes = c.bitmask.mask_row_bytes();
    const uint8_t* mask_row = c.bitmask.mask + r * mask_bytes;
    const uint8_t* zero_row = kSym ? nullptr : c.bitmask.zeros + r * c.zero_row_bytes;
    alignas(16) uint8_t codes[16];
    int64_t pos = 0;
    VF acc0 = hn::Zero(df), acc1 = hn::Zero(df);
    for (int64_t grp = 0; grp < c.groups_per_row; ++grp) {
        const int z = kSym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, grp);
        const auto zv = hn::Set(di, z);
        const int64_t end = std::min(c.cols, (grp + 1) * c.group_span);
        VF a0 = hn::Zero(df), a1 = hn::Zero(df);
        int64_t col = grp * c.group_span;
        // Pairs of chunks of 8 or 16 columns (on mask bytes) with one mask load.
        if (n == 8 || n == 16) {
            for (; col + 2 * n <= end; col += 2 * n) {
                uint32_t pair = 0;
                std::memcpy(&pair, mask_row + col / 8, static_cast<size_t>(n / 4));
                const uint64_t low = pair & ((uint32_t{1} << n) - 1), high = pair >> n;
                BitmaskChunk<kBits, kSym>(low, x + col, values, pos, zv, codes, a0);
                BitmaskChunk<kBits, kSym>(high, x + col + n, values, pos, zv, codes, a1);
            }
        }
        for (; col < end; col += n) {
            BitmaskChunk<kBits, kSym>(MaskBits(mask_row, mask_bytes, col, static_cast<size_t>(n)), x + col, values, pos,
                                      zv, codes, a0);
        }
        if (grp & 1) {
            acc1 = hn::MulAdd(hn::Add(a0, a1), hn::Set(df, scales[grp]), acc1);
        } else {
            acc0 = hn::MulAdd(hn::Add(a0, a1), hn::Set(df, scales[grp]), acc0);
        }
    }
    return ReduceSum(hn::Add(acc0, acc1));
}

// Generic path: row r's stored weights, dequantized by the reference codec,
// as (column, value) pairs in column order. Weights not stored never meet
// their activations (a NaN there stays out, as in the fast paths).
HWY_INLINE int64_t DecodeSparseRow(const SparseCall& c, int64_t r, int64_t* HWY_RESTRICT columns,
                                   float* HWY_RESTRICT weights, uint8_t* HWY_RESTRICT codes) {
    const PackedView params = c.is_nm ? c.nm.group_params() : c.bitmask.group_params();
    int64_t count = 0;
    // Columns arrive in order, so each group's params are read once.
    int64_t group = -1;
    GroupParams p{};
    float scale = 0.0f;
    const auto put = [&](int64_t col, uint8_t code) {
        if (col / c.group_span != group) {
            group = col / c.group_span;
            p = read_group_params(params, r, group);
            scale = p.scale_value();
        }
        columns[count] = col;
        weights[count++] = dequantize_value(code, scale, p.zero);
    };
    if (c.is_nm) {
        const NmSparseGeometry& g = c.nm_geometry;
        const int width = nm_index_field_bits(c.nm.scheme.m);
        unpack_code_row(c.quant, c.nm.values + r * g.value_row_bytes, g.kept_per_row, codes);
        const uint8_t* index_row = c.nm.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) {
            const int64_t bit = j * width;
            const int field = (index_row[bit >> 3] >> (bit & 7)) & ((1 << width) - 1);
            put((j / c.nm.scheme.n) * c.nm.scheme.m + field, codes[j]);
        }
        return count;
    }
    const uint8_t* mask = c.bitmask.mask + r * c.bitmask.mask_row_bytes();
    int64_t k = 0;
    for (int64_t col = 0; col < c.cols; ++col) k += (mask[col / 8] >> (col % 8)) & 1;
    if (k > 0) unpack_code_row(c.quant, c.bitmask.values + c.bitmask.row_offset(r), k, codes);
    for (int64_t col = 0, j = 0; col < c.cols; ++col) {
        if ((mask[col / 8] >> (col % 8)) & 1) put(col, codes[j++]);
    }
    return count;
}

template <int kBits, bool kSym>
HWY_NOINLINE void SparseRowsFast(const SparseCall& c, int64_t r0, int64_t r1, const SparseScratch& s) {
    alignas(64) uint8_t pad[64];
    const uint8_t* scale_base = c.is_nm ? c.nm.scales : c.bitmask.scales;
    for (int64_t r = r0; r < r1; ++r) {
        ConvertRowScales(scale_base + 2 * r * c.groups_per_row, c.groups_per_row, s.row_scales);
        const uint8_t* values = nullptr;
        if (!c.is_nm) {
            // Rows read up to 16 bytes past their values: copy the ones
            // that end near the plane's end into a padded buffer.
            const uint64_t begin = c.bitmask.row_offset(r), end = c.bitmask.row_offset(r + 1);
            values = c.bitmask.values + begin;
            if (end + 16 > c.bitmask_values_size) {
                std::memset(s.values, 0, static_cast<size_t>(end - begin) + 32);
                if (end > begin) std::memcpy(s.values, values, static_cast<size_t>(end - begin));
                values = s.values;
            }
        }
        for (int64_t t = 0; t < c.x.tokens; ++t) {
            const float* x = c.x.xf + t * c.x.stride;
            c.y[t * c.y_stride + r] = c.is_nm ? Nm24Row<kBits, kSym>(c, r, s.row_scales, x, pad)
                                              : BitmaskRow<kBits, kSym>(c, r, s.row_scales, values, x);
        }
    }
}

HWY_NOINLINE void SparseRowsGeneric(const SparseCall& c, int64_t r0, int64_t r1, const SparseScratch& s) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t count = DecodeSparseRow(c, r, s.columns, s.dense_row, s.values);
        for (int64_t t = 0; t < c.x.tokens; ++t) {
            const float* x = c.x.xf + t * c.x.stride;
            double sum = 0.0;  // the slow path: as exact as the twin
            for (int64_t j = 0; j < count; ++j) sum += static_cast<double>(s.dense_row[j]) * x[s.columns[j]];
            c.y[t * c.y_stride + r] = static_cast<float>(sum);
        }
    }
}

void SparseRows(const SparseCall& c, int64_t r0, int64_t r1, const SparseScratch& s) {
    if (!kSparseSimd || !c.fast) return SparseRowsGeneric(c, r0, r1, s);
    switch (c.quant.bits * 2 + (c.quant.symmetric ? 1 : 0)) {
        case 17: return SparseRowsFast<8, true>(c, r0, r1, s);
        case 16: return SparseRowsFast<8, false>(c, r0, r1, s);
        case 9: return SparseRowsFast<4, true>(c, r0, r1, s);
        case 8: return SparseRowsFast<4, false>(c, r0, r1, s);
        default: return SparseRowsGeneric(c, r0, r1, s);
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
