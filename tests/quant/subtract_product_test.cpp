// subtract_product and add_product (quant/subtract_product.h), the cloned
// C -= A B / C += A B of GPTQ, the Cholesky factorization and the refit,
// against their plain twins: the same bits on
// shapes that hit every tile and panel remainder, through both A layouts,
// with NaN/Inf and outliers; and against a long-double product.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "random_values.h"
#include "quant/subtract_product.h"

namespace sparq {
namespace {

struct Case {
    int64_t m, n, k;
};

// Runs both on C (m x n, ldc = n + 3), A (m x k, or stored as its
// transpose) and B (k x n, ldb = n + 1), and returns both results.
std::pair<std::vector<double>, std::vector<double>> both(const Case& s, bool a_transposed, uint32_t seed,
                                                         double outlier = 0) {
    const int64_t ldc = s.n + 3, ldb = s.n + 1;
    const std::vector<double> c0 = testing::normal_values<double>(static_cast<size_t>(s.m * ldc), seed);
    std::vector<double> a = testing::normal_values<double>(static_cast<size_t>(s.m * s.k), seed + 1);
    std::vector<double> b = testing::normal_values<double>(static_cast<size_t>(std::max<int64_t>(1, s.k * ldb)), seed + 2);
    if (outlier != 0 && !a.empty()) a[a.size() / 2] = outlier;
    const int64_t a_row = a_transposed ? 1 : s.k, a_col = a_transposed ? s.m : 1;
    std::vector<double> fast = c0, plain = c0;
    subtract_product(fast.data(), ldc, a.data(), a_row, a_col, b.data(), ldb, s.m, s.n, s.k);
    subtract_product_reference(plain.data(), ldc, a.data(), a_row, a_col, b.data(), ldb, s.m, s.n, s.k);
    // The adding twin on the result: back near c0, and its own bits equal.
    std::vector<double> fast_back = fast, plain_back = plain;
    add_product(fast_back.data(), ldc, a.data(), a_row, a_col, b.data(), ldb, s.m, s.n, s.k);
    add_product_reference(plain_back.data(), ldc, a.data(), a_row, a_col, b.data(), ldb, s.m, s.n, s.k);
    EXPECT_EQ(fast_back, plain_back);
    for (size_t i = 0; i < c0.size(); ++i) {
        if (std::isfinite(c0[i]) && std::isfinite(fast_back[i]) && outlier == 0) {
            EXPECT_NEAR(fast_back[i], c0[i], 1e-12 * (1 + std::sqrt(static_cast<double>(s.k))) * 10);
        }
    }
    return {fast, plain};
}

TEST(SubtractProduct, SameBitsAsThePlainLoopsOnEveryRemainder) {
    uint32_t seed = 1;
    for (int64_t m : {1, 3, 4, 5, 9, 64}) {
        for (int64_t n : {1, 7, 15, 16, 17, 33, 130}) {
            for (int64_t k : {0, 1, 2, 31, 128}) {
                for (bool transposed : {false, true}) {
                    const auto [fast, plain] = both({m, n, k}, transposed, seed++);
                    ASSERT_EQ(fast, plain) << m << " x " << n << " x " << k << (transposed ? " (A^T)" : "");
                }
            }
        }
    }
}

// Depths past one packed block of B (256 rows): the sums of each block are
// parked and resumed, all panels at once; the bits must not change.
TEST(SubtractProduct, SameBitsAcrossDepthBlocks) {
    uint32_t seed = 500;
    for (int64_t m : {1, 4, 7}) {
        for (int64_t n : {16, 35, 64}) {
            for (int64_t k : {255, 256, 257, 513, 700}) {
                for (bool transposed : {false, true}) {
                    const auto [fast, plain] = both({m, n, k}, transposed, seed++);
                    ASSERT_EQ(fast, plain) << m << " x " << n << " x " << k << (transposed ? " (A^T)" : "");
                }
            }
        }
    }
}

TEST(SubtractProduct, MatchesALongDoubleProduct) {
    const int64_t m = 13, n = 70, k = 200;
    const std::vector<double> a = testing::normal_values<double>(static_cast<size_t>(m * k), 5);
    const std::vector<double> b = testing::normal_values<double>(static_cast<size_t>(k * n), 6);
    std::vector<double> c(static_cast<size_t>(m * n), 1.0);
    subtract_product(c.data(), n, a.data(), k, 1, b.data(), n, m, n, k);
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            long double sum = 0;
            for (int64_t t = 0; t < k; ++t) sum += static_cast<long double>(a[i * k + t]) * b[t * n + j];
            EXPECT_NEAR(c[i * n + j], static_cast<double>(1.0L - sum), 1e-12 * std::sqrt(static_cast<double>(k)) * 20)
                << i << ", " << j;
        }
    }
}

TEST(SubtractProduct, OutliersNanAndInfStayWhereTheyBelong) {
    const auto [fast, plain] = both({9, 40, 17}, false, 77, 1e300);
    EXPECT_EQ(fast, plain);
    const Case s{5, 20, 6};
    std::vector<double> a = testing::normal_values<double>(static_cast<size_t>(s.m * s.k), 8);
    std::vector<double> b = testing::normal_values<double>(static_cast<size_t>(s.k * s.n), 9);
    a[2 * s.k + 3] = std::numeric_limits<double>::quiet_NaN();  // row 2
    b[1 * s.n + 18] = std::numeric_limits<double>::infinity();  // column 18, past the full panel
    std::vector<double> c(static_cast<size_t>(s.m * s.n), 0.0);
    subtract_product(c.data(), s.n, a.data(), s.k, 1, b.data(), s.n, s.m, s.n, s.k);
    for (int64_t i = 0; i < s.m; ++i) {
        for (int64_t j = 0; j < s.n; ++j) {
            const double v = c[i * s.n + j];
            if (i == 2) {
                EXPECT_TRUE(std::isnan(v)) << i << ", " << j;
            } else if (j == 18) {
                EXPECT_TRUE(std::isinf(v) || std::isnan(v)) << i << ", " << j;
            } else {
                EXPECT_TRUE(std::isfinite(v)) << i << ", " << j;
            }
        }
    }
}

}  // namespace
}  // namespace sparq
