#include "sparsity/mask_refit.h"

#include <Eigen/Core>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/subtract_product.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using ConstMatrixMap = Eigen::Map<const RowMatrix>;

// Rows per chunk: large enough that the product with H runs at matrix-matrix
// speed, and fixed, so chunk boundaries do not depend on the thread count.
constexpr int64_t kRowsPerChunk = 64;

// x (H + lambda I) for the rows of x (n x cols): lambda x, then the product
// added by the cloned kernel (Eigen's own product is SSE2-only here).
RowMatrix ridge_product(const RowMatrix& x, const std::vector<double>& hessian, double lambda) {
    RowMatrix out = lambda * x;
    add_product(out.data(), out.cols(), x.data(), x.cols(), 1, hessian.data(), x.cols(), x.rows(), x.cols(), x.cols());
    return out;
}

}  // namespace

MaskRefitResult refit_kept_weights(const float* original, float* weights, int64_t rows, int64_t cols,
                                   const PruneMask& mask, const std::vector<double>& hessian,
                                   const MaskRefitOptions& options, const std::string& tensor) {
    if (rows < 0 || cols < 1) fail_in({"", tensor, ""}, "refit needs a weight with columns, got [", rows, ", ", cols, "]");
    if (mask.rows != rows || mask.cols != cols) {
        fail_in({"", tensor, ""}, "the mask is [", mask.rows, ", ", mask.cols, "], the weight [", rows, ", ", cols, "]");
    }
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail_in({"", tensor, ""}, "the Hessian has ", hessian.size(), " values, expected ", cols, " x ", cols);
    }
    if (options.iterations < 0) fail_in({"", tensor, ""}, "refit iterations must be >= 0, got ", options.iterations);
    if (!(options.damping_fraction >= 0)) {
        fail_in({"", tensor, ""}, "refit damping must be >= 0, got ", options.damping_fraction);
    }
    const ConstMatrixMap h(hessian.data(), cols, cols);
    double mean_diagonal = 0;
    for (int64_t c = 0; c < cols; ++c) {
        const double d = h(c, c);
        if (!std::isfinite(d) || d < 0) fail_in({"", tensor, ""}, "Hessian diagonal ", d, " at column ", c);
        mean_diagonal += d;
    }
    mean_diagonal /= static_cast<double>(cols);
    const double lambda = options.damping_fraction * mean_diagonal;
    // Jacobi preconditioner; a column with no signal and no ridge has nothing to fit.
    Eigen::VectorXd inverse_diagonal(cols);
    for (int64_t c = 0; c < cols; ++c) {
        const double d = h(c, c) + lambda;
        inverse_diagonal[c] = d > 0 ? 1.0 / d : 0.0;
    }

    const int64_t chunks = (rows + kRowsPerChunk - 1) / kRowsPerChunk;
    std::vector<double> before(static_cast<size_t>(chunks), 0.0), after(static_cast<size_t>(chunks), 0.0);
    parallel_for(0, chunks, 1, [&](int64_t chunk_begin, int64_t chunk_end) {
        for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
            const int64_t r0 = chunk * kRowsPerChunk;
            const int64_t n = std::min(kRowsPerChunk, rows - r0);
            RowMatrix w(n, cols), keep(n, cols), delta(n, cols);
            for (int64_t r = 0; r < n; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    const size_t i = static_cast<size_t>((r0 + r) * cols + c);
                    const bool kept = mask.keep[i] != 0;
                    w(r, c) = weights[i];
                    keep(r, c) = kept ? 1.0 : 0.0;
                    delta(r, c) = w(r, c) - original[i];
                }
            }
            // Objective per row: delta (H + lambda I) delta^T; residual = -gradient / 2 on kept positions.
            RowMatrix product = ridge_product(delta, hessian, lambda);
            const Eigen::VectorXd start_error = (delta.array() * product.array()).rowwise().sum();
            RowMatrix residual = -(product.array() * keep.array()).matrix();
            RowMatrix z = residual * inverse_diagonal.asDiagonal();
            RowMatrix direction = z;
            Eigen::VectorXd rz = (residual.array() * z.array()).rowwise().sum();
            for (int it = 0; it < options.iterations; ++it) {
                RowMatrix q = ridge_product(direction, hessian, lambda);
                q.array() *= keep.array();
                const Eigen::VectorXd curvature = (direction.array() * q.array()).rowwise().sum();
                Eigen::VectorXd step(n);
                for (int64_t r = 0; r < n; ++r) step[r] = curvature[r] > 0 ? rz[r] / curvature[r] : 0.0;
                w += step.asDiagonal() * direction;
                residual -= step.asDiagonal() * q;
                z = residual * inverse_diagonal.asDiagonal();
                const Eigen::VectorXd rz_next = (residual.array() * z.array()).rowwise().sum();
                Eigen::VectorXd beta(n);
                for (int64_t r = 0; r < n; ++r) beta[r] = rz[r] > 0 ? rz_next[r] / rz[r] : 0.0;
                direction = z + beta.asDiagonal() * direction;
                rz = rz_next;
            }
            for (int64_t r = 0; r < n; ++r) {
                for (int64_t c = 0; c < cols; ++c) {
                    delta(r, c) = static_cast<double>(static_cast<float>(w(r, c))) - original[(r0 + r) * cols + c];
                }
            }
            product = ridge_product(delta, hessian, lambda);
            const Eigen::VectorXd end_error = (delta.array() * product.array()).rowwise().sum();
            double sum_before = 0, sum_after = 0;
            for (int64_t r = 0; r < n; ++r) {
                sum_before += start_error[r];
                // Rounding to float (or a breakdown) could in principle undo the gain: keep such a row as it was.
                if (!(end_error[r] < start_error[r])) {
                    sum_after += start_error[r];
                    continue;
                }
                sum_after += end_error[r];
                for (int64_t c = 0; c < cols; ++c) {
                    const size_t i = static_cast<size_t>((r0 + r) * cols + c);
                    if (mask.keep[i]) weights[i] = static_cast<float>(w(r, c));
                }
            }
            before[static_cast<size_t>(chunk)] = sum_before;
            after[static_cast<size_t>(chunk)] = sum_after;
        }
    });
    MaskRefitResult result;
    for (int64_t chunk = 0; chunk < chunks; ++chunk) {
        result.error_before += before[static_cast<size_t>(chunk)];
        result.error_after += after[static_cast<size_t>(chunk)];
    }
    return result;
}

}  // namespace sparq
