// Q16-activation decode kernels of the sparse encodings (see
// sparse_matmul.h), for symmetric int8 and int4 values. Per chunk of 64
// dense columns the kept values meet their own activations, so the integer
// work is per KEPT weight, not per dense column:
//
// 2:4. A chunk keeps 32 values and its 32 two-bit index fields are one
// 64-bit word. Broadcast to every qword, vpmultishiftqb pulls field k to
// the low byte of word lane k, one ternary-logic op keeps its two bits and
// adds the run's base column (4 * run), and vpermt2w gathers the 32 int16
// activations from the chunk's 64 (two registers). One vpdpwssd then
// multiplies them with the 32 values widened to int16:
//   int8:  32 bytes sign-extended (symmetric rows store the level as a
//          two's-complement byte, u ^ 0x80);
//   int4:  16 bytes broadcast per 128 bits; vpmultishiftqb puts nibble k
//          at the top of its word lane, and xor 0x8000 + arithmetic shift
//          right 12 turn the offset code u into the level u - 8.
// int8 keeps value order, so int32 lane j covers run j (columns 4j..4j+3):
// lanes 0-7 are the chunk's first 32 columns, 8-15 the second. int4's lanes
// take the kept values of qword (lane / 2) % 2 of the broadcast: lanes
// {0,1,4,5,8,9,12,13} are the first 32 columns. Groups of 32 put each
// lane's scale in place with one blend (BlockScales). int4 rows with
// groups of 32 and an even number of chunks go two chunks at a time on
// byte dot products instead (Nm24PairSums): four vpermb gather the
// activations' bytes, three vpdpbusd sum them, one float step per pair.
//
// Bitmask (int8). Per 64 columns the row's 64 mask bits spread the stored
// values (contiguous, loaded from a running position) to their columns
// with vpexpandb or one masked vpermb (ExpandBytes), pruned columns 0; three vpdpbusd
// with the activations split into bytes sum them (BitmaskChunkSums).
//
// Sums are exact int32 per activation block (|level| <= 127, 256 columns
// at most: below 2^31), then y = sum_s d_g(s) dx_s I_s in float, as the
// dense row drivers do (wide_rows-inl.h). Rows go four at a time
// (Q16Tile). Native only on AVX3_DL (VBMI, VBMI2, VNNI); callers take these
// only where sparse_q16_native().

#if defined(SPARQ_RUNTIME_KERNELS_SPARSE_Q16_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef SPARQ_RUNTIME_KERNELS_SPARSE_Q16_INL_H_
#undef SPARQ_RUNTIME_KERNELS_SPARSE_Q16_INL_H_
#else
#define SPARQ_RUNTIME_KERNELS_SPARSE_Q16_INL_H_
#endif

#include <algorithm>
#include <bit>
#include <cstring>

#include "runtime/kernels/kernel_args.h"
#include "runtime/kernels/kernel_common-inl.h"
#include "runtime/kernels/prefetch_slices.h"
#include "runtime/kernels/sparse_matmul.h"
#include "runtime/kernels/wide_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {

#if HWY_TARGET == HWY_AVX3_DL
inline bool SparseQ16Native() { return true; }

// Control bytes and bases, built once (constexpr tables keep the kernels
// free of setup work).
struct Q16Tables {
    alignas(64) uint8_t index_control_int8[64];  // word k: field k
    alignas(64) uint8_t index_control_int4[64];  // word L: field of kept_int4(L)
    alignas(64) uint16_t base_int8[32];          // 4 * (k / 2)
    alignas(64) uint16_t base_int4[32];
    alignas(64) uint8_t value_control_int4[64];  // high byte of word L: nibble of kept_int4(L) at its top
    alignas(64) uint8_t mask_byte_of_lane[64];   // ExpandBytes: j / 8
    alignas(64) uint8_t bits_below_in_byte[64];  // (1 << j % 8) - 1
    alignas(64) uint8_t qword_count_of_lane[64]; // 8 * (j / 8): byte 0 of qword j / 8
    alignas(64) uint64_t bytes_below_qword[8];   // qword q: the mask's bytes below byte q
};

// int4: word L of the broadcast takes qword (L / 4) % 2 = the 16 values of
// that half, kept index 16 * half + 4 * (L / 8) + L % 4.
constexpr int KeptOfInt4Word(int lane) { return 16 * ((lane / 4) % 2) + 4 * (lane / 8) + lane % 4; }

constexpr Q16Tables MakeQ16Tables() {
    Q16Tables t{};
    for (int lane = 0; lane < 32; ++lane) {
        const int k8 = lane, k4 = KeptOfInt4Word(lane);
        t.index_control_int8[2 * lane] = static_cast<uint8_t>(2 * k8);
        t.index_control_int4[2 * lane] = static_cast<uint8_t>(2 * k4);
        t.base_int8[lane] = static_cast<uint16_t>(4 * (k8 / 2));
        t.base_int4[lane] = static_cast<uint16_t>(4 * (k4 / 2));
        // Bits [4 (k % 16) - 4, + 8) of the qword: the nibble lands in the
        // byte's top half (offsets wrap within the qword).
        t.value_control_int4[2 * lane + 1] = static_cast<uint8_t>((4 * (k4 % 16) + 60) % 64);
    }
    for (int j = 0; j < 64; ++j) {
        t.mask_byte_of_lane[j] = static_cast<uint8_t>(j / 8);
        t.bits_below_in_byte[j] = static_cast<uint8_t>((1u << (j % 8)) - 1);
        t.qword_count_of_lane[j] = static_cast<uint8_t>(8 * (j / 8));
    }
    for (int q = 0; q < 8; ++q) t.bytes_below_qword[q] = q == 0 ? 0 : ~uint64_t{0} >> (64 - 8 * q);
    return t;
}
inline constexpr Q16Tables kQ16Tables = MakeQ16Tables();

// The 32 kept values' activations of 2:4 chunk ch.
template <int kBits>
HWY_INLINE __m512i GatherNm24Activations(const uint8_t* HWY_RESTRICT indices, const int16_t* HWY_RESTRICT xq,
                                         int64_t ch) {
    const __m512i control = _mm512_load_si512(kBits == 8 ? kQ16Tables.index_control_int8 : kQ16Tables.index_control_int4);
    const __m512i base = _mm512_load_si512(kBits == 8 ? kQ16Tables.base_int8 : kQ16Tables.base_int4);
    // Broadcast straight from memory (inline assembly: GCC would go through
    // a general register, a slot on the shuffle port this gather needs).
    __m512i fields;
    asm("vpbroadcastq %1, %0" : "=v"(fields) : "m"(*reinterpret_cast<const uint64_t*>(indices + 8 * ch)));
    const __m512i shifted = _mm512_multishift_epi64_epi8(control, fields);
    // (shifted & 3) | base: 0xEA is A & B | C for A, B, C = shifted, 3, base.
    const __m512i idx = _mm512_ternarylogic_epi32(shifted, _mm512_set1_epi16(3), base, 0xEA);
    return _mm512_permutex2var_epi16(_mm512_loadu_si512(xq + 64 * ch), idx, _mm512_loadu_si512(xq + 64 * ch + 32));
}

// The 32 kept levels of 2:4 chunk ch as int16, in the order the gather
// above expects.
template <int kBits>
HWY_INLINE __m512i Nm24Levels(const uint8_t* HWY_RESTRICT values, int64_t ch) {
    if constexpr (kBits == 8) {
        return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(values + 32 * ch)));
    } else {
        const __m512i bytes = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(values + 16 * ch)));
        const __m512i top = _mm512_multishift_epi64_epi8(_mm512_load_si512(kQ16Tables.value_control_int4), bytes);
        return _mm512_srai_epi16(_mm512_xor_si512(top, _mm512_set1_epi16(static_cast<int16_t>(0x8000))), 12);
    }
}

template <int kBits>
HWY_INLINE __m512i Nm24ChunkSums(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT indices,
                                 const int16_t* HWY_RESTRICT xq, int64_t ch, __m512i acc) {
    using hn::Vec;
    const __m512i x = GatherNm24Activations<kBits>(indices, xq, ch);
    return PairwiseMulAdd(Vec<DW32>{acc}, Vec<DW16>{Nm24Levels<kBits>(values, ch)}, Vec<DW16>{x}).raw;
}

// The 64 bytes at `values` spread to the lanes whose bit is set, the
// others 0: vpexpandb, or (kExpandInstruction false) the same without it.
// AMD's Zen 4/5 take about 15 cycles for one zmm vpexpandb, the simple ops
// below about 5 (one thread, cached data: 1.6 against 4.3-4.8 ns per 64
// columns); Intel's Sapphire Rapids runs vpexpandb in about 2 and the ops
// below in about 6 (1.67 against 2.43 ns per 64 columns with the three
// products of BitmaskChunkSums). The caller picks (SparseCall). Lane j reads value
// number popcount(bits below j) = the set bits below j in its own mask byte
// (vpopcntb of the byte AND (1 << j % 8) - 1) + the set bits of the bytes
// before it (vpopcntq of the mask AND the bytes below its qword, moved to
// the byte lanes by vpermb); one masked vpermb then gathers the values.
// The mask is broadcast and moved to the k register straight from memory:
// from a general register each would take a slot on the shuffle port,
// which the vpermbs already keep busy.
template <bool kExpandInstruction>
HWY_INLINE __m512i ExpandBytes(const uint8_t* HWY_RESTRICT mask_bytes, const uint8_t* HWY_RESTRICT values) {
    if constexpr (kExpandInstruction) {
        __mmask64 kept;
        asm("kmovq %1, %0" : "=k"(kept) : "m"(*reinterpret_cast<const uint64_t*>(mask_bytes)));
        return _mm512_maskz_expand_epi8(kept, _mm512_loadu_si512(values));
    }
    // Inline assembly keeps GCC from loading the mask once into a general
    // register and moving it from there (vpbroadcastq / kmovq from r64).
    __m512i mask;
    __mmask64 kept;
    asm("vpbroadcastq %1, %0" : "=v"(mask) : "m"(*reinterpret_cast<const uint64_t*>(mask_bytes)));
    asm("kmovq %1, %0" : "=k"(kept) : "m"(*reinterpret_cast<const uint64_t*>(mask_bytes)));
    const __m512i own_byte = _mm512_permutexvar_epi8(_mm512_load_si512(kQ16Tables.mask_byte_of_lane), mask);
    const __m512i within = _mm512_popcnt_epi8(_mm512_and_si512(own_byte, _mm512_load_si512(kQ16Tables.bits_below_in_byte)));
    const __m512i earlier = _mm512_popcnt_epi64(_mm512_and_si512(mask, _mm512_load_si512(kQ16Tables.bytes_below_qword)));
    const __m512i before = _mm512_permutexvar_epi8(_mm512_load_si512(kQ16Tables.qword_count_of_lane), earlier);
    return _mm512_maskz_permutexvar_epi8(kept, _mm512_add_epi8(within, before), _mm512_loadu_si512(values));
}

// Running byte dot products of bitmask chunks, per int32 lane (4 columns):
// sum w * low, sum w * (high + 128) and 128 * sum w, from which
// BitmaskLevelSums gives sum w * q exactly.
// (No member initializers: the implicit constructor would lack the target
// attributes the intrinsics need.)
struct BitmaskSums {
    __m512i low, high, weight;
};
HWY_INLINE BitmaskSums ZeroBitmaskSums() {
    return {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
}

// s += the three byte dot products of signed levels with the activations'
// low and high + 128 bytes (and with 128s), per int32 lane of 4 bytes.
HWY_INLINE void AddByteProducts(BitmaskSums& s, __m512i low, __m512i high, __m512i levels) {
    using hn::Vec;
    const DW32 d;
    const Vec<DW32> l{levels};
    s.low = ByteMulAdd(Vec<DW32>{s.low}, Vec<DW32>{low}, l).raw;
    s.high = ByteMulAdd(Vec<DW32>{s.high}, Vec<DW32>{high}, l).raw;
    s.weight = ByteMulAdd(Vec<DW32>{s.weight}, hn::Set(d, static_cast<int32_t>(0x80808080u)), l).raw;
}

// One chunk of 64 bitmask columns: the stored values spread to their
// columns (ExpandBytes, pruned columns 0; symmetric rows store levels as
// two's-complement bytes) meet the activations' two bytes in vpdpbusd,
// which multiplies unsigned by signed bytes: hence the high byte's offset
// of 128, taken back out with a third product against 128s. Three
// products on the multiply port cost less than widening the levels to
// int16 (two vpmovsxbw and an extract on the shuffle port, which the
// expand saturates).
template <bool kExpandInstruction>
HWY_INLINE void BitmaskChunkSums(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT mask,
                                 const uint8_t* HWY_RESTRICT low, const uint8_t* HWY_RESTRICT high, int64_t ch,
                                 int64_t& pos, BitmaskSums& s) {
    const __m512i levels = ExpandBytes<kExpandInstruction>(mask + 8 * ch, values + pos);
    uint64_t bits;
    std::memcpy(&bits, mask + 8 * ch, 8);
    pos += std::popcount(bits);
    AddByteProducts(s, _mm512_loadu_si512(low + 64 * ch), _mm512_loadu_si512(high + 64 * ch), levels);
}

// sum w * q = 256 * (sum w (high + 128) - 128 sum w) + sum w low, in int32:
// the true sum fits (|w| <= 127, |q| <= 32767, 256 columns at most), so
// any wrap of the shifted intermediate cancels.
HWY_INLINE __m512i BitmaskLevelSums(const BitmaskSums& s) {
    return _mm512_add_epi32(_mm512_slli_epi32(_mm512_sub_epi32(s.high, s.weight), 8), s.low);
}

// 2:4 int4 with groups of 32, two chunks (128 columns, 64 kept values) at
// a time on byte dot products: per row and pair, four vpermb gather the
// kept values' activation bytes (low, and high + 128) from the pair's 128
// columns (two per byte plane, the second merging the bytes of chunk 1:
// one uop each, where a two-table vpermi2b is three), the 64 levels come
// out of the pair's 32 value bytes as bytes times 16, and three vpdpbusd
// sum them as the bitmask chunks do
// (BitmaskLevelSums). The levels: the 32 bytes broadcast to both halves,
// the low half's words shifted left by 4 (one masked vpsllw, on the
// multiply port), then (b & 0xF0) ^ 0x80 = 16 (u - 8) as a signed byte
// (one ternary-logic op): byte p < 32 holds kept value 2p (the low nibble
// of value byte p), byte 32 + p kept value 2p + 1. So int32 lane L sums
// four values of group (L % 8) / 2, and one 256-bit broadcast of the
// pair's four combined scales, each twice (PairScales), scales every lane:
// the pair has one float step, not two. The index fields: qword q of the
// multishift source must hold the word of the chunk its bytes' values lie
// in, chunk (q % 4) / 2: a broadcast of chunk 0's word and a masked
// broadcast of chunk 1's (a load and a blend, off the shuffle port). About
// 17 vector uops per row and pair, 5 of them on the shuffle port.
constexpr int KeptOfPairByte(int p) { return p < 32 ? 2 * p : 2 * (p - 32) + 1; }

struct Nm24PairTables {
    alignas(64) uint8_t index_control[64];  // byte p: bit offset of kept_pair(p)'s field in its chunk's word
    alignas(64) uint8_t index_base[64];     // byte p: 4 * run of kept_pair(p) within the pair
};

constexpr Nm24PairTables MakeNm24PairTables() {
    Nm24PairTables t{};
    for (int p = 0; p < 64; ++p) {
        const int k = KeptOfPairByte(p);
        t.index_control[p] = static_cast<uint8_t>(2 * (k % 32));
        t.index_base[p] = static_cast<uint8_t>(4 * (k / 2));
    }
    return t;
}
inline constexpr Nm24PairTables kNm24PairTables = MakeNm24PairTables();
// Qwords of the multishift source that take chunk 1's index word.
inline constexpr __mmask8 kPairSecondChunkQwords = 0xCC;
// Bytes of the pair's gathers whose kept value lies in chunk 1
// (KeptOfPairByte(p) / 32 == 1: p in 16..31 and 48..63).
inline constexpr __mmask64 kPairSecondChunkBytes = 0xFFFF0000FFFF0000ull;
// Words of the value broadcast that take their bytes' low nibbles.
inline constexpr __mmask32 kPairLowNibbleWords = 0x0000FFFF;

// The pair's activation bytes: low and high + 128 of its 128 columns.
struct PairActivations {
    __m512i low0, low1, high0, high1;
};

// 16 x the integer sums of one row over pair `pair`, lane L: group (L % 8) / 2.
HWY_INLINE __m512i Nm24PairSums(const uint8_t* HWY_RESTRICT values, const uint8_t* HWY_RESTRICT indices,
                                const PairActivations& x, int64_t pair) {
    // Broadcasts straight from memory (inline assembly: GCC would go
    // through a general register, a slot on the shuffle port).
    const uint64_t* words = reinterpret_cast<const uint64_t*>(indices + 16 * pair);
    __m512i fields;
    asm("vpbroadcastq %1, %0" : "=v"(fields) : "m"(words[0]));
    asm("vpbroadcastq %1, %0%{%2%}" : "+v"(fields) : "m"(words[1]), "Yk"(kPairSecondChunkQwords));
    const __m512i shifted = _mm512_multishift_epi64_epi8(_mm512_load_si512(kNm24PairTables.index_control), fields);
    // (shifted & 3) | base: 0xEA is A & B | C for A, B, C = shifted, 3, base.
    const __m512i idx = _mm512_ternarylogic_epi32(shifted, _mm512_set1_epi8(3),
                                                  _mm512_load_si512(kNm24PairTables.index_base), 0xEA);
    // Each gather as two single-table vpermb (one uop each; vpermi2b is
    // three), the second merging the bytes whose kept value lies in chunk 1.
    const __m512i low = _mm512_mask_permutexvar_epi8(_mm512_permutexvar_epi8(idx, x.low0), kPairSecondChunkBytes, idx, x.low1);
    const __m512i high =
        _mm512_mask_permutexvar_epi8(_mm512_permutexvar_epi8(idx, x.high0), kPairSecondChunkBytes, idx, x.high1);
    __m512i bytes;
    asm("vbroadcasti64x4 %1, %0" : "=v"(bytes) : "m"(*reinterpret_cast<const __m256i*>(values + 32 * pair)));
    const __m512i spread = _mm512_mask_slli_epi16(bytes, kPairLowNibbleWords, bytes, 4);
    // (spread & 0xF0) ^ 0x80: 0x6A is A & B ^ C for A, B, C = spread, 0xF0, 0x80.
    const __m512i levels = _mm512_ternarylogic_epi32(spread, _mm512_set1_epi8(static_cast<char>(0xF0)),
                                                     _mm512_set1_epi8(static_cast<char>(0x80)), 0x6A);
    BitmaskSums s = ZeroBitmaskSums();
    AddByteProducts(s, low, high, levels);
    return BitmaskLevelSums(s);
}

// A row's combined scales (d_g * dx_g) for the pair kernel, each twice:
// out[2g] = out[2g + 1], so pair j's lanes read out[8j + L % 8]. The
// row's FP16 scales d_g come straight from the file's plane (a masked load
// for the last 1-15 groups, which may end the plane), not from a float copy
// of the row made first: converting, combining and doubling took ~12% of
// the cached pair loop (kernels_bench SparseCached, docs/results.md,
// session 23). dx is read for `groups` rounded up to 16 (its buffer is
// padded), and twice that is written.
HWY_INLINE void PairScales(const uint8_t* HWY_RESTRICT half_scales, const float* HWY_RESTRICT dx, int64_t groups,
                           float* HWY_RESTRICT out) {
    const __m512i first = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i second = _mm512_add_epi32(first, _mm512_set1_epi32(8));
    for (int64_t g = 0; g < groups; g += 16) {
        const __mmask16 valid = groups - g >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (groups - g)) - 1);
        const __m512 d = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(valid, half_scales + 2 * g));
        const __m512 combined = _mm512_mul_ps(d, _mm512_loadu_ps(dx + g));
        _mm512_storeu_ps(out + 2 * g, _mm512_permutexvar_ps(first, combined));
        _mm512_storeu_ps(out + 2 * g + 16, _mm512_permutexvar_ps(second, combined));
    }
}

// Groups of 32 columns: each int32 lane of a chunk's sums lies in one of
// its two blocks. The lanes of the second block (int8: lanes 8-15, int4:
// lanes {2,3,6,7,10,11,14,15}, see the top of this file), and the
// per-lane scales from the two block scales at `pair`: two broadcasts
// from memory and a blend (a lane permutation would take the shuffle port,
// which the gathers and the expand keep busy).
inline constexpr __mmask16 kSecondBlockLanesInt8 = 0xFF00;
inline constexpr __mmask16 kSecondBlockLanesInt4 = 0xCCCC;
HWY_INLINE __m512 BlockScales(const float* HWY_RESTRICT pair, __mmask16 second) {
    return _mm512_mask_blend_ps(second, _mm512_set1_ps(pair[0]), _mm512_set1_ps(pair[1]));
}

// Rows go through the kernels kQ16TileRows at a time: the tile's rows
// share the activation loads and, being independent, keep more work in
// flight than one row's chains (and the per-row steps, scales and the
// final horizontal sums, overlap).
inline constexpr int kQ16TileRows = kSparseQ16TileRows;

// One row's planes as the kernels read them.
struct Q16RowPlanes {
    const uint8_t* meta = nullptr;  // 2:4 index row, or bitmask mask row
    const uint8_t* values = nullptr;
    const float* scales = nullptr;  // the row's group scales as floats (not for pairs)
    const uint8_t* half_scales = nullptr;  // the row's FP16 scales in the file
    float* combined = nullptr;      // sparse_q16_combined_slot floats
};

// Whether Q16Tile runs 2:4 int4 rows two chunks at a time (Nm24PairSums):
// groups of 32, the activations split into bytes, an even number of chunks.
// Such rows read their FP16 scales themselves (PairScales).
template <int kBits, bool kNm>
HWY_INLINE bool Q16Pairs(const SparseQ16Activations& a, int64_t chunks) {
    return kNm && kBits == 4 && a.block == 32 && !a.low_bytes.empty() && chunks % 2 == 0;
}

// kRows rows times token t into out[0 .. kRows), fetching a slice of
// `ahead` (the rows further on; may be null) per chunk.
template <int kBits, bool kNm, bool kExpandInstruction, int kRows>
HWY_INLINE void Q16Tile(const SparseCall& c, const SparseQ16Activations& a, int64_t t,
                        const Q16RowPlanes* HWY_RESTRICT rows, float* HWY_RESTRICT out,
                        const PrefetchSlices* ahead) {
    const int16_t* HWY_RESTRICT xq = a.q.data() + t * a.padded_cols;
    // The byte-split levels of the bitmask and 2:4 int4 pair kernels (empty for 2:4 int8).
    const uint8_t* HWY_RESTRICT low = a.low_bytes.empty() ? nullptr : a.low_bytes.data() + t * a.padded_cols;
    const uint8_t* HWY_RESTRICT high = a.high_bytes.empty() ? nullptr : a.high_bytes.data() + t * a.padded_cols;
    const float* HWY_RESTRICT dx = a.block_scales.data() + t * a.blocks;
    const int64_t chunks = c.cols / 64;
    __m512 acc[kRows];
    int64_t pos[kRows];
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) {
        acc[i] = _mm512_setzero_ps();
        pos[i] = 0;
    }
    if (a.block == 32) {
        // Groups of 32 = activation blocks: two per chunk, each int32 lane
        // in one of them.
        if constexpr (kNm && kBits == 4) {
            if (Q16Pairs<kBits, kNm>(a, chunks)) {
                // Pairs of chunks on byte dot products (Nm24PairSums): the
                // sums come out 16 times the levels' (bytes of 16 (u - 8)).
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) PairScales(rows[i].half_scales, dx, c.groups_per_row, rows[i].combined);
                for (int64_t pair = 0; pair < chunks / 2; ++pair) {
                    FetchSlices(ahead, pair, 1);  // one step per pair: Q16FetchSteps
                    const PairActivations x{_mm512_loadu_si512(low + 128 * pair), _mm512_loadu_si512(low + 128 * pair + 64),
                                            _mm512_loadu_si512(high + 128 * pair),
                                            _mm512_loadu_si512(high + 128 * pair + 64)};
#pragma GCC unroll 4
                    for (int i = 0; i < kRows; ++i) {
                        const __m512i sums = Nm24PairSums(rows[i].values, rows[i].meta, x, pair);
                        const __m512 scales = _mm512_broadcast_f32x8(_mm256_loadu_ps(rows[i].combined + 8 * pair));
                        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scales, acc[i]);
                    }
                }
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) out[i] = _mm512_reduce_add_ps(acc[i]) * (1.0f / 16.0f);
                return;
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < kRows; ++i) {
            for (int64_t g = 0; g < c.groups_per_row; g += 16) {
                _mm512_storeu_ps(rows[i].combined + g,
                                 _mm512_mul_ps(_mm512_loadu_ps(rows[i].scales + g), _mm512_loadu_ps(dx + g)));
            }
        }
        if constexpr (kNm) {
            const __mmask16 second = kBits == 4 ? kSecondBlockLanesInt4 : kSecondBlockLanesInt8;
            for (int64_t ch = 0; ch < chunks; ++ch) {
                FetchSlices(ahead, ch, 1);
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) {
                    const __m512i sums = Nm24ChunkSums<kBits>(rows[i].values, rows[i].meta, xq, ch, _mm512_setzero_si512());
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), BlockScales(rows[i].combined + 2 * ch, second), acc[i]);
                }
            }
        } else {
            // int32 lane k sums columns 4k..4k+3: lanes 0-7 the first block.
            for (int64_t ch = 0; ch < chunks; ++ch) {
                FetchSlices(ahead, ch, 1);
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) {
                    BitmaskSums sums = ZeroBitmaskSums();
                    BitmaskChunkSums<kExpandInstruction>(rows[i].values, rows[i].meta, low, high, ch, pos[i], sums);
                    acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(BitmaskLevelSums(sums)),
                                             BlockScales(rows[i].combined + 2 * ch, kSecondBlockLanesInt8), acc[i]);
                }
            }
        }
    } else {
        // Blocks of 64..256 columns: whole chunks, one scale per block
        // (its group's: a group spans whole blocks, or the row is one group).
        const int64_t per_block = a.block / 64;
        // Blocks per group: a power of two, or the whole row's (one group).
        const int group_shift = c.groups_per_row == 1 ? 62 : std::countr_zero(static_cast<uint64_t>(c.group_span / a.block));
        for (int64_t s = 0; s < a.blocks; ++s) {
            const int64_t end = std::min(chunks, (s + 1) * per_block);
            FetchSlices(ahead, s * per_block, end - s * per_block);
            __m512i isum[kRows];
            if constexpr (kNm) {
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) isum[i] = _mm512_setzero_si512();
                for (int64_t ch = s * per_block; ch < end; ++ch) {
#pragma GCC unroll 4
                    for (int i = 0; i < kRows; ++i)
                        isum[i] = Nm24ChunkSums<kBits>(rows[i].values, rows[i].meta, xq, ch, isum[i]);
                }
            } else {
                BitmaskSums sums[kRows];
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) sums[i] = ZeroBitmaskSums();
                for (int64_t ch = s * per_block; ch < end; ++ch) {
#pragma GCC unroll 4
                    for (int i = 0; i < kRows; ++i)
                        BitmaskChunkSums<kExpandInstruction>(rows[i].values, rows[i].meta, low, high, ch, pos[i], sums[i]);
                }
#pragma GCC unroll 4
                for (int i = 0; i < kRows; ++i) isum[i] = BitmaskLevelSums(sums[i]);
            }
#pragma GCC unroll 4
            for (int i = 0; i < kRows; ++i) {
                const __m512 scale = _mm512_set1_ps(dx[s] * rows[i].scales[s >> group_shift]);
                acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[i]), scale, acc[i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < kRows; ++i) out[i] = _mm512_reduce_add_ps(acc[i]);
}

// Row r's planes (i: its slot in the tile's scratch).
template <bool kNm>
HWY_INLINE Q16RowPlanes Q16Planes(const SparseCall& c, int64_t r, int i, const SparseQ16Scratch& s,
                                   bool convert_scales) {
    const uint8_t* scale_base = c.is_nm ? c.nm.scales : c.bitmask.scales;
    const int64_t scale_row_bytes = 2 * c.groups_per_row;
    const int64_t slot = c.groups_per_row + 16;
    Q16RowPlanes p;
    p.scales = s.row_scales + i * slot;
    p.combined = s.combined + i * sparse_q16_combined_slot(c.groups_per_row);
    p.half_scales = scale_base + r * scale_row_bytes;
    if (convert_scales) ConvertRowScales(p.half_scales, c.groups_per_row, s.row_scales + i * slot);
    if constexpr (kNm) {
        const NmSparseGeometry& geo = c.nm_geometry;
        p.meta = c.nm.indices + r * geo.index_row_bytes;
        p.values = c.nm.values + r * geo.value_row_bytes;
    } else {
        p.meta = c.bitmask.mask + r * c.bitmask.mask_row_bytes();
        // Chunks load 64 bytes from their first value: rows ending near
        // the plane's end read a zero-padded copy.
        const uint64_t begin = c.bitmask.row_offset(r), end = c.bitmask.row_offset(r + 1);
        p.values = c.bitmask.values + begin;
        if (end + 64 > c.bitmask_values_size) {
            uint8_t* copy = s.values + i * (c.cols + 64);
            std::memset(copy, 0, static_cast<size_t>(end - begin) + 64);
            if (end > begin) std::memcpy(copy, p.values, static_cast<size_t>(end - begin));
            p.values = copy;
        }
    }
    return p;
}

// Rows [r, r + n) of every plane, to fetch over a tile's `steps` steps
// (nothing past the last row).
template <bool kNm>
HWY_INLINE PrefetchSlices Q16RowsAhead(const SparseCall& c, int64_t r, int64_t n, int64_t steps) {
    PrefetchSlices slices(steps);
    // 2:4 int4 rows are bound by their arithmetic: no further L2 fetches.
    slices.set_further(!(kNm && c.quant.bits == 4));
    n = std::min(n, c.rows - r);
    if (n <= 0) return slices;
    const int64_t scale_row_bytes = 2 * c.groups_per_row;
    if constexpr (kNm) {
        const NmSparseGeometry& geo = c.nm_geometry;
        slices.add(c.nm.values + r * geo.value_row_bytes, n * geo.value_row_bytes);
        slices.add(c.nm.indices + r * geo.index_row_bytes, n * geo.index_row_bytes);
        slices.add_scales(c.nm.scales + r * scale_row_bytes, n * scale_row_bytes);
    } else {
        const uint64_t begin = c.bitmask.row_offset(r), end = c.bitmask.row_offset(r + n);
        slices.add(c.bitmask.values + begin, static_cast<int64_t>(end - begin));
        slices.add(c.bitmask.mask + r * c.bitmask.mask_row_bytes(), n * c.bitmask.mask_row_bytes());
        slices.add_scales(c.bitmask.scales + r * scale_row_bytes, n * scale_row_bytes);
    }
    return slices;
}

// How many fetch steps Q16Tile's loop takes: one per pair of chunks where
// 2:4 int4 rows go by pairs (a step per chunk would split each pair's lines
// over two steps and take the index and scale lines twice), else one per
// 64-column chunk.
template <int kBits, bool kNm>
HWY_INLINE int64_t Q16FetchSteps(const SparseQ16Activations& a, int64_t chunks) {
    return Q16Pairs<kBits, kNm>(a, chunks) ? chunks / 2 : chunks;
}

template <int kBits, bool kNm, bool kExpandInstruction = false>
HWY_NOINLINE void Q16Rows(const SparseCall& c, const SparseQ16Activations& a, int64_t r0, int64_t r1,
                          const SparseQ16Scratch& s) {
    const int64_t chunks = c.cols / 64;
    const int64_t steps = Q16FetchSteps<kBits, kNm>(a, chunks);
    const bool convert = !Q16Pairs<kBits, kNm>(a, chunks);  // pairs read the FP16 scales themselves
    const int64_t distance = RowsAheadDistance(c.row_bytes, kQ16TileRows);
    Q16RowPlanes planes[kQ16TileRows];
    float out[kQ16TileRows];
    int64_t r = r0;
    for (; r + kQ16TileRows <= r1; r += kQ16TileRows) {
        for (int i = 0; i < kQ16TileRows; ++i) planes[i] = Q16Planes<kNm>(c, r + i, i, s, convert);
        const PrefetchSlices ahead = Q16RowsAhead<kNm>(c, r + distance, kQ16TileRows, steps);
        for (int64_t t = 0; t < a.tokens; ++t) {
            Q16Tile<kBits, kNm, kExpandInstruction, kQ16TileRows>(c, a, t, planes, out, t == 0 ? &ahead : nullptr);
            for (int i = 0; i < kQ16TileRows; ++i) c.y[t * c.y_stride + r + i] = out[i];
        }
    }
    const int64_t tail_distance = RowsAheadDistance(c.row_bytes, 1);
    for (; r < r1; ++r) {
        planes[0] = Q16Planes<kNm>(c, r, 0, s, convert);
        const PrefetchSlices ahead = Q16RowsAhead<kNm>(c, r + tail_distance, 1, steps);
        for (int64_t t = 0; t < a.tokens; ++t) {
            Q16Tile<kBits, kNm, kExpandInstruction, 1>(c, a, t, planes, out, t == 0 ? &ahead : nullptr);
            c.y[t * c.y_stride + r] = out[0];
        }
    }
}

HWY_NOINLINE void SparseRowsQ16(const SparseCall& c, const SparseQ16Activations& a, int64_t r0, int64_t r1,
                                const SparseQ16Scratch& s) {
    if (c.is_nm) return c.quant.bits == 8 ? Q16Rows<8, true>(c, a, r0, r1, s) : Q16Rows<4, true>(c, a, r0, r1, s);
    return c.expand_instruction ? Q16Rows<8, false, true>(c, a, r0, r1, s) : Q16Rows<8, false, false>(c, a, r0, r1, s);
}
#else
inline bool SparseQ16Native() { return false; }
// Never called where SparseQ16Native is false (the twin runs instead).
HWY_NOINLINE void SparseRowsQ16(const SparseCall&, const SparseQ16Activations&, int64_t, int64_t,
                                const SparseQ16Scratch&) {}
#endif

// The byte-split levels of SparseQ16Activations (low = q & 255, high =
// (q >> 8) + 128), compiled per target so the compiler vectorizes the loop
// with the target's instructions (session 26: the baseline build's loop and
// fresh buffers per input took about as long as the quantization).
HWY_NOINLINE void SplitQ16Bytes(const int16_t* HWY_RESTRICT q, int64_t n, uint8_t* HWY_RESTRICT low,
                                uint8_t* HWY_RESTRICT high) {
    for (int64_t i = 0; i < n; ++i) {
        const auto v = static_cast<uint16_t>(q[i]);
        low[i] = static_cast<uint8_t>(v & 0xFF);
        high[i] = static_cast<uint8_t>((v >> 8) ^ 0x80);
    }
}

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
