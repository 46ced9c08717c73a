#include "calibration/upstream_correction.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using FloatRows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per chunk of the products and solves: fixed by the shape only, so
// the result does not depend on the thread count (core/parallel.h).
constexpr int64_t kRowChunk = 64;

}  // namespace

UpstreamCorrection correct_upstream(const std::vector<CorrectedLinear>& linears, int64_t cols,
                                    const std::vector<double>& hessian, std::vector<double> cross,
                                    const DampingOptions& damping) {
    const size_t n2 = static_cast<size_t>(cols) * static_cast<size_t>(cols);
    if (cols < 1) fail("upstream correction needs weights with columns, got ", cols);
    if (hessian.size() != n2 || cross.size() != n2) {
        fail("upstream correction: statistics of ", hessian.size(), " and ", cross.size(), " values for ", cols,
             " x ", cols);
    }
    for (const CorrectedLinear& l : linears) {
        if (l.rows < 0 || (l.rows > 0 && !l.weight)) fail("upstream correction: a linear of ", l.rows, " rows has no data");
    }
    UpstreamCorrection result;
    const Eigen::Map<const RowMatrix> h(hessian.data(), cols, cols);
    Eigen::Map<RowMatrix> work(cross.data(), cols, cols);
    if (!h.allFinite() || !work.allFinite()) {
        result.failure = "non-finite calibration statistics";
        return result;
    }
    const double mean_diagonal = h.diagonal().mean();
    if (!(mean_diagonal > 0)) {
        result.failure = "the inputs were all zero";
        return result;
    }
    // W C^T for every linear while C is alive; its storage then holds the
    // factor of H + lambda I.
    std::vector<RowMatrix> products;
    products.reserve(linears.size());
    for (const CorrectedLinear& l : linears) {
        products.emplace_back(l.rows, cols);
        RowMatrix& product = products.back();
        parallel_for(0, l.rows, kRowChunk, [&](int64_t begin, int64_t end) {
            const Eigen::Map<const FloatRows> w(l.weight + begin * cols, end - begin, cols);
            product.middleRows(begin, end - begin).noalias() = w.cast<double>() * work.transpose();
        });
    }
    bool factored = false;
    for (const double fraction : damping.ladder()) {
        work = h;
        work.diagonal().array() += fraction * mean_diagonal;
        Eigen::LLT<Eigen::Ref<RowMatrix>> llt(work);  // in place
        if (llt.info() == Eigen::Success) {
            factored = true;
            result.damp_fraction = fraction;
            break;
        }
    }
    if (!factored) {
        result.failure = "H + lambda I is not positive definite at any dampening";
        return result;
    }
    // The factor, as the in-place decomposition left it (lower triangle).
    const auto lower = work.triangularView<Eigen::Lower>();
    const double lambda = result.damp_fraction * mean_diagonal;
    std::vector<std::vector<float>> corrected(linears.size());
    double energy = 0, change = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
        const CorrectedLinear& l = linears[i];
        corrected[i].resize(static_cast<size_t>(l.rows * cols));
        std::vector<double> change_sums(static_cast<size_t>((l.rows + kRowChunk - 1) / kRowChunk), 0.0);
        parallel_for(0, l.rows, kRowChunk, [&](int64_t begin, int64_t end) {
            const int64_t n = end - begin;
            const RowMatrix w = Eigen::Map<const FloatRows>(l.weight + begin * cols, n, cols).cast<double>();
            // Rows of W (C + lambda I)^T solved against H + lambda I = L L^T
            // (symmetric, so each row's system is the transposed one).
            RowMatrix rhs = (products[i].middleRows(begin, n) + lambda * w).transpose();
            lower.solveInPlace(rhs);
            lower.transpose().solveInPlace(rhs);
            double sum = 0;
            for (int64_t r = 0; r < n; ++r) {
                for (int64_t j = 0; j < cols; ++j) {
                    const float v = static_cast<float>(rhs(j, r));
                    corrected[i][static_cast<size_t>((begin + r) * cols + j)] = v;
                    const double d = static_cast<double>(v) - w(r, j);
                    sum += d * d;
                }
            }
            change_sums[static_cast<size_t>(begin / kRowChunk)] = sum;
        });
        for (int64_t k = 0; k < l.rows * cols; ++k) {
            if (!std::isfinite(corrected[i][static_cast<size_t>(k)])) {
                result.failure = "the corrected weights are not finite";
                return result;
            }
            energy += static_cast<double>(l.weight[k]) * static_cast<double>(l.weight[k]);
        }
        for (const double s : change_sums) change += s;
    }
    for (size_t i = 0; i < linears.size(); ++i) std::copy(corrected[i].begin(), corrected[i].end(), linears[i].weight);
    result.applied = true;
    result.relative_change = energy > 0 ? std::sqrt(change / energy) : 0.0;
    return result;
}

}  // namespace sparq
