// SparseGPT against a slow, obviously correct OBS implementation, the mask
// properties of its adaptive selection, joint quantization keeping the mask,
// and the Wanda scores and OWL ratios.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/hessian.h"
#include "quant/quantize_tensor.h"
#include "sparsity/owl.h"
#include "sparsity/scores.h"
#include "sparsity/sparsegpt.h"
#include "random_layer.h"

namespace sparq {
namespace {

using testing::Layer;
using testing::random_layer;

// The textbook OBS pass, one row at a time: the full inverse of the damped
// H by Gauss-Jordan, then column after column: pick the mask from
// w_j^2 / [H^-1]_jj (with H^-1 of the columns not yet eliminated), replace
// w_i by its kept value, spread the error with row i of H^-1, and eliminate
// column i from H^-1 (H^-1 -= H^-1[:, i] H^-1[i, :] / H^-1[i, i]).
std::vector<float> slow_sparsegpt(const Layer& l, const SparsityTarget& target, int64_t block, double damp,
                                  std::vector<uint8_t>* keep_out) {
    const int64_t n = l.cols;
    std::vector<double> a = l.h;
    double mean_diag = 0;
    for (int64_t i = 0; i < n; ++i) mean_diag += a[i * n + i] / n;
    for (int64_t i = 0; i < n; ++i) a[i * n + i] += damp * mean_diag;
    std::vector<double> inv(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
    for (int64_t p = 0; p < n; ++p) {  // Gauss-Jordan; H + lambda I is positive definite, no pivoting needed
        const double d = a[p * n + p];
        for (int64_t j = 0; j < n; ++j) {
            a[p * n + j] /= d;
            inv[p * n + j] /= d;
        }
        for (int64_t r = 0; r < n; ++r) {
            if (r == p) continue;
            const double f = a[r * n + p];
            for (int64_t j = 0; j < n; ++j) {
                a[r * n + j] -= f * a[p * n + j];
                inv[r * n + j] -= f * inv[p * n + j];
            }
        }
    }
    // Diagonal of H^-1 at the moment each column comes up (the same for
    // every row: it depends on H only).
    std::vector<double> stage_diag(static_cast<size_t>(n));
    {
        std::vector<double> hi = inv;
        for (int64_t i = 0; i < n; ++i) {
            stage_diag[i] = hi[i * n + i];
            for (int64_t r = i + 1; r < n; ++r) {
                for (int64_t c = i + 1; c < n; ++c) hi[r * n + c] -= hi[r * n + i] * hi[i * n + c] / hi[i * n + i];
            }
        }
    }
    std::vector<float> out(l.w.size());
    keep_out->assign(l.w.size(), 1);
    for (int64_t r = 0; r < l.rows; ++r) {
        std::vector<double> w(l.w.begin() + r * n, l.w.begin() + (r + 1) * n);
        std::vector<double> hi = inv;
        uint8_t* keep = keep_out->data() + r * n;
        auto choose = [&](int64_t first, int64_t count, int64_t keep_count) {
            std::vector<int64_t> order(static_cast<size_t>(count));
            std::iota(order.begin(), order.end(), first);
            std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
                const float sx = static_cast<float>(w[x] * w[x] / stage_diag[x]);
                const float sy = static_cast<float>(w[y] * w[y] / stage_diag[y]);
                return sx > sy;
            });
            for (int64_t k = 0; k < count; ++k) keep[order[k]] = k < keep_count;
        };
        for (int64_t i = 0; i < n; ++i) {
            if (target.kind == SparsityTarget::Kind::Unstructured && i % block == 0) {
                const int64_t end = std::min(n, i + block);
                const int64_t prune = std::llround(target.sparsity * end) - std::llround(target.sparsity * i);
                choose(i, end - i, end - i - prune);
            }
            if (target.kind == SparsityTarget::Kind::NM && i % target.m == 0) choose(i, target.m, target.n);
            const double q = keep[i] ? w[i] : 0.0;
            const double e = (w[i] - q) / hi[i * n + i];
            for (int64_t j = i + 1; j < n; ++j) w[j] -= e * hi[i * n + j];
            w[i] = q;
            for (int64_t a2 = i + 1; a2 < n; ++a2) {
                for (int64_t c = i + 1; c < n; ++c) hi[a2 * n + c] -= hi[a2 * n + i] * hi[i * n + c] / hi[i * n + i];
            }
        }
        for (int64_t c = 0; c < n; ++c) out[r * n + c] = static_cast<float>(w[c]);
    }
    return out;
}

void expect_matches_slow(const SparsityTarget& target, int64_t block) {
    const Layer l = random_layer(12, 32, 7);
    SparseGptOptions options;
    options.block_size = block;
    const SparseGptResult fast = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, target, std::nullopt, options, "t");
    std::vector<uint8_t> slow_keep;
    const std::vector<float> slow = slow_sparsegpt(l, target, block, options.damping.fraction, &slow_keep);
    ASSERT_FALSE(fast.fell_back);
    EXPECT_EQ(fast.mask.keep, slow_keep);
    double worst = 0, scale = 0;
    for (size_t i = 0; i < slow.size(); ++i) {
        worst = std::max(worst, std::fabs(static_cast<double>(fast.weights[i]) - slow[i]));
        scale = std::max(scale, std::fabs(static_cast<double>(slow[i])));
        if (!slow_keep[i]) {
            EXPECT_EQ(fast.weights[i], 0.0f) << "pruned weight " << i << " is not exactly zero";
        }
    }
    EXPECT_LT(worst, 1e-4 * scale) << "largest difference from the slow implementation";
}

TEST(SparseGpt, UnstructuredMatchesTheSlowObsImplementation) {
    expect_matches_slow(SparsityTarget::unstructured(0.5), 8);
    expect_matches_slow(SparsityTarget::unstructured(0.3), 32);
}

TEST(SparseGpt, TwoFourMatchesTheSlowObsImplementation) { expect_matches_slow(SparsityTarget::nm(2, 4), 16); }

TEST(SparseGpt, MasksHaveExactCountsPerRowAndPerRun) {
    const Layer l = random_layer(40, 96, 3);
    SparseGptOptions options;
    options.block_size = 32;
    for (double s : {0.5, 0.6, 0.7}) {
        const auto r = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::unstructured(s), std::nullopt,
                                       options, "t");
        for (int64_t row = 0; row < l.rows; ++row) {
            int64_t kept = 0;
            for (int64_t c = 0; c < l.cols; ++c) kept += r.mask.kept(row, c);
            EXPECT_EQ(kept, kept_per_row(l.cols, s)) << "sparsity " << s << " row " << row;
        }
    }
    for (auto [n, m] : {std::pair{2, 4}, std::pair{4, 8}}) {
        const auto r = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(n, m), std::nullopt,
                                       options, "t");
        for (int64_t row = 0; row < l.rows; ++row) {
            for (int64_t run = 0; run < l.cols; run += m) {
                int kept = 0;
                for (int64_t c = run; c < run + m; ++c) kept += r.mask.kept(row, c);
                EXPECT_EQ(kept, n) << n << ":" << m << " row " << row << " run " << run;
            }
        }
    }
}

TEST(SparseGpt, ReconstructionBeatsPlainMaskingOnTheLayerOutput) {
    const Layer l = random_layer(16, 64, 11);
    const SparsityTarget target = SparsityTarget::unstructured(0.5);
    const auto r = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, target, std::nullopt, {}, "t");
    std::vector<float> masked = l.w;
    apply_mask(r.mask, masked.data());
    const double plain = hessian_weighted_error(l.w.data(), masked.data(), l.rows, l.cols, l.h);
    const double solved = hessian_weighted_error(l.w.data(), r.weights.data(), l.rows, l.cols, l.h);
    EXPECT_LT(solved, 0.8 * plain);
}

TEST(SparseGpt, JointQuantizationKeepsTheMaskAndStoresWhatItComputed) {
    const Layer l = random_layer(24, 64, 5);
    const QuantScheme scheme{4, 16, true};
    for (bool symmetric : {true, false}) {
        QuantScheme s = scheme;
        s.symmetric = symmetric;
        const auto r = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), s, {}, "t");
        ASSERT_TRUE(r.packed.has_value());
        const std::vector<float> stored = dequantize_tensor(*r.packed);
        EXPECT_EQ(stored, r.weights);
        for (size_t i = 0; i < stored.size(); ++i) {
            if (!r.mask.keep[i]) {
                EXPECT_EQ(stored[i], 0.0f) << "pruned weight " << i << " was un-zeroed";
            }
        }
        // Quantizing inside the pass loses less than pruning, then RTN.
        const auto pruned_only =
            sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), std::nullopt, {}, "t");
        std::vector<float> then_rtn = dequantize_tensor(
            quantize_tensor(make_f32_tensor({l.rows, l.cols}, pruned_only.weights), s, QuantMethod::Rtn, nullptr, "t"));
        const double joint = hessian_weighted_error(l.w.data(), stored.data(), l.rows, l.cols, l.h);
        const double sequential = hessian_weighted_error(l.w.data(), then_rtn.data(), l.rows, l.cols, l.h);
        EXPECT_LT(joint, sequential) << (symmetric ? "symmetric" : "asymmetric");
    }
}

TEST(SparseGpt, FixedMaskIsNeverUnzeroed) {
    // GPTQ after another method's pruning: the mask given is the mask kept.
    const Layer l = random_layer(16, 64, 9);
    std::vector<float> scores(l.w.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] = std::fabs(l.w[i]);
    const PruneMask mask = select_mask(scores.data(), l.rows, l.cols, SparsityTarget::unstructured(0.6), "t");
    std::vector<float> pruned = l.w;
    apply_mask(mask, pruned.data());
    const auto r = sparsegpt_prune(pruned.data(), l.rows, l.cols, l.h, SparsityTarget::unstructured(0.6),
                                   QuantScheme{3, 32, true}, {}, "t", &mask);
    EXPECT_EQ(r.mask.keep, mask.keep);
    const std::vector<float> stored = dequantize_tensor(*r.packed);
    for (size_t i = 0; i < stored.size(); ++i) {
        if (!mask.keep[i]) {
            EXPECT_EQ(stored[i], 0.0f) << i;
        }
    }
}

TEST(SparseGpt, SameBytesForAnyThreadCount) {
    const Layer l = random_layer(200, 64, 13);
    std::vector<float> one, many;
    {
        ThreadLimit limit(1);
        one = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::unstructured(0.5), QuantScheme{4, 32, true},
                              {}, "t")
                  .weights;
    }
    {
        ThreadLimit limit(4);
        many = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::unstructured(0.5),
                               QuantScheme{4, 32, true}, {}, "t")
                   .weights;
    }
    EXPECT_EQ(one, many);
}

TEST(SparseGpt, UnfactorableHessianFallsBackToMagnitudeAndSaysWhy) {
    Layer l = random_layer(8, 16, 2);
    l.h[0] = NAN;
    const auto r = sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), std::nullopt, {}, "t");
    EXPECT_TRUE(r.fell_back);
    EXPECT_NE(r.fallback_reason.find("non-finite"), std::string::npos) << r.fallback_reason;
    for (int64_t row = 0; row < l.rows; ++row) {
        for (int64_t run = 0; run < l.cols; run += 4) {
            int kept = 0;
            for (int64_t c = run; c < run + 4; ++c) kept += r.mask.kept(row, c);
            EXPECT_EQ(kept, 2);
        }
    }
}

TEST(SparseGpt, BadInputsAreErrorsNamingTheTensor) {
    Layer l = random_layer(4, 16, 1);
    EXPECT_THROW(sparsegpt_prune(l.w.data(), l.rows, l.cols, std::vector<double>(10), SparsityTarget::unstructured(0.5),
                                 std::nullopt, {}, "layer.q"),
                 Error);
    SparseGptOptions odd;
    odd.block_size = 6;
    try {
        sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), std::nullopt, odd, "layer.q");
        FAIL() << "a block size that is not a multiple of M was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("layer.q"), std::string::npos) << e.what();
    }
    l.w[5] = INFINITY;
    EXPECT_THROW(sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::unstructured(0.5), std::nullopt, {},
                                 "layer.q"),
                 Error);
}

TEST(Wanda, ScoreIsMagnitudeTimesInputNorm) {
    const std::vector<float> w = {1, -2, 3, -4};
    const auto s = wanda_scores(w.data(), 2, 2, {4.0, 0.25}, "t");
    EXPECT_EQ(s, (std::vector<float>{2, 1, 6, 2}));
    EXPECT_THROW(wanda_scores(w.data(), 2, 2, {1.0}, "t"), Error);
    EXPECT_THROW(wanda_scores(w.data(), 2, 2, {1.0, -1.0}, "t"), Error);
    // A column with a large input norm survives where magnitude would cut it.
    const std::vector<float> row = {0.1f, 1.0f};
    const auto scores = wanda_scores(row.data(), 1, 2, {10000.0, 1.0}, "t");
    const PruneMask mask = select_mask(scores.data(), 1, 2, SparsityTarget::unstructured(0.5), "t");
    EXPECT_TRUE(mask.kept(0, 0));
    EXPECT_FALSE(mask.kept(0, 1));
}

TEST(Owl, MoreOutliersKeepMoreUnderTheSameMeanSparsity) {
    const std::vector<double> ratios = {0.02, 0.01, 0.005, 0.015};
    const auto s = owl_layer_sparsities(ratios, 0.7, OwlOptions{});
    ASSERT_EQ(s.size(), 4u);
    EXPECT_NEAR((s[0] + s[1] + s[2] + s[3]) / 4, 0.7, 1e-12);
    // Scaled ratios 0.16, 0.0533, 0, 0.1067 (mean 0.08): sparsity 0.78 - each.
    EXPECT_NEAR(s[0], 0.62, 1e-12);
    EXPECT_NEAR(s[2], 0.78, 1e-12);
    EXPECT_LT(s[0], s[3]);
    EXPECT_LT(s[3], s[1]);
    EXPECT_LT(s[1], s[2]);
    EXPECT_NEAR(s[2] - s[0], 2 * 0.08, 1e-12);
    EXPECT_EQ(owl_layer_sparsities({0.01, 0.01}, 0.5, OwlOptions{}), (std::vector<double>{0.5, 0.5}));
    EXPECT_THROW(owl_layer_sparsities({0.0, 1.0}, 0.95, OwlOptions{5, 0.2}), Error);
    EXPECT_THROW((OwlOptions{0, 0.08}.validate()), Error);
}

TEST(Owl, OutlierRatioCountsScoresAboveMTimesTheMean) {
    std::vector<float> a(98, 1.0f), b = {100.0f, 2.0f};
    OutlierRatio r;
    r.add_to_mean(a.data(), 98);
    r.add_to_mean(b.data(), 2);
    r.count(a.data(), 98, 5.0);
    r.count(b.data(), 2, 5.0);
    // mean = (98 + 102) / 100 = 2; threshold 10: only the 100 is above.
    EXPECT_DOUBLE_EQ(r.ratio(), 0.01);
}

// The group-wise refit quantizer's cost, and where the joint pass draws
// its line: every layer of the shared models runs it, no layer of a
// 1B-class model does.
TEST(SparseGpt, GroupWiseRefitCostSeparatesSmallLayersFromLargeOnes) {
    // (10 + 2) refits of 256 x 768^2 per group, 24 groups of 32.
    EXPECT_DOUBLE_EQ(quantize_masked_with_refit_cost(256, 768, 32, 10), 12.0 * 24 * 256 * 768.0 * 768.0);
    EXPECT_DOUBLE_EQ(quantize_masked_with_refit_cost(4, 33, 32, 0), 2.0 * 2 * 4 * 33 * 33);  // a short last group
    // small-llama-v2 (hidden 256, intermediate 768): q/o, gate/up, down.
    EXPECT_LT(quantize_masked_with_refit_cost(256, 256, 32, 10), kMaskedRefitBudget);
    EXPECT_LT(quantize_masked_with_refit_cost(768, 256, 32, 10), kMaskedRefitBudget);
    EXPECT_LT(quantize_masked_with_refit_cost(256, 768, 32, 10), kMaskedRefitBudget);
    // A 1B-class model (hidden 2048, intermediate 5632, 4 KV heads of 64):
    // none, k/v (256 rows) included.
    EXPECT_GT(quantize_masked_with_refit_cost(256, 2048, 32, 10), kMaskedRefitBudget);
    EXPECT_GT(quantize_masked_with_refit_cost(2048, 2048, 32, 10), kMaskedRefitBudget);
    EXPECT_GT(quantize_masked_with_refit_cost(5632, 2048, 32, 10), kMaskedRefitBudget);
    EXPECT_GT(quantize_masked_with_refit_cost(2048, 5632, 32, 10), kMaskedRefitBudget);
}

}  // namespace
}  // namespace sparq
