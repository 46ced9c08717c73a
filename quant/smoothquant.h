// SmoothQuant (Xiao et al. 2023) scales for W8A8: per input channel j,
//   s_j = max|x_j|^alpha / max|w_j|^(1 - alpha),
// max|w_j| over column j of every linear reading the input. Dividing the
// activations by s (folded into the preceding op, quant/channel_scaling.h)
// moves the quantization difficulty of activation outliers into the
// weights; alpha = 0.5 splits it evenly. Both maxima are clamped at 1e-5
// (as the reference implementation does), so dead channels get finite
// scales.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/channel_scaling.h"

namespace sparq {

// max_i |W[i][j]| over the rows of all matrices (each [rows, cols]).
// Throws sparq::Error when the matrices disagree on cols.
std::vector<double> column_abs_max(const std::vector<MatrixRef>& linears);

// The scales above. Throws sparq::Error for alpha outside [0, 1], sizes
// that differ, or non-finite or negative maxima.
std::vector<double> smoothquant_scales(const std::vector<double>& activation_max, const std::vector<double>& weight_max,
                                       double alpha);

}  // namespace sparq
