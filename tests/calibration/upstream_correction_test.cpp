// The upstream correction (calibration/upstream_correction.h): W* solves
// its ridge least-squares problem, equals W when the inputs did not drift
// (and on inputs that are dead in the compressed run), is refused with a
// reason for unusable statistics, and does not depend on the thread count.
// The cross-product accumulator it reads against a direct double sum.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <random>

#include "calibration/statistics.h"
#include "calibration/upstream_correction.h"
#include "core/error.h"
#include "core/parallel.h"

namespace sparq {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct Problem {
    int64_t rows = 0, cols = 0, tokens = 0;
    std::vector<float> w, x, x_fp;  // [rows, cols], [tokens, cols] twice
    std::vector<double> hessian, cross;
};

// H and C of the problem's inputs (after a test changed them).
void recompute_statistics(Problem& p) {
    StatisticsAccumulator h(p.cols, true);
    h.add(p.x.data(), p.tokens);
    p.hessian = h.finish().hessian;
    CrossProductAccumulator c(p.cols);
    c.add(p.x.data(), p.x_fp.data(), p.tokens);
    p.cross = c.finish();
}

// Inputs x_fp, and x = x_fp plus drift (a mixing of channels and noise),
// like a compressed model's inputs next to the full-precision ones.
Problem make_problem(int64_t rows, int64_t cols, int64_t tokens, double drift, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    Problem p;
    p.rows = rows;
    p.cols = cols;
    p.tokens = tokens;
    p.w.resize(static_cast<size_t>(rows * cols));
    for (float& v : p.w) v = normal(rng);
    p.x_fp.resize(static_cast<size_t>(tokens * cols));
    for (int64_t t = 0; t < tokens; ++t)
        for (int64_t c = 0; c < cols; ++c) p.x_fp[t * cols + c] = normal(rng) * (1.0f + 0.1f * static_cast<float>(c % 7));
    p.x = p.x_fp;
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t c = 0; c < cols; ++c) {
            const float neighbour = p.x_fp[t * cols + (c + 1) % cols];
            p.x[t * cols + c] += static_cast<float>(drift) * (0.5f * neighbour + normal(rng));
        }
    }
    recompute_statistics(p);
    return p;
}

RowMatrix as_matrix(const std::vector<float>& v, int64_t rows, int64_t cols) {
    return Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(v.data(), rows, cols)
        .cast<double>();
}

// |W' X^T - W X_fp^T|^2 / tokens + lambda |W' - W|^2.
double objective(const Problem& p, const std::vector<float>& corrected, double lambda) {
    const RowMatrix w = as_matrix(p.w, p.rows, p.cols), wc = as_matrix(corrected, p.rows, p.cols);
    const RowMatrix x = as_matrix(p.x, p.tokens, p.cols), xf = as_matrix(p.x_fp, p.tokens, p.cols);
    return (wc * x.transpose() - w * xf.transpose()).squaredNorm() / static_cast<double>(p.tokens) +
           lambda * (wc - w).squaredNorm();
}

// correct_upstream on one linear.
UpstreamCorrection correct_one(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                               const std::vector<double>& cross, const DampingOptions& damping) {
    return correct_upstream({{w.data(), rows}}, cols, hessian, cross, damping);
}

double mean_diagonal(const Problem& p) {
    double s = 0;
    for (int64_t i = 0; i < p.cols; ++i) s += p.hessian[static_cast<size_t>(i * p.cols + i)];
    return s / static_cast<double>(p.cols);
}

TEST(CrossProduct, MatchesADirectDoubleSum) {
    const Problem p = make_problem(1, 37, 90, 0.3, 1);
    for (int64_t i = 0; i < p.cols; ++i) {
        for (int64_t j = 0; j < p.cols; ++j) {
            double sum = 0;
            for (int64_t t = 0; t < p.tokens; ++t) {
                sum += static_cast<double>(p.x[t * p.cols + i]) * static_cast<double>(p.x_fp[t * p.cols + j]);
            }
            EXPECT_NEAR(p.cross[static_cast<size_t>(i * p.cols + j)], sum / static_cast<double>(p.tokens), 1e-5)
                << i << ", " << j;
        }
    }
}

TEST(CrossProduct, OfRowsWithThemselvesIsTheHessian) {
    // The same product code, equal up to the Hessian's symmetrization and
    // float rounding: entry (i, j) and (j, i) come from bands of different
    // heights (256 and 44 rows here), which matmul_f32 sums in different
    // orders (models/matmul.h: below 48 rows, dot products).
    const Problem p = make_problem(1, 300, 70, 0.3, 2);  // wider than one 256-row band
    CrossProductAccumulator c(p.cols);
    StatisticsAccumulator h(p.cols, true);
    c.add(p.x.data(), p.x.data(), 40);
    h.add(p.x.data(), 40);
    c.add(p.x.data() + 40 * p.cols, p.x.data() + 40 * p.cols, p.tokens - 40);
    h.add(p.x.data() + 40 * p.cols, p.tokens - 40);
    const std::vector<double> self = c.finish(), hessian = h.finish().hessian;
    for (int64_t i = 0; i < p.cols; ++i) {
        for (int64_t j = 0; j < p.cols; ++j) {
            const double symmetric = i == j ? self[static_cast<size_t>(i * p.cols + i)]
                                            : 0.5 * (self[static_cast<size_t>(i * p.cols + j)] +
                                                     self[static_cast<size_t>(j * p.cols + i)]);
            ASSERT_NEAR(symmetric, hessian[static_cast<size_t>(i * p.cols + j)], 1e-6 * (1 + std::fabs(symmetric)))
                << i << ", " << j;
        }
    }
    EXPECT_EQ(c.tokens(), 0);
}

TEST(UpstreamCorrection, SolvesTheRidgeProblem) {
    const Problem p = make_problem(23, 41, 400, 0.4, 3);
    std::vector<float> corrected = p.w;
    const DampingOptions damping{0.01, {}};
    const UpstreamCorrection done = correct_one(corrected, p.rows, p.cols, p.hessian, p.cross, damping);
    ASSERT_TRUE(done.applied) << done.failure;
    EXPECT_EQ(done.damp_fraction, 0.01);
    EXPECT_GT(done.relative_change, 0.01);
    const double lambda = 0.01 * mean_diagonal(p);
    const double best = objective(p, corrected, lambda);
    EXPECT_LT(best, 0.8 * objective(p, p.w, lambda));
    // A minimum: every small step away costs (first order vanishes).
    std::mt19937 rng(4);
    std::normal_distribution<float> normal(0.0f, 1e-3f);
    for (int trial = 0; trial < 5; ++trial) {
        std::vector<float> moved = corrected;
        for (float& v : moved) v += normal(rng);
        EXPECT_GT(objective(p, moved, lambda), best);
    }
    // Normal equations: W* (H + lambda I) = W (C + lambda I)^T.
    const RowMatrix w = as_matrix(p.w, p.rows, p.cols), wc = as_matrix(corrected, p.rows, p.cols);
    RowMatrix h = Eigen::Map<const RowMatrix>(p.hessian.data(), p.cols, p.cols);
    RowMatrix c = Eigen::Map<const RowMatrix>(p.cross.data(), p.cols, p.cols);
    h.diagonal().array() += lambda;
    c.diagonal().array() += lambda;
    EXPECT_LT((wc * h - w * c.transpose()).norm(), 1e-5 * (w * c.transpose()).norm());
}

// The drift term runs in float (products and triangular solves): against a
// double solve of the whole formula, on inputs with outlier channels (50x,
// as LLM activations have; H's condition number near 1e4), the change
// W* - W is right to 1e-5 of its size (measured: 3e-7, about the float
// rounding of W* itself). Widths cross the 256-row band
// of the drift product and the 64-row chunks of the solves.
TEST(UpstreamCorrection, FloatDriftMatchesADoubleSolveOnOutlierChannels) {
    Problem p = make_problem(70, 300, 600, 0.05, 8);
    for (int64_t t = 0; t < p.tokens; ++t) {
        for (int64_t c : {3, 100, 250}) {
            p.x_fp[t * p.cols + c] *= 50.0f;
            p.x[t * p.cols + c] *= 50.0f;
        }
    }
    recompute_statistics(p);
    std::vector<float> corrected = p.w;
    const UpstreamCorrection done = correct_one(corrected, p.rows, p.cols, p.hessian, p.cross, DampingOptions{});
    ASSERT_TRUE(done.applied) << done.failure;
    const double lambda = done.damp_fraction * mean_diagonal(p);
    RowMatrix hd = Eigen::Map<const RowMatrix>(p.hessian.data(), p.cols, p.cols);
    RowMatrix cd = Eigen::Map<const RowMatrix>(p.cross.data(), p.cols, p.cols);
    hd.diagonal().array() += lambda;
    cd.diagonal().array() += lambda;
    const Eigen::JacobiSVD<RowMatrix> svd(hd);
    const double condition = svd.singularValues()(0) / svd.singularValues()(p.cols - 1);
    EXPECT_GT(condition, 1e3);
    const RowMatrix w = as_matrix(p.w, p.rows, p.cols);
    // W* (H + lambda I) = W (C + lambda I)^T, solved in double.
    const RowMatrix reference = hd.llt().solve((w * cd.transpose()).transpose()).transpose();
    const RowMatrix ours = as_matrix(corrected, p.rows, p.cols);
    EXPECT_GT((reference - w).norm(), 1e-3 * w.norm());  // a real change
    EXPECT_LT((ours - reference).norm(), 1e-5 * (reference - w).norm());
}

TEST(UpstreamCorrection, WithoutDriftTheWeightsStay) {
    Problem p = make_problem(9, 33, 200, 0.0, 5);
    std::vector<float> corrected = p.w;
    const UpstreamCorrection done =
        correct_one(corrected, p.rows, p.cols, p.hessian, p.hessian, DampingOptions{});
    ASSERT_TRUE(done.applied);
    // Only the drift C - H goes through the solve: none, no change at all.
    EXPECT_EQ(corrected, p.w);
    EXPECT_EQ(done.relative_change, 0.0);
}

TEST(UpstreamCorrection, InputsDeadInTheCompressedRunKeepTheirWeights) {
    // Column 4 never active in the compressed run: nothing constrains it
    // but the ridge, which keeps it where it was.
    Problem p = make_problem(7, 19, 150, 0.3, 6);
    for (int64_t t = 0; t < p.tokens; ++t) p.x[t * p.cols + 4] = 0.0f;
    recompute_statistics(p);
    std::vector<float> corrected = p.w;
    ASSERT_TRUE(correct_one(corrected, p.rows, p.cols, p.hessian, p.cross, DampingOptions{}).applied);
    for (int64_t r = 0; r < p.rows; ++r) {
        EXPECT_NEAR(corrected[static_cast<size_t>(r * p.cols + 4)], p.w[static_cast<size_t>(r * p.cols + 4)], 1e-5f);
    }
}

TEST(UpstreamCorrection, UnusableStatisticsLeaveTheWeightsAndSayWhy) {
    Problem p = make_problem(4, 8, 50, 0.2, 7);
    std::vector<float> w = p.w;
    const std::vector<double> zero(p.hessian.size(), 0.0);
    UpstreamCorrection done = correct_one(w, p.rows, p.cols, zero, p.cross, DampingOptions{});
    EXPECT_FALSE(done.applied);
    EXPECT_NE(done.failure.find("zero"), std::string::npos) << done.failure;
    std::vector<double> bad = p.cross;
    bad[3] = std::nan("");
    done = correct_one(w, p.rows, p.cols, p.hessian, bad, DampingOptions{});
    EXPECT_FALSE(done.applied);
    EXPECT_NE(done.failure.find("non-finite"), std::string::npos) << done.failure;
    // Indefinite at every dampening.
    std::vector<double> negative = p.hessian;
    for (int64_t i = 0; i < p.cols; ++i) negative[static_cast<size_t>(i * p.cols + i)] = i == 0 ? 100.0 : -50.0;
    done = correct_one(w, p.rows, p.cols, negative, p.cross, DampingOptions{0.01, {}});
    EXPECT_FALSE(done.applied);
    EXPECT_EQ(w, p.w);
    EXPECT_THROW(correct_one(w, p.rows, p.cols, p.hessian, std::vector<double>(5), DampingOptions{}), Error);
}

TEST(UpstreamCorrection, LinearsOfOneSpaceAreCorrectedAlike) {
    // q/k/v share their inputs: correcting them together is correcting
    // each alone.
    const Problem p = make_problem(10, 24, 120, 0.3, 9);
    std::vector<float> a = p.w, b(p.w.rbegin(), p.w.rend()), a_alone = a, b_alone = b;
    const UpstreamCorrection both =
        correct_upstream({{a.data(), p.rows}, {b.data(), p.rows}}, p.cols, p.hessian, p.cross, DampingOptions{});
    ASSERT_TRUE(both.applied);
    ASSERT_TRUE(correct_one(a_alone, p.rows, p.cols, p.hessian, p.cross, DampingOptions{}).applied);
    ASSERT_TRUE(correct_one(b_alone, p.rows, p.cols, p.hessian, p.cross, DampingOptions{}).applied);
    EXPECT_EQ(a, a_alone);
    EXPECT_EQ(b, b_alone);
    EXPECT_NO_THROW(correct_upstream({}, p.cols, p.hessian, p.cross, DampingOptions{}));
}

TEST(UpstreamCorrection, SameBitsForAnyThreadCount) {
    const Problem p = make_problem(150, 64, 300, 0.3, 8);  // several row chunks
    std::vector<float> one = p.w, two = p.w;
    {
        const ThreadLimit limit(1);
        ASSERT_TRUE(correct_one(one, p.rows, p.cols, p.hessian, p.cross, DampingOptions{}).applied);
    }
    {
        const ThreadLimit limit(2);
        ASSERT_TRUE(correct_one(two, p.rows, p.cols, p.hessian, p.cross, DampingOptions{}).applied);
    }
    EXPECT_EQ(one, two);
}

}  // namespace
}  // namespace sparq
