// The upstream correction (GPTAQ's "asymmetric calibration": Li et al.,
// 2025). In the sequential runner a linear reads X, the inputs the
// already-compressed blocks give it, while the full-precision model gives it
// X_fp for the same tokens. GPTQ, SparseGPT and the refit minimize the
// H-weighted distance to the layer's own weights W, i.e. they reproduce
// W X, the layer's output on inputs that have already drifted, so the
// errors of every block add up. Targeting the full-precision outputs
// instead,
//     min over W' of |W' X - W X_fp|^2 + lambda |W' - W|^2,
// has the solution
//     W* = W (C + lambda I)^T (H + lambda I)^-1,  H = X^T X / t,  C = X^T X_fp / t,
// and the objective equals (W' - W*)(H + lambda I)(W' - W*)^T plus a
// constant. So every method that minimizes the H-weighted error to its
// weights reaches the full-precision target by compressing W* instead of W:
// the runner replaces the weights before the method sees them. The ridge
// pulls toward W, not toward 0: where X = X_fp (the first block's q/k/v),
// W* = W for any lambda.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/hessian.h"

namespace sparq {

struct UpstreamCorrection {
    bool applied = false;
    double damp_fraction = 0;    // lambda / mean diag(H) that factored
    double relative_change = 0;  // |W* - W| / |W| (Frobenius, all the space's linears)
    std::string failure;         // why not applied
};

// One linear reading the space: [rows, cols] row-major F32, rewritten in place.
struct CorrectedLinear {
    float* weight = nullptr;
    int64_t rows = 0;
};

// Replaces every linear's weights by W* for `hessian` (H) and `cross` (C),
// both cols x cols row-major. lambda is damping.fraction x the mean of H's
// diagonal (then the fallbacks, when H + lambda I does not factor). Leaves
// the weights unchanged and says why when H is zero or not finite, nothing
// factors, or W* would not be finite. Computed as W + W (C - H)^T
// (H + lambda I)^-1: H + lambda I is factored in double, and only the drift
// term goes through float products and solves, so their rounding is
// relative to the change, not to W (no drift: exactly W). `cross` is
// consumed: its storage holds the factorization, so a space costs one
// cols x cols matrix beyond H (and the factor in float while the rows are
// solved). Rows run in parallel over fixed chunks: bit-identical for any
// thread count.
UpstreamCorrection correct_upstream(const std::vector<CorrectedLinear>& linears, int64_t cols,
                                    const std::vector<double>& hessian, std::vector<double> cross,
                                    const DampingOptions& damping);

}  // namespace sparq
