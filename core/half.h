// Exact FP16 / BF16 <-> FP32 conversions in plain C++ (no intrinsics), so
// they are the same on every machine and can be tested exhaustively.
// Narrowing rounds to nearest, ties to even; subnormals, infinities and NaN
// are preserved (NaN stays NaN, quiet).
#pragma once

#include <cstdint>
#include <cstring>

namespace sparq {

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
}

inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
}

inline float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f) {  // Inf or NaN
        return bits_float(sign | 0x7f800000u | (mantissa << 13) | (mantissa ? 0x00400000u : 0u));
    }
    if (exponent == 0) {
        if (mantissa == 0) return bits_float(sign);
        // Subnormal half: value = mantissa * 2^-24, exact in FP32.
        int e = -1;
        do {
            mantissa <<= 1;
            ++e;
        } while ((mantissa & 0x400u) == 0);
        mantissa &= 0x3ffu;
        const uint32_t exp32 = static_cast<uint32_t>(127 - 15 - e);
        return bits_float(sign | (exp32 << 23) | (mantissa << 13));
    }
    return bits_float(sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13));
}

inline uint16_t fp32_to_fp16(float f) {
    const uint32_t x = float_bits(f);
    const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
    const uint32_t abs = x & 0x7fffffffu;
    if (abs >= 0x7f800000u) {  // Inf or NaN
        if (abs == 0x7f800000u) return sign | 0x7c00u;
        return sign | 0x7e00u | static_cast<uint16_t>((abs >> 13) & 0x3ffu);
    }
    if (abs >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520 -> Inf
    const int exp32 = static_cast<int>(abs >> 23);
    if (exp32 < 113) {  // result is subnormal half (or zero)
        if (exp32 < 102) return sign;  // below half of the smallest subnormal
        const uint32_t mantissa = (abs & 0x7fffffu) | 0x800000u;
        const int shift = 126 - exp32;  // 14..24
        uint32_t result = mantissa >> shift;
        const uint32_t remainder = mantissa & ((1u << shift) - 1);
        const uint32_t halfway = 1u << (shift - 1);
        if (remainder > halfway || (remainder == halfway && (result & 1u))) ++result;
        return sign | static_cast<uint16_t>(result);
    }
    // Normal: rebias and round the 13 dropped bits to nearest even. A carry
    // out of the mantissa correctly bumps the exponent.
    uint32_t result = abs - ((127u - 15u) << 23);
    const uint32_t remainder = result & 0x1fffu;
    result >>= 13;
    if (remainder > 0x1000u || (remainder == 0x1000u && (result & 1u))) ++result;
    return sign | static_cast<uint16_t>(result);
}

inline float bf16_to_fp32(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

inline uint16_t fp32_to_bf16(float f) {
    const uint32_t x = float_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it NaN after truncation
        return static_cast<uint16_t>((x >> 16) | 0x0040u);
    }
    const uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
    return static_cast<uint16_t>((x + rounding) >> 16);
}

// Bulk conversions used by readers and writers.
void fp16_to_fp32_row(const uint16_t* in, float* out, size_t n);
void bf16_to_fp32_row(const uint16_t* in, float* out, size_t n);
void fp32_to_fp16_row(const float* in, uint16_t* out, size_t n);
void fp32_to_bf16_row(const float* in, uint16_t* out, size_t n);

}  // namespace sparq
