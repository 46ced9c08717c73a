// matmul_f32 on every SIMD target this CPU runs: both kernels (dot products
// below kMatmulBroadcastMinTokens tokens, broadcast panels from there on)
// against the double-precision twin on shapes that hit every tile, panel
// and K-block remainder; the broadcast kernel also bit for bit against its
// sum order written as plain loops; NaN/Inf, outliers, thread counts.
#include <gtest/gtest.h>

#include <hwy/targets.h>

#include "random_values.h"
#include "simd_targets.h"

#include <cmath>
#include <limits>
#include <algorithm>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "models/matmul.h"

namespace sparq {
namespace {

// The broadcast kernel's order of sums (models/matmul.h) as plain loops:
// per K block one chain from 0, fused or not as the target is, the blocks'
// totals added in order.
void broadcast_order_twin(const float* x, int64_t tokens, const float* w, int64_t rows, int64_t k, bool fused,
                          float* out) {
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < rows; ++r) {
            float total = 0.0f;
            for (int64_t k0 = 0; k0 < k; k0 += kMatmulColumnBlock) {
                float acc = 0.0f;
                for (int64_t i = k0; i < std::min(k, k0 + kMatmulColumnBlock); ++i) {
                    if (fused) {
                        acc = std::fma(x[t * k + i], w[r * k + i], acc);
                    } else {
                        volatile float product = x[t * k + i] * w[r * k + i];  // never contracted
                        acc = acc + product;
                    }
                }
                total = k0 == 0 ? acc : total + acc;
            }
            out[t * rows + r] = total;
        }
    }
}

using MatmulTargets = testing::ForcedTarget;

INSTANTIATE_TEST_SUITE_P(Targets, MatmulTargets,
                         ::testing::ValuesIn(testing::runnable_targets(matmul_compiled_targets())),
                         testing::target_param_name);

// Both kernels against the double twin; token counts on both sides of the
// switch and past a 6-token tile, rows past 16- and 32-row panels, K past
// one 256-column block.
TEST_P(MatmulTargets, MatchesScalarTwinOnOddShapes) {
    ASSERT_STREQ(matmul_target_name(), hwy::TargetName(GetParam()));
    for (int64_t tokens : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{5}, int64_t{9},
                           kMatmulBroadcastMinTokens - 1, kMatmulBroadcastMinTokens,
                           kMatmulBroadcastMinTokens + 5}) {
        for (int64_t rows : {1, 3, 4, 7, 13, 33, 64}) {
            for (int64_t k : {1, 5, 16, 17, 63, 64, 172, 288}) {
                const auto x = testing::normal_values(static_cast<size_t>(tokens * k), 1 + static_cast<uint32_t>(tokens));
                const auto w = testing::normal_values(static_cast<size_t>(rows * k), 100 + static_cast<uint32_t>(rows));
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

TEST_P(MatmulTargets, BroadcastKernelSumsInItsStatedOrder) {
    const bool fused = matmul_target_fuses_multiply_add();
    for (int64_t tokens : {kMatmulBroadcastMinTokens, kMatmulBroadcastMinTokens + 1, int64_t{300}}) {
        for (int64_t rows : {1, 15, 16, 17, 31, 32, 33, 100}) {
            for (int64_t k : {1, 255, 256, 257, 600}) {
                const auto x = testing::normal_values(static_cast<size_t>(tokens * k), 7 + static_cast<uint32_t>(k));
                auto w = testing::normal_values(static_cast<size_t>(rows * k), 8 + static_cast<uint32_t>(rows));
                w[0] = 1e4f;  // an outlier in the first K block of row 0
                std::vector<float> fast(static_cast<size_t>(tokens * rows)), twin(fast.size());
                matmul_f32(x.data(), tokens, w.data(), rows, k, fast.data(), rows);
                broadcast_order_twin(x.data(), tokens, w.data(), rows, k, fused, twin.data());
                ASSERT_EQ(fast, twin) << "tokens " << tokens << " rows " << rows << " k " << k
                                      << (fused ? " (fused)" : "");
            }
        }
    }
}

// An output stride wider than the rows (a slice of a wider output) leaves
// the other columns alone on both kernels.
TEST_P(MatmulTargets, WritesOnlyItsColumnsOfAWiderOutput) {
    for (int64_t tokens : {int64_t{3}, kMatmulBroadcastMinTokens + 2}) {
        const int64_t rows = 37, k = 70, stride = 45;
        const auto x = testing::normal_values(static_cast<size_t>(tokens * k), 21);
        const auto w = testing::normal_values(static_cast<size_t>(rows * k), 22);
        std::vector<float> out(static_cast<size_t>(tokens * stride), -7.0f), ref(static_cast<size_t>(tokens * rows));
        matmul_f32(x.data(), tokens, w.data(), rows, k, out.data(), stride);
        matmul_f32_scalar(x.data(), tokens, w.data(), rows, k, ref.data(), rows);
        for (int64_t t = 0; t < tokens; ++t) {
            for (int64_t r = 0; r < stride; ++r) {
                const float v = out[static_cast<size_t>(t * stride + r)];
                if (r < rows) {
                    ASSERT_NEAR(v, ref[static_cast<size_t>(t * rows + r)], 1e-3) << t << ", " << r;
                } else {
                    ASSERT_EQ(v, -7.0f) << t << ", " << r;
                }
            }
        }
    }
}

TEST(Matmul, ZeroRowsAndOutliers) {
    const int64_t tokens = 3, rows = 8, k = 100;
    auto x = testing::normal_values(static_cast<size_t>(tokens * k), 7);
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
    for (const int64_t tokens : {int64_t{2}, kMatmulBroadcastMinTokens}) {
        auto x = testing::normal_values(static_cast<size_t>(tokens * k), 3);
        auto w = testing::normal_values(static_cast<size_t>(4 * k), 4);
        x[5] = std::numeric_limits<float>::quiet_NaN();       // token 0
        x[k + 36] = std::numeric_limits<float>::infinity();  // token 1, in the tail
        w[3 * k + 36] = 1.0f;
        std::vector<float> out(static_cast<size_t>(tokens * 4));
        matmul_f32(x.data(), tokens, w.data(), 4, k, out.data(), 4);
        for (int r = 0; r < 4; ++r) EXPECT_TRUE(std::isnan(out[r])) << r;
        EXPECT_TRUE(std::isinf(out[4 + 3]));
        for (size_t i = 8; i < out.size(); ++i) EXPECT_TRUE(std::isfinite(out[i])) << i;
    }
}

TEST(Matmul, EmptySumsAreZero) {
    for (const int64_t tokens : {int64_t{2}, kMatmulBroadcastMinTokens}) {
        std::vector<float> out(static_cast<size_t>(tokens * 5), 3.0f);
        matmul_f32(nullptr, tokens, nullptr, 5, 0, out.data(), 5);
        for (float v : out) EXPECT_EQ(v, 0.0f);
    }
}

TEST(Matmul, BitIdenticalForAnyThreadCount) {
    for (const int64_t tokens : {int64_t{7}, kMatmulBroadcastMinTokens + 13}) {
        const int64_t rows = 1000, k = 300;
        const auto x = testing::normal_values(static_cast<size_t>(tokens * k), 11);
        const auto w = testing::normal_values(static_cast<size_t>(rows * k), 12);
        std::vector<float> one(static_cast<size_t>(tokens * rows)), two(one.size());
        {
            ThreadLimit limit(1);
            matmul_f32(x.data(), tokens, w.data(), rows, k, one.data(), rows);
        }
        {
            ThreadLimit limit(2);
            matmul_f32(x.data(), tokens, w.data(), rows, k, two.data(), rows);
        }
        EXPECT_EQ(one, two) << tokens << " tokens";
    }
}

TEST(Matmul, ReportsTheDispatchedTarget) {
    const std::string name = matmul_target_name();
    EXPECT_FALSE(name.empty());
}

}  // namespace
}  // namespace sparq
