// GPTQ against a slow, obviously correct implementation of the paper's
// algorithm (explicit inverse Hessian, one column at a time, eliminating
// each quantized column from the inverse: equations (3) and (4) of OBQ /
// GPTQ), for every scheme; act-order with static groups; singular and
// indefinite Hessians; thread-count determinism; and the Hessian helpers.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/clip_search.h"
#include "quant/gptq.h"
#include "quant/hessian.h"
#include "quant/imatrix.h"
#include "quant/quantize_tensor.h"
#include "quant/reference_codec.h"
#include "quant/rtn.h"
#include "random_values.h"

namespace sparq {
namespace {

using Matrix = std::vector<double>;  // row-major square

std::vector<float> random_weights(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> w(static_cast<size_t>(rows * cols));
    for (float& v : w) v = normal(rng);
    return w;
}

// H = X^T X / tokens with correlated channels of uneven energy.
Matrix random_hessian(int64_t cols, int64_t tokens, uint32_t seed) { return testing::correlated_hessian(cols, tokens, seed); }

// Gauss-Jordan inverse with partial pivoting.
Matrix invert(Matrix a, int64_t n) {
    Matrix inv(static_cast<size_t>(n * n), 0.0);
    for (int64_t i = 0; i < n; ++i) inv[i * n + i] = 1.0;
    for (int64_t c = 0; c < n; ++c) {
        int64_t pivot = c;
        for (int64_t r = c + 1; r < n; ++r)
            if (std::fabs(a[r * n + c]) > std::fabs(a[pivot * n + c])) pivot = r;
        for (int64_t k = 0; k < n; ++k) {
            std::swap(a[c * n + k], a[pivot * n + k]);
            std::swap(inv[c * n + k], inv[pivot * n + k]);
        }
        const double p = a[c * n + c];
        for (int64_t k = 0; k < n; ++k) {
            a[c * n + k] /= p;
            inv[c * n + k] /= p;
        }
        for (int64_t r = 0; r < n; ++r) {
            if (r == c) continue;
            const double f = a[r * n + c];
            for (int64_t k = 0; k < n; ++k) {
                a[r * n + k] -= f * a[c * n + k];
                inv[r * n + k] -= f * inv[c * n + k];
            }
        }
    }
    return inv;
}

// h_block: the group's block of the Hessian (row stride ld).
GroupParams reference_params(const QuantScheme& s, const float* x, int64_t n, const float* importance,
                             const double* h_block, int64_t ld, GroupParamSearch search) {
    if (auto exact = exact_group_params(s, x, n)) return *exact;
    if (search == GroupParamSearch::Rtn) return rtn_group_params(s, x, n);
    if (search == GroupParamSearch::Hessian) return search_clip_params_hessian(s, x, n, h_block, ld);
    return search_clip_params(s, x, n, search == GroupParamSearch::Weighted ? importance : nullptr, ClipGrid{});
}

// The paper's algorithm, literally: keep the inverse Hessian F^-1 of the
// columns not yet quantized; quantize column i, move every remaining
// column by -(w_i - q_i) / [F^-1]_ii * [F^-1]_{i,:}, then eliminate i from
// F^-1 (F^-1 -= F^-1_{:,i} F^-1_{i,:} / [F^-1]_ii). Dead inputs and
// dampening as documented in quant/hessian.h. Returns dequantized weights.
std::vector<float> reference_gptq(const std::vector<float>& weight, int64_t rows, int64_t cols, const Matrix& hessian,
                                  const QuantScheme& s, bool act_order, bool static_groups, GroupParamSearch search,
                                  double damp = 0.01) {
    std::vector<int64_t> order(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), int64_t{0});
    if (act_order) {
        std::stable_sort(order.begin(), order.end(),
                         [&](int64_t a, int64_t b) { return hessian[a * cols + a] > hessian[b * cols + b]; });
    }
    Matrix h(static_cast<size_t>(cols * cols));
    for (int64_t i = 0; i < cols; ++i)
        for (int64_t j = 0; j < cols; ++j) h[i * cols + j] = hessian[order[i] * cols + order[j]];
    double live_sum = 0;
    int64_t live = 0;
    for (int64_t i = 0; i < cols; ++i) {
        if (h[i * cols + i] > 0) {
            live_sum += h[i * cols + i];
            ++live;
        }
    }
    const double mean = live ? live_sum / static_cast<double>(live) : 1.0;
    for (int64_t i = 0; i < cols; ++i) {
        if (h[i * cols + i] > 0) continue;
        for (int64_t j = 0; j < cols; ++j) h[i * cols + j] = h[j * cols + i] = 0;
        h[i * cols + i] = mean;
    }
    for (int64_t i = 0; i < cols; ++i) h[i * cols + i] += damp * mean;
    const Matrix inverse = invert(h, cols);
    std::vector<float> importance(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) importance[c] = static_cast<float>(std::max(0.0, hessian[c * cols + c]));
    const int64_t span = s.group_span(cols), groups = groups_per_row(s, cols);
    std::vector<float> out(weight.size());
    for (int64_t r = 0; r < rows; ++r) {
        Matrix f = inverse;
        std::vector<double> w(static_cast<size_t>(cols));
        for (int64_t i = 0; i < cols; ++i) w[i] = weight[r * cols + order[i]];
        std::vector<GroupParams> params(static_cast<size_t>(groups));
        if (act_order || static_groups) {
            for (int64_t g = 0; g < groups; ++g) {
                const int64_t first = g * span, n = std::min(span, cols - first);
                params[g] = reference_params(s, weight.data() + r * cols + first, n, importance.data() + first,
                                             hessian.data() + first * cols + first, cols, search);
            }
        }
        for (int64_t i = 0; i < cols; ++i) {
            const int64_t column = order[i], g = column / span;
            if (!(act_order || static_groups) && column % span == 0) {
                const int64_t n = std::min(span, cols - column);
                std::vector<float> segment(static_cast<size_t>(n));
                for (int64_t k = 0; k < n; ++k) segment[k] = static_cast<float>(w[i + k]);
                params[g] = reference_params(s, segment.data(), n, importance.data() + column,
                                             hessian.data() + column * cols + column, cols, search);
            }
            const float scale = params[g].scale_value();
            const uint8_t code = quantize_value(static_cast<float>(w[i]), scale, params[g].zero, min_code(s), max_code(s));
            const float q = dequantize_value(code, scale, params[g].zero);
            out[r * cols + column] = q;
            const double e = (w[i] - q) / f[i * cols + i];
            for (int64_t j = i + 1; j < cols; ++j) w[j] -= e * f[i * cols + j];
            const double pivot = f[i * cols + i];
            const std::vector<double> row_i(f.begin() + i * cols, f.begin() + (i + 1) * cols);
            for (int64_t a = 0; a < cols; ++a) {
                const double fa = f[a * cols + i];
                for (int64_t b = 0; b < cols; ++b) f[a * cols + b] -= fa * row_i[b] / pivot;
            }
        }
    }
    return out;
}

double relative_error(const std::vector<float>& w, const std::vector<float>& q, int64_t rows, int64_t cols,
                      const Matrix& h) {
    return hessian_weighted_error(w.data(), q.data(), rows, cols, h) /
           hessian_weighted_error(w.data(), nullptr, rows, cols, h);
}

struct Case {
    QuantScheme scheme;
    bool act_order;
};

TEST(Gptq, MatchesTheSlowAlgorithmForEveryScheme) {
    const int64_t rows = 12, cols = 96;
    const std::vector<float> w = random_weights(rows, cols, 1);
    const Matrix h = random_hessian(cols, 300, 2);
    int checked = 0;
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            for (int64_t group : {int64_t{32}, int64_t{64}, int64_t{0}}) {
                for (bool act_order : {false, true}) {
                    const QuantScheme s{bits, group, sym};
                    GptqOptions o;
                    o.block_size = 32;  // several lazy batches, groups inside and across them
                    o.act_order = act_order;
                    o.params = GroupParamSearch::Rtn;
                    const GptqResult r = gptq_quantize(w.data(), rows, cols, h, s, o, "w");
                    ASSERT_FALSE(r.fell_back_to_rtn) << r.fallback_reason;
                    const std::vector<float> fast = dequantize_tensor(r.packed);
                    const std::vector<float> slow = reference_gptq(w, rows, cols, h, s, act_order, false,
                                                                   GroupParamSearch::Rtn);
                    size_t same = 0;
                    for (size_t i = 0; i < fast.size(); ++i) same += fast[i] == slow[i];
                    const std::string what = s.name() + (act_order ? " act-order" : "");
                    // Blocked Cholesky and explicit elimination round
                    // differently; a rare tie may flip one code.
                    EXPECT_GE(static_cast<double>(same) / fast.size(), 0.995) << what;
                    const double e_fast = relative_error(w, fast, rows, cols, h);
                    const double e_slow = relative_error(w, slow, rows, cols, h);
                    EXPECT_NEAR(e_fast, e_slow, 0.01 * e_slow + 1e-12) << what;
                    ++checked;
                }
            }
        }
    }
    EXPECT_EQ(checked, 48);
}

TEST(Gptq, ClipSearchesMatchTheSlowAlgorithm) {
    const int64_t rows = 10, cols = 128;
    const std::vector<float> w = random_weights(rows, cols, 3);
    const Matrix h = random_hessian(cols, 400, 4);
    for (GroupParamSearch search : {GroupParamSearch::Mse, GroupParamSearch::Weighted, GroupParamSearch::Hessian}) {
        for (bool act_order : {false, true}) {
            const QuantScheme s{4, 32, true};
            GptqOptions o;
            o.act_order = act_order;
            o.block_size = 64;
            o.params = search;
            const std::vector<float> fast = dequantize_tensor(gptq_quantize(w.data(), rows, cols, h, s, o, "w").packed);
            const std::vector<float> slow = reference_gptq(w, rows, cols, h, s, act_order, false, search);
            size_t same = 0;
            for (size_t i = 0; i < fast.size(); ++i) same += fast[i] == slow[i];
            EXPECT_GE(static_cast<double>(same) / fast.size(), 0.995) << static_cast<int>(search) << act_order;
        }
    }
}

TEST(Gptq, BeatsRoundToNearestOnTheWeightedError) {
    const int64_t rows = 32, cols = 256;
    const std::vector<float> w = random_weights(rows, cols, 5);
    const Matrix h = random_hessian(cols, 600, 6);
    for (int bits : {4, 3}) {
        const QuantScheme s{bits, 128, true};
        const std::vector<float> rtn = dequantize_tensor(
            quantize_tensor(make_f32_tensor({rows, cols}, w), s, QuantMethod::Rtn, nullptr, "w"));
        const double e_rtn = relative_error(w, rtn, rows, cols, h);
        for (bool act_order : {false, true}) {
            GptqOptions o;
            o.act_order = act_order;
            const std::vector<float> q = dequantize_tensor(gptq_quantize(w.data(), rows, cols, h, s, o, "w").packed);
            EXPECT_LT(relative_error(w, q, rows, cols, h), 0.8 * e_rtn) << bits << " " << act_order;
        }
    }
}

// With no correlation between inputs there is nothing to compensate: every
// order gives plain rounding with the static parameters, i.e. RTN's bytes.
TEST(Gptq, ActOrderWithStaticGroupsKeepsTheLayout) {
    const int64_t rows = 9, cols = 80;  // a short last group at group 32
    const std::vector<float> w = random_weights(rows, cols, 7);
    Matrix diagonal(static_cast<size_t>(cols * cols), 0.0);
    std::mt19937 rng(8);
    for (int64_t c = 0; c < cols; ++c) diagonal[c * cols + c] = 0.1 + std::uniform_real_distribution<double>(0, 5)(rng);
    for (bool sym : {true, false}) {
        const QuantScheme s{4, 32, sym};
        const PackedTensor rtn = quantize_tensor(make_f32_tensor({rows, cols}, w), s, QuantMethod::Rtn, nullptr, "w");
        for (bool act_order : {false, true}) {
            GptqOptions o;
            o.act_order = act_order;
            o.static_groups = true;
            o.params = GroupParamSearch::Rtn;
            const PackedTensor g = gptq_quantize(w.data(), rows, cols, diagonal, s, o, "w").packed;
            EXPECT_EQ(g.codes, rtn.codes) << sym << act_order;
            EXPECT_EQ(g.scales, rtn.scales) << sym << act_order;
            EXPECT_EQ(g.zeros, rtn.zeros) << sym << act_order;
        }
    }
    // On a correlated Hessian, act-order output is in the layout's canonical
    // form: re-quantizing its dequantized values reproduces its bytes, so
    // every value sits on the grid of the group the layout puts it in.
    const Matrix h = random_hessian(cols, 200, 9);
    for (bool sym : {true, false}) {
        const QuantScheme s{3, 32, sym};
        GptqOptions o;
        o.act_order = true;
        const PackedTensor g = gptq_quantize(w.data(), rows, cols, h, s, o, "w").packed;
        const PackedTensor again =
            quantize_tensor(make_f32_tensor({rows, cols}, dequantize_tensor(g)), s, QuantMethod::Rtn, nullptr, "w");
        EXPECT_EQ(again.codes, g.codes) << sym;
        EXPECT_EQ(again.scales, g.scales) << sym;
        EXPECT_EQ(again.zeros, g.zeros) << sym;
    }
}

TEST(Gptq, SingularHessiansStillQuantize) {
    const int64_t rows = 8, cols = 64;
    const std::vector<float> w = random_weights(rows, cols, 10);
    // Fewer tokens than inputs (rank 20) and four inputs never active.
    Matrix h = random_hessian(cols, 20, 11);
    for (int64_t c : {3, 17, 40, 63}) {
        for (int64_t j = 0; j < cols; ++j) h[c * cols + j] = h[j * cols + c] = 0;
    }
    GptqOptions o;
    const GptqResult r = gptq_quantize(w.data(), rows, cols, h, {4, 32, true}, o, "w");
    EXPECT_FALSE(r.fell_back_to_rtn);
    EXPECT_EQ(r.dead_columns, 4);
    const std::vector<float> q = dequantize_tensor(r.packed);
    for (float v : q) EXPECT_TRUE(std::isfinite(v));
    // Dead inputs are rounded plainly: their values are on the static grid.
    EXPECT_EQ(r.packed.rows, rows);

    // All inputs dead: a zero Hessian.
    const Matrix zero(static_cast<size_t>(cols * cols), 0.0);
    const GptqResult z = gptq_quantize(w.data(), rows, cols, zero, {4, 32, true}, o, "w");
    EXPECT_FALSE(z.fell_back_to_rtn);
    EXPECT_EQ(z.dead_columns, cols);
}

TEST(Gptq, IndefiniteOrBrokenHessiansFallBackToRtn) {
    const int64_t rows = 4, cols = 16;
    const std::vector<float> w = random_weights(rows, cols, 12);
    const QuantScheme s{4, 16, true};
    const PackedTensor rtn = quantize_tensor(make_f32_tensor({rows, cols}, w), s, QuantMethod::Rtn, nullptr, "w");
    // Positive diagonal but eigenvalues -2 and 4 in every 2x2 block: even
    // dampening by the whole mean diagonal leaves it indefinite.
    Matrix indefinite(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; i += 2) {
        indefinite[i * cols + i] = indefinite[(i + 1) * cols + i + 1] = 1;
        indefinite[i * cols + i + 1] = indefinite[(i + 1) * cols + i] = 3;
    }
    Matrix nan_hessian = indefinite;
    nan_hessian[5] = std::nan("");
    Matrix negative(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i) negative[i * cols + i] = i == 3 ? -1 : 1;
    for (const Matrix* h : {&indefinite, &nan_hessian, &negative}) {
        GptqOptions o;
        const GptqResult r = gptq_quantize(w.data(), rows, cols, *h, s, o, "w");
        EXPECT_TRUE(r.fell_back_to_rtn);
        EXPECT_FALSE(r.fallback_reason.empty());
        EXPECT_EQ(r.packed.codes, rtn.codes);
        EXPECT_EQ(r.packed.scales, rtn.scales);
    }
    // Needs more than the first dampening level, but a later one works.
    Matrix mild(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; i += 2) {
        mild[i * cols + i] = mild[(i + 1) * cols + i + 1] = 1;
        mild[i * cols + i + 1] = mild[(i + 1) * cols + i] = 1.05;  // eigenvalue -0.05
    }
    const GptqResult r = gptq_quantize(w.data(), rows, cols, mild, s, GptqOptions{}, "w");
    EXPECT_FALSE(r.fell_back_to_rtn);
    EXPECT_EQ(r.damp_attempts, 2);
    EXPECT_DOUBLE_EQ(r.damp_fraction, 0.1);
}

TEST(Gptq, BadInputsAreErrorsNamingTheTensor) {
    const int64_t rows = 2, cols = 16;
    std::vector<float> w = random_weights(rows, cols, 13);
    const Matrix h = random_hessian(cols, 50, 14);
    EXPECT_THROW(gptq_quantize(w.data(), rows, cols, Matrix(10, 0.0), {4, 16, true}, GptqOptions{}, "layer.w"), Error);
    GptqOptions odd;
    odd.block_size = 48;
    EXPECT_THROW(gptq_quantize(w.data(), rows, cols, h, {4, 16, true}, odd, "layer.w"), Error);
    w[21] = std::nanf("");
    try {
        gptq_quantize(w.data(), rows, cols, h, {4, 16, true}, GptqOptions{}, "layer.w");
        FAIL() << "a NaN weight was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().tensor, "layer.w");
        EXPECT_NE(e.message().find("row 1, column 5"), std::string::npos) << e.message();
    }
}

TEST(Gptq, SameBytesForAnyThreadCount) {
    const int64_t rows = 300, cols = 1024;  // two row chunks
    const std::vector<float> w = random_weights(rows, cols, 15);
    const Matrix h = random_hessian(cols, 200, 16);  // rank-deficient: dampening makes it definite
    GptqOptions o;
    PackedTensor one, many;
    {
        ThreadLimit limit(1);
        one = gptq_quantize(w.data(), rows, cols, h, {4, 128, false}, o, "w").packed;
    }
    {
        ThreadLimit limit(4);
        many = gptq_quantize(w.data(), rows, cols, h, {4, 128, false}, o, "w").packed;
    }
    EXPECT_EQ(one.codes, many.codes);
    EXPECT_EQ(one.scales, many.scales);
    EXPECT_EQ(one.zeros, many.zeros);
}

// The factorization's tiles are fixed by n, so the factor, and GPTQ's
// codes, are the same bits on any thread count. Odd width (partial tiles and
// a partial last group), act-order and a dead input (fill_reversed's
// decoupling) included.
TEST(Hessian, FactorIsBitIdenticalForAnyThreadCount) {
    const int64_t n = 301, rows = 70;
    Matrix h = random_hessian(n, 400, 21);
    for (int64_t i = 0; i < n; ++i) h[i * n + 7] = h[7 * n + i] = 0.0;  // input 7 never active
    const std::vector<int64_t> order = descending_diagonal_order(h, n);
    const std::vector<float> w = random_weights(rows, n, 22);
    GptqOptions o;
    o.act_order = true;
    std::vector<FactorStorage> factors;
    std::vector<PackedTensor> packed;
    for (int threads : {1, 2, 3}) {
        ThreadLimit limit(threads);
        const auto f = inverse_hessian_factor(h, n, order, DampingOptions{});
        ASSERT_TRUE(f.has_value());
        EXPECT_EQ(f->dead_columns, 1);
        factors.push_back(f->upper);
        packed.push_back(gptq_quantize(w.data(), rows, n, h, {4, 128, false}, o, "w").packed);
    }
    for (size_t t = 1; t < factors.size(); ++t) {
        // EXPECT_EQ on doubles compares exactly: bit-identity, not closeness.
        EXPECT_EQ(factors[t], factors[0]) << "threads " << t + 1;
        EXPECT_EQ(packed[t].codes, packed[0].codes);
        EXPECT_EQ(packed[t].scales, packed[0].scales);
        EXPECT_EQ(packed[t].zeros, packed[0].zeros);
    }
}

class HessianFactor : public ::testing::TestWithParam<int64_t> {};

// 24: one tile of the blocked factorizations (128 wide); 150: two, the
// last short; 301: three, so panels have both off-diagonal and diagonal
// trailing tiles.
INSTANTIATE_TEST_SUITE_P(Sizes, HessianFactor, ::testing::Values(int64_t{24}, int64_t{150}, int64_t{301}));

TEST_P(HessianFactor, IsTheCholeskyOfTheDampedInverse) {
    const int64_t n = GetParam();
    const Matrix h = random_hessian(n, 3 * n, 17);
    const auto f = inverse_hessian_factor(h, n, {}, DampingOptions{});
    ASSERT_TRUE(f.has_value());
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += h[i * n + i] / n;
    Matrix damped = h;
    for (int64_t i = 0; i < n; ++i) damped[i * n + i] += 0.01 * mean;
    const Matrix inverse = invert(damped, n);
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            if (j < i) {
                EXPECT_EQ(f->at(i, j), 0.0);
            }
            double utu = 0;
            for (int64_t k = 0; k < n; ++k) utu += f->at(k, i) * f->at(k, j);
            EXPECT_NEAR(utu, inverse[i * n + j], 1e-8 * std::fabs(inverse[i * n + i]));
        }
    }
    // A column order factors the reordered matrix without a permuted copy.
    const std::vector<int64_t> order = descending_diagonal_order(h, n);
    const auto ordered = inverse_hessian_factor(h, n, order, DampingOptions{});
    const auto permuted = inverse_hessian_factor(permute_symmetric(h, n, order), n, {}, DampingOptions{});
    ASSERT_TRUE(ordered && permuted);
    for (size_t i = 0; i < ordered->upper.size(); ++i) {
        EXPECT_NEAR(ordered->upper[i], permuted->upper[i], 1e-12 * (1 + std::fabs(permuted->upper[i])));
    }
}

TEST(Hessian, OrderAndWeightedError) {
    const int64_t n = 5;
    Matrix h(static_cast<size_t>(n * n), 0.0);
    const double diag[] = {2, 7, 2, 9, 0};
    for (int64_t i = 0; i < n; ++i) h[i * n + i] = diag[i];
    h[1 * n + 3] = h[3 * n + 1] = 0.5;
    EXPECT_EQ(descending_diagonal_order(h, n), (std::vector<int64_t>{3, 1, 0, 2, 4}));
    const Matrix p = permute_symmetric(h, n, {3, 1, 0, 2, 4});
    EXPECT_EQ(p[0], 9);
    EXPECT_EQ(p[1], 0.5);
    const std::vector<float> a = {1, 2, 3, 4, 5, -1, 0, 1, 0, 2};
    const std::vector<float> b = {0, 2, 3, 3, 5, -1, 1, 1, 0, 0};
    // Row 0: d = (1,0,0,1,0): 2 + 9 = 11. Row 1: d = (0,-1,0,0,2): 7 + 0.
    EXPECT_DOUBLE_EQ(hessian_weighted_error(a.data(), b.data(), 2, n, h), 18.0);
}

// Past one chunk of 64 rows and a product panel: the chunked sum against
// a plain double loop, and the same bits for any thread count.
TEST(Hessian, WeightedErrorOfManyRowsMatchesAPlainSum) {
    const int64_t rows = 150, cols = 37;
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> a(static_cast<size_t>(rows * cols)), b(a.size());
    for (float& x : a) x = normal(rng);
    for (float& x : b) x = normal(rng);
    std::vector<double> x(static_cast<size_t>(3 * cols * cols));
    for (double& v : x) v = normal(rng);
    Matrix h(static_cast<size_t>(cols * cols), 0.0);  // X^T X: symmetric, positive semi-definite
    for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
            for (int64_t t = 0; t < 3 * cols; ++t) h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
        }
    }
    for (const bool with_b : {false, true}) {
        long double plain = 0;
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t i = 0; i < cols; ++i) {
                for (int64_t j = 0; j < cols; ++j) {
                    const double di = a[r * cols + i] - (with_b ? double{b[r * cols + i]} : 0.0);
                    const double dj = a[r * cols + j] - (with_b ? double{b[r * cols + j]} : 0.0);
                    plain += static_cast<long double>(di) * h[i * cols + j] * dj;
                }
            }
        }
        const float* other = with_b ? b.data() : nullptr;
        double one = 0, two = 0;
        {
            ThreadLimit limit(1);
            one = hessian_weighted_error(a.data(), other, rows, cols, h);
        }
        {
            ThreadLimit limit(2);
            two = hessian_weighted_error(a.data(), other, rows, cols, h);
        }
        EXPECT_EQ(one, two);
        EXPECT_NEAR(one, static_cast<double>(plain), 1e-10 * static_cast<double>(plain));
    }
}

}  // namespace
}  // namespace sparq
