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

using ColMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// Inverts the lower triangle of an n x n block (column-major, leading
// dimension ld) in place, LAPACK's unblocked dtrti2: column j of L^-1 is
// -L^-1[j+1:, j+1:] L[j+1:, j] / L_jj, the trailing block being already
// inverted. The strict upper triangle is left alone.
void invert_lower_unblocked(double* m, int64_t n, int64_t ld) {
    for (int64_t j = n - 1; j >= 0; --j) {
        double* column = m + j * ld;
        column[j] = 1.0 / column[j];
        const double scale = -column[j];
        // x = T x with T = the inverted trailing block (lower): columns of T
        // are contiguous; going from the last column up, each x_k is read
        // before it is overwritten.
        for (int64_t k = n - 1; k > j; --k) {
            const double* t = m + k * ld;
            const double xk = column[k];
            column[k] = t[k] * xk;
            for (int64_t i = k + 1; i < n; ++i) column[i] += t[i] * xk;
        }
        for (int64_t i = j + 1; i < n; ++i) column[i] *= scale;
    }
}

// The same for the whole matrix, blocked as LAPACK's dtrtri so the bulk of
// the work is matrix products: with L = [D 0; B T] and T^-1 already in
// place, the block column below D becomes -T^-1 B D^-1.
void invert_lower_in_place(double* m, int64_t n) {
    constexpr int64_t kBlock = 64;
    Eigen::Map<ColMatrix> a(m, n, n);
    for (int64_t j = ((n - 1) / kBlock) * kBlock; j >= 0; j -= kBlock) {
        const int64_t jb = std::min(kBlock, n - j), rest = n - j - jb;
        if (rest > 0) {
            ColMatrix below = a.block(j + jb, j + jb, rest, rest).triangularView<Eigen::Lower>() *
                              a.block(j + jb, j, rest, jb);
            a.block(j, j, jb, jb).triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(below);
            a.block(j + jb, j, rest, jb) = -below;
        }
        invert_lower_unblocked(m + j * n + j, jb, n);
    }
}

// Fills `work` (column-major) with J P^T H P J: the reordered H with its
// order reversed, dead inputs decoupled, dampening added.
void fill_reversed(const std::vector<double>& h, int64_t n, const std::vector<int64_t>& order,
                   const std::vector<uint8_t>& dead, double dead_diagonal, double damp, std::vector<double>& work) {
    const auto source = [&](int64_t i) { return order.empty() ? i : order[static_cast<size_t>(i)]; };
    for (int64_t j = 0; j < n; ++j) {
        const int64_t sj = source(n - 1 - j);
        double* column = work.data() + j * n;
        for (int64_t i = 0; i < n; ++i) {
            const int64_t si = source(n - 1 - i);
            column[i] = dead[static_cast<size_t>(si)] || dead[static_cast<size_t>(sj)] ? 0.0 : h[static_cast<size_t>(si * n + sj)];
        }
        column[j] = (dead[static_cast<size_t>(sj)] ? dead_diagonal : h[static_cast<size_t>(sj * n + sj)]) + damp;
    }
}

}  // namespace

std::optional<InverseHessianFactor> inverse_hessian_factor(const std::vector<double>& hessian, int64_t n,
                                                           const std::vector<int64_t>& order,
                                                           const DampingOptions& damping, std::string* failure) {
    check_size(hessian, n);
    if (!order.empty() && static_cast<int64_t>(order.size()) != n) fail("a column order of ", order.size(), " for ", n);
    auto failed = [&](const std::string& why) -> std::optional<InverseHessianFactor> {
        if (failure) *failure = why;
        return std::nullopt;
    };
    for (double v : hessian) {
        if (!std::isfinite(v)) return failed("the Hessian has non-finite entries");
    }
    double live_sum = 0;
    int64_t live = 0;
    std::vector<uint8_t> dead(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
        const double d = hessian[static_cast<size_t>(i * n + i)];
        if (d < 0) return failed("the Hessian has a negative diagonal entry at column " + std::to_string(i));
        if (d > 0) {
            live_sum += d;
            ++live;
        } else {
            dead[static_cast<size_t>(i)] = 1;
        }
    }
    InverseHessianFactor out;
    out.n = n;
    out.dead_columns = n - live;
    const double mean_diagonal = live > 0 ? live_sum / static_cast<double>(live) : 1.0;
    std::vector<double> fractions = {damping.fraction};
    fractions.insert(fractions.end(), damping.fallback.begin(), damping.fallback.end());
    std::vector<double> work(static_cast<size_t>(n * n));
    std::ostringstream tried;
    for (double fraction : fractions) {
        ++out.attempts;
        fill_reversed(hessian, n, order, dead, mean_diagonal, fraction * mean_diagonal, work);
        Eigen::Map<ColMatrix> a(work.data(), n, n);
        const Eigen::LLT<Eigen::Ref<ColMatrix>> llt(a);  // M in the lower triangle, in place
        bool ok = llt.info() == Eigen::Success;
        for (int64_t i = 0; ok && i < n; ++i) ok = work[static_cast<size_t>(i * n + i)] > 0.0;
        if (ok) {
            invert_lower_in_place(work.data(), n);
            // U = J M^-1 J: clear the strict upper triangle (left over from
            // the input), turn the matrix by 180 degrees (reversing the
            // column-major array reverses both indices), then transpose to
            // row-major.
            for (int64_t j = 1; j < n; ++j) std::fill(work.begin() + j * n, work.begin() + j * n + j, 0.0);
            std::reverse(work.begin(), work.end());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = i + 1; j < n; ++j) std::swap(work[static_cast<size_t>(i * n + j)], work[static_cast<size_t>(j * n + i)]);
            for (double v : work) ok = ok && std::isfinite(v);
            for (int64_t i = 0; ok && i < n; ++i) ok = work[static_cast<size_t>(i * n + i)] > 0.0;
        }
        if (ok) {
            out.damp_fraction = fraction;
            out.upper = std::move(work);
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
