#include "quant/hessian.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/parallel.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_size(const std::vector<double>& hessian, int64_t n) {
    if (n < 0 || hessian.size() != static_cast<size_t>(n) * static_cast<size_t>(n)) {
        fail("a Hessian of ", n, " columns needs ", n, " x ", n, " values, got ", hessian.size());
    }
}

// Upper factor of (A)^-1 by two Cholesky factorizations, as GPTQ does
// (cholesky, cholesky_inverse, cholesky upper). False when either fails.
bool factor_inverse(const RowMatrix& a, RowMatrix& upper) {
    const int64_t n = a.rows();
    Eigen::LLT<Eigen::MatrixXd> first(a);
    if (first.info() != Eigen::Success) return false;
    Eigen::MatrixXd inverse = first.solve(Eigen::MatrixXd::Identity(n, n));
    // The solve leaves rounding asymmetry; the second factorization reads
    // one triangle only, so make both agree.
    inverse = (0.5 * (inverse + inverse.transpose())).eval();
    Eigen::LLT<Eigen::MatrixXd> second(inverse);
    if (second.info() != Eigen::Success) return false;
    upper = second.matrixU();
    for (int64_t i = 0; i < n; ++i) {
        const double d = upper(i, i);
        if (!(d > 0.0) || !std::isfinite(d)) return false;
    }
    return upper.allFinite();
}

}  // namespace

std::optional<InverseHessianFactor> inverse_hessian_factor(const std::vector<double>& hessian, int64_t n,
                                                           const DampingOptions& damping, std::string* failure) {
    check_size(hessian, n);
    auto failed = [&](const std::string& why) -> std::optional<InverseHessianFactor> {
        if (failure) *failure = why;
        return std::nullopt;
    };
    RowMatrix h = Eigen::Map<const RowMatrix>(hessian.data(), n, n);
    if (!h.allFinite()) return failed("the Hessian has non-finite entries");
    double live_sum = 0;
    int64_t live = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = h(i, i);
        if (d < 0) return failed("the Hessian has a negative diagonal entry at column " + std::to_string(i));
        if (d > 0) {
            live_sum += d;
            ++live;
        }
    }
    InverseHessianFactor out;
    out.n = n;
    out.dead_columns = n - live;
    const double mean_diagonal = live > 0 ? live_sum / static_cast<double>(live) : 1.0;
    for (int64_t i = 0; i < n; ++i) {
        if (h(i, i) > 0) continue;
        // A zero diagonal in a PSD matrix means a zero row and column; clear
        // any rounding residue so the column stays uncoupled.
        h.row(i).setZero();
        h.col(i).setZero();
        h(i, i) = mean_diagonal;
    }
    std::vector<double> fractions = {damping.fraction};
    fractions.insert(fractions.end(), damping.fallback.begin(), damping.fallback.end());
    RowMatrix upper;
    std::ostringstream tried;
    for (double fraction : fractions) {
        ++out.attempts;
        RowMatrix damped = h;
        damped.diagonal().array() += fraction * mean_diagonal;
        if (factor_inverse(damped, upper)) {
            out.damp_fraction = fraction;
            out.upper.assign(upper.data(), upper.data() + n * n);
            return out;
        }
        tried << (out.attempts > 1 ? ", " : "") << fraction;
    }
    return failed("the Hessian is not positive definite even with dampening " + tried.str() +
                  " x mean diagonal");
}

std::vector<int64_t> descending_diagonal_order(const std::vector<double>& hessian, int64_t n) {
    check_size(hessian, n);
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return hessian[static_cast<size_t>(a * n + a)] > hessian[static_cast<size_t>(b * n + b)];
    });
    return order;
}

std::vector<double> permute_symmetric(const std::vector<double>& hessian, int64_t n,
                                      const std::vector<int64_t>& order) {
    check_size(hessian, n);
    if (static_cast<int64_t>(order.size()) != n) fail("a permutation of ", n, " columns has ", order.size());
    std::vector<double> out(hessian.size());
    for (int64_t i = 0; i < n; ++i) {
        const double* src = hessian.data() + order[i] * n;
        double* dst = out.data() + i * n;
        for (int64_t j = 0; j < n; ++j) dst[j] = src[order[j]];
    }
    return out;
}

double hessian_weighted_error(const float* a, const float* b, int64_t rows, int64_t cols,
                              const std::vector<double>& hessian) {
    check_size(hessian, cols);
    const Eigen::Map<const RowMatrix> h(hessian.data(), cols, cols);
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, cols));
    const size_t chunks = static_cast<size_t>((rows + grain - 1) / grain);
    std::vector<double> partial(chunks, 0.0);
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        RowMatrix d(end - begin, cols);
        for (int64_t r = begin; r < end; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const size_t i = static_cast<size_t>(r * cols + c);
                d(r - begin, c) = static_cast<double>(a[i]) - (b ? static_cast<double>(b[i]) : 0.0);
            }
        }
        const RowMatrix dh = d * h;
        partial[static_cast<size_t>(begin / grain)] = dh.cwiseProduct(d).sum();
    });
    double total = 0;
    for (double p : partial) total += p;
    return total;
}

}  // namespace sparq
