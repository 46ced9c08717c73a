// Prefill with integer dot products: many tokens times one packed matrix
// with Q8 or Q16 activations, on CPUs with AVX-512 VNNI (Highway's AVX3_DL
// target). Highway 1.0.3 has no op for vpdpbusd / vpdpwssd, so this file
// uses the intrinsics on that target only; every other target leaves
// kHasIntDot false and the dispatcher never calls here.
//
// Lanes are tokens. One instruction adds, for 16 tokens at once, the
// products of one step of a row's weights (4 bytes, broadcast) with those
// tokens' activations at the same positions:
//   Q8  (vpdpbusd): 4 unsigned codes u x 4 int8 levels q per lane;
//   Q16 (vpdpwssd): 2 int16 levels u - z x 2 int16 levels q per lane.
// The activations are laid out once per call as [token vector][step][16
// tokens][4 bytes] (kernel_args.h, IntDotActivations). A chunk's rows are
// unpacked once per call and transposed in groups of 16 rows to [step][16
// rows][4 bytes], so one pointer walks all the rows of a register tile.
// Per activation block the int32 sums are exact; then one convert and one
// FMA with d * dx per block:
//     y[t] = sum_a d_g(a) * dx[t][a] * sum_{c in a} (u_c - z_g(a)) q_c
// Q8 takes the zero point out in integers (the accumulator starts at
// -z * sum q, as vpdpbusd needs unsigned codes); Q16 widens u - z itself.
// Bounds: |u - z| <= 255 and |q| <= 32767 over at most 256 columns stay
// below 2^31.
// A register tile is 3 token vectors x 8 rows of int32 accumulators: per
// step, 3 vector loads and 8 broadcasts feed 24 dot instructions; the float
// accumulators wait in L1 between activation blocks. Each output lane sees
// the same operations whatever tile computes it, so results do not depend
// on tile shapes, chunking or threads.

#if defined(SPARQ_RUNTIME_KERNELS_INT_DOT_TILES_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_INT_DOT_TILES_INL_H_
#undef SPARQ_RUNTIME_KERNELS_INT_DOT_TILES_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_INT_DOT_TILES_INL_H_
#endif

#include "runtime/kernels/dense_row-inl.h"

HWY_BEFORE_NAMESPACE();
// Highway's AVX3_DL attribute string names avxvnni (VEX) but not avx512vnni;
// its runtime check for AVX3_DL does require AVX512-VNNI, so adding the
// attribute here is safe for every CPU that dispatches to this target.
#if HWY_TARGET == HWY_AVX3_DL
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
#endif
namespace sparq::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#if HWY_TARGET == HWY_AVX3_DL

inline constexpr bool kHasIntDot = true;

// Register tile: token vectors x rows, TM x TN int32 accumulators (at
// most 3 x 8 = 24, with TM activation vectors and a broadcast: within 32
// registers). Rows are prepared in groups of kDotGroupRows = 16.
inline constexpr int kDotVectors = 3;
inline constexpr int kDotTileRows = 8;
static_assert(kDotGroupRows == 16, "a group is one 16 x 16 transpose wide");

// Unpacks one whole row to byte codes in block order (codes + b * 32 for
// block b). int4 takes 4 blocks (64 packed bytes) per step: low and high
// nibbles, then 128-bit halves interleaved so each block reads low, high.
template <int kBits, bool kSym>
HWY_INLINE void UnpackCodeRow(const DenseWeights& w, int64_t r, uint8_t* HWY_RESTRICT codes) {
    alignas(64) uint8_t pad[48];
    const RowBlocks<kBits> rb(w.code_row(r), w.view.cols, pad);
    int64_t b = 0;
    if constexpr (kBits == 4) {
        const __m512i mask = _mm512_set1_epi8(0x0F);
        const __m512i first = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
        const __m512i second = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
        for (; b + 4 <= rb.full_blocks; b += 4) {
            const __m512i v = _mm512_loadu_si512(rb.low + b * 16);
            const __m512i lo = _mm512_and_si512(v, mask);
            const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
            _mm512_storeu_si512(codes + b * kBlock, _mm512_permutex2var_epi64(lo, first, hi));
            _mm512_storeu_si512(codes + b * kBlock + 64, _mm512_permutex2var_epi64(lo, second, hi));
        }
    } else if constexpr (kBits == 8) {
        const __m512i flip = _mm512_set1_epi8(kSym ? static_cast<char>(0x80) : 0);
        for (; b + 2 <= rb.full_blocks; b += 2) {
            _mm512_storeu_si512(codes + b * kBlock,
                                _mm512_xor_si512(_mm512_loadu_si512(rb.low + b * kBlock), flip));
        }
    }
    for (; b < w.blocks; ++b) UnpackBlock<kBits, kSym>(rb, b, codes + b * kBlock);
}

template <int kBits, bool kSym>
HWY_INLINE int GroupZero(const uint8_t* zero_row, int64_t g) {
    return kSym ? (1 << (kBits - 1)) : ZeroPoint<kBits>(zero_row, g);
}

// Row r as the kernel's steps read it, into `out` (row_bytes, padded with
// zeros to a multiple of 64): Q8, byte codes u; Q16, int16 levels u - z
// (via `bytes`, one row of codes). Then per activation block a: the scale
// of its group and minus its zero point (a block lies in one group).
template <int kBits, bool kSym, bool kWide>
HWY_INLINE void PrepareDotRow(const DenseWeights& w, int64_t r, int64_t act_block, int64_t act_blocks,
                              uint8_t* HWY_RESTRICT bytes, uint8_t* HWY_RESTRICT out, int64_t padded_bytes,
                              float* HWY_RESTRICT row_scales, float* HWY_RESTRICT d, int32_t* HWY_RESTRICT neg_z) {
    const uint8_t* zero_row = kSym ? nullptr : w.view.zeros + r * w.zero_row_bytes;
    const int64_t stride = w.blocks * kBlock;
    int64_t row_bytes = stride;
    if constexpr (kWide) {
        UnpackCodeRow<kBits, kSym>(w, r, bytes);
        const int64_t blocks_per_group = block_count(w.group_span);
        // Counters, not divisions: this runs for every block of every row.
        for (int64_t b = 0, g = 0, in_group = 0; b < w.blocks; ++b) {
            const __m512i u = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + b * kBlock)));
            const __m512i z = _mm512_set1_epi16(static_cast<int16_t>(GroupZero<kBits, kSym>(zero_row, g)));
            _mm512_storeu_si512(out + b * kBlock * 2, _mm512_sub_epi16(u, z));
            if (++in_group == blocks_per_group) {
                ++g;
                in_group = 0;
            }
        }
        row_bytes = 2 * stride;
    } else {
        UnpackCodeRow<kBits, kSym>(w, r, out);
    }
    std::memset(out + row_bytes, 0, static_cast<size_t>(padded_bytes - row_bytes));
    ConvertRowScales(w.view.scales + 2 * r * w.groups_per_row, w.groups_per_row, row_scales);
    // Groups hold whole activation blocks (one group per row holds all).
    const int64_t acts_per_group = w.groups_per_row == 1 ? act_blocks : std::max<int64_t>(1, w.group_span / act_block);
    for (int64_t a = 0, g = 0, in_group = 0; a < act_blocks; ++a) {
        d[a] = row_scales[g];
        neg_z[a] = -GroupZero<kBits, kSym>(zero_row, g);
        if (++in_group == acts_per_group) {
            ++g;
            in_group = 0;
        }
    }
}

// Transposes 16 x 16 int32: row n (src + n * src_stride, 64 bytes) to
// dst + k * 64 for each step k: lanes within 128 bits for 4 rows at a time,
// then 128-bit blocks across the 4 quarters. Named registers throughout:
// GCC spills arrays of vectors.
HWY_INLINE void Transpose16x16(const uint8_t* HWY_RESTRICT src, int64_t src_stride, uint8_t* HWY_RESTRICT dst) {
    // u<q><i>: rows 4q..4q+3, step 4L + i in 128-bit block L.
#define SPARQ_QUARTER(q)                                                                 \
    __m512i u##q##0, u##q##1, u##q##2, u##q##3;                                          \
    {                                                                                    \
        const __m512i r0 = _mm512_loadu_si512(src + (4 * q + 0) * src_stride);           \
        const __m512i r1 = _mm512_loadu_si512(src + (4 * q + 1) * src_stride);           \
        const __m512i r2 = _mm512_loadu_si512(src + (4 * q + 2) * src_stride);           \
        const __m512i r3 = _mm512_loadu_si512(src + (4 * q + 3) * src_stride);           \
        const __m512i t0 = _mm512_unpacklo_epi32(r0, r1), t1 = _mm512_unpackhi_epi32(r0, r1); \
        const __m512i t2 = _mm512_unpacklo_epi32(r2, r3), t3 = _mm512_unpackhi_epi32(r2, r3); \
        u##q##0 = _mm512_unpacklo_epi64(t0, t2);                                         \
        u##q##1 = _mm512_unpackhi_epi64(t0, t2);                                         \
        u##q##2 = _mm512_unpacklo_epi64(t1, t3);                                         \
        u##q##3 = _mm512_unpackhi_epi64(t1, t3);                                         \
    }
    SPARQ_QUARTER(0)
    SPARQ_QUARTER(1)
    SPARQ_QUARTER(2)
    SPARQ_QUARTER(3)
#undef SPARQ_QUARTER
    // Step 4L + i gathers block L of u0i, u1i, u2i, u3i.
#define SPARQ_STEPS(i)                                                                   \
    {                                                                                    \
        const __m512i ab_even = _mm512_shuffle_i32x4(u0##i, u1##i, 0x88); /* A0 A2 B0 B2 */ \
        const __m512i ab_odd = _mm512_shuffle_i32x4(u0##i, u1##i, 0xDD);  /* A1 A3 B1 B3 */ \
        const __m512i cd_even = _mm512_shuffle_i32x4(u2##i, u3##i, 0x88);                \
        const __m512i cd_odd = _mm512_shuffle_i32x4(u2##i, u3##i, 0xDD);                 \
        _mm512_storeu_si512(dst + (0 + i) * 64, _mm512_shuffle_i32x4(ab_even, cd_even, 0x88));  \
        _mm512_storeu_si512(dst + (4 + i) * 64, _mm512_shuffle_i32x4(ab_odd, cd_odd, 0x88));    \
        _mm512_storeu_si512(dst + (8 + i) * 64, _mm512_shuffle_i32x4(ab_even, cd_even, 0xDD));  \
        _mm512_storeu_si512(dst + (12 + i) * 64, _mm512_shuffle_i32x4(ab_odd, cd_odd, 0xDD));   \
    }
    SPARQ_STEPS(0)
    SPARQ_STEPS(1)
    SPARQ_STEPS(2)
    SPARQ_STEPS(3)
#undef SPARQ_STEPS
}

inline constexpr int64_t kPrefetchRows = 4;

HWY_INLINE void PrefetchCodeRow(const DenseWeights& w, int64_t r) {
    const char* row = reinterpret_cast<const char*>(w.code_row(r));
    for (int64_t i = 0; i < w.code_row_bytes; i += 64) _mm_prefetch(row + i, _MM_HINT_T0);
}

// Prepares rows [r, r + rows) (rows <= 16) as one group, interleaved step by
// step: group + k * 64 holds the 16 rows' 4 bytes of step k (rows past
// `rows` zero), so one pointer walks every row of a tile. Rows up to r_end
// follow (prefetched).
template <int kBits, bool kSym, bool kWide>
HWY_INLINE void PrepareDotGroup(const DenseWeights& w, int64_t r, int64_t rows, int64_t r_end, int64_t steps,
                                int64_t act_block,
                                int64_t act_blocks, uint8_t* HWY_RESTRICT temp, uint8_t* HWY_RESTRICT bytes,
                                uint8_t* HWY_RESTRICT group, float* HWY_RESTRICT row_scales, float* HWY_RESTRICT d,
                                int32_t* HWY_RESTRICT neg_z) {
    const int64_t padded = (steps * 4 + 63) / 64 * 64;
    for (int64_t n = 0; n < kDotGroupRows; ++n) {
        uint8_t* row = temp + n * padded;
        // The codes come from DRAM (each matrix is read once per call):
        // fetch a few rows ahead, or every row waits on its first misses.
        if (r + n + kPrefetchRows < r_end) PrefetchCodeRow(w, r + n + kPrefetchRows);
        if (n < rows) {
            PrepareDotRow<kBits, kSym, kWide>(w, r + n, act_block, act_blocks, bytes, row, padded, row_scales,
                                              d + n * act_blocks, neg_z + n * act_blocks);
        } else {
            std::memset(row, 0, static_cast<size_t>(padded));
        }
    }
    int64_t k0 = 0;
    for (; k0 + 16 <= steps; k0 += 16) Transpose16x16(temp + k0 * 4, padded, group + k0 * 64);
    if (k0 < steps) {  // a last partial slab (Q8 rows of an odd number of blocks)
        alignas(64) uint8_t slab[16 * 64];
        Transpose16x16(temp + k0 * 4, padded, slab);
        std::memcpy(group + k0 * 64, slab, static_cast<size_t>((steps - k0) * 64));
    }
}

// acc += the step's products, lane by lane. Inline assembly: GCC 12 wraps
// the intrinsics' loop-carried accumulators in register copies (one per
// instruction, several times the cost of the products); "+v" keeps each
// accumulator in place.
template <bool kWide>
HWY_INLINE void DotStep(__m512i& acc, __m512i weights, __m512i activations) {
    if constexpr (kWide) {
        asm("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(weights), "v"(activations));
    } else {  // weights are the unsigned operand
        asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(weights), "v"(activations));
    }
}

// The starting value of an activation block's int32 sums: Q8 takes the zero
// point out here, -z * sum q (neg_z holds -z); Q16 levels hold it already.
template <bool kWide>
HWY_INLINE __m512i DotStart(const int32_t* HWY_RESTRICT sums, int32_t neg_z) {
    if constexpr (kWide) {
        return _mm512_setzero_si512();
    } else {
        return _mm512_mullo_epi32(_mm512_loadu_si512(sums), _mm512_set1_epi32(neg_z));
    }
}

// facc += float(acc) * dx * d, the float accumulator waiting in L1.
HWY_INLINE void DotFinish(float* facc, __m512i acc, __m512 dx, float d) {
    const __m512 scale = _mm512_mul_ps(dx, _mm512_set1_ps(d));
    _mm512_storeu_ps(facc, _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), scale, _mm512_loadu_ps(facc)));
}

// Every row index of a register tile, for the macros below: the tile's
// accumulators are named variables, as GCC keeps arrays of vectors in
// memory; rows past TN compile to nothing.
#define SPARQ_DOT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
static_assert(kDotTileRows == 8, "SPARQ_DOT_ROWS lists kDotTileRows rows");

// Rows [n0, n0 + TN) of a prepared group (`codes` = group + n0 * 4, params
// at d + n * act_blocks) times token vectors [v0, v0 + TM); writes the
// outputs of rows r + n. `facc` holds TM * TN float vectors.
template <int TM, int TN, bool kSym, bool kWide>
HWY_INLINE void DotTile(const IntDotActivations& x, int64_t v0, const uint8_t* HWY_RESTRICT codes,
                        const float* HWY_RESTRICT d, const int32_t* HWY_RESTRICT neg_z, float* y, int64_t y_stride,
                        int64_t r, float* facc) {
    static_assert(TM >= 1 && TM <= kDotVectors && TN >= 1 && TN <= kDotTileRows, "tile shape");
    const int64_t ab = x.act_blocks;
    const int64_t steps_per_act = x.act_block / (kWide ? 2 : 4);
    const int64_t vector_bytes = x.steps * 64;
    const uint8_t* xq0 = x.q + v0 * vector_bytes;
    const uint8_t* xq1 = xq0 + (TM >= 2 ? vector_bytes : 0);
    const uint8_t* xq2 = xq0 + (TM >= 3 ? 2 * vector_bytes : 0);
    for (int i = 0; i < TM * TN; ++i) _mm512_storeu_ps(facc + i * kTokenLanes, _mm512_setzero_ps());
    for (int64_t a = 0; a < ab; ++a) {
        const int32_t* sums0 = x.sums + (v0 * ab + a) * kTokenLanes;
        const int32_t* sums1 = sums0 + (TM >= 2 ? ab * kTokenLanes : 0);
        const int32_t* sums2 = sums0 + (TM >= 3 ? 2 * ab * kTokenLanes : 0);
#define SPARQ_DOT_START(n)                                                     \
    [[maybe_unused]] __m512i acc0_##n, acc1_##n, acc2_##n;                     \
    if constexpr (n < TN) {                                                    \
        const int32_t z = neg_z[(kSym ? 0 : n) * ab + a];                      \
        acc0_##n = DotStart<kWide>(sums0, z);                                  \
        if constexpr (TM >= 2) acc1_##n = DotStart<kWide>(sums1, z);           \
        if constexpr (TM >= 3) acc2_##n = DotStart<kWide>(sums2, z);           \
    }
        SPARQ_DOT_ROWS(SPARQ_DOT_START)
#undef SPARQ_DOT_START
        const int64_t k1 = std::min(x.steps, (a + 1) * steps_per_act);
        for (int64_t k = a * steps_per_act; k < k1; ++k) {
            const __m512i x0 = _mm512_loadu_si512(xq0 + k * 64);
            [[maybe_unused]] __m512i x1, x2;
            if constexpr (TM >= 2) x1 = _mm512_loadu_si512(xq1 + k * 64);
            if constexpr (TM >= 3) x2 = _mm512_loadu_si512(xq2 + k * 64);
            const uint8_t* wk = codes + k * 64;
#define SPARQ_DOT_STEP(n)                                         \
    if constexpr (n < TN) {                                       \
        int32_t step;                                             \
        std::memcpy(&step, wk + 4 * n, 4);                        \
        const __m512i wb = _mm512_set1_epi32(step);               \
        DotStep<kWide>(acc0_##n, wb, x0);                         \
        if constexpr (TM >= 2) DotStep<kWide>(acc1_##n, wb, x1);  \
        if constexpr (TM >= 3) DotStep<kWide>(acc2_##n, wb, x2);  \
    }
            SPARQ_DOT_ROWS(SPARQ_DOT_STEP)
#undef SPARQ_DOT_STEP
        }
        const float* dx = x.scales + (v0 * ab + a) * kTokenLanes;
        const __m512 dx0 = _mm512_loadu_ps(dx);
        const __m512 dx1 = _mm512_loadu_ps(dx + (TM >= 2 ? ab * kTokenLanes : 0));
        const __m512 dx2 = _mm512_loadu_ps(dx + (TM >= 3 ? 2 * ab * kTokenLanes : 0));
#define SPARQ_DOT_FINISH(n)                                                                              \
    if constexpr (n < TN) {                                                                              \
        DotFinish(facc + n * kTokenLanes, acc0_##n, dx0, d[n * ab + a]);                                 \
        if constexpr (TM >= 2) DotFinish(facc + (TN + n) * kTokenLanes, acc1_##n, dx1, d[n * ab + a]);     \
        if constexpr (TM >= 3) DotFinish(facc + (2 * TN + n) * kTokenLanes, acc2_##n, dx2, d[n * ab + a]); \
    }
        SPARQ_DOT_ROWS(SPARQ_DOT_FINISH)
#undef SPARQ_DOT_FINISH
    }
    for (int m = 0; m < TM; ++m) {
        const int64_t t0 = (v0 + m) * kTokenLanes;
        const int64_t valid = std::min<int64_t>(kTokenLanes, x.tokens - t0);
        for (int n = 0; n < TN; ++n) {
            const float* f = facc + (m * TN + n) * kTokenLanes;
            for (int64_t i = 0; i < valid; ++i) y[(t0 + i) * y_stride + r + n] = f[i];
        }
    }
}

// The `rows` rows of a prepared group times token vectors [v0, v0 + TM):
// tiles of 8 rows, then 4, 2, 1.
template <int TM, bool kSym, bool kWide>
HWY_INLINE void DotGroupTiles(int64_t rows, const IntDotActivations& x, int64_t v0, const uint8_t* group,
                              const float* d, const int32_t* neg_z, float* y, int64_t y_stride, int64_t r,
                              float* facc) {
    const int64_t ab = x.act_blocks;
    int64_t n = 0;
    const auto tile = [&](auto tn) HWY_ATTR {
        constexpr int TN = decltype(tn)::value;
        for (; n + TN <= rows; n += TN) {
            DotTile<TM, TN, kSym, kWide>(x, v0, group + n * 4, d + n * ab, neg_z + n * ab, y, y_stride, r + n,
                                         facc);
        }
    };
    tile(std::integral_constant<int, 8>());
    tile(std::integral_constant<int, 4>());
    tile(std::integral_constant<int, 2>());
    tile(std::integral_constant<int, 1>());
}

// Token vectors per pass over the chunk's rows: their activations (16 *
// steps * 4 bytes each) stay within about half of a 1 MiB L2.
HWY_INLINE int64_t DotVectorsPerPass(int64_t steps) {
    const int64_t fit = (int64_t{512} * 1024) / std::max<int64_t>(kTokenLanes * 4 * steps, 1);
    return std::max<int64_t>(kDotVectors, fit);
}

// Rows [r0, r1) are prepared once, in groups of 16, then every token
// vector passes over them.
template <int kBits, bool kSym, bool kWide>
HWY_INLINE void DenseRowsByIntDotFor(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    const IntDotActivations& x = c.dot;
    const int64_t ab = x.act_blocks;
    const IntDotScratch layout(c.w.blocks * kBlock, ab, r1 - r0);
    uint8_t* base = reinterpret_cast<uint8_t*>(s.weight_tile);
    float* facc = reinterpret_cast<float*>(base + layout.facc);
    uint8_t* prepared = base + layout.prepared;
    uint8_t* temp = base + layout.temp;
    uint8_t* bytes = base + layout.bytes;
    float* d = reinterpret_cast<float*>(base + layout.scales);
    int32_t* neg_z = reinterpret_cast<int32_t*>(base + layout.zeros);
    const int64_t group_bytes = x.steps * 64;
    for (int64_t r = r0; r < std::min(r1, r0 + kPrefetchRows); ++r) PrefetchCodeRow(c.w, r);
    for (int64_t r = r0, g = 0; r < r1; r += kDotGroupRows, ++g) {
        PrepareDotGroup<kBits, kSym, kWide>(c.w, r, std::min<int64_t>(kDotGroupRows, r1 - r), r1, x.steps, x.act_block, ab,
                                            temp, bytes, prepared + g * group_bytes, s.row_scales,
                                            d + (r - r0) * ab, neg_z + (r - r0) * ab);
    }
    const int64_t per_pass = DotVectorsPerPass(x.steps);
    for (int64_t v0 = 0; v0 < x.vectors; v0 += per_pass) {
        const int64_t v1 = std::min(x.vectors, v0 + per_pass);
        for (int64_t r = r0, g = 0; r < r1; r += kDotGroupRows, ++g) {
            const int64_t rows = std::min<int64_t>(kDotGroupRows, r1 - r);
            const uint8_t* group = prepared + g * group_bytes;
            const float* gd = d + (r - r0) * ab;
            const int32_t* gz = neg_z + (r - r0) * ab;
            int64_t v = v0;
            for (; v + kDotVectors <= v1; v += kDotVectors)
                DotGroupTiles<kDotVectors, kSym, kWide>(rows, x, v, group, gd, gz, c.y, c.y_stride, r, facc);
            if (v1 - v == 2) DotGroupTiles<2, kSym, kWide>(rows, x, v, group, gd, gz, c.y, c.y_stride, r, facc);
            if (v1 - v == 1) DotGroupTiles<1, kSym, kWide>(rows, x, v, group, gd, gz, c.y, c.y_stride, r, facc);
        }
    }
}

template <int kBits, bool kSym>
HWY_NOINLINE void DenseRowsByIntDot(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    if (c.dot.wide) {
        DenseRowsByIntDotFor<kBits, kSym, true>(c, r0, r1, s);
    } else {
        DenseRowsByIntDotFor<kBits, kSym, false>(c, r0, r1, s);
    }
}

#else  // no integer dot products on this target

inline constexpr bool kHasIntDot = false;

template <int kBits, bool kSym>
HWY_NOINLINE void DenseRowsByIntDot(const DenseCall&, int64_t, int64_t, const KernelScratch&) {}

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
