// Structured pruning math without a model: spec parsing, kept counts,
// head plans under GQA, and the least-squares refit.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "sparsity/structured.h"

namespace sparq {
namespace {

TEST(StructuredSpec, ParsesBothKeys) {
    const StructuredSpec s = parse_structured_spec("mlp=0.25,heads=0.5");
    EXPECT_DOUBLE_EQ(s.mlp, 0.25);
    EXPECT_DOUBLE_EQ(s.heads, 0.5);
    EXPECT_DOUBLE_EQ(parse_structured_spec("heads=0.125").mlp, 0.0);
}

TEST(StructuredSpec, RejectsBadSpecs) {
    for (const char* bad : {"mlp=1.5", "mlp=1", "heads=-0.1", "mlp=abc", "mlp=0.2x", "mlp", "ffn=0.2", "", "mlp=0.1,mlp=0.2"}) {
        EXPECT_THROW(parse_structured_spec(bad), Error) << bad;
    }
    try {
        parse_structured_spec("mlp=1.5");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("[0, 1)"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--structured"), std::string::npos) << e.what();
    }
}

TEST(StructuredMlp, KeptCountIsAMultipleOf32) {
    for (int64_t inter : {32, 100, 768, 1000, 5632, 11008}) {
        for (double f : {0.01, 0.1, 0.25, 0.5, 0.9, 0.99}) {
            const int64_t kept = kept_mlp_channels(inter, f);
            EXPECT_EQ(kept % 32, 0) << inter << " " << f;
            EXPECT_GE(kept, 32);
            EXPECT_LE(kept, inter);
            // Within half a step of 32 of the exact target (or clamped).
            const double target = static_cast<double>(inter) * (1 - f);
            if (kept > 32 && kept < inter - inter % 32) {
                EXPECT_LE(std::abs(kept - target), 16.0) << inter << " " << f;
            }
        }
    }
    EXPECT_EQ(kept_mlp_channels(768, 0.25), 576);
    EXPECT_EQ(kept_mlp_channels(5632, 0.25), 4224);
    EXPECT_EQ(kept_mlp_channels(100, 0.0), 100);
    EXPECT_THROW(kept_mlp_channels(16, 0.5), Error);
}

TEST(StructuredHeads, SameCountFromEveryKvGroup) {
    const HeadPlan p = plan_head_pruning(32, 4, 0.25);
    EXPECT_FALSE(p.whole_groups);
    EXPECT_EQ(p.removed_per_group, 2);
    EXPECT_EQ(p.num_heads, 24);
    EXPECT_EQ(p.num_kv_heads, 4);
    EXPECT_EQ(p.num_heads % p.num_kv_heads, 0);
}

TEST(StructuredHeads, WholeGroupsWithoutGqa) {
    const HeadPlan p = plan_head_pruning(8, 8, 0.25);
    EXPECT_TRUE(p.whole_groups);
    EXPECT_EQ(p.num_heads, 6);
    EXPECT_EQ(p.num_kv_heads, 6);
}

TEST(StructuredHeads, RejectsPlansLeavingNoHeadOrRemovingNone) {
    EXPECT_THROW(plan_head_pruning(4, 2, 0.8), Error);   // 2 of 2 per group
    EXPECT_THROW(plan_head_pruning(4, 4, 0.9), Error);   // all 4 groups
    EXPECT_THROW(plan_head_pruning(32, 4, 0.01), Error);  // rounds to nothing
}

TEST(StructuredHeads, DropsTheLeastImportantOfEachGroup) {
    const HeadPlan p = plan_head_pruning(6, 2, 0.34);  // 1 of 3 per group
    const KeptHeads k = select_kept_heads(p, 6, 2, {5, 1, 3, 0.5, 9, 2});
    EXPECT_EQ(k.query, (std::vector<int64_t>{0, 2, 4, 5}));
    EXPECT_EQ(k.kv, (std::vector<int64_t>{0, 1}));
    const HeadPlan g = plan_head_pruning(4, 4, 0.5);
    const KeptHeads kg = select_kept_heads(g, 4, 4, {1, 4, 0, 3});
    EXPECT_EQ(kg.query, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(kg.kv, (std::vector<int64_t>{1, 3}));
    EXPECT_EQ(head_channels({1, 3}, 2), (std::vector<int64_t>{2, 3, 6, 7}));
}

TEST(StructuredTake, RowsAndColumns) {
    const std::vector<float> w = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};  // 3 x 4
    EXPECT_EQ(take_rows(w, 3, 4, {0, 2}), (std::vector<float>{0, 1, 2, 3, 8, 9, 10, 11}));
    EXPECT_EQ(take_cols(w, 3, 4, {1, 3}), (std::vector<float>{1, 3, 5, 7, 9, 11}));
    EXPECT_THROW(take_cols(w, 3, 4, {4}), Error);
}

TEST(StructuredImportance, ActivationTimesColumnNorm) {
    const std::vector<float> w = {3, 0, 1, 4, 0, 1};  // 2 x 3: column norms 5, 0, sqrt(2)
    const std::vector<double> imp = input_channel_importance(w, 2, 3, {2.0, 7.0, 1.0});
    EXPECT_DOUBLE_EQ(imp[0], 10.0);
    EXPECT_DOUBLE_EQ(imp[1], 0.0);
    EXPECT_NEAR(imp[2], std::sqrt(2.0), 1e-12);
    EXPECT_EQ(top_indices(imp, 2), (std::vector<int64_t>{0, 2}));
}

// Random layer and correlated activations: the refit is the least-squares
// optimum (its residual is orthogonal to the kept inputs) and beats
// dropping the columns.
TEST(StructuredReconstruct, LeastSquaresOptimum) {
    const int64_t rows = 6, cols = 10, samples = 400;
    std::mt19937 rng(3);
    std::normal_distribution<double> normal;
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& v : w) v = static_cast<float>(normal(rng));
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t s = 0; s < samples; ++s) {
        std::vector<double> x(static_cast<size_t>(cols));
        const double shared = normal(rng);
        for (auto& v : x) v = normal(rng) + shared;  // correlated channels: the refit has something to use
        for (int64_t a = 0; a < cols; ++a) {
            for (int64_t b = 0; b < cols; ++b) h[static_cast<size_t>(a * cols + b)] += x[a] * x[b] / samples;
        }
    }
    const std::vector<int64_t> kept = {0, 2, 3, 5, 7, 8};
    const std::vector<float> dropped = take_cols(w, rows, cols, kept);
    const std::vector<float> refit = reconstruct_restricted(w, rows, cols, h, kept, 1e-9);
    const double e_drop = restricted_output_error(w, rows, cols, h, kept, dropped);
    const double e_refit = restricted_output_error(w, rows, cols, h, kept, refit);
    EXPECT_LT(e_refit, 0.9 * e_drop);
    // Normal equations: (W - W'_K embedded) H[:, K] = 0.
    const auto k = static_cast<int64_t>(kept.size());
    for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> d(w.begin() + r * cols, w.begin() + (r + 1) * cols);
        for (int64_t j = 0; j < k; ++j) d[kept[j]] -= refit[r * k + j];
        for (int64_t j = 0; j < k; ++j) {
            double g = 0;
            for (int64_t a = 0; a < cols; ++a) g += d[a] * h[a * cols + kept[j]];
            EXPECT_NEAR(g, 0.0, 1e-4) << r << " " << j;
        }
    }
}

}  // namespace
}  // namespace sparq
