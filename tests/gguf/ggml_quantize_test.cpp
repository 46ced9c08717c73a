// The ggml block quantizers (formats/gguf/ggml_quantize.h), read back through
// sparq's ggml dequantizer: every fitted type beats a plain min/max (absmax)
// quantizer of the same layout written here, keeps zeros, constants and
// outliers, follows the importance weights, and refuses what it cannot do.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/ggml_quantize.h"

namespace sparq::gguf {
namespace {

const GgmlType kTypes[] = {GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K};

std::vector<uint8_t> quantize(GgmlType type, const std::vector<float>& x, const std::vector<float>* w = nullptr) {
    const GgmlTypeTraits t = ggml_type_traits(type);
    std::vector<uint8_t> bytes(x.size() / t.block_size * t.type_size);
    quantize_ggml_row(type, x.data(), static_cast<int64_t>(x.size()), w ? w->data() : nullptr, bytes.data());
    return bytes;
}

std::vector<float> round_trip(GgmlType type, const std::vector<float>& x, const std::vector<float>* w = nullptr) {
    const std::vector<uint8_t> bytes = quantize(type, x, w);
    std::vector<float> y(x.size());
    dequantize_ggml(type, bytes.data(), bytes.size(), static_cast<int64_t>(x.size()), y.data(), "t");
    return y;
}

double squared_error(const std::vector<float>& x, const std::vector<float>& y, const std::vector<float>* w = nullptr) {
    double e = 0;
    for (size_t i = 0; i < x.size(); ++i) e += (w ? (*w)[i] : 1.0) * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    return e;
}

int clamp_round(float v, int lo, int hi) { return std::min(hi, std::max(lo, static_cast<int>(std::nearbyint(v)))); }

// Plain quantizers of the same layouts (min/max and absmax scales, plain
// rounding), packing their codes with ggml_blocks.h's writers, which
// BlockWritersInvertTheReaders checks against the dequantizer.
void plain_q4_1(const float* x, BlockQ4_1& b) {
    const float lo = *std::min_element(x, x + 32), hi = *std::max_element(x, x + 32);
    b.d = fp32_to_fp16((hi - lo) / 15);
    b.m = fp32_to_fp16(lo);
    const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
    uint8_t codes[32];
    for (int j = 0; j < 32; ++j) codes[j] = static_cast<uint8_t>(d > 0 ? clamp_round((x[j] - m) / d, 0, 15) : 0);
    pack_q4_nibbles(codes, b.qs);
}

void plain_q4_k(const float* x, BlockQ4_K& b) {
    float step[8], off[8], max_step = 0, max_off = 0;
    for (int j = 0; j < 8; ++j) {
        const float lo = std::min(0.0f, *std::min_element(x + 32 * j, x + 32 * j + 32));
        const float hi = *std::max_element(x + 32 * j, x + 32 * j + 32);
        step[j] = (hi - lo) / 15;
        off[j] = -lo;
        max_step = std::max(max_step, step[j]);
        max_off = std::max(max_off, off[j]);
    }
    b.d = fp32_to_fp16(max_step / 63);
    b.dmin = fp32_to_fp16(max_off / 63);
    const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
    std::memset(b.scales, 0, 12);
    uint8_t codes[256];
    for (int j = 0; j < 8; ++j) {
        const int s = d > 0 ? clamp_round(step[j] / d, 0, 63) : 0, m = dmin > 0 ? clamp_round(off[j] / dmin, 0, 63) : 0;
        pack_k_scale_min(b.scales, j, s, m);
        const float st = d * s, o = dmin * m;
        for (int i = 0; i < 32; ++i) {
            codes[32 * j + i] = static_cast<uint8_t>(st > 0 ? clamp_round((x[32 * j + i] + o) / st, 0, 15) : 0);
        }
    }
    pack_q4_k_codes(codes, b.qs);
}

void plain_q6_k(const float* x, BlockQ6_K& b) {
    float step[16], max_step = 0;
    for (int j = 0; j < 16; ++j) {
        float amax = 0;
        for (int i = 0; i < 16; ++i) amax = std::max(amax, std::fabs(x[16 * j + i]));
        step[j] = amax / 31;
        max_step = std::max(max_step, step[j]);
    }
    b.d = fp32_to_fp16(max_step / 127);
    const float d = fp16_to_fp32(b.d);
    uint8_t q[256];
    for (int j = 0; j < 16; ++j) {
        b.scales[j] = static_cast<int8_t>(d > 0 ? clamp_round(step[j] / d, -128, 127) : 0);
        const float st = d * b.scales[j];
        for (int i = 0; i < 16; ++i) {
            q[16 * j + i] = static_cast<uint8_t>((st != 0 ? clamp_round(x[16 * j + i] / st, -32, 31) : 0) + 32);
        }
    }
    pack_q6_k_codes(q, b);
}

std::vector<float> plain_round_trip(GgmlType type, const std::vector<float>& x) {
    const GgmlTypeTraits t = ggml_type_traits(type);
    std::vector<uint8_t> bytes(x.size() / t.block_size * t.type_size);
    for (size_t b = 0; b < x.size() / t.block_size; ++b) {
        const float* xb = x.data() + b * t.block_size;
        uint8_t* out = bytes.data() + b * t.type_size;
        if (type == GgmlType::Q4_1) {
            BlockQ4_1 q{};
            plain_q4_1(xb, q);
            std::memcpy(out, &q, sizeof q);
        } else if (type == GgmlType::Q4_K) {
            BlockQ4_K q{};
            plain_q4_k(xb, q);
            std::memcpy(out, &q, sizeof q);
        } else {
            BlockQ6_K q{};
            plain_q6_k(xb, q);
            std::memcpy(out, &q, sizeof q);
        }
    }
    std::vector<float> y(x.size());
    dequantize_ggml(type, bytes.data(), bytes.size(), static_cast<int64_t>(x.size()), y.data(), "t");
    return y;
}

std::vector<float> random_row(size_t n, uint32_t seed, float sigma = 1.0f, float mean = 0.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(mean, sigma);
    std::vector<float> x(n);
    for (float& v : x) v = normal(rng);
    return x;
}

// The block writers of ggml_blocks.h against the dequantizer's readers:
// every 6-bit scale/min pair of every sub-block, and codes that decode to
// themselves under unit scales.
TEST(GgmlQuantize, BlockWritersInvertTheReaders) {
    for (int j = 0; j < 8; ++j) {
        for (int scale = 0; scale < 64; ++scale) {
            for (int min = 0; min < 64; ++min) {
                uint8_t scales[12];
                std::memset(scales, 0xFF, sizeof scales);  // the other sub-blocks' bits must survive
                pack_k_scale_min(scales, j, scale, min);
                int s = -1, m = -1;
                unpack_k_scale_min(scales, j, s, m);
                ASSERT_EQ(s, scale);
                ASSERT_EQ(m, min);
                for (int other = 0; other < 8; ++other) {
                    if (other == j) continue;
                    unpack_k_scale_min(scales, other, s, m);
                    ASSERT_EQ(s, 63);
                    ASSERT_EQ(m, 63);
                }
            }
        }
    }
    std::mt19937 rng(3);
    uint8_t codes[256];
    std::vector<float> out(256);
    BlockQ4_1 q41{};
    for (int i = 0; i < 32; ++i) codes[i] = static_cast<uint8_t>(rng() % 16);
    q41.d = fp32_to_fp16(1.0f);
    pack_q4_nibbles(codes, q41.qs);
    dequantize_ggml(GgmlType::Q4_1, reinterpret_cast<const uint8_t*>(&q41), sizeof q41, 32, out.data(), "t");
    for (int i = 0; i < 32; ++i) EXPECT_EQ(out[i], codes[i]) << i;
    BlockQ4_K q4k{};
    q4k.d = fp32_to_fp16(1.0f);
    for (int j = 0; j < 8; ++j) pack_k_scale_min(q4k.scales, j, 1, 0);
    for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(rng() % 16);
    pack_q4_k_codes(codes, q4k.qs);
    dequantize_ggml(GgmlType::Q4_K, reinterpret_cast<const uint8_t*>(&q4k), sizeof q4k, 256, out.data(), "t");
    for (int i = 0; i < 256; ++i) EXPECT_EQ(out[i], codes[i]) << i;
    BlockQ6_K q6k{};
    q6k.d = fp32_to_fp16(1.0f);
    for (int j = 0; j < 16; ++j) q6k.scales[j] = 1;
    for (int i = 0; i < 256; ++i) codes[i] = static_cast<uint8_t>(rng() % 64);
    pack_q6_k_codes(codes, q6k);
    dequantize_ggml(GgmlType::Q6_K, reinterpret_cast<const uint8_t*>(&q6k), sizeof q6k, 256, out.data(), "t");
    for (int i = 0; i < 256; ++i) EXPECT_EQ(out[i], codes[i] - 32) << i;
}

TEST(GgmlQuantize, FittedBlocksBeatPlainMinMaxOnEveryType) {
    for (const GgmlType type : kTypes) {
        double fitted = 0, plain = 0, energy = 0;
        for (uint32_t seed = 1; seed <= 8; ++seed) {
            // Gaussian rows, one heavy-tailed (Laplace-like) and one with a mean offset.
            std::vector<float> x = random_row(1024, seed, 0.02f, seed == 7 ? 0.01f : 0.0f);
            if (seed == 8) {
                for (float& v : x) v = v * std::fabs(v) * 50.0f;
            }
            fitted += squared_error(x, round_trip(type, x));
            plain += squared_error(x, plain_round_trip(type, x));
            for (float v : x) energy += double(v) * v;
        }
        const double relative = std::sqrt(fitted / energy);
        SCOPED_TRACE(std::string(ggml_type_name(type)) + ": fitted/plain error " + std::to_string(fitted / plain) +
                     ", relative RMS " + std::to_string(relative));
        EXPECT_LT(fitted, 0.9 * plain);
        EXPECT_LT(relative, type == GgmlType::Q6_K ? 0.03 : 0.12);
    }
}

TEST(GgmlQuantize, ZerosConstantsAndOutliersSurvive) {
    for (const GgmlType type : kTypes) {
        SCOPED_TRACE(std::string(ggml_type_name(type)));
        const std::vector<float> zeros(512, 0.0f);
        EXPECT_EQ(round_trip(type, zeros), zeros);

        // Constants of either sign come back within FP16 rounding.
        for (const float c : {-0.375f, 0.3f}) {
            const std::vector<float> constant(512, c);
            for (float y : round_trip(type, constant)) EXPECT_NEAR(y, c, 1e-3f * std::fabs(c));
        }

        // One outlier in an all-zero block next to ordinary blocks: the
        // outlier is kept to its own block's resolution and the zeros stay
        // exactly zero.
        std::vector<float> x = random_row(512, 11, 0.02f);
        for (int i = 256; i < 288; ++i) x[i] = 0.0f;
        x[260] = 3.0f;
        const std::vector<float> y = round_trip(type, x);
        EXPECT_NEAR(y[260], 3.0f, 3.0f * (type == GgmlType::Q6_K ? 0.02f : 0.07f));
        for (int i = 256; i < 288; ++i) {
            if (i != 260) {
                EXPECT_EQ(y[i], 0.0f) << i;
            }
        }
        // The ordinary blocks lose little to the outlier elsewhere in the row.
        double e = 0, energy = 0;
        for (int i = 0; i < 256; ++i) {
            e += (double(x[i]) - y[i]) * (x[i] - y[i]);
            energy += double(x[i]) * x[i];
        }
        EXPECT_LT(std::sqrt(e / energy), type == GgmlType::Q6_K ? 0.03 : 0.12);
    }
}

// Values below FP16's range (denormal floats, steps whose reciprocal
// overflows) quantize to finite values near them, never to garbage.
TEST(GgmlQuantize, DenormalAndTinyBlocksStayFinite) {
    for (const GgmlType type : kTypes) {
        SCOPED_TRACE(std::string(ggml_type_name(type)));
        std::vector<float> x = random_row(512, 9, 1e-39f);
        for (int i = 256; i < 512; ++i) x[i] = i % 2 ? 1e-42f : -3e-41f;
        const std::vector<float> y = round_trip(type, x);
        for (size_t i = 0; i < y.size(); ++i) {
            ASSERT_TRUE(std::isfinite(y[i])) << i;
            EXPECT_LE(std::fabs(y[i]), 1e-6f) << i;
        }
    }
}

TEST(GgmlQuantize, ImportanceWeightsLowerTheWeightedError) {
    for (const GgmlType type : kTypes) {
        SCOPED_TRACE(std::string(ggml_type_name(type)));
        double weighted = 0, unweighted = 0;
        for (uint32_t seed = 20; seed < 24; ++seed) {
            const std::vector<float> x = random_row(1024, seed, 0.05f);
            std::vector<float> w(x.size(), 1.0f);
            for (size_t i = 0; i < w.size(); i += 7) w[i] = 50.0f;  // a few important columns
            weighted += squared_error(x, round_trip(type, x, &w), &w);
            unweighted += squared_error(x, round_trip(type, x), &w);
        }
        EXPECT_LT(weighted, 0.95 * unweighted);
    }
}

TEST(GgmlQuantize, ExtremeScalesKeepTheirRelativeError) {
    for (const GgmlType type : kTypes) {
        for (const float sigma : {1e-3f, 30.0f}) {
            SCOPED_TRACE(std::string(ggml_type_name(type)) + " sigma " + std::to_string(sigma));
            const std::vector<float> x = random_row(768, 5, sigma);
            const std::vector<float> y = round_trip(type, x);
            double energy = 0;
            for (float v : x) energy += double(v) * v;
            EXPECT_LT(std::sqrt(squared_error(x, y) / energy), type == GgmlType::Q6_K ? 0.03 : 0.12);
        }
    }
}

// What GPTQ relies on: a value rounded onto a block's grid is exactly the
// value the packed block decodes to, and rounding it again keeps it.
TEST(GgmlQuantize, GridValuesPackAndDecodeExactly) {
    for (const GgmlType type : kTypes) {
        SCOPED_TRACE(std::string(ggml_type_name(type)));
        const GgmlTypeTraits t = ggml_type_traits(type);
        for (uint32_t seed = 30; seed < 34; ++seed) {
            const std::vector<float> x = random_row(t.block_size, seed, 0.03f);
            const std::vector<float> other = random_row(t.block_size, seed + 100, 0.04f);  // values off the fit
            const GgmlBlockGrid grid = fit_ggml_block_grid(type, x.data(), nullptr);
            std::vector<float> on_grid(t.block_size);
            for (int i = 0; i < static_cast<int>(t.block_size); ++i) {
                on_grid[i] = round_to_ggml_grid(grid, i, other[i]);
                EXPECT_EQ(round_to_ggml_grid(grid, i, on_grid[i]), on_grid[i]) << i;
            }
            std::vector<uint8_t> bytes(t.type_size);
            pack_ggml_block(grid, on_grid.data(), bytes.data());
            std::vector<float> decoded(t.block_size);
            dequantize_ggml(type, bytes.data(), bytes.size(), t.block_size, decoded.data(), "t");
            EXPECT_EQ(decoded, on_grid);
        }
    }
}

TEST(GgmlQuantize, RefusesTypesAndSizesItCannotWrite) {
    std::vector<float> x(256, 1.0f);
    std::vector<uint8_t> out(1024);
    EXPECT_FALSE(can_quantize_ggml(GgmlType::Q5_K));
    EXPECT_THROW(quantize_ggml_row(GgmlType::Q5_K, x.data(), 256, nullptr, out.data()), Error);
    EXPECT_THROW(quantize_ggml_row(GgmlType::Q4_K, x.data(), 224, nullptr, out.data()), Error);
    EXPECT_THROW(quantize_ggml_row(GgmlType::Q4_1, x.data(), 48, nullptr, out.data()), Error);
}

}  // namespace
}  // namespace sparq::gguf
