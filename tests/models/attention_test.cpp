// The SIMD attention of one head against its scalar twin and against
// double precision, on every SIMD target this CPU runs: head sizes that
// fill no, one or several vectors with a remainder, one to many positions,
// sliding windows, extreme scores and non-finite inputs.
#include <gtest/gtest.h>

#include <hwy/targets.h>

#include "simd_targets.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "models/attention.h"

namespace sparq {
namespace {

using AttentionTargets = testing::ForcedTarget;

INSTANTIATE_TEST_SUITE_P(Targets, AttentionTargets,
                         ::testing::ValuesIn(testing::runnable_targets(attention_compiled_targets())),
                         testing::target_param_name);

struct Case {
    std::vector<float> q, keys, values;
    int64_t stride = 0, head_dim = 0;
};

Case random_case(int64_t head_dim, int64_t positions, float spread, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, spread);
    Case c;
    c.head_dim = head_dim;
    c.stride = head_dim * 3 + 5;  // the head's slice within a wider KV row
    c.q.resize(static_cast<size_t>(head_dim));
    c.keys.resize(static_cast<size_t>(positions * c.stride));
    c.values.resize(c.keys.size());
    for (float& v : c.q) v = normal(rng);
    for (float& v : c.keys) v = normal(rng);
    for (float& v : c.values) v = normal(rng);
    return c;
}

// The exact attention in double.
std::vector<double> exact(const Case& c, int64_t first, int64_t span, float scale) {
    std::vector<double> scores(static_cast<size_t>(span));
    double max_score = -INFINITY;
    for (int64_t s = first; s < span; ++s) {
        double dot = 0;
        for (int64_t i = 0; i < c.head_dim; ++i) dot += static_cast<double>(c.q[i]) * c.keys[s * c.stride + i];
        scores[s] = dot * scale;
        max_score = std::max(max_score, scores[s]);
    }
    double sum = 0;
    for (int64_t s = first; s < span; ++s) sum += scores[s] = std::exp(scores[s] - max_score);
    std::vector<double> out(static_cast<size_t>(c.head_dim), 0.0);
    for (int64_t s = first; s < span; ++s)
        for (int64_t i = 0; i < c.head_dim; ++i) out[i] += scores[s] / sum * c.values[s * c.stride + i];
    return out;
}

TEST_P(AttentionTargets, MatchesTwinAndDouble) {
    ASSERT_STREQ(attention_target_name(), hwy::TargetName(GetParam()));
    for (int64_t head_dim : {1, 7, 8, 16, 48, 64, 80, 128, 133}) {
        for (int64_t span : {1, 2, 5, 17, 64, 300}) {
            for (float spread : {0.1f, 1.0f, 6.0f}) {
                const Case c = random_case(head_dim, span, spread, static_cast<uint32_t>(head_dim * 1000 + span));
                const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
                for (int64_t first : {int64_t{0}, span / 2, span - 1}) {
                    std::vector<float> scores(static_cast<size_t>(span)), simd(static_cast<size_t>(head_dim)),
                        twin(simd.size());
                    attend_one_head(c.q.data(), c.keys.data(), c.values.data(), c.stride, head_dim, first, span,
                                    scale, scores.data(), simd.data());
                    attend_one_head_scalar(c.q.data(), c.keys.data(), c.values.data(), c.stride, head_dim, first,
                                           span, scale, scores.data(), twin.data());
                    const std::vector<double> want = exact(c, first, span, scale);
                    for (int64_t i = 0; i < head_dim; ++i) {
                        // Outputs are weighted means of values ~ spread: an
                        // absolute bound scaled to them.
                        const double tolerance = 2e-6 * spread * std::sqrt(static_cast<double>(span) + head_dim);
                        ASSERT_NEAR(simd[i], want[i], tolerance)
                            << "dim " << head_dim << " span " << span << " first " << first << " lane " << i;
                        ASSERT_NEAR(twin[i], want[i], tolerance) << "twin";
                    }
                }
            }
        }
    }
}

// One position: its value row comes out as it is (weight exactly 1).
TEST_P(AttentionTargets, OnePositionReturnsItsValues) {
    const Case c = random_case(64, 1, 1.0f, 4);
    std::vector<float> scores(1), out(64);
    attend_one_head(c.q.data(), c.keys.data(), c.values.data(), c.stride, 64, 0, 1, 0.125f, scores.data(), out.data());
    for (int64_t i = 0; i < 64; ++i) EXPECT_EQ(out[i], c.values[i]);
}

// Scores far apart (one position dominates; the rest underflow to 0) stay
// finite, and NaN or infinities in q or the keys give NaN outputs, as the
// twin does, instead of silently dropping positions.
TEST_P(AttentionTargets, ExtremeAndNonFiniteScores) {
    Case c = random_case(32, 40, 1.0f, 5);
    for (int64_t i = 0; i < 32; ++i) c.keys[7 * c.stride + i] = 1e4f * c.q[i];
    std::vector<float> scores(40), out(32), twin(32);
    attend_one_head(c.q.data(), c.keys.data(), c.values.data(), c.stride, 32, 0, 40, 1.0f, scores.data(), out.data());
    for (int64_t i = 0; i < 32; ++i) EXPECT_NEAR(out[i], c.values[7 * c.stride + i], 1e-6) << i;
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        for (int64_t where : {int64_t{0}, int64_t{39}}) {
            Case b = c;
            b.keys[where * b.stride + 3] = bad;
            b.q[3] = 1.0f;
            attend_one_head(b.q.data(), b.keys.data(), b.values.data(), b.stride, 32, 0, 40, 1.0f, scores.data(),
                            out.data());
            attend_one_head_scalar(b.q.data(), b.keys.data(), b.values.data(), b.stride, 32, 0, 40, 1.0f,
                                   scores.data(), twin.data());
            for (int64_t i = 0; i < 32; ++i) {
                EXPECT_TRUE(std::isnan(out[i])) << bad << " at " << where << " lane " << i;
                EXPECT_TRUE(std::isnan(twin[i])) << "twin " << bad << " at " << where;
            }
        }
    }
}

}  // namespace
}  // namespace sparq
