// Importance-weighted RTN: with a diagonal Hessian both scores are the
// same weighted squared error; per output channel the block score is the
// exact output error, so it never loses to RTN on it; thread-count
// determinism; bad statistics named.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/hessian.h"
#include "random_values.h"
#include "quant/imatrix.h"
#include "quant/quantize_tensor.h"

namespace sparq {
namespace {

using sparq::testing::normal_values;

std::vector<double> correlated_hessian(int64_t n, uint32_t seed) {
    const int64_t tokens = 3 * n;
    const std::vector<float> x = normal_values(static_cast<size_t>(tokens * n), seed);
    std::vector<double> h(static_cast<size_t>(n * n), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t i = 0; i < n; ++i) {
            const double xi = x[t * n + i] * (1.0 + (i % 7)) + 0.5 * x[t * n];
            for (int64_t j = 0; j < n; ++j) {
                const double xj = x[t * n + j] * (1.0 + (j % 7)) + 0.5 * x[t * n];
                h[i * n + j] += xi * xj / tokens;
            }
        }
    }
    return h;
}

TEST(Imatrix, BlockAndDiagonalScoresAgreeOnADiagonalHessian) {
    const int64_t rows = 16, cols = 96;
    const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 1);
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    const std::vector<float> energy = normal_values(static_cast<size_t>(cols), 2);
    for (int64_t c = 0; c < cols; ++c) h[c * cols + c] = 0.1 + std::fabs(energy[c]);
    for (bool sym : {true, false}) {
        const QuantScheme s{4, 32, sym};
        const PackedTensor a = quantize_importance_weighted(w.data(), rows, cols, h, s, ImportanceWeighting::Diagonal, "w");
        const PackedTensor b =
            quantize_importance_weighted(w.data(), rows, cols, h, s, ImportanceWeighting::GroupHessian, "w");
        size_t same = 0;
        for (size_t i = 0; i < a.scales.size(); ++i) same += a.scales[i] == b.scales[i];
        // Float and double scores may break a near-tie differently.
        EXPECT_GE(static_cast<double>(same) / a.scales.size(), 0.97) << sym;
    }
}

TEST(Imatrix, PerChannelBlockScoreNeverLosesToRtnOnTheOutputError) {
    const int64_t rows = 24, cols = 64;
    const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 3);
    const std::vector<double> h = correlated_hessian(cols, 4);
    for (int bits : {4, 3, 2}) {
        const QuantScheme s{bits, 0, true};
        const std::vector<float> rtn = dequantize_tensor(
            quantize_tensor(make_f32_tensor({rows, cols}, w), s, QuantMethod::Rtn, nullptr, "w"));
        const std::vector<float> weighted = dequantize_tensor(
            quantize_importance_weighted(w.data(), rows, cols, h, s, ImportanceWeighting::GroupHessian, "w"));
        for (int64_t r = 0; r < rows; ++r) {
            const std::vector<double>& hh = h;
            const double e_rtn = hessian_weighted_error(w.data() + r * cols, rtn.data() + r * cols, 1, cols, hh);
            const double e = hessian_weighted_error(w.data() + r * cols, weighted.data() + r * cols, 1, cols, hh);
            EXPECT_LE(e, e_rtn * (1 + 1e-5)) << bits << " row " << r;
        }
        const double total_rtn = hessian_weighted_error(w.data(), rtn.data(), rows, cols, h);
        const double total = hessian_weighted_error(w.data(), weighted.data(), rows, cols, h);
        EXPECT_LT(total, total_rtn) << bits;
    }
}

TEST(Imatrix, SameBytesForAnyThreadCountAndErrorsNamed) {
    const int64_t rows = 200, cols = 256;
    const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 5);
    const std::vector<double> h = correlated_hessian(cols, 6);
    PackedTensor one, many;
    {
        ThreadLimit limit(1);
        one = quantize_importance_weighted(w.data(), rows, cols, h, {3, 64, false}, ImportanceWeighting::GroupHessian, "w");
    }
    {
        ThreadLimit limit(3);
        many = quantize_importance_weighted(w.data(), rows, cols, h, {3, 64, false}, ImportanceWeighting::GroupHessian, "w");
    }
    EXPECT_EQ(one.codes, many.codes);
    EXPECT_EQ(one.scales, many.scales);
    EXPECT_EQ(one.zeros, many.zeros);

    std::vector<double> bad = h;
    bad[3 * cols + 3] = -1;
    EXPECT_THROW(quantize_importance_weighted(w.data(), rows, cols, bad, {4, 64, true}, ImportanceWeighting::Diagonal, "w"),
                 Error);
    bad[3 * cols + 3] = NAN;
    try {
        quantize_importance_weighted(w.data(), rows, cols, bad, {4, 64, true}, ImportanceWeighting::GroupHessian, "x.w");
        FAIL() << "a NaN Hessian was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "x.w");
    }
    EXPECT_THROW(quantize_importance_weighted(w.data(), rows, cols, std::vector<double>(5), {4, 64, true},
                                              ImportanceWeighting::GroupHessian, "w"),
                 Error);
}

}  // namespace
}  // namespace sparq
