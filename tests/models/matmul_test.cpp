#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/parallel.h"
#include "models/matmul.h"

namespace sparq {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(gen);
    return v;
}

// SIMD result against the scalar double-precision twin, for shapes that hit
// every tile remainder (tokens and rows mod 4, k mod the vector width).
TEST(Matmul, MatchesScalarTwinOnOddShapes) {
    for (int64_t tokens : {1, 2, 3, 4, 5, 9}) {
        for (int64_t rows : {1, 3, 4, 7, 13, 64}) {
            for (int64_t k : {1, 5, 16, 17, 63, 64, 172, 288}) {
                const auto x = random_values(static_cast<size_t>(tokens * k), 1 + tokens);
                const auto w = random_values(static_cast<size_t>(rows * k), 100 + rows);
                std::vector<float> fast(static_cast<size_t>(tokens * rows)), ref(fast.size());
                matmul_f32(x.data(), tokens, w.data(), rows, k, fast.data(), rows);
                matmul_f32_scalar(x.data(), tokens, w.data(), rows, k, ref.data(), rows);
                for (size_t i = 0; i < ref.size(); ++i) {
                    ASSERT_NEAR(fast[i], ref[i], 1e-4 * std::sqrt(static_cast<double>(k)) + 1e-5)
                        << "tokens " << tokens << " rows " << rows << " k " << k << " index " << i;
                }
            }
        }
    }
}

TEST(Matmul, ZeroRowsAndOutliers) {
    const int64_t tokens = 3, rows = 8, k = 100;
    auto x = random_values(static_cast<size_t>(tokens * k), 7);
    std::vector<float> w(static_cast<size_t>(rows * k), 0.0f);
    w[5 * k + 3] = 1e30f;  // one huge weight in row 5
    std::vector<float> fast(static_cast<size_t>(tokens * rows)), ref(fast.size());
    matmul_f32(x.data(), tokens, w.data(), rows, k, fast.data(), rows);
    matmul_f32_scalar(x.data(), tokens, w.data(), rows, k, ref.data(), rows);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            if (r == 5) {
                EXPECT_FLOAT_EQ(fast[t * rows + r], ref[t * rows + r]);
            } else {
                EXPECT_EQ(fast[t * rows + r], 0.0f);
            }
        }
    }
}

TEST(Matmul, NanAndInfPropagate) {
    const int64_t k = 37;
    auto x = random_values(static_cast<size_t>(2 * k), 3);
    auto w = random_values(static_cast<size_t>(4 * k), 4);
    x[5] = std::numeric_limits<float>::quiet_NaN();       // token 0
    x[k + 36] = std::numeric_limits<float>::infinity();  // token 1, in the tail
    w[3 * k + 36] = 1.0f;
    std::vector<float> out(8);
    matmul_f32(x.data(), 2, w.data(), 4, k, out.data(), 4);
    for (int r = 0; r < 4; ++r) EXPECT_TRUE(std::isnan(out[r])) << r;
    EXPECT_TRUE(std::isinf(out[4 + 3]));
}

TEST(Matmul, BitIdenticalForAnyThreadCount) {
    const int64_t tokens = 7, rows = 1000, k = 300;
    const auto x = random_values(static_cast<size_t>(tokens * k), 11);
    const auto w = random_values(static_cast<size_t>(rows * k), 12);
    std::vector<float> one(static_cast<size_t>(tokens * rows)), two(one.size());
    {
        ThreadLimit limit(1);
        matmul_f32(x.data(), tokens, w.data(), rows, k, one.data(), rows);
    }
    {
        ThreadLimit limit(2);
        matmul_f32(x.data(), tokens, w.data(), rows, k, two.data(), rows);
    }
    EXPECT_EQ(one, two);
}

TEST(Matmul, ReportsTheDispatchedTarget) {
    const std::string name = matmul_target_name();
    EXPECT_FALSE(name.empty());
}

}  // namespace
}  // namespace sparq
