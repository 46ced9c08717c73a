// The per-group rules of quant/rtn.h and quant/clip_search.h: pinned
// examples, and a stress run over many random groups checking the
// half-step bound, canonical idempotency and search-never-loses.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/clip_search.h"
#include "quant/quantize_tensor.h"
#include "quant/reference_codec.h"
#include "quant/rtn.h"

namespace sparq {
namespace {

struct Encoded {
    GroupParams params;
    std::vector<uint8_t> codes;
    std::vector<float> values;  // dequantized
};

Encoded rtn(const QuantScheme& s, const std::vector<float>& x) {
    Encoded e;
    const int64_t n = static_cast<int64_t>(x.size());
    e.codes.resize(x.size());
    e.values.resize(x.size());
    std::vector<float> scratch(x.size());
    e.params = quantize_group_rtn(s, x.data(), n, e.codes.data(), scratch.data());
    dequantize_group(e.codes.data(), n, e.params, e.values.data());
    return e;
}

Encoded mse(const QuantScheme& s, const std::vector<float>& x, const float* importance) {
    Encoded e;
    const int64_t n = static_cast<int64_t>(x.size());
    e.codes.resize(x.size());
    e.values.resize(x.size());
    std::vector<float> scratch(x.size());
    e.params = quantize_group_mse(s, x.data(), n, importance, ClipGrid{}, e.codes.data(), scratch.data());
    dequantize_group(e.codes.data(), n, e.params, e.values.data());
    return e;
}

float fp16(uint16_t h) { return fp16_to_fp32(h); }

TEST(GroupRules, SymmetricLongSideGetsTheExtraLevel) {
    // Positive side is longer: negative scale, the maximum maps to q = -8.
    const std::vector<float> x = {1.0f, -0.5f, 0.25f, 0.0f, 0.0f, 0.0f, 0.0f, 0.6f};
    const QuantScheme s{4, 8, true};
    const Encoded e = rtn(s, x);
    EXPECT_TRUE(e.params.scale & 0x8000u);
    const float long_fits = 1.0f / 8, short_fits = fp16(fp16_round_up(1.0f / 8.5f));
    EXPECT_TRUE(-fp16(e.params.scale) == long_fits || -fp16(e.params.scale) == short_fits);
    EXPECT_EQ(e.codes[0], 0);  // q = -8
    // The chosen candidate has the smaller error of the two.
    const GroupParams other{static_cast<uint16_t>(fp32_to_fp16(-fp16(e.params.scale) == long_fits
                                                                    ? -short_fits : -long_fits)), 8};
    EXPECT_LE(group_squared_error(s, x.data(), 8, nullptr, e.params),
              group_squared_error(s, x.data(), 8, nullptr, other));
    // int8 symmetric: absmax / 127, q = -127 stored as 0x81.
    const Encoded e8 = rtn({8, 8, true}, {-1.0f, 0.5f, 0.3f, 0.0f, 0.1f, 0.2f, 0.7f, -0.9f});
    EXPECT_EQ(e8.params.scale, fp16_round_up(1.0f / 127));
    uint8_t byte;
    pack_code_row({8, 8, true}, e8.codes.data(), 1, &byte);
    EXPECT_EQ(byte, 0x81);
}

TEST(GroupRules, AsymmetricZeroPointMinimizesTheStep) {
    // Range [-1, 3] on 16 codes: the smallest step is 3/11.5 with z = 4
    // (low end fits, 3 overhangs by half a step).
    const std::vector<float> x = {-1.0f, 3.0f, 0.0f, 0.5f, 1.0f, 1.5f, 2.0f, -0.25f};
    const QuantScheme s{4, 8, false};
    const RtnCandidates c = rtn_candidates(s, group_range(x.data(), 8), 1.0f);
    ASSERT_EQ(c.count, 2);
    EXPECT_EQ(c.params[0], (GroupParams{fp16_round_up(3.0f / 11.5f), 4}));
    EXPECT_EQ(c.params[1], (GroupParams{fp16_round_up(3.0f / 11.0f), 4}));
    const Encoded e = rtn(s, x);
    EXPECT_EQ(e.params.zero, 4);
    EXPECT_EQ(e.codes[2], 4);  // zero is exact
    EXPECT_EQ(e.values[2], 0.0f);
}

TEST(GroupRules, BranchFreeRoundingMatchesNearbyint) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> wide(-1100.0f, 1100.0f);
    for (int i = -4400; i <= 4400; ++i) {  // every quarter: exact ties included
        const float v = 0.25f * static_cast<float>(i);
        ASSERT_EQ(round_half_even(v), std::nearbyint(v)) << v;
    }
    for (int i = 0; i < 100000; ++i) {
        const float v = wide(rng);
        ASSERT_EQ(round_half_even(v), std::nearbyint(v)) << v;
        ASSERT_EQ(round_half_even(std::nextafter(v, 0.0f)), std::nearbyint(std::nextafter(v, 0.0f)));
    }
    EXPECT_EQ(quantize_level(1e30f, 1e-8f, -8.0f, 7.0f), 7.0f);  // huge ratios clamp
    EXPECT_EQ(quantize_level(-INFINITY, 1.0f, -8.0f, 7.0f), -8.0f);
}

TEST(GroupRules, ClipGridRunsFromOneToHalf) {
    const ClipGrid grid;
    EXPECT_EQ(grid.ratio(0), 1.0f);
    EXPECT_FLOAT_EQ(grid.ratio(1), 0.99f);
    EXPECT_EQ(grid.ratio(grid.steps), 0.5f);
}

// Groups that stress the rules: normal, one-sided, a coarse grid (ties and
// exactly representable values), three distinct values, FP16-subnormal
// scales, large values.
std::vector<float> random_group(std::mt19937& rng, int kind) {
    std::uniform_int_distribution<int> length(1, 64);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    std::uniform_int_distribution<int> grid(-9, 9);
    std::vector<float> x(static_cast<size_t>(length(rng)));
    const float a = 0.1f + uniform(rng), b = 0.1f + uniform(rng);
    for (float& v : x) {
        switch (kind) {
            case 0: v = normal(rng); break;
            case 1: v = uniform(rng); break;
            case 2: v = 0.25f * grid(rng); break;
            case 3: v = grid(rng) % 3 == 0 ? -a : grid(rng) % 2 ? b : 0.0f; break;
            case 4: v = 1e-6f * normal(rng); break;
            default: v = 1e3f * normal(rng); break;
        }
    }
    return x;
}

TEST(GroupRules, StressBoundIdempotencyAndSearchOnRandomGroups) {
    std::mt19937 rng(2024);
    std::uniform_real_distribution<float> weight(0.0f, 4.0f);
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            const QuantScheme s{bits, 64, sym};
            for (int trial = 0; trial < 3000; ++trial) {
                const int kind = trial % 6;
                const std::vector<float> x = random_group(rng, kind);
                const int64_t n = static_cast<int64_t>(x.size());
                std::vector<float> importance(x.size());
                for (float& w : importance) w = weight(rng);
                const std::string what = s.name() + " kind " + std::to_string(kind) + " trial " +
                                         std::to_string(trial);

                // The bound holds for the step RTN rounded with, and for the
                // stored (canonical) step, which is never smaller.
                const Encoded first = rtn(s, x);
                const float used = std::fabs(fp16(rtn_group_params(s, x.data(), n).scale));
                const float stored = std::fabs(fp16(first.params.scale));
                if (first.params.scale != 0) {
                    ASSERT_GE(stored, used) << what;
                }
                const double half_step = 0.5 * used * (1 + 1e-6);
                for (size_t i = 0; i < x.size(); ++i) {
                    ASSERT_LE(std::fabs(static_cast<double>(x[i]) - first.values[i]), half_step) << what;
                }
                const Encoded again = rtn(s, first.values);
                ASSERT_EQ(again.params, first.params) << what;
                ASSERT_EQ(again.codes, first.codes) << what;

                const Encoded searched = mse(s, x, importance.data());
                ASSERT_LE(group_squared_error(s, x.data(), n, importance.data(), searched.params),
                          group_squared_error(s, x.data(), n, importance.data(), first.params))
                    << what;
                const Encoded searched_again = mse(s, searched.values, importance.data());
                ASSERT_EQ(searched_again.params, searched.params) << what;
                ASSERT_EQ(searched_again.codes, searched.codes) << what;
                ASSERT_EQ(rtn(s, searched.values).codes, searched.codes) << what;
            }
        }
    }
}

TEST(GroupRules, ImportanceSteersTheClippingSearch) {
    // One outlier in column 0 among small values. Ignoring column 0, the
    // search clips it away for a finer step; weighting it, it keeps it.
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    std::vector<float> x(32);
    for (float& v : x) v = normal(rng);
    x[0] = 4.0f;
    std::vector<float> ignore_outlier(32, 1.0f), keep_outlier(32, 1.0f);
    ignore_outlier[0] = 0.0f;
    keep_outlier[0] = 1e4f;
    const QuantScheme s{4, 32, true};
    const Encoded clipped = mse(s, x, ignore_outlier.data());
    const Encoded kept = mse(s, x, keep_outlier.data());
    EXPECT_LT(std::fabs(fp16(clipped.params.scale)), 0.75f * std::fabs(fp16(kept.params.scale)));
    EXPECT_LE(std::fabs(kept.values[0] - x[0]), 0.5f * std::fabs(fp16(kept.params.scale)));
    EXPECT_LT(group_squared_error(s, x.data(), 32, ignore_outlier.data(), clipped.params),
              group_squared_error(s, x.data(), 32, ignore_outlier.data(), kept.params));
    EXPECT_LT(group_squared_error(s, x.data(), 32, keep_outlier.data(), kept.params),
              group_squared_error(s, x.data(), 32, keep_outlier.data(), clipped.params));
}

TEST(GroupRules, SearchAndRulesPayOffOnGaussianWeights) {
    std::mt19937 rng(1);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t rows = 64, cols = 1024;
    std::vector<float> x(rows * cols);
    for (float& v : x) v = normal(rng);
    const Tensor w = make_f32_tensor({rows, cols}, x);
    for (const QuantScheme& s : {QuantScheme{4, 128, true}, QuantScheme{3, 128, true},
                                 QuantScheme{2, 64, false}, QuantScheme{4, 128, false}}) {
        const double r = sqnr_db(x, dequantize_tensor(quantize_tensor(w, s, QuantMethod::Rtn, nullptr, "w")));
        const double m = sqnr_db(x, dequantize_tensor(quantize_tensor(w, s, QuantMethod::Mse, nullptr, "w")));
        EXPECT_GT(m, r + 0.1) << s.name() << " rtn " << r << " mse " << m;
        if (s == QuantScheme{4, 128, true}) {
            // Above Q4_0's rule (19.7 dB) and far above absmax/7 (18.6 dB).
            EXPECT_GT(r, 19.75) << r;
            EXPECT_LT(r, 20.5) << r;
        }
    }
}

}  // namespace
}  // namespace sparq

namespace sparq {
namespace {

// encode_group_canonical by its definition: encode, decode, and re-express
// the decoded values with exact_group_params when they have a canonical
// form. The implementation reads the usual case off the codes instead.
GroupParams canonical_by_definition(const QuantScheme& s, const float* x, int64_t n, GroupParams p,
                                    uint8_t* codes) {
    quantize_group(s, x, n, p, codes);
    std::vector<float> decoded(static_cast<size_t>(n));
    dequantize_group(codes, n, p, decoded.data());
    const std::optional<GroupParams> canonical = exact_group_params(s, decoded.data(), n);
    if (!canonical || *canonical == p) return p;
    quantize_group(s, decoded.data(), n, *canonical, codes);
    return *canonical;
}

TEST(GroupRules, CanonicalEncodingMatchesItsDefinition) {
    std::mt19937 rng(77);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::uniform_int_distribution<int> small(-3, 3);
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            const QuantScheme s{bits, 32, sym};
            for (int trial = 0; trial < 4000; ++trial) {
                const int64_t n = 1 + trial % 40;
                std::vector<float> x(static_cast<size_t>(n));
                const int kind = trial % 5;
                for (float& v : x) {
                    if (kind == 0) v = gauss(rng);
                    if (kind == 1) v = 0.25f * static_cast<float>(small(rng));    // common factors
                    if (kind == 2) v = std::fabs(gauss(rng)) + 1.0f;              // one-sided
                    if (kind == 3) v = fp16_to_fp32(fp32_to_fp16(gauss(rng)));    // FP16 weights
                    if (kind == 4) v = (trial & 8) ? 0.0f : -std::fabs(gauss(rng));  // zeros, one-sided
                }
                const RtnCandidates candidates = rtn_candidates(s, group_range(x.data(), n), 1.0f);
                for (int c = 0; c < candidates.count; ++c) {
                    GroupParams p = candidates.params[c];
                    std::vector<uint8_t> fast(x.size()), slow(x.size());
                    std::vector<float> scratch(x.size());
                    const GroupParams got = encode_group_canonical(s, x.data(), n, p, fast.data(), scratch.data());
                    const GroupParams want = canonical_by_definition(s, x.data(), n, p, slow.data());
                    const std::string what = s.name() + " trial " + std::to_string(trial);
                    ASSERT_EQ(got, want) << what;
                    ASSERT_EQ(fast, slow) << what;
                }
            }
        }
    }
}

}  // namespace
}  // namespace sparq

namespace sparq {
namespace {

// quantize_group's loop is written to vectorize; it must still be
// quantize_value element by element, NaN, infinities and ties included.
TEST(GroupRules, GroupEncoderMatchesTheScalarDefinition) {
    std::mt19937 rng(5);
    std::normal_distribution<float> gauss(0.0f, 3.0f);
    const float specials[] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0.5f, 1.5f, -2.5f, 1e30f, -1e30f};
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            const QuantScheme s{bits, 0, sym};
            for (uint16_t scale : {uint16_t{0x3c00}, uint16_t{0xbc00}, uint16_t{0x0001}, uint16_t{0},
                                   uint16_t{0x7bff}, uint16_t{0x3555}}) {
                const GroupParams p{scale, sym ? symmetric_zero_point(bits) : max_code(bits) / 3};
                std::vector<float> x(67);
                for (size_t i = 0; i < x.size(); ++i) {
                    x[i] = i < std::size(specials) ? specials[i] : gauss(rng);
                }
                std::vector<uint8_t> codes(x.size());
                quantize_group(s, x.data(), static_cast<int64_t>(x.size()), p, codes.data());
                for (size_t i = 0; i < x.size(); ++i) {
                    ASSERT_EQ(codes[i], quantize_value(x[i], p.scale_value(), p.zero, min_code(s), max_code(s)))
                        << s.name() << " scale " << scale << " x " << x[i];
                }
            }
        }
    }
}

}  // namespace
}  // namespace sparq

namespace sparq {
namespace {

// The absmax baseline against its definition written out here: the
// largest magnitude lands on the top symmetric level, every value rounds
// to the nearest level, asymmetric groups span [min, max] with a zero code
// that stores 0 exactly; all-zero groups store scale 0.
TEST(AbsmaxBaseline, MatchesTheTextbookDefinition) {
    const float x[8] = {0.5f, -1.75f, 0.25f, 1.0f, -0.125f, 0.0f, 1.5f, -0.6f};
    for (int bits : {8, 4, 3, 2}) {
        const QuantScheme sym{bits, 8, true};
        const GroupParams p = absmax_group_params(sym, x, 8);
        const int top = (1 << (bits - 1)) - 1;
        EXPECT_EQ(p.scale, fp16_round_up(1.75f / static_cast<float>(top))) << bits;
        EXPECT_EQ(p.zero, implicit_zero_point(sym));
        uint8_t codes[8];
        quantize_group(sym, x, 8, p, codes);
        for (int i = 0; i < 8; ++i) {
            const float level = std::nearbyint(x[i] / p.scale_value());
            EXPECT_LE(std::fabs(level), static_cast<float>(top)) << bits;
            EXPECT_EQ(dequantize_value(codes[i], p.scale_value(), p.zero), level * p.scale_value()) << bits << " " << i;
        }
        const QuantScheme asym{bits, 8, false};
        const GroupParams a = absmax_group_params(asym, x, 8);
        EXPECT_EQ(a.scale, fp16_round_up(3.25f / static_cast<float>((1 << bits) - 1))) << bits;
        EXPECT_EQ(dequantize_value(a.zero, a.scale_value(), a.zero), 0.0f);
        EXPECT_GE(a.zero, 0);
        EXPECT_LE(a.zero, (1 << bits) - 1);
    }
    const float zeros[4] = {0, 0, 0, 0};
    EXPECT_EQ(absmax_group_params(QuantScheme{4, 4, true}, zeros, 4).scale, 0);
    const float huge[2] = {1e9f, -3.0f};
    EXPECT_THROW(absmax_group_params(QuantScheme{4, 2, true}, huge, 2), Error);
}

TEST(AbsmaxBaseline, IsAQuantizeMethod) {
    EXPECT_EQ(parse_quant_method("absmax"), QuantMethod::Absmax);
    EXPECT_EQ(quant_method_name(QuantMethod::Absmax), "absmax");
    EXPECT_THROW(parse_quant_method("absmin"), Error);
}

}  // namespace
}  // namespace sparq
