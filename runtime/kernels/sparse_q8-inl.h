// Q8-activation kernels of the sparse encodings (see sparse_matmul.h):
// per chunk of 64 dense columns, a 64-bit mask says which columns are kept
// (the bitmask row itself, or for 2:4 the index bytes through a 16-entry
// table: one index byte = two runs = one mask byte); vpexpandb spreads the
// chunk's kept codes to their columns, filling pruned ones with the zero
// point, and one vpdpbusd multiplies all 64 with the int8 activations.
// Lane i of the dot covers columns 4i..4i+3, so lanes 0-7 are the chunk's
// first activation block and 8-15 its second: one FMA with a per-lane
// vector of block scales puts the chunk into float. The zero points come
// out once per group: sum (u - z) q = sum u q - z sum q, and the
// activation side of z sum q is SparseQ8Activations::group_sums (groups
// of 32 take it out per lane in integers instead, see Q8Row).
// Native only on AVX3_DL (VNNI, VBMI2); other targets never run this.

#if defined(SPARQ_RUNTIME_KERNELS_SPARSE_Q8_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_SPARSE_Q8_INL_H_
#undef SPARQ_RUNTIME_KERNELS_SPARSE_Q8_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_SPARSE_Q8_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cstring>

#include "runtime/kernels/kernel_args.h"
#include "runtime/kernels/kernel_common-inl.h"
#include "runtime/kernels/sparse_matmul.h"

HWY_BEFORE_NAMESPACE();
// Highway 1.0.3's AVX3_DL attribute string names avxvnni (VEX) but not
// avx512vnni, while its runtime check for AVX3_DL requires AVX512-VNNI: so
// the attribute is safe to add here (as int_dot_tiles-inl.h does).
#if HWY_TARGET == HWY_AVX3_DL
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
#endif
namespace sparq::kernels::HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3_DL
inline bool SparseQ8Native() { return true; }

// The 64 codes of chunk ch at their columns, pruned columns = fill. For
// 2:4, `masks` is the index row: index byte b holds the fields of runs 2b
// (low nibble, f0 | f1 << 2) and 2b + 1 (high nibble), i.e. of mask byte b,
// whose nibbles are (1 << f0) | (1 << f1).
template <int kBits, bool kNm, int kFlip>
HWY_INLINE __m512i ExpandChunk(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT masks, int64_t ch,
                               int64_t& pos, __m512i fill) {
    uint64_t bits;
    if constexpr (kNm) {
        // The chunk's 8 index bytes to mask bytes in a register: a table
        // pass over the row through memory stalls on store forwarding.
        const __m128i lut_lo = _mm_setr_epi8(1, 3, 5, 9, 3, 2, 6, 10, 5, 6, 4, 12, 9, 10, 12, 8);
        const __m128i lut_hi = _mm_slli_epi16(lut_lo, 4);  // entries <= 12: no carry across bytes
        const __m128i nibble = _mm_set1_epi8(0x0F);
        const __m128i idx = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(masks + 8 * ch));
        const __m128i lo = _mm_and_si128(idx, nibble), hi = _mm_and_si128(_mm_srli_epi16(idx, 4), nibble);
        bits = static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_or_si128(_mm_shuffle_epi8(lut_lo, lo), _mm_shuffle_epi8(lut_hi, hi))));
    } else {
        std::memcpy(&bits, masks + 8 * ch, 8);
    }
    const __mmask64 k = _cvtu64_mask64(bits);
    __m512i v;
    if constexpr (kNm && kBits == 8) {
        v = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 32 * ch)));
    } else if constexpr (kNm) {
        // 32 nibbles, kept value 2i in the low nibble of byte i.
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(values + 16 * ch));
        const __m128i nibble = _mm_set1_epi8(0x0F);
        const __m128i lo = _mm_and_si128(b, nibble), hi = _mm_and_si128(_mm_srli_epi16(b, 4), nibble);
        const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi8(lo, hi)),
                                                     _mm_unpackhi_epi8(lo, hi), 1);
        v = _mm512_castsi256_si512(both);
    } else {
        v = _mm512_loadu_si512(values + pos);
        pos += std::popcount(bits);
    }
    // Symmetric int8 rows store u ^ 0x80 (quant/layout.cpp): flip back to u.
    if constexpr (kBits == 8) v = _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(kFlip)));
    return _mm512_mask_expand_epi8(fill, k, v);
}

// Sum over the chunk's columns of code * q, per lane of 4 columns (exact:
// |sum| <= 4 * 255 * 127). A function, not a lambda: lambdas do not
// inherit the target attributes the intrinsics need.
template <int kBits, bool kNm, int kFlip>
HWY_INLINE __m512i ChunkSum(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT masks,
                            const int8_t* HWY_RESTRICT xq, int64_t ch, int64_t& pos, __m512i fill) {
    const __m512i codes = ExpandChunk<kBits, kNm, kFlip>(values, masks, ch, pos, fill);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), codes, _mm512_loadu_si512(xq + 64 * ch));
}

template <int kBits, bool kNm, bool kGroup32, int kFlip>
HWY_INLINE void Q8Row(const SparseCall& c, const SparseQ8Activations& a, int64_t r, const float* HWY_RESTRICT ws,
                      const uint8_t* HWY_RESTRICT masks, const uint8_t* HWY_RESTRICT values) {
    const bool sym = c.quant.symmetric;
    const uint8_t* zeros = c.is_nm ? c.nm.zeros : c.bitmask.zeros;
    const uint8_t* zero_row = sym ? nullptr : zeros + r * c.zero_row_bytes;
    const auto zp = [&](int64_t g) { return sym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, g); };
    const int64_t chunks = c.cols / 64;
    for (int64_t t = 0; t < a.tokens; ++t) {
        const int8_t* xq = a.q.data() + t * a.chunks * 64;
        const float* ls = a.lane_scales.data() + t * a.chunks * 16;
        const double* gs = a.group_sums.data() + t * a.groups;
        double corr = 0.0;
        if constexpr (!kGroup32) {
            for (int64_t g = 0; g < c.groups_per_row; ++g) corr += static_cast<double>(ws[g]) * zp(g) * gs[g];
        }
        __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
        int64_t pos = 0;
#define dot(ch, fill) _mm512_cvtepi32_ps(ChunkSum<kBits, kNm, kFlip>(values, masks, xq, ch, pos, fill))
        if constexpr (kGroup32) {
            // Groups of 32: the zero point comes out per lane in integers
            // (z times the lane's sum of q), not per group in float, which
            // would cost a scalar step per 32 columns.
            const int32_t* xs = a.lane_sums.data() + t * a.chunks * 16;
            __m512i fill = _mm512_set1_epi8(static_cast<char>(zp(0)));
            __m512i zv = _mm512_set1_epi32(zp(0));
            for (int64_t ch = 0; ch < chunks; ++ch) {
                if (!sym) {
                    const int z0 = zp(2 * ch), z1 = zp(2 * ch + 1);
                    fill = _mm512_mask_blend_epi8(~__mmask64{0} << 32, _mm512_set1_epi8(static_cast<char>(z0)),
                                                  _mm512_set1_epi8(static_cast<char>(z1)));
                    zv = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(z0), _mm512_set1_epi32(z1));
                }
                const __m512i zq = sym ? _mm512_slli_epi32(_mm512_loadu_si512(xs + 16 * ch), kBits - 1)
                                       : _mm512_mullo_epi32(_mm512_loadu_si512(xs + 16 * ch), zv);
                const __m512i isum = ChunkSum<kBits, kNm, kFlip>(values, masks, xq, ch, pos, fill);
                const __m512 wsv = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(ws[2 * ch]), _mm512_set1_ps(ws[2 * ch + 1]));
                const __m512 scale = _mm512_mul_ps(_mm512_loadu_ps(ls + 16 * ch), wsv);
                const __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(isum, zq));
                if (ch & 1) acc1 = _mm512_fmadd_ps(v, scale, acc1);
                else acc0 = _mm512_fmadd_ps(v, scale, acc0);
            }
        } else {
            const int64_t per = c.group_span / 64;
            for (int64_t g = 0; g < c.groups_per_row; ++g) {
                const __m512i fill = _mm512_set1_epi8(static_cast<char>(zp(g)));
                __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
                const int64_t end = std::min(chunks, (g + 1) * per);
                int64_t ch = g * per;
                for (; ch + 2 <= end; ch += 2) {
                    a0 = _mm512_fmadd_ps(dot(ch, fill), _mm512_loadu_ps(ls + 16 * ch), a0);
                    a1 = _mm512_fmadd_ps(dot(ch + 1, fill), _mm512_loadu_ps(ls + 16 * (ch + 1)), a1);
                }
                if (ch < end) a0 = _mm512_fmadd_ps(dot(ch, fill), _mm512_loadu_ps(ls + 16 * ch), a0);
                acc0 = _mm512_fmadd_ps(_mm512_add_ps(a0, a1), _mm512_set1_ps(ws[g]), acc0);
            }
        }
#undef dot
        const double sum = static_cast<double>(_mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1)));
        c.y[t * c.y_stride + r] = static_cast<float>(sum - corr);
    }
}

template <int kBits, bool kNm, bool kGroup32>
HWY_NOINLINE void Q8Rows(const SparseCall& c, const SparseQ8Activations& a, int64_t r0, int64_t r1,
                         const SparseQ8Scratch& s) {
    const uint8_t* scale_base = c.is_nm ? c.nm.scales : c.bitmask.scales;
    for (int64_t r = r0; r < r1; ++r) {
        ConvertRowScales(scale_base + 2 * r * c.groups_per_row, c.groups_per_row, s.row_scales);
        const uint8_t* masks;
        const uint8_t* values;
        if constexpr (kNm) {
            const NmSparseGeometry& geo = c.nm_geometry;
            masks = c.nm.indices + r * geo.index_row_bytes;  // ExpandChunk maps them to masks
            values = c.nm.values + r * geo.value_row_bytes;
        } else {
            masks = c.bitmask.mask + r * c.bitmask.mask_row_bytes();
            // Chunks load 64 bytes from their first value: rows ending
            // near the plane's end read a zero-padded copy.
            const uint64_t begin = c.bitmask.row_offset(r), end = c.bitmask.row_offset(r + 1);
            values = c.bitmask.values + begin;
            if (end + 64 > c.bitmask_values_size) {
                std::memset(s.values, 0, static_cast<size_t>(end - begin) + 64);
                if (end > begin) std::memcpy(s.values, values, static_cast<size_t>(end - begin));
                values = s.values;
            }
        }
        if (kBits == 8 && c.quant.symmetric) {
            Q8Row<kBits, kNm, kGroup32, 0x80>(c, a, r, s.row_scales, masks, values);
        } else {
            Q8Row<kBits, kNm, kGroup32, 0>(c, a, r, s.row_scales, masks, values);
        }
    }
}

HWY_NOINLINE void SparseRowsQ8(const SparseCall& c, const SparseQ8Activations& a, int64_t r0, int64_t r1,
                               const SparseQ8Scratch& s) {
    const bool g32 = c.group_span == 32;
    if (c.is_nm) {
        if (c.quant.bits == 8) return g32 ? Q8Rows<8, true, true>(c, a, r0, r1, s) : Q8Rows<8, true, false>(c, a, r0, r1, s);
        return g32 ? Q8Rows<4, true, true>(c, a, r0, r1, s) : Q8Rows<4, true, false>(c, a, r0, r1, s);
    }
    return g32 ? Q8Rows<8, false, true>(c, a, r0, r1, s) : Q8Rows<8, false, false>(c, a, r0, r1, s);
}
#else
inline bool SparseQ8Native() { return false; }
// Never called where SparseQ8Native is false (the twin runs instead).
HWY_NOINLINE void SparseRowsQ8(const SparseCall&, const SparseQ8Activations&, int64_t, int64_t,
                               const SparseQ8Scratch&) {}
#endif

}  // namespace sparq::kernels::HWY_NAMESPACE
#if HWY_TARGET == HWY_AVX3_DL
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
