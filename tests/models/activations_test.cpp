// The SIMD SiLU gate against its scalar twin (the C library's expf) and
// against double precision, on random values, every magnitude and the edge
// inputs, on every SIMD target this CPU runs.
#include <gtest/gtest.h>

#include <hwy/targets.h>

#include "simd_targets.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "models/activations.h"

namespace sparq {
namespace {

double exact_silu_times(double g, double u) { return g / (1.0 + std::exp(-g)) * u; }

std::vector<float> inputs() {
    std::vector<float> x;
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 3.0f);
    for (int i = 0; i < 4000; ++i) x.push_back(normal(rng));
    for (float v = -120.0f; v <= 120.0f; v += 0.37f) x.push_back(v);  // past Exp's 104 and expf's overflow
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-40f, -1e-40f, 87.0f, -87.0f, 88.9f, -88.9f, 104.5f, -104.5f,
                    1.0e38f, -1.0e38f})
        x.push_back(v);
    return x;
}

using SiluTargets = testing::ForcedTarget;

INSTANTIATE_TEST_SUITE_P(Targets, SiluTargets, ::testing::ValuesIn(testing::runnable_targets(silu_compiled_targets())),
                         testing::target_param_name);

TEST_P(SiluTargets, MatchesTwinAndDoubleWithinFewUlp) {
    ASSERT_STREQ(silu_target_name(), hwy::TargetName(GetParam()));
    const std::vector<float> x = inputs();
    std::vector<float> up(x.size());
    std::mt19937 rng(4);
    std::uniform_real_distribution<float> uniform(-2.0f, 2.0f);
    for (float& u : up) u = uniform(rng);
    up[7] = 0.0f;
    // Every length up to two vectors and more: the partial last vector.
    for (size_t n : {x.size(), size_t{1}, size_t{5}, size_t{17}, size_t{31}}) {
        std::vector<float> simd(x.begin(), x.begin() + n), twin = simd;
        silu_times(simd.data(), up.data(), static_cast<int64_t>(n));
        silu_times_scalar(twin.data(), up.data(), static_cast<int64_t>(n));
        for (size_t i = 0; i < n; ++i) {
            const double exact = exact_silu_times(x[i], up[i]);
            // 4 ULP of the result, and below the smallest normal an absolute floor.
            const double tol = 4.0 * std::numeric_limits<float>::epsilon() * std::fabs(exact) + 1e-37;
            ASSERT_NEAR(simd[i], exact, tol) << "x " << x[i] << " up " << up[i];
            // The twin's expf overflows below x = -88.7 and gives 0 there
            // for a product of ~1e-37: the floor covers it.
            ASSERT_NEAR(simd[i], twin[i], 2.0 * tol + 1e-30) << "x " << x[i] << " up " << up[i];
        }
    }
}

TEST_P(SiluTargets, NonFiniteInputs) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> gate = {nan, inf, -inf, 1.0f, 2.0f}, up = {1.0f, 1.0f, 1.0f, nan, inf};
    silu_times(gate.data(), up.data(), static_cast<int64_t>(gate.size()));
    EXPECT_TRUE(std::isnan(gate[0]));
    EXPECT_EQ(gate[1], inf);
    // -inf: x e^x has the limit 0, but -inf * 0 is NaN, as the scalar
    // formula -inf / (1 + inf) also gives.
    EXPECT_TRUE(std::isnan(gate[2]));
    EXPECT_TRUE(std::isnan(gate[3]));
    EXPECT_EQ(gate[4], inf);
}

}  // namespace
}  // namespace sparq
