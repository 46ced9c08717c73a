#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "core/half.h"

namespace sparq {
namespace {

// Independent reference: the exact value of a half from its fields, computed
// with ldexp (no bit tricks shared with the implementation under test).
double half_value(uint16_t h) {
    const int sign = (h & 0x8000) ? -1 : 1;
    const int exponent = (h >> 10) & 0x1f;
    const int mantissa = h & 0x3ff;
    if (exponent == 0) return sign * std::ldexp(mantissa, -24);
    if (exponent == 31) return mantissa ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
    return sign * std::ldexp(1024 + mantissa, exponent - 25);
}

TEST(Half, Fp16ToFp32IsExactForAll65536Values) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        const double expected = half_value(static_cast<uint16_t>(h));
        if (std::isnan(expected)) {
            EXPECT_TRUE(std::isnan(f)) << h;
        } else {
            EXPECT_EQ(static_cast<double>(f), expected) << "half bits " << h;
            EXPECT_EQ(std::signbit(f), (h & 0x8000) != 0) << h;
        }
    }
}

TEST(Half, RoundTripIsIdentityForAllNonNan) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = fp16_to_fp32(static_cast<uint16_t>(h));
        if (std::isnan(f)) {
            const uint16_t back = fp32_to_fp16(f);
            EXPECT_EQ(back & 0x7c00, 0x7c00) << h;
            EXPECT_NE(back & 0x03ff, 0) << h;
            continue;
        }
        EXPECT_EQ(fp32_to_fp16(f), h) << "half bits " << h;
    }
}

// Rounding: every midpoint between consecutive halves rounds to the even one,
// and points just off the midpoint round to the nearer one.
TEST(Half, Fp32ToFp16RoundsToNearestEvenAtEveryMidpoint) {
    for (uint32_t h = 0; h < 0x7bff; ++h) {  // positive finite, excluding the largest
        const double lo = half_value(static_cast<uint16_t>(h));
        const double hi = half_value(static_cast<uint16_t>(h + 1));
        const double mid = (lo + hi) / 2;  // exact in double, and in float for halves
        const float mid_f = static_cast<float>(mid);
        ASSERT_EQ(static_cast<double>(mid_f), mid);
        const uint16_t even = (h % 2 == 0) ? h : h + 1;
        EXPECT_EQ(fp32_to_fp16(mid_f), even) << "midpoint above " << h;
        EXPECT_EQ(fp32_to_fp16(-mid_f), even | 0x8000) << "negative midpoint above " << h;
        EXPECT_EQ(fp32_to_fp16(std::nextafter(mid_f, 0.0f)), h) << h;
        EXPECT_EQ(fp32_to_fp16(std::nextafter(mid_f, INFINITY)), h + 1) << h;
    }
}

TEST(Half, OverflowUnderflowAndSpecials) {
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);  // the midpoint to 2^16 rounds to Inf
    EXPECT_EQ(fp32_to_fp16(1e10f), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(-1e10f), 0xfc00);
    EXPECT_EQ(fp32_to_fp16(INFINITY), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);  // tie with 0 -> even (0)
    EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -26)), 0x0000);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::denorm_min()), 0x0000);
    const uint16_t nan = fp32_to_fp16(std::numeric_limits<float>::quiet_NaN());
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x3ff, 0);
    EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7c01)));  // signalling NaN stays NaN
}

TEST(BFloat16, WidenIsExactForAll65536Values) {
    for (uint32_t b = 0; b < 65536; ++b) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(b));
        uint32_t bits;
        std::memcpy(&bits, &f, 4);
        EXPECT_EQ(bits, b << 16);
        if (!std::isnan(f)) {
            EXPECT_EQ(fp32_to_bf16(f), b);
        }
    }
}

TEST(BFloat16, NarrowRoundsToNearestEven) {
    for (uint32_t b = 0; b < 0x7f7f; b += 7) {
        const float lo = bf16_to_fp32(static_cast<uint16_t>(b));
        const float hi = bf16_to_fp32(static_cast<uint16_t>(b + 1));
        const float mid = static_cast<float>((static_cast<double>(lo) + hi) / 2);
        const uint16_t even = (b % 2 == 0) ? b : b + 1;
        EXPECT_EQ(fp32_to_bf16(mid), even) << b;
        EXPECT_EQ(fp32_to_bf16(std::nextafter(mid, 0.0f)), b) << b;
        EXPECT_EQ(fp32_to_bf16(std::nextafter(mid, INFINITY)), b + 1) << b;
    }
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds to Inf
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
    // A NaN whose payload lives only in the low 16 bits must not become Inf.
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_float(0x7f800001u)))));
}

TEST(Half, RowConversionsMatchScalar) {
    std::vector<uint16_t> halves(4096);
    for (size_t i = 0; i < halves.size(); ++i) halves[i] = static_cast<uint16_t>(i * 16 + 3);
    std::vector<float> out(halves.size());
    fp16_to_fp32_row(halves.data(), out.data(), halves.size());
    std::vector<uint16_t> back(halves.size());
    fp32_to_fp16_row(out.data(), back.data(), out.size());
    for (size_t i = 0; i < halves.size(); ++i) {
        if (!std::isnan(out[i])) {
            EXPECT_EQ(back[i], halves[i]);
        }
        const float s = fp16_to_fp32(halves[i]);
        if (!std::isnan(s)) {
            EXPECT_EQ(out[i], s);
        }
    }
}

}  // namespace
}  // namespace sparq
