// Channel scaling (quant/channel_scaling.h), AWQ (quant/awq.h) and
// SmoothQuant scales (quant/smoothquant.h) without a model: folds leave a
// norm -> linear and a shared-head v -> o product unchanged, tying and its
// checks, AWQ keeps alpha 0 on flat activations and finds protective
// scales for outlier channels on every scheme, SmoothQuant's formula, and
// bad input named.
#include <gtest/gtest.h>

#include <algorithm>

#include <cmath>
#include <random>

#include "core/error.h"
#include "quant/awq.h"
#include "quant/channel_scaling.h"
#include "quant/hessian.h"
#include "random_values.h"
#include "quant/imatrix.h"
#include "quant/quantize_tensor.h"
#include "quant/smoothquant.h"

namespace sparq {
namespace {

using sparq::testing::normal_values;

std::vector<float> log_uniform_scales(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.5f, 1.5f);
    std::vector<float> s(n);
    for (float& x : s) x = std::exp(u(rng));
    return s;
}

// y = W x, [rows, cols] x [cols].
std::vector<double> product(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& x) {
    std::vector<double> y(static_cast<size_t>(rows), 0.0);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) y[r] += static_cast<double>(w[r * cols + c]) * x[c];
    return y;
}

// Activations whose channels have the given magnitudes, and their H = X^T X / n.
std::vector<double> hessian_of_channels(const std::vector<double>& magnitude, int64_t tokens, uint32_t seed) {
    const int64_t n = static_cast<int64_t>(magnitude.size());
    const std::vector<float> z = normal_values(static_cast<size_t>(tokens * n), seed);
    std::vector<double> h(static_cast<size_t>(n * n), 0.0);
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j)
                h[i * n + j] += magnitude[i] * z[t * n + i] * magnitude[j] * z[t * n + j] / tokens;
    return h;
}

TEST(ChannelScaling, NormFoldLeavesTheProductsUnchanged) {
    const int64_t d = 48, rows_a = 32, rows_b = 16;
    std::vector<float> norm = normal_values(d, 1), a = normal_values(rows_a * d, 2), b = normal_values(rows_b * d, 3);
    const std::vector<float> x = normal_values(d, 4);
    std::vector<double> normed(d);
    for (int64_t j = 0; j < d; ++j) normed[j] = static_cast<double>(norm[j]) * x[j];
    const std::vector<double> ya = product(a, rows_a, d, normed), yb = product(b, rows_b, d, normed);
    const std::vector<float> s = log_uniform_scales(d, 5);
    ScaleFold fold;
    fold.successors = {{a.data(), rows_a, d}, {b.data(), rows_b, d}};
    fold.predecessor = {norm.data(), d, 1};
    fold_channel_scales(fold, s, "test");
    for (int64_t j = 0; j < d; ++j) normed[j] = static_cast<double>(norm[j]) * x[j];
    const std::vector<double> ya2 = product(a, rows_a, d, normed), yb2 = product(b, rows_b, d, normed);
    for (int64_t r = 0; r < rows_a; ++r) EXPECT_NEAR(ya2[r], ya[r], 1e-5 * (1 + std::fabs(ya[r])));
    for (int64_t r = 0; r < rows_b; ++r) EXPECT_NEAR(yb2[r], yb[r], 1e-5 * (1 + std::fabs(yb[r])));
}

TEST(ChannelScaling, SharedHeadFoldLeavesVThenOUnchanged) {
    // 4 heads over 2 KV heads of 8: o's channel (h, d) reads v's row (h / 2, d).
    const HeadSharing sharing{4, 2, 8};
    const int64_t hidden = 24, kv = 16, q = 32, out = 20;
    std::vector<float> v = normal_values(kv * hidden, 6), o = normal_values(out * q, 7), bias = normal_values(kv, 8);
    const std::vector<float> x = normal_values(hidden, 9);
    auto run = [&] {
        std::vector<double> xv(x.begin(), x.end());
        std::vector<double> vy = product(v, kv, hidden, xv);
        for (int64_t i = 0; i < kv; ++i) vy[i] += bias[i];
        std::vector<double> heads(q);
        for (int64_t h = 0; h < 4; ++h)
            for (int64_t d = 0; d < 8; ++d) heads[h * 8 + d] = (h + 1) * vy[(h / 2) * 8 + d];  // per-head mixing
        return product(o, out, q, heads);
    };
    const std::vector<double> before = run();
    std::vector<double> raw(q);
    const std::vector<float> r = log_uniform_scales(q, 10);
    for (int64_t i = 0; i < q; ++i) raw[i] = r[i];
    const std::vector<double> tied = tie_shared_heads(raw, sharing);
    const std::vector<float> s(tied.begin(), tied.end());
    ScaleFold fold;
    fold.successors = {{o.data(), out, q}};
    fold.predecessor = {v.data(), kv, hidden};
    fold.predecessor_bias = bias.data();
    fold.shared_heads = true;
    fold.sharing = sharing;
    fold_channel_scales(fold, s, "test");
    const std::vector<double> after = run();
    for (int64_t i = 0; i < out; ++i) EXPECT_NEAR(after[i], before[i], 1e-5 * (1 + std::fabs(before[i])));
}

TEST(ChannelScaling, TyingTakesTheGeometricMeanAndUntiedScalesAreRejected) {
    const HeadSharing sharing{4, 2, 2};
    const std::vector<double> v = {1, 2, 4, 8, 3, 3, 12, 27};
    const std::vector<double> t = tie_shared_heads(v, sharing);
    EXPECT_NEAR(t[0], 2.0, 1e-12);   // heads 0, 1 at d 0: sqrt(1 * 4)
    EXPECT_NEAR(t[2], 2.0, 1e-12);
    EXPECT_NEAR(t[1], 4.0, 1e-12);   // sqrt(2 * 8)
    EXPECT_NEAR(t[5], 9.0, 1e-12);   // heads 2, 3 at d 1: sqrt(3 * 27)
    const std::vector<float> tied(t.begin(), t.end());
    EXPECT_EQ(shared_head_rows(tied, sharing), (std::vector<float>{2, 4, static_cast<float>(t[4]), 9}));
    const std::vector<float> untied(v.begin(), v.end());
    EXPECT_THROW(shared_head_rows(untied, sharing), Error);
    EXPECT_THROW(tie_shared_heads({1, 2, 3}, sharing), Error);
    EXPECT_THROW(tie_shared_heads({1, 0, 1, 1, 1, 1, 1, 1}, sharing), Error);
    EXPECT_THROW(tie_shared_heads(v, HeadSharing{3, 2, 2}), Error);
}

TEST(ChannelScaling, BadScalesAndShapesAreErrors) {
    std::vector<float> norm(8, 1.0f), w(4 * 8, 1.0f);
    ScaleFold fold;
    fold.successors = {{w.data(), 4, 8}};
    fold.predecessor = {norm.data(), 8, 1};
    std::vector<float> s(8, 1.0f);
    s[3] = 0;
    EXPECT_THROW(fold_channel_scales(fold, s, "w"), Error);
    s[3] = NAN;
    EXPECT_THROW(fold_channel_scales(fold, s, "w"), Error);
    EXPECT_THROW(fold_channel_scales(fold, std::vector<float>(7, 1.0f), "w"), Error);
    fold.predecessor.rows = 6;
    EXPECT_THROW(fold_channel_scales(fold, std::vector<float>(8, 1.0f), "w"), Error);
    try {
        fold.predecessor.rows = 8;
        fold_channel_scales(fold, std::vector<float>(8, -1.0f), "layer.q");
        FAIL() << "negative scales accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "layer.q");
    }
    EXPECT_EQ(w, std::vector<float>(4 * 8, 1.0f)) << "a rejected fold must not change anything";
}

TEST(Awq, ScalesAreNormalizedPowersOfTheStatistic) {
    const std::vector<double> m = {0.5, 2.0, 8.0, 1.0};
    EXPECT_EQ(awq_scales(m, 0.0), std::vector<float>(4, 1.0f));
    EXPECT_EQ(awq_scales({3, 3, 3}, 0.7), std::vector<float>(3, 1.0f));
    EXPECT_EQ(awq_scales({0, 0}, 0.5), std::vector<float>(2, 1.0f));
    const std::vector<float> s = awq_scales(m, 0.5);
    // sqrt(max * min) = 1 and s ~ m^0.5.
    EXPECT_NEAR(std::sqrt(static_cast<double>(s[2]) * s[0]), 1.0, 1e-6);
    EXPECT_NEAR(s[1] / s[3], std::sqrt(2.0), 1e-6);
    // A dead channel is raised to 1e-5 of the largest: bounded scale.
    const std::vector<float> dead = awq_scales({0.0, 1.0}, 1.0);
    EXPECT_NEAR(dead[1] / dead[0], 1e5, 1.0);
}

// Mean |x| per channel: 0.2, with an outlier channel (6.0) every 16.
std::vector<double> outlier_magnitudes(int64_t cols) {
    std::vector<double> magnitude(static_cast<size_t>(cols), 0.2);
    for (int64_t j = 0; j < cols; j += 16) magnitude[static_cast<size_t>(j)] = 6.0;
    return magnitude;
}

TEST(Awq, FlatActivationsKeepAlphaZero) {
    const int64_t rows = 16, cols = 64;
    const std::vector<float> w = normal_values(rows * cols, 11);
    const std::vector<double> h = hessian_of_channels(std::vector<double>(cols, 1.0), 4 * cols, 12);
    const AwqChoice c = awq_search({{w.data(), rows, QuantScheme{4, 32, true}, "w"}}, cols, h,
                                   std::vector<double>(cols, 0.8));
    EXPECT_EQ(c.alpha, 0.0);
    EXPECT_EQ(c.scales, std::vector<float>(cols, 1.0f));
    // Every candidate is a finalist, so only alpha 0's RTN error is kept;
    // with 3 finalists the RTN score ranks all 21.
    EXPECT_EQ(c.errors.size(), 1u);
    AwqGrid three;
    three.refine = 3;
    const AwqChoice ranked = awq_search({{w.data(), rows, QuantScheme{4, 32, true}, "w"}}, cols, h,
                                        std::vector<double>(cols, 0.8), three);
    EXPECT_EQ(ranked.errors.size(), 21u);
    EXPECT_EQ(ranked.errors.front(), c.errors.front());
}

TEST(Awq, OutlierChannelsGetProtectedOnEveryScheme) {
    const int64_t rows = 32, cols = 128;
    const std::vector<double> magnitude = outlier_magnitudes(cols);
    const std::vector<double> h = hessian_of_channels(magnitude, 3 * cols, 13);
    const std::vector<float> a = normal_values(rows * cols, 14), b = normal_values(rows / 2 * cols, 15);
    for (const QuantScheme scheme : {QuantScheme{4, 128, true}, QuantScheme{4, 32, false}, QuantScheme{3, 64, true},
                                     QuantScheme{2, 32, false}, QuantScheme{8, 0, true}, QuantScheme{4, 0, true}}) {
        const AwqChoice c = awq_search({{a.data(), rows, scheme, "a"}, {b.data(), rows / 2, scheme, "b"}}, cols, h,
                                       magnitude);
        EXPECT_GT(c.alpha, 0.0) << scheme.name();
        EXPECT_LT(c.error, c.errors.front()) << scheme.name();
        EXPECT_LE(c.alpha, 1.0) << scheme.name();
        // The chosen scales then quantized with the clip search: the output
        // error in the unscaled basis beats plain RTN.
        std::vector<float> scaled = a;
        scale_columns({scaled.data(), rows, cols}, c.scales);
        std::vector<float> q = dequantize_tensor(quantize_scaled_clip_search(scaled.data(), rows, cols, h, c.scales, scheme, "a"));
        unscale_columns({q.data(), rows, cols}, c.scales);
        const std::vector<float> rtn = dequantize_tensor(
            quantize_tensor(make_f32_tensor({rows, cols}, a), scheme, QuantMethod::Rtn, nullptr, "a"));
        EXPECT_LT(hessian_weighted_error(a.data(), q.data(), rows, cols, h),
                  hessian_weighted_error(a.data(), rtn.data(), rows, cols, h))
            << scheme.name();
    }
}

// Two linears (rows and rows / 2 of them) reading a 128-channel space with
// outlier channels: what AWQ's scales protect.
struct OutlierSpace {
    OutlierSpace(int64_t rows, QuantScheme scheme, uint32_t seed)
        : rows(rows),
          a(normal_values(rows * cols, seed)),
          b(normal_values(rows / 2 * cols, seed + 1)),
          linears{{a.data(), rows, scheme, "a"}, {b.data(), rows / 2, scheme, "b"}} {}
    int64_t rows;
    int64_t cols = 128;
    std::vector<double> magnitude = outlier_magnitudes(cols);
    std::vector<double> h = hessian_of_channels(magnitude, 3 * cols, 13);
    std::vector<float> a, b;
    std::vector<AwqLinear> linears;
};

// A module score replaces the linears' H error for the finalists: it sees
// each linear's effective weights (in the unscaled basis), and what it
// prefers wins even against the H error.
TEST(Awq, ModuleErrorPicksAmongTheFinalists) {
    const OutlierSpace space(32, QuantScheme{4, 128, true}, 14);
    const auto& [rows, cols, magnitude, h, a, b, linears] = space;
    const AwqChoice by_h = awq_search(linears, cols, h, magnitude);
    ASSERT_GT(by_h.alpha, 0.0);
    // A module that only cares how far `a` moved, unweighted: alpha 0 (the
    // clip search on H alone) is no longer what the score says is best, and
    // the score must see both linears' effective weights each time.
    int calls = 0;
    std::vector<double> scores;
    const AwqModuleError module = [&](const std::vector<std::vector<float>>& effective) {
        ++calls;
        EXPECT_EQ(effective.size(), 2u);
        EXPECT_EQ(effective[0].size(), static_cast<size_t>(rows * cols));
        EXPECT_EQ(effective[1].size(), static_cast<size_t>(rows / 2 * cols));
        double e = 0;
        for (int64_t i = 0; i < rows * cols; ++i) e += std::abs(effective[0][i] - a[i]);
        scores.push_back(e);
        return e;
    };
    const AwqChoice by_module = awq_search(linears, cols, h, magnitude, AwqGrid{}, nullptr, module);
    EXPECT_EQ(calls, 21);  // every alpha is a finalist by default
    EXPECT_EQ(by_module.error, *std::min_element(scores.begin(), scores.end()));
    // A module that prefers no scaling at all gets alpha 0.
    const AwqChoice flat = awq_search(linears, cols, h, magnitude, AwqGrid{}, nullptr,
                                      [](const std::vector<std::vector<float>>&) { return 1.0; });
    EXPECT_EQ(flat.alpha, 0.0);
    EXPECT_EQ(flat.scales, std::vector<float>(cols, 1.0f));
}

// Large spaces are scored on every k-th row: exactly the search on those
// rows, taken from each linear; small ones, and module scores, on all rows.
TEST(Awq, LargeSpacesAreScoredOnEveryKthRow) {
    const OutlierSpace space(30, QuantScheme{4, 32, true}, 24);
    const auto& [rows, cols, magnitude, h, a, b, linears] = space;
    const QuantScheme scheme = linears.front().scheme;
    AwqGrid sampled;
    sampled.scored_weights = 11 * cols;  // 45 rows in all -> every 5th row
    ASSERT_EQ(sampled.row_stride(45 * cols), 5);
    const AwqChoice c = awq_search(linears, cols, h, magnitude, sampled);
    EXPECT_EQ(c.row_stride, 5);

    std::vector<float> a_rows, b_rows;
    for (int64_t r = 0; r < rows; r += 5) a_rows.insert(a_rows.end(), a.begin() + r * cols, a.begin() + (r + 1) * cols);
    for (int64_t r = 0; r < rows / 2; r += 5) b_rows.insert(b_rows.end(), b.begin() + r * cols, b.begin() + (r + 1) * cols);
    AwqGrid whole;
    whole.scored_weights = 0;
    const AwqChoice on_rows = awq_search({{a_rows.data(), 6, scheme, "a"}, {b_rows.data(), 3, scheme, "b"}}, cols, h,
                                         magnitude, whole);
    EXPECT_EQ(on_rows.row_stride, 1);
    EXPECT_EQ(c.alpha, on_rows.alpha);
    EXPECT_EQ(c.scales, on_rows.scales);
    EXPECT_EQ(c.errors, on_rows.errors);
    EXPECT_EQ(c.error, on_rows.error);

    // The default budget scores these small linears whole, as does a module score.
    EXPECT_EQ(awq_search(linears, cols, h, magnitude).row_stride, 1);
    const AwqChoice by_module = awq_search(linears, cols, h, magnitude, sampled, nullptr,
                                           [&](const std::vector<std::vector<float>>& effective) {
                                               EXPECT_EQ(effective[0].size(), static_cast<size_t>(rows * cols));
                                               return 1.0;
                                           });
    EXPECT_EQ(by_module.row_stride, 1);
}

TEST(Awq, UnitScalesClipSearchIsTheImatrixSearch) {
    const int64_t rows = 8, cols = 64;
    const std::vector<float> w = normal_values(rows * cols, 16);
    const std::vector<double> h = hessian_of_channels(std::vector<double>(cols, 1.0), 2 * cols, 17);
    const QuantScheme s{4, 32, true};
    const PackedTensor a = quantize_scaled_clip_search(w.data(), rows, cols, h, std::vector<float>(cols, 1.0f), s, "w");
    const PackedTensor b = quantize_importance_weighted(w.data(), rows, cols, h, s, ImportanceWeighting::GroupHessian, "w");
    EXPECT_EQ(a.codes, b.codes);
    EXPECT_EQ(a.scales, b.scales);
}

TEST(Awq, BadInputIsNamed) {
    const int64_t rows = 4, cols = 16;
    std::vector<float> w = normal_values(rows * cols, 18);
    const std::vector<double> h = hessian_of_channels(std::vector<double>(cols, 1.0), 32, 19);
    const std::vector<double> m(cols, 1.0);
    const QuantScheme s{4, 16, true};
    EXPECT_THROW(awq_search({}, cols, h, m), Error);
    EXPECT_THROW(awq_search({{w.data(), rows, s, "w"}}, cols, h, std::vector<double>(cols - 1, 1.0)), Error);
    EXPECT_THROW(awq_search({{w.data(), rows, s, "w"}}, cols, std::vector<double>(10, 0.0), m), Error);
    EXPECT_THROW(awq_search({{w.data(), rows, s, "w"}}, cols, h, m, AwqGrid{0}), Error);
    EXPECT_THROW(awq_search({{w.data(), rows, QuantScheme{5, 16, true}, "w"}}, cols, h, m), Error);
    std::vector<double> bad = m;
    bad[2] = NAN;
    EXPECT_THROW(awq_search({{w.data(), rows, s, "w"}}, cols, h, bad), Error);
    w[5] = INFINITY;
    try {
        awq_search({{w.data(), rows, s, "layer.w"}}, cols, h, m);
        FAIL() << "a non-finite weight was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "layer.w");
    }
}

TEST(SmoothQuant, ScalesFollowTheFormula) {
    const std::vector<double> act = {4.0, 0.25, 9.0, 0.0}, wmax = {1.0, 4.0, 0.01, 2.0};
    const std::vector<double> s = smoothquant_scales(act, wmax, 0.5);
    EXPECT_NEAR(s[0], 2.0, 1e-12);
    EXPECT_NEAR(s[1], 0.25, 1e-12);
    EXPECT_NEAR(s[2], 30.0, 1e-9);
    EXPECT_NEAR(s[3], std::sqrt(1e-5) / std::sqrt(2.0), 1e-12);  // dead channel: clamped, finite
    const std::vector<double> s75 = smoothquant_scales(act, wmax, 0.75);
    EXPECT_NEAR(s75[0], std::pow(4.0, 0.75), 1e-12);
    EXPECT_NEAR(s75[1], std::pow(0.25, 0.75) / std::pow(4.0, 0.25), 1e-12);
    // After smoothing, max|x_j / s_j| = max|w_j s_j| at alpha 0.5.
    for (size_t j = 0; j < 3; ++j) EXPECT_NEAR(act[j] / s[j], wmax[j] * s[j], 1e-9);
    EXPECT_THROW(smoothquant_scales(act, wmax, 1.5), Error);
    EXPECT_THROW(smoothquant_scales(act, {1.0}, 0.5), Error);
    EXPECT_THROW(smoothquant_scales({NAN, 1, 1, 1}, wmax, 0.5), Error);
}

TEST(SmoothQuant, ColumnMaximaSpanEveryLinear) {
    std::vector<float> a = {1, -5, 2, 0.5f, 3, -1}, b = {-7, 1, 0};
    const std::vector<double> m = column_abs_max({{a.data(), 2, 3}, {b.data(), 1, 3}});
    EXPECT_EQ(m, (std::vector<double>{7, 5, 2}));
    std::vector<float> c(4, 1.0f);
    EXPECT_THROW(column_abs_max({{a.data(), 2, 3}, {c.data(), 1, 4}}), Error);
}

}  // namespace
}  // namespace sparq
