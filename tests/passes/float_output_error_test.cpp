// float_output_error (passes/float_output_error.h), the figure calibrated
// quantization reports and mixed precision plans with: against the double
// sum of quant/hessian.h on shapes past one 256-row chunk, the identity and
// row-weight forms against plain sums, and the same value for any thread
// count.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "passes/float_output_error.h"
#include "quant/hessian.h"
#include "random_values.h"

namespace sparq {
namespace {

using sparq::testing::correlated_hessian;
using sparq::testing::normal_values;

TEST(FloatOutputError, MatchesTheDoubleSumUnderH) {
    for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{1, 8}, {37, 96}, {300, 64}, {513, 40}}) {
        const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 1);
        std::vector<float> q = w;
        const std::vector<float> noise = normal_values(static_cast<size_t>(rows * cols), 2, 0.05f);
        for (size_t i = 0; i < q.size(); ++i) q[i] += noise[i];
        const std::vector<double> h = correlated_hessian(cols, 3 * cols, 3);
        const std::vector<float> hf(h.begin(), h.end());
        const double error = float_output_error(w.data(), q.data(), rows, cols, hf);
        const double expected = hessian_weighted_error(w.data(), q.data(), rows, cols, h);
        EXPECT_NEAR(error, expected, 1e-5 * expected) << rows << " x " << cols;
        const double energy = float_output_error(w.data(), nullptr, rows, cols, hf);
        const double expected_energy = hessian_weighted_error(w.data(), nullptr, rows, cols, h);
        EXPECT_NEAR(energy, expected_energy, 1e-5 * expected_energy) << rows << " x " << cols;
    }
}

TEST(FloatOutputError, IdentityAndRowWeightsArePlainSums) {
    const int64_t rows = 270, cols = 33;
    const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 4);
    const std::vector<float> q = normal_values(static_cast<size_t>(rows * cols), 5);
    std::vector<double> row_weights(static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) row_weights[static_cast<size_t>(r)] = 0.5 + r % 3;
    double plain = 0, weighted = 0;
    for (int64_t r = 0; r < rows; ++r) {
        double row = 0;
        for (int64_t c = 0; c < cols; ++c) {
            const double d = static_cast<double>(w[r * cols + c]) - q[r * cols + c];
            row += d * d;
        }
        plain += row;
        weighted += row_weights[static_cast<size_t>(r)] * row;
    }
    EXPECT_NEAR(float_output_error(w.data(), q.data(), rows, cols, {}), plain, 1e-6 * plain);
    EXPECT_NEAR(float_output_error(w.data(), q.data(), rows, cols, {}, row_weights), weighted, 1e-6 * weighted);
    EXPECT_EQ(float_output_error(w.data(), w.data(), rows, cols, {}), 0.0);
}

TEST(FloatOutputError, SameValueForAnyThreadCount) {
    const int64_t rows = 600, cols = 128;
    const std::vector<float> w = normal_values(static_cast<size_t>(rows * cols), 6);
    const std::vector<float> q = normal_values(static_cast<size_t>(rows * cols), 7);
    const std::vector<double> h = correlated_hessian(cols, 2 * cols, 8);
    const std::vector<float> hf(h.begin(), h.end());
    double one, three;
    {
        ThreadLimit limit(1);
        one = float_output_error(w.data(), q.data(), rows, cols, hf);
    }
    {
        ThreadLimit limit(3);
        three = float_output_error(w.data(), q.data(), rows, cols, hf);
    }
    EXPECT_EQ(one, three);
}

}  // namespace
}  // namespace sparq
