// The best kept weights for a fixed pruning mask: per output row, minimize
// the calibration output error (w - w0)(H + lambda I)(w - w0)^T over the
// kept positions, the pruned ones held at 0.
//
// SparseGPT's OBS pass only moves the columns after a pruned one (its
// column order makes the update cheap), so its kept weights are not the
// optimum for the mask it chose; solving the masked least-squares problem
// exactly recovers part of the loss. Boza (2024, "Fast and Optimal Weight
// Update for Pruned Large Language Models") reports the same. The system per
// row is H_KK w_K = (w0 H)_K; it is solved by Jacobi-preconditioned
// conjugate gradient from the given start (the pruning method's result), so
// each iteration costs one product with H per row and no factorization of
// a different H_KK per row.
//
// lambda = damping fraction x mean(diag H), the same ridge the solvers
// factor with. Rows run in parallel over fixed row chunks with a fixed
// iteration count: the result is identical for any thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sparsity/mask_selection.h"

namespace sparq {

struct MaskRefitOptions {
    int iterations = 0;             // conjugate-gradient steps per row; 0 leaves the weights as they are
    double damping_fraction = 0.01; // ridge lambda as a fraction of mean(diag H)
};

struct MaskRefitResult {
    double error_before = 0;  // sum over rows of (w - w0)(H + lambda I)(w - w0)^T at the start
    double error_after = 0;   // the same after the refit (never larger: rows that did not improve are kept)
};

// `original` = w0 and `weights` (the start, overwritten with the refit) are
// [rows, cols] row-major; `hessian` cols x cols row-major. Only the
// positions `mask` keeps move; the others keep their values in `weights`
// (0 for pruned ones; a quantizer may also hold values it has fixed). Throws sparq::Error naming `tensor` for
// mismatched shapes or a non-finite Hessian diagonal.
MaskRefitResult refit_kept_weights(const float* original, float* weights, int64_t rows, int64_t cols,
                                   const PruneMask& mask, const std::vector<double>& hessian,
                                   const MaskRefitOptions& options, const std::string& tensor);

}  // namespace sparq
