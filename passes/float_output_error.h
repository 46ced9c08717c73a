// The output error of a compressed weight in float, for what the passes
// report (every calibrated method's weighted errors) and what mixed
// precision ranks its options by: sum over rows r of row_weight_r * d_r H d_r^T,
// d = w - q. One definition so the reported and the planned figures are
// the same sums. H products run on models/matmul.h 256 rows at a time (its
// broadcast kernel; H streams from memory once per 256 rows). Each row's
// terms are summed in double, c ascending, then the rows in order: the
// same value for any thread count. (quant/hessian.h's
// hessian_weighted_error is the double twin the quantizers score with.)
#pragma once

#include <cstdint>
#include <vector>

namespace sparq {

// `w` and `q` are [rows, cols] row-major; q null means d = w (the energy).
// `hessian` is cols x cols, symmetric, row-major; empty means the identity
// (plain squared error). `row_weights` has one weight per row; empty means 1.
double float_output_error(const float* w, const float* q, int64_t rows, int64_t cols,
                          const std::vector<float>& hessian, const std::vector<double>& row_weights = {});

// A report's errors relative to the layer's weighted energy sum_r w_r H w_r^T:
// of `baseline` (the method's point of comparison: RTN, or magnitude pruning
// at the same target) and of `result`. Both 0 when the energy is not
// positive. `hessian` in double, as the statistics hold it.
struct RelativeOutputErrors {
    double baseline = 0;
    double result = 0;
};
RelativeOutputErrors relative_output_errors(const float* w, const float* baseline, const float* result, int64_t rows,
                                            int64_t cols, const std::vector<double>& hessian);

}  // namespace sparq
