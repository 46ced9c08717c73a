// The clip searches' group score (quant/group_output_error.h): the cloned
// H d against its row-by-row twin, the same bits on every tile remainder
// and with NaN/Inf or outliers in the input; the score against d^T H d
// computed in double; the transposed block copy.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "quant/group_output_error.h"
#include "quant/rtn.h"
#include "random_values.h"

namespace sparq {
namespace {

using sparq::testing::normal_values;

// Bit equality that treats two NaNs of any payload as equal.
void expect_same_floats(const std::vector<float>& a, const std::vector<float>& b, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;
        uint32_t ba, bb;
        std::memcpy(&ba, &a[i], 4);
        std::memcpy(&bb, &b[i], 4);
        ASSERT_EQ(ba, bb) << "n " << n << ", output " << i << ": " << a[i] << " against " << b[i];
    }
}

TEST(GroupOutputError, BlockTimesVectorHasTheBitsOfTheRowByRowSums) {
    uint32_t seed = 1;
    for (int64_t n : {1, 2, 15, 16, 17, 31, 32, 44, 63, 64, 65, 80, 100, 128, 131, 256}) {
        std::vector<float> h = normal_values(static_cast<size_t>(n * n), seed++);
        const std::vector<float> d = normal_values(static_cast<size_t>(n), seed++, 1e-2f);
        h[static_cast<size_t>(n * n / 2)] = 3e4f;  // an outlier channel pair
        std::vector<float> fast(static_cast<size_t>(n)), plain(static_cast<size_t>(n));
        block_times_vector(h.data(), d.data(), n, fast.data());
        block_times_vector_reference(h.data(), d.data(), n, plain.data());
        expect_same_floats(fast, plain, n);
    }
}

TEST(GroupOutputError, NonFiniteInputsGiveTheTwinsValues) {
    for (int64_t n : {7, 64, 100}) {
        std::vector<float> h = normal_values(static_cast<size_t>(n * n), 11);
        std::vector<float> d = normal_values(static_cast<size_t>(n), 12);
        h[3] = std::numeric_limits<float>::infinity();
        h[static_cast<size_t>(n + 5)] = std::numeric_limits<float>::quiet_NaN();
        d[static_cast<size_t>(n - 1)] = -std::numeric_limits<float>::infinity();
        std::vector<float> fast(static_cast<size_t>(n)), plain(static_cast<size_t>(n));
        block_times_vector(h.data(), d.data(), n, fast.data());
        block_times_vector_reference(h.data(), d.data(), n, plain.data());
        expect_same_floats(fast, plain, n);
    }
}

TEST(GroupOutputError, ScoreIsTheOutputErrorUnderTheBlock) {
    const QuantScheme scheme{4, 128, true};
    uint32_t seed = 20;
    for (int64_t n : {32, 44, 128}) {
        // A symmetric positive semi-definite block inside a wider matrix (ld > n).
        const int64_t ld = n + 9, tokens = 2 * n;
        const std::vector<double> x = normal_values<double>(static_cast<size_t>(tokens * n), seed++);
        std::vector<double> h(static_cast<size_t>(n * ld), -1.0);
        for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < n; ++j) {
                double sum = 0;
                for (int64_t t = 0; t < tokens; ++t) sum += x[t * n + i] * x[t * n + j] * (1 + i % 5);
                h[static_cast<size_t>(i * ld + j)] = sum / tokens;
            }
        }
        const std::vector<float> block = float_block_transposed(h.data(), n, ld);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j)
                ASSERT_EQ(block[static_cast<size_t>(j * n + i)], static_cast<float>(h[static_cast<size_t>(i * ld + j)]));

        const std::vector<float> w = normal_values(static_cast<size_t>(n), seed++, 0.02f);
        const GroupParams params = rtn_candidates(scheme, group_range(w.data(), n), 0.9f).params[0];
        std::vector<float> scratch(static_cast<size_t>(2 * n));
        const double score = group_output_error(scheme, w.data(), n, block.data(), params, scratch.data());

        std::vector<double> err(static_cast<size_t>(n));
        const float scale = params.scale_value();
        for (int64_t i = 0; i < n; ++i) {
            const uint8_t code = quantize_value(w[i], scale, params.zero, min_code(scheme), max_code(scheme));
            err[i] = static_cast<double>(w[i]) - dequantize_value(code, scale, params.zero);
        }
        double expected = 0;
        for (int64_t i = 0; i < n; ++i)
            for (int64_t j = 0; j < n; ++j) expected += err[i] * h[static_cast<size_t>(i * ld + j)] * err[j];
        EXPECT_GT(expected, 0.0);
        EXPECT_NEAR(score, expected, 1e-4 * expected) << "n " << n;
    }
}

TEST(GroupOutputError, AnExactGroupScoresZero) {
    const QuantScheme scheme{4, 32, true};
    const int64_t n = 32;
    std::vector<float> w(static_cast<size_t>(n), 0.0f);
    for (int64_t i = 0; i < n; i += 3) w[i] = 0.25f * static_cast<float>((i % 7) - 3);  // on the grid of step 0.25
    GroupParams params;
    params.scale = fp32_to_fp16(0.25f);
    params.zero = 8;
    const std::vector<float> h = normal_values(static_cast<size_t>(n * n), 31);
    std::vector<float> scratch(static_cast<size_t>(2 * n));
    EXPECT_EQ(group_output_error(scheme, w.data(), n, h.data(), params, scratch.data()), 0.0);
    const std::vector<float> zeros(static_cast<size_t>(n), 0.0f);
    EXPECT_EQ(group_output_error(scheme, zeros.data(), n, h.data(), params, scratch.data()), 0.0);
}

}  // namespace
}  // namespace sparq
