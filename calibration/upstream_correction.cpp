#include "calibration/upstream_correction.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "core/parallel.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per chunk of the solve: fixed by the shape only, so the result does
// not depend on the thread count (core/parallel.h).
constexpr int64_t kRowChunk = 64;

}  // namespace

UpstreamCorrection correct_upstream(float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                                    const std::vector<double>& cross, const DampingOptions& damping) {
    const size_t n2 = static_cast<size_t>(cols) * static_cast<size_t>(cols);
    if (rows < 0 || cols < 1) fail("upstream correction needs a weight with columns, got [", rows, ", ", cols, "]");
    if (hessian.size() != n2 || cross.size() != n2) {
        fail("upstream correction: statistics of ", hessian.size(), " and ", cross.size(), " values for ", cols,
             " x ", cols);
    }
    UpstreamCorrection result;
    const Eigen::Map<const RowMatrix> h(hessian.data(), cols, cols);
    const Eigen::Map<const RowMatrix> c(cross.data(), cols, cols);
    if (!h.allFinite() || !c.allFinite()) {
        result.failure = "non-finite calibration statistics";
        return result;
    }
    const double mean_diagonal = h.diagonal().mean();
    if (!(mean_diagonal > 0)) {
        result.failure = "the inputs were all zero";
        return result;
    }
    std::vector<double> fractions = {damping.fraction};
    fractions.insert(fractions.end(), damping.fallback.begin(), damping.fallback.end());
    std::optional<Eigen::LLT<RowMatrix>> factor;
    for (const double fraction : fractions) {
        RowMatrix damped = h;
        damped.diagonal().array() += fraction * mean_diagonal;
        Eigen::LLT<RowMatrix> llt(damped);
        if (llt.info() == Eigen::Success) {
            factor = std::move(llt);
            result.damp_fraction = fraction;
            break;
        }
    }
    if (!factor) {
        result.failure = "H + lambda I is not positive definite at any dampening";
        return result;
    }
    const double lambda = result.damp_fraction * mean_diagonal;
    std::vector<float> corrected(static_cast<size_t>(rows * cols));
    std::vector<double> change_sums(static_cast<size_t>((rows + kRowChunk - 1) / kRowChunk), 0.0);
    parallel_for(0, rows, kRowChunk, [&](int64_t begin, int64_t end) {
        const int64_t n = end - begin;
        const RowMatrix w =
            Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(weight + begin * cols,
                                                                                                  n, cols)
                .cast<double>();
        // Rows of W (C + lambda I)^T, then solved against H + lambda I
        // (symmetric, so the row system's transpose is the LLT's).
        RowMatrix rhs = w * c.transpose() + lambda * w;
        const RowMatrix solved = factor->solve(rhs.transpose()).transpose();
        double change = 0;
        for (int64_t r = 0; r < n; ++r) {
            for (int64_t j = 0; j < cols; ++j) {
                const float v = static_cast<float>(solved(r, j));
                corrected[static_cast<size_t>((begin + r) * cols + j)] = v;
                const double d = static_cast<double>(v) - w(r, j);
                change += d * d;
            }
        }
        change_sums[static_cast<size_t>(begin / kRowChunk)] = change;
    });
    double energy = 0, change = 0;
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (!std::isfinite(corrected[static_cast<size_t>(i)])) {
            result.failure = "the corrected weights are not finite";
            return result;
        }
        energy += static_cast<double>(weight[i]) * static_cast<double>(weight[i]);
    }
    for (const double s : change_sums) change += s;
    std::copy(corrected.begin(), corrected.end(), weight);
    result.applied = true;
    result.relative_change = energy > 0 ? std::sqrt(change / energy) : 0.0;
    return result;
}

}  // namespace sparq
