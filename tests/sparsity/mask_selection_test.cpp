#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/parallel.h"
#include "sparsity/mask_selection.h"
#include "sparsity/scores.h"

namespace sparq {
namespace {

std::vector<float> random_scores(int64_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = std::fabs(dist(rng));
    return v;
}

int64_t row_kept(const PruneMask& mask, int64_t r) {
    int64_t k = 0;
    for (int64_t c = 0; c < mask.cols; ++c) k += mask.kept(r, c);
    return k;
}

TEST(MaskSelection, UnstructuredKeepsExactCountPerRowOnOddSizes) {
    for (const int64_t cols : {1, 3, 7, 172, 257}) {
        for (const double s : {0.0, 0.3, 0.5, 0.7, 0.9}) {
            const int64_t rows = 5;
            const auto scores = random_scores(rows * cols, static_cast<uint32_t>(cols));
            const PruneMask mask = select_mask(scores.data(), rows, cols, SparsityTarget::unstructured(s), "w");
            const int64_t expected = cols - std::llround(s * static_cast<double>(cols));
            for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(row_kept(mask, r), expected) << cols << " " << s;
            EXPECT_EQ(mask.pruned_count(), rows * (cols - expected));
        }
    }
    EXPECT_EQ(kept_per_row(172, 0.5), 86);
    EXPECT_EQ(kept_per_row(10, 0.3), 7);
}

TEST(MaskSelection, UnstructuredKeepsTheLargestScores) {
    const int64_t rows = 9, cols = 100;
    const auto scores = random_scores(rows * cols, 7);
    const PruneMask mask = select_mask(scores.data(), rows, cols, SparsityTarget::unstructured(0.6), "w");
    for (int64_t r = 0; r < rows; ++r) {
        float smallest_kept = INFINITY, largest_pruned = -INFINITY;
        for (int64_t c = 0; c < cols; ++c) {
            const float s = scores[static_cast<size_t>(r * cols + c)];
            if (mask.kept(r, c)) smallest_kept = std::min(smallest_kept, s);
            else largest_pruned = std::max(largest_pruned, s);
        }
        EXPECT_GE(smallest_kept, largest_pruned) << "row " << r;
    }
}

TEST(MaskSelection, TiesKeepTheLowerColumn) {
    // All equal: a 50% mask keeps the first half of every row.
    const std::vector<float> flat(2 * 6, 1.0f);
    const PruneMask half = select_mask(flat.data(), 2, 6, SparsityTarget::unstructured(0.5), "w");
    for (int64_t r = 0; r < 2; ++r) {
        for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(half.kept(r, c), c < 3) << r << "," << c;
    }
    // A tie at the boundary: scores 3 2 2 2 1 keep 3 and the first two 2s.
    const std::vector<float> row = {3, 2, 2, 2, 1};
    const PruneMask tie = select_mask(row.data(), 1, 5, SparsityTarget::unstructured(0.4), "w");
    EXPECT_EQ(tie.keep, (std::vector<uint8_t>{1, 1, 1, 0, 0}));
    // N:M ties: 2:4 over equal runs keeps columns 0 and 1 of each run.
    const std::vector<float> equal(8, 0.5f);
    const PruneMask nm = select_mask(equal.data(), 1, 8, SparsityTarget::nm(2, 4), "w");
    EXPECT_EQ(nm.keep, (std::vector<uint8_t>{1, 1, 0, 0, 1, 1, 0, 0}));
}

TEST(MaskSelection, NmKeepsTheNLargestOfEveryRun) {
    const std::vector<float> row = {0.1f, 0.9f, 0.5f, 0.2f, /**/ 4, 3, 2, 1, /**/ 0, 0, 7, 0};
    const PruneMask mask = select_mask(row.data(), 1, 12, SparsityTarget::nm(2, 4), "w");
    EXPECT_EQ(mask.keep, (std::vector<uint8_t>{0, 1, 1, 0, 1, 1, 0, 0, 1, 0, 1, 0}));
    for (const auto& [n, m] : std::vector<std::pair<int, int>>{{1, 2}, {2, 4}, {4, 8}, {3, 7}}) {
        const int64_t rows = 6, cols = m * 13;
        const auto scores = random_scores(rows * cols, static_cast<uint32_t>(n * 100 + m));
        const PruneMask p = select_mask(scores.data(), rows, cols, SparsityTarget::nm(n, m), "w");
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t run = 0; run < cols; run += m) {
                int kept = 0;
                for (int i = 0; i < m; ++i) kept += p.kept(r, run + i);
                EXPECT_EQ(kept, n) << n << ":" << m << " row " << r << " run " << run;
            }
        }
    }
}

TEST(MaskSelection, SameMaskForAnyThreadCount) {
    const int64_t rows = 300, cols = 512;
    auto scores = random_scores(rows * cols, 11);
    // Quantized scores make many ties.
    for (float& s : scores) s = std::round(s * 4.0f);
    PruneMask one, many;
    {
        ThreadLimit limit(1);
        one = select_mask(scores.data(), rows, cols, SparsityTarget::unstructured(0.5), "w");
    }
    many = select_mask(scores.data(), rows, cols, SparsityTarget::unstructured(0.5), "w");
    EXPECT_EQ(one.keep, many.keep);
}

TEST(MaskSelection, NanScoreIsAnErrorNamingTensorRowAndColumn) {
    std::vector<float> scores(4 * 8, 1.0f);
    scores[2 * 8 + 5] = std::numeric_limits<float>::quiet_NaN();
    for (const SparsityTarget& t : {SparsityTarget::unstructured(0.5), SparsityTarget::nm(2, 4)}) {
        try {
            select_mask(scores.data(), 4, 8, t, "model.layers.0.mlp.up_proj.weight");
            FAIL() << "NaN accepted";
        } catch (const Error& e) {
            const std::string what = e.what();
            EXPECT_NE(what.find("model.layers.0.mlp.up_proj.weight"), std::string::npos) << what;
            EXPECT_NE(what.find("row 2, column 5"), std::string::npos) << what;
        }
    }
}

TEST(MaskSelection, BadTargetsAndShapesAreErrors) {
    const std::vector<float> scores(2 * 6, 1.0f);
    EXPECT_THROW(select_mask(scores.data(), 2, 6, SparsityTarget::nm(2, 4), "w"), Error);  // 6 % 4 != 0
    EXPECT_THROW(select_mask(scores.data(), 2, 6, SparsityTarget::unstructured(1.0), "w"), Error);
    EXPECT_THROW(select_mask(scores.data(), 2, 6, SparsityTarget::unstructured(-0.1), "w"), Error);
    EXPECT_THROW(select_mask(scores.data(), 2, 6, SparsityTarget::unstructured(NAN), "w"), Error);
    EXPECT_THROW(parse_nm_pattern("2"), Error);
    EXPECT_THROW(parse_nm_pattern("2:"), Error);
    EXPECT_THROW(parse_nm_pattern("4:4"), Error);
    EXPECT_THROW(parse_nm_pattern("0:4"), Error);
    EXPECT_THROW(parse_nm_pattern("2:4x"), Error);
    EXPECT_THROW(parse_nm_pattern("1:512"), Error);
    const SparsityTarget t = parse_nm_pattern("4:8");
    EXPECT_EQ(t.n, 4);
    EXPECT_EQ(t.m, 8);
    EXPECT_EQ(t.name(), "4:8");
    EXPECT_DOUBLE_EQ(t.nominal_sparsity(), 0.5);
}

TEST(MaskSelection, MagnitudeScoresAndApplyMask) {
    const Tensor w = make_f32_tensor({2, 4}, {1, -5, 0.5f, -0.25f, -2, 3, -4, 1});
    const std::vector<float> scores = magnitude_scores(w, "w");
    EXPECT_EQ(scores, (std::vector<float>{1, 5, 0.5f, 0.25f, 2, 3, 4, 1}));
    const PruneMask mask = select_mask(scores.data(), 2, 4, SparsityTarget::nm(2, 4), "w");
    std::vector<float> values = w.to_f32();
    apply_mask(mask, values.data());
    EXPECT_EQ(values, (std::vector<float>{1, -5, 0, 0, 0, 3, -4, 0}));
    EXPECT_THROW(magnitude_scores(make_f32_tensor({8}, std::vector<float>(8)), "v"), Error);
    EXPECT_EQ(parse_prune_method("magnitude"), PruneMethod::Magnitude);
    EXPECT_EQ(parse_prune_method("wanda"), PruneMethod::Wanda);
    EXPECT_EQ(parse_prune_method("sparsegpt"), PruneMethod::SparseGPT);
    try {
        parse_prune_method("random");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("magnitude, wanda or sparsegpt"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sparq
