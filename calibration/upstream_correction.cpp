#include "calibration/upstream_correction.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "models/matmul.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using FloatRows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows per chunk of the products and solves: fixed by the shape only, so
// the result does not depend on the thread count (core/parallel.h).
constexpr int64_t kRowChunk = 64;
// Rows of C - H converted to float at a time for the drift product.
constexpr int64_t kDriftBand = 256;

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
    // W* = W + W (C - H)^T (H + lambda I)^-1, since (C + lambda I)^T =
    // (H + lambda I) + (C - H)^T with H symmetric. Only the drift term D =
    // W (C - H)^T goes through the solve, so its float rounding is relative
    // to the (small) change, never to W: the products and the two triangular
    // solves run in float (twice the SIMD width of double), while H + lambda I
    // is factored in double. Without drift, D is exactly 0 and W* = W.
    std::vector<std::vector<float>> drift(linears.size());
    for (size_t i = 0; i < linears.size(); ++i) drift[i].resize(static_cast<size_t>(linears[i].rows * cols));
    {
        const int64_t band = std::min(kDriftBand, cols);
        std::vector<float> difference(static_cast<size_t>(band * cols));
        for (int64_t first = 0; first < cols; first += kDriftBand) {
            const int64_t n = std::min(kDriftBand, cols - first);
            parallel_for(0, n, 1, [&](int64_t r0, int64_t r1) {
                for (int64_t r = r0; r < r1; ++r) {
                    const size_t at = static_cast<size_t>((first + r) * cols);
                    for (int64_t k = 0; k < cols; ++k) {
                        difference[static_cast<size_t>(r * cols + k)] =
                            static_cast<float>(cross[at + static_cast<size_t>(k)] - hessian[at + static_cast<size_t>(k)]);
                    }
                }
            });
            // Columns first .. first + n of every D.
            for (size_t i = 0; i < linears.size(); ++i) {
                if (linears[i].rows == 0) continue;
                matmul_f32(linears[i].weight, linears[i].rows, difference.data(), n, cols, drift[i].data() + first,
                           cols);
            }
        }
    }
    bool factored = false;
    for (const double fraction : damping.ladder()) {
        work = h;
        work.diagonal().array() += fraction * mean_diagonal;
        // Read as column-major, the symmetric matrix is itself: L^T lands
        // in the row-major upper triangle.
        if (cholesky_lower_in_place(work.data(), cols)) {
            factored = true;
            result.damp_fraction = fraction;
            break;
        }
    }
    if (!factored) {
        result.failure = "H + lambda I is not positive definite at any dampening";
        return result;
    }
    // The factor L (the transpose of the row-major upper triangle) in float;
    // C's storage goes back.
    FloatRows lower = FloatRows::Zero(cols, cols);
    lower.triangularView<Eigen::Lower>() = work.transpose().cast<float>();  // coefficient by coefficient
    std::vector<double>().swap(cross);
    // Each D becomes W* in place.
    std::vector<std::vector<float>>& corrected = drift;
    double energy = 0, change = 0;
    for (size_t i = 0; i < linears.size(); ++i) {
        const CorrectedLinear& l = linears[i];
        std::vector<double> change_sums(static_cast<size_t>((l.rows + kRowChunk - 1) / kRowChunk), 0.0);
        parallel_for(0, l.rows, kRowChunk, [&](int64_t begin, int64_t end) {
            const int64_t n = end - begin;
            // Rows of D (L L^T)^-1: solve Y L^T = D, then X L = Y.
            Eigen::Map<FloatRows> step(drift[i].data() + begin * cols, n, cols);
            lower.transpose().triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(step);
            lower.triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(step);
            double sum = 0;
            for (int64_t r = 0; r < n; ++r) {
                for (int64_t j = 0; j < cols; ++j) {
                    const size_t at = static_cast<size_t>((begin + r) * cols + j);
                    const float v = l.weight[at] + step(r, j);
                    step(r, j) = v;
                    const double d = static_cast<double>(v) - static_cast<double>(l.weight[at]);
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
