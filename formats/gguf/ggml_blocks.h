// The ggml block formats sparq reads from GGUF files, each defined once with
// its byte layout (the ggml/GGUF format; every block covers 32 consecutive
// values of a row, rows are whole blocks):
//   Q8_0  fp16 d, int8 q[32]                 x[j] = d * q[j]
//   Q4_0  fp16 d, uint8 qs[16]               x[j] = d * ((qs[j] & 15) - 8),
//                                            x[j + 16] = d * ((qs[j] >> 4) - 8)
//   Q4_1  fp16 d, fp16 m, uint8 qs[16]       x[j] = d * (qs[j] & 15) + m,
//                                            x[j + 16] = d * (qs[j] >> 4) + m
// The k-quants cover 256 values ("super-block") in sub-blocks with their own
// scales:
//   Q4_K  fp16 d, fp16 dmin, uint8 scales[12], uint8 qs[128]
//         8 sub-blocks of 32; sub-block j has a 6-bit scale sc_j and min m_j
//         packed in `scales` (j < 4: sc = s[j] & 63, m = s[j + 4] & 63;
//         j >= 4: sc = (s[j + 4] & 15) | (s[j - 4] >> 6) << 4,
//         m = (s[j + 4] >> 4) | (s[j] >> 6) << 4); value i of the 64-value
//         chunk c (i < 32: low nibble of qs[32c + i], else high nibble of
//         qs[32c + i - 32]) is d sc q - dmin m of sub-block 2c + (i >= 32)
//   Q5_K  fp16 d, fp16 dmin, uint8 scales[12], uint8 qh[32], uint8 qs[128]
//         as Q4_K with a fifth bit: value i of chunk c adds 16 when bit
//         2c + (i >= 32) of qh[i % 32] is set
//   Q6_K  uint8 ql[128], uint8 qh[64], int8 scales[16], fp16 d
//         two halves of 128; in half h, for l < 32 the four values
//         l, l + 32, l + 64, l + 96 take the low nibble of ql[64h + l], the
//         low nibble of ql[64h + l + 32], the high nibble of ql[64h + l], the
//         high nibble of ql[64h + l + 32], and bits 0-1, 2-3, 4-5, 6-7 of
//         qh[32h + l] as bits 4-5; value = d scales[i / 16] (q - 32)
// Reading a llama.cpp-quantized model means dequantizing it to F32 (the
// reference forward and every pass start from float weights); Q2_K, Q3_K,
// Q8_K and the i-quants are not read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/gguf/gguf_types.h"

namespace sparq::gguf {

inline constexpr int kGgmlBlock = 32;

struct BlockQ8_0 {
    uint16_t d;
    int8_t q[kGgmlBlock];
};
static_assert(sizeof(BlockQ8_0) == 34, "Q8_0 block is 34 bytes");

struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kGgmlBlock / 2];
};
static_assert(sizeof(BlockQ4_0) == 18, "Q4_0 block is 18 bytes");

struct BlockQ4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[kGgmlBlock / 2];
};
static_assert(sizeof(BlockQ4_1) == 20, "Q4_1 block is 20 bytes");

inline constexpr int kGgmlSuperBlock = 256;

struct BlockQ4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[kGgmlSuperBlock / 2];
};
static_assert(sizeof(BlockQ4_K) == 144, "Q4_K block is 144 bytes");

struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[kGgmlSuperBlock / 8];
    uint8_t qs[kGgmlSuperBlock / 2];
};
static_assert(sizeof(BlockQ5_K) == 176, "Q5_K block is 176 bytes");

struct BlockQ6_K {
    uint8_t ql[kGgmlSuperBlock / 2];
    uint8_t qh[kGgmlSuperBlock / 4];
    int8_t scales[kGgmlSuperBlock / 16];
    uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210, "Q6_K block is 210 bytes");

// Sub-block j's 6-bit scale and min of a Q4_K / Q5_K super-block, and back
// (pack writes only sub-block j's bits).
void unpack_k_scale_min(const uint8_t scales[12], int j, int& scale, int& min);
void pack_k_scale_min(uint8_t scales[12], int j, int scale, int min);

// The writers' side of the value layouts above, from codes already chosen:
// Q4_0 / Q4_1 nibbles (codes 0..15 of one 32-value block), Q4_K nibbles
// (codes 0..15 of one super-block), Q6_K low and high bits (codes 0..63).
void pack_q4_nibbles(const uint8_t codes[kGgmlBlock], uint8_t qs[kGgmlBlock / 2]);
void pack_q4_k_codes(const uint8_t codes[kGgmlSuperBlock], uint8_t qs[kGgmlSuperBlock / 2]);
void pack_q6_k_codes(const uint8_t codes[kGgmlSuperBlock], BlockQ6_K& block);

// Whether dequantize_ggml reads `type` (Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K).
bool can_dequantize_ggml(GgmlType type);

// Dequantizes `n` values (a multiple of the type's block: 32, or 256 for
// the k-quants) stored as `type` in `bytes` (whole blocks, `nbytes`
// checked) into out[0 .. n). Throws
// sparq::Error naming `tensor` for another type or a size mismatch.
void dequantize_ggml(GgmlType type, const uint8_t* bytes, size_t nbytes, int64_t n, float* out,
                     const std::string& tensor);

}  // namespace sparq::gguf
