// The kept-weight refit against a direct solve of each row's masked normal
// equations, its invariants (pruned stay 0, error never grows, same bytes
// for any thread count) and its errors.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/quantize_tensor.h"
#include "sparsity/mask_refit.h"
#include "sparsity/mask_selection.h"
#include "sparsity/sparsegpt.h"
#include "random_layer.h"

namespace sparq {
namespace {

using testing::Layer;
using testing::random_layer;

PruneMask magnitude_mask(const Layer& l, const SparsityTarget& target) {
    std::vector<float> scores(l.w);
    for (float& s : scores) s = std::fabs(s);
    return select_mask(scores.data(), l.rows, l.cols, target, "w");
}

std::vector<float> masked(const Layer& l, const PruneMask& mask) {
    std::vector<float> out(l.w);
    apply_mask(mask, out.data());
    return out;
}

// Row r's optimum: w_K (H + lambda I)_KK = (w0 (H + lambda I))_K, by a dense LDLT.
std::vector<double> direct_solve(const Layer& l, const PruneMask& mask, double damping_fraction) {
    const int64_t n = l.cols;
    Eigen::MatrixXd h(n, n);
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < n; ++j) h(i, j) = l.h[i * n + j];
        mean += h(i, i) / static_cast<double>(n);
    }
    h.diagonal().array() += damping_fraction * mean;
    std::vector<double> out(static_cast<size_t>(l.rows * n), 0.0);
    for (int64_t r = 0; r < l.rows; ++r) {
        std::vector<int64_t> kept;
        for (int64_t c = 0; c < n; ++c) {
            if (mask.kept(r, c)) kept.push_back(c);
        }
        Eigen::VectorXd w0(n);
        for (int64_t c = 0; c < n; ++c) w0[c] = l.w[r * n + c];
        const Eigen::VectorXd rhs_full = h * w0;
        const auto k = static_cast<Eigen::Index>(kept.size());
        Eigen::MatrixXd hkk(k, k);
        Eigen::VectorXd rhs(k);
        for (Eigen::Index a = 0; a < k; ++a) {
            rhs[a] = rhs_full[kept[a]];
            for (Eigen::Index b = 0; b < k; ++b) hkk(a, b) = h(kept[a], kept[b]);
        }
        const Eigen::VectorXd solution = hkk.ldlt().solve(rhs);
        for (Eigen::Index a = 0; a < k; ++a) out[r * n + kept[a]] = solution[a];
    }
    return out;
}

double damped_error(const Layer& l, const std::vector<float>& w, double damping_fraction) {
    double mean = 0;
    for (int64_t i = 0; i < l.cols; ++i) mean += l.h[i * l.cols + i] / static_cast<double>(l.cols);
    double total = 0;
    for (int64_t r = 0; r < l.rows; ++r) {
        for (int64_t i = 0; i < l.cols; ++i) {
            const double di = w[r * l.cols + i] - l.w[r * l.cols + i];
            total += damping_fraction * mean * di * di;
            for (int64_t j = 0; j < l.cols; ++j) {
                total += di * l.h[i * l.cols + j] * (w[r * l.cols + j] - l.w[r * l.cols + j]);
            }
        }
    }
    return total;
}

TEST(MaskRefit, ReachesTheDirectSolutionOfEachRow) {
    // 70 rows: a full chunk of 64 and a partial one; 40 columns: odd widths per row kept.
    const Layer l = random_layer(70, 40, 11);
    for (const SparsityTarget& target : {SparsityTarget::unstructured(0.5), SparsityTarget::nm(2, 4),
                                          SparsityTarget::unstructured(0.7)}) {
        SCOPED_TRACE(target.name());
        const PruneMask mask = magnitude_mask(l, target);
        std::vector<float> w = masked(l, mask);
        // Conjugate gradient is exact after as many steps as unknowns (40 at most per row).
        const MaskRefitResult r = refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, l.h, {60, 0.01}, "w");
        const std::vector<double> expected = direct_solve(l, mask, 0.01);
        double worst = 0, scale = 0;
        for (size_t i = 0; i < w.size(); ++i) {
            worst = std::max(worst, std::fabs(w[i] - expected[i]));
            scale = std::max(scale, std::fabs(expected[i]));
        }
        EXPECT_LT(worst, 1e-4 * scale);
        EXPECT_LT(r.error_after, r.error_before);
        EXPECT_NEAR(r.error_after, damped_error(l, w, 0.01), 1e-6 * r.error_before);
        EXPECT_NEAR(r.error_before, damped_error(l, masked(l, mask), 0.01), 1e-6 * r.error_before);
    }
}

TEST(MaskRefit, KeepsPrunedZerosAndNeverRaisesTheErrorOfSparseGpt) {
    const Layer l = random_layer(33, 64, 12);
    SparseGptOptions options;
    const SparseGptResult pruned =
        sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), std::nullopt, options, "w");
    for (int iterations : {1, 3, 10}) {
        std::vector<float> w = pruned.weights;
        const MaskRefitResult r =
            refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, pruned.mask, l.h, {iterations, 0.01}, "w");
        EXPECT_LE(r.error_after, r.error_before);
        EXPECT_LT(damped_error(l, w, 0.01), damped_error(l, pruned.weights, 0.01)) << iterations;
        for (int64_t row = 0; row < l.rows; ++row) {
            for (int64_t c = 0; c < l.cols; ++c) {
                if (!pruned.mask.kept(row, c)) {
                    ASSERT_EQ(w[row * l.cols + c], 0.0f);
                }
            }
        }
    }
}

TEST(MaskRefit, ZeroIterationsChangeNothing) {
    const Layer l = random_layer(9, 16, 13);
    const PruneMask mask = magnitude_mask(l, SparsityTarget::unstructured(0.5));
    std::vector<float> w = masked(l, mask);
    const std::vector<float> before = w;
    const MaskRefitResult r = refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, l.h, {0, 0.01}, "w");
    EXPECT_EQ(w, before);
    EXPECT_EQ(r.error_after, r.error_before);
}

TEST(MaskRefit, SameBytesForAnyThreadCount) {
    const Layer l = random_layer(200, 48, 14);
    const PruneMask mask = magnitude_mask(l, SparsityTarget::nm(2, 4));
    std::vector<float> one = masked(l, mask), two = one;
    {
        ThreadLimit limit(1);
        refit_kept_weights(l.w.data(), one.data(), l.rows, l.cols, mask, l.h, {7, 0.01}, "w");
    }
    {
        ThreadLimit limit(2);
        refit_kept_weights(l.w.data(), two.data(), l.rows, l.cols, mask, l.h, {7, 0.01}, "w");
    }
    EXPECT_EQ(one, two);
}

TEST(MaskRefit, DeadInputsAndAllPrunedRowsStayFinite) {
    Layer l = random_layer(6, 8, 15);
    // Column 3 never active: zero row and column of H.
    for (int64_t i = 0; i < l.cols; ++i) l.h[3 * l.cols + i] = l.h[i * l.cols + 3] = 0.0;
    PruneMask mask = magnitude_mask(l, SparsityTarget::unstructured(0.5));
    for (int64_t c = 0; c < l.cols; ++c) mask.keep[c] = 0;  // row 0 fully pruned
    std::vector<float> w = masked(l, mask);
    refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, l.h, {10, 0.01}, "w");
    for (float v : w) ASSERT_TRUE(std::isfinite(v));
    for (int64_t c = 0; c < l.cols; ++c) EXPECT_EQ(w[c], 0.0f);
}

TEST(MaskRefit, RejectsMismatchedShapesNamingTheTensor) {
    const Layer l = random_layer(4, 8, 16);
    const PruneMask mask = magnitude_mask(l, SparsityTarget::unstructured(0.5));
    std::vector<float> w = masked(l, mask);
    std::vector<double> short_h(l.h.begin(), l.h.end() - 1);
    try {
        refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, short_h, {5, 0.01}, "layers.0.up");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("layers.0.up"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("Hessian"), std::string::npos) << e.what();
    }
    EXPECT_THROW(refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols + 1, mask, l.h, {5, 0.01}, "w"), Error);
    EXPECT_THROW(refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, l.h, {-1, 0.01}, "w"), Error);
    std::vector<double> bad_h = l.h;
    bad_h[0] = NAN;
    EXPECT_THROW(refit_kept_weights(l.w.data(), w.data(), l.rows, l.cols, mask, bad_h, {5, 0.01}, "w"), Error);
}

// Plain error of w against the layer's original weights on H (no ridge).
double output_error(const Layer& l, const std::vector<float>& w) { return damped_error(l, w, 0.0); }

TEST(MaskedQuantizeWithRefit, KeepsTheMaskPacksItsValuesAndCompensatesLaterGroups) {
    const Layer l = random_layer(40, 128, 17);
    const SparseGptOptions options;
    const QuantScheme scheme{4, 32, true};
    SparseGptResult pruned =
        sparsegpt_prune(l.w.data(), l.rows, l.cols, l.h, SparsityTarget::nm(2, 4), std::nullopt, options, "w");
    refit_kept_weights(l.w.data(), pruned.weights.data(), l.rows, l.cols, pruned.mask, l.h, {20, 0.01}, "w");
    const SparseGptResult joint = quantize_masked_with_refit(l.w.data(), pruned.weights.data(), l.rows, l.cols, l.h,
                                                             pruned.mask, scheme, options, 20, "w");
    ASSERT_TRUE(joint.packed.has_value());
    // What is stored is what the report and the model compute with.
    EXPECT_EQ(dequantize_tensor(*joint.packed), joint.weights);
    for (int64_t r = 0; r < l.rows; ++r) {
        for (int64_t c = 0; c < l.cols; ++c) {
            if (!pruned.mask.kept(r, c)) {
                ASSERT_EQ(joint.weights[r * l.cols + c], 0.0f) << r << ", " << c;
            }
        }
    }
    // Without the refits between groups, each group's rounding error stays.
    const SparseGptResult uncompensated = quantize_masked_with_refit(
        l.w.data(), pruned.weights.data(), l.rows, l.cols, l.h, pruned.mask, scheme, options, 0, "w");
    EXPECT_LT(output_error(l, joint.weights), output_error(l, uncompensated.weights));
    EXPECT_GT(output_error(l, joint.weights), output_error(l, pruned.weights));
    // Thread count does not change the bytes.
    SparseGptResult again;
    {
        ThreadLimit one(1);
        again = quantize_masked_with_refit(l.w.data(), pruned.weights.data(), l.rows, l.cols, l.h, pruned.mask, scheme,
                                           options, 20, "w");
    }
    EXPECT_EQ(again.packed->codes, joint.packed->codes);
    EXPECT_EQ(again.packed->scales, joint.packed->scales);
}

}  // namespace
}  // namespace sparq
