// Prefill with integer dot products: many tokens times one packed matrix
// with Q8 or Q16 activations, on CPUs with AVX-512 VNNI (Highway's AVX3_DL
// target). Highway 1.0.3 has no op for vpdpbusd / vpdpwssd, so this file
// uses the intrinsics on that target only; every other target leaves
// kHasIntDot false and the dispatcher never calls here.
//
// Lanes are tokens. One instruction adds, for 16 tokens at once, the
// products of one step of a row's weights (broadcast) with those tokens'
// activations at the same positions:
//   Q8  (vpdpbusd): 4 unsigned codes u x 4 int8 levels q per lane;
//   Q16 (vpdpwssd): 2 int16 levels u - z x 2 int16 levels q per lane.
// So weights are read in their natural row order (unpacked once per row and
// pass, in block order) and need no transposition; the activations are laid
// out once per call as [token vector][step][16 tokens][4 bytes]
// (kernel_args.h, IntDotActivations). Per activation block the int32 sums
// are exact; then one convert and one FMA with d * dx per block:
//     y[t] = sum_a d_g(a) * dx[t][a] * sum_{c in a} (u_c - z_g(a)) q_c
// Q8 takes the zero point out in integers (the accumulator starts at
// -z * sum q, as vpdpbusd needs unsigned codes); Q16 widens u - z itself.
// Bounds: |u - z| <= 255 and |q| <= 32767 over at most 256 columns stay
// below 2^31.
// A register tile is kDotVectors token vectors x kDotRows rows of int32
// accumulators: per step, 2 vector loads and 12 broadcasts feed 24 dot
// instructions, so each activation byte fetched from L2 serves 12 rows (the
// float accumulators wait in L1 between activation blocks). Each output
// lane sees the same operations whatever tile computes it, so results do
// not depend on tile shapes, chunking or threads.

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

// Register tile: token vectors x rows (2 x 12 int32 accumulators, 2
// activation vectors and a broadcast: within 32 registers).
inline constexpr int kDotVectors = 2;

// Unpacks one whole row to byte codes in block order (codes + b * 32 for
// block b). int4 takes 4 blocks (64 packed bytes) per step: low and high
// nibbles, then 128-bit halves interleaved so each block reads low, high.
template <int kBits, bool kSym>
HWY_INLINE void UnpackCodeRow(const DenseWeights& w, int64_t r, uint8_t* HWY_RESTRICT codes) {
    alignas(64) uint8_t pad[48];
    const RowBlocks<kBits> rb(w.view.code_row(r), w.view.cols, pad);
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

// Row n of a group of kDotRows rows as the kernel reads it, interleaved
// with the others step by step (out[(k * kDotRows + n) * 4 ..], so one
// pointer walks every row of a tile): Q8, byte codes u; Q16, int16 levels
// u - z. `bytes` (stride bytes) and `wide` (2 * stride) are row buffers.
// Then per activation block a: the scale of its group and minus its zero
// point (a block lies in one group).
template <int kBits, bool kSym, bool kWide>
HWY_INLINE void PrepareDotRow(const DenseWeights& w, int64_t r, int64_t n, int64_t act_block, int64_t act_blocks,
                              uint8_t* HWY_RESTRICT bytes, int16_t* HWY_RESTRICT wide, uint8_t* HWY_RESTRICT out,
                              float* HWY_RESTRICT row_scales, float* HWY_RESTRICT d, int32_t* HWY_RESTRICT neg_z) {
    const uint8_t* zero_row = kSym ? nullptr : w.view.zeros + r * w.zero_row_bytes;
    UnpackCodeRow<kBits, kSym>(w, r, bytes);
    const int64_t stride = w.blocks * kBlock;
    const uint8_t* row = bytes;
    if constexpr (kWide) {
        const int64_t blocks_per_group = block_count(w.group_span);
        for (int64_t b = 0; b < w.blocks; ++b) {
            const __m512i u = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(bytes + b * kBlock)));
            const __m512i z = _mm512_set1_epi16(static_cast<int16_t>(GroupZero<kBits, kSym>(zero_row, b / blocks_per_group)));
            _mm512_storeu_si512(wide + b * kBlock, _mm512_sub_epi16(u, z));
        }
        row = reinterpret_cast<const uint8_t*>(wide);
    }
    const int64_t steps = stride / (kWide ? 2 : 4);
    for (int64_t k = 0; k < steps; ++k) std::memcpy(out + (k * kDotRows + n) * 4, row + 4 * k, 4);
    ConvertRowScales(w.view.scales + 2 * r * w.groups_per_row, w.groups_per_row, row_scales);
    for (int64_t a = 0; a < act_blocks; ++a) {
        const int64_t g = a * act_block / w.group_span;
        d[a] = row_scales[g];
        neg_z[a] = -GroupZero<kBits, kSym>(zero_row, g);
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
#define SPARQ_DOT_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
static_assert(kDotRows == 12, "SPARQ_DOT_ROWS lists kDotRows rows");

// Rows [n0, n0 + TN) of the prepared group (`codes` interleaved, params at
// d + n * act_blocks) times token vectors [v0, v0 + TM); writes the outputs
// of rows r + n. `facc` holds TM * TN float vectors.
template <int TM, int TN, bool kSym, bool kWide>
HWY_INLINE void DotTile(const IntDotActivations& x, int64_t v0, const uint8_t* HWY_RESTRICT codes,
                        const float* HWY_RESTRICT d, const int32_t* HWY_RESTRICT neg_z, float* y, int64_t y_stride,
                        int64_t r, float* facc) {
    static_assert(TM >= 1 && TM <= 2 && TN >= 1 && TN <= kDotRows, "tile shape");
    const int64_t ab = x.act_blocks;
    const int64_t steps_per_act = x.act_block / (kWide ? 2 : 4);
    const uint8_t* xq0 = x.q + v0 * x.steps * 64;
    const uint8_t* xq1 = xq0 + (TM == 2 ? x.steps * 64 : 0);
    for (int i = 0; i < TM * TN; ++i) _mm512_storeu_ps(facc + i * kTokenLanes, _mm512_setzero_ps());
    for (int64_t a = 0; a < ab; ++a) {
        const int32_t* sums0 = x.sums + (v0 * ab + a) * kTokenLanes;
        const int32_t* sums1 = sums0 + ab * kTokenLanes;
#define SPARQ_DOT_START(n)                                                                        \
    [[maybe_unused]] __m512i acc0_##n, acc1_##n;                                                  \
    if constexpr (n < TN) {                                                                       \
        acc0_##n = DotStart<kWide>(sums0, neg_z[(kSym ? 0 : n) * ab + a]);                        \
        if constexpr (TM == 2) acc1_##n = DotStart<kWide>(sums1, neg_z[(kSym ? 0 : n) * ab + a]); \
    }
        SPARQ_DOT_ROWS(SPARQ_DOT_START)
#undef SPARQ_DOT_START
        const int64_t k1 = std::min(x.steps, (a + 1) * steps_per_act);
        for (int64_t k = a * steps_per_act; k < k1; ++k) {
            const __m512i v0q = _mm512_loadu_si512(xq0 + k * 64);
            const __m512i v1q = _mm512_loadu_si512(xq1 + k * 64);
            const uint8_t* wk = codes + k * kDotRows * 4;
#define SPARQ_DOT_STEP(n)                                          \
    if constexpr (n < TN) {                                        \
        int32_t step;                                              \
        std::memcpy(&step, wk + 4 * n, 4);                         \
        const __m512i wb = _mm512_set1_epi32(step);                \
        DotStep<kWide>(acc0_##n, wb, v0q);                         \
        if constexpr (TM == 2) DotStep<kWide>(acc1_##n, wb, v1q);  \
    }
            SPARQ_DOT_ROWS(SPARQ_DOT_STEP)
#undef SPARQ_DOT_STEP
        }
        const __m512 dx0 = _mm512_loadu_ps(x.scales + (v0 * ab + a) * kTokenLanes);
        const __m512 dx1 = _mm512_loadu_ps(x.scales + ((v0 + TM - 1) * ab + a) * kTokenLanes);
#define SPARQ_DOT_FINISH(n)                                                                      \
    if constexpr (n < TN) {                                                                      \
        DotFinish(facc + n * kTokenLanes, acc0_##n, dx0, d[n * ab + a]);                         \
        if constexpr (TM == 2) DotFinish(facc + (TN + n) * kTokenLanes, acc1_##n, dx1, d[n * ab + a]); \
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

// All `rows` prepared rows (at most kDotRows) times token vectors
// [v0, v0 + TM): whole tiles of 12 rows, then 8, 4, 2, 1.
template <int TM, bool kSym, bool kWide>
HWY_INLINE void DotTileRows(int64_t rows, const IntDotActivations& x, int64_t v0, const uint8_t* codes,
                            const float* d, const int32_t* neg_z, float* y, int64_t y_stride, int64_t r,
                            float* facc) {
    const int64_t ab = x.act_blocks;
    int64_t n = 0;
    const auto tile = [&](auto tn) HWY_ATTR {
        constexpr int TN = decltype(tn)::value;
        for (; n + TN <= rows; n += TN) {
            DotTile<TM, TN, kSym, kWide>(x, v0, codes + n * 4, d + n * ab, neg_z + n * ab, y, y_stride, r + n,
                                         facc);
        }
    };
    tile(std::integral_constant<int, 12>());
    tile(std::integral_constant<int, 8>());
    tile(std::integral_constant<int, 4>());
    tile(std::integral_constant<int, 2>());
    tile(std::integral_constant<int, 1>());
}

// Token vectors per pass over the chunk's rows: their activations (16 *
// steps * 4 bytes each) stay within about half of a 1 MiB L2; rows are
// prepared once per pass.
HWY_INLINE int64_t DotVectorsPerPass(int64_t steps) {
    const int64_t fit = (int64_t{512} * 1024) / std::max<int64_t>(kTokenLanes * 4 * steps, 1);
    return std::max<int64_t>(kDotVectors, fit / kDotVectors * kDotVectors);
}

template <int kBits, bool kSym, bool kWide>
HWY_INLINE void DenseRowsByIntDotFor(const DenseCall& c, int64_t r0, int64_t r1, const KernelScratch& s) {
    const IntDotActivations& x = c.dot;
    const int64_t stride = c.w.blocks * kBlock;
    const int64_t ab = x.act_blocks;
    // The scratch layout of int_dot_scratch_floats (kernel_args.h).
    float* facc = s.weight_tile;
    uint8_t* codes = reinterpret_cast<uint8_t*>(facc + kDotVectors * kDotRows * kTokenLanes);
    int16_t* wide = reinterpret_cast<int16_t*>(codes + kDotRows * 2 * stride);
    uint8_t* bytes = reinterpret_cast<uint8_t*>(wide + stride);
    float* d = reinterpret_cast<float*>(bytes + stride);
    int32_t* neg_z = reinterpret_cast<int32_t*>(d + kDotRows * ab);
    const int64_t per_pass = DotVectorsPerPass(x.steps);
    for (int64_t v0 = 0; v0 < x.vectors; v0 += per_pass) {
        const int64_t v1 = std::min(x.vectors, v0 + per_pass);
        for (int64_t r = r0; r < r1; r += kDotRows) {
            const int64_t rows = std::min<int64_t>(kDotRows, r1 - r);
            for (int64_t n = 0; n < rows; ++n) {
                PrepareDotRow<kBits, kSym, kWide>(c.w, r + n, n, x.act_block, ab, bytes, wide, codes, s.row_scales,
                                                  d + n * ab, neg_z + n * ab);
            }
            int64_t v = v0;
            for (; v + kDotVectors <= v1; v += kDotVectors)
                DotTileRows<kDotVectors, kSym, kWide>(rows, x, v, codes, d, neg_z, c.y, c.y_stride, r, facc);
            for (; v < v1; ++v) DotTileRows<1, kSym, kWide>(rows, x, v, codes, d, neg_z, c.y, c.y_stride, r, facc);
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
