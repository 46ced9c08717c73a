#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "models/sampling.h"

namespace sparq {
namespace {

TEST(Sampling, GreedyPicksTheLowestIdOnTies) {
    const std::vector<float> logits = {0.5f, 2.0f, 2.0f, -1.0f};
    EXPECT_EQ(greedy_token(logits.data(), 4), 1);
    Rng rng(1);
    EXPECT_EQ(sample_token(logits.data(), 4, 0.0, 1.0, rng), 1);
}

TEST(Sampling, SameSeedSameSequence) {
    const std::vector<float> logits = {0.1f, 0.2f, 0.3f, 0.4f, 0.0f};
    Rng a(42), b(42), c(43);
    std::vector<int32_t> sa, sb, sc;
    for (int i = 0; i < 50; ++i) {
        sa.push_back(sample_token(logits.data(), 5, 1.0, 1.0, a));
        sb.push_back(sample_token(logits.data(), 5, 1.0, 1.0, b));
        sc.push_back(sample_token(logits.data(), 5, 1.0, 1.0, c));
    }
    EXPECT_EQ(sa, sb);
    EXPECT_NE(sa, sc);
}

TEST(Sampling, FrequenciesFollowSoftmax) {
    const std::vector<float> logits = {0.0f, std::log(3.0f)};  // probabilities 1/4, 3/4
    Rng rng(7);
    int ones = 0;
    const int n = 20000;
    for (int i = 0; i < n; ++i) ones += sample_token(logits.data(), 2, 1.0, 1.0, rng) == 1;
    EXPECT_NEAR(static_cast<double>(ones) / n, 0.75, 0.015);
}

TEST(Sampling, TopPKeepsOnlyTheNucleus) {
    const std::vector<float> logits = {5.0f, 0.0f, 0.0f, 0.0f};
    Rng rng(3);
    for (int i = 0; i < 200; ++i) EXPECT_EQ(sample_token(logits.data(), 4, 1.0, 0.5, rng), 0);
}

TEST(Rng, UnitIntervalIsHalfOpen) {
    Rng rng(0);
    for (int i = 0; i < 10000; ++i) {
        const double u = rng.next_unit();
        ASSERT_GE(u, 0.0);
        ASSERT_LT(u, 1.0);
    }
}

}  // namespace
}  // namespace sparq
