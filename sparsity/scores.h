// Importance scores for mask selection (sparsity/mask_selection.h). Each
// method turns a weight matrix (and, for the calibrated methods, activation
// statistics) into one score per weight; the selection does the rest.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace sparq {

enum class PruneMethod {
    Magnitude,  // score = |w|
    Wanda,      // score = |w_ij| * ||x_j|| (Sun et al., 2023), compared per output row
    SparseGPT,  // OBS reconstruction with the Hessian (sparsity/sparsegpt.h)
};

// Methods that need calibration statistics.
inline bool is_calibrated_prune_method(PruneMethod m) { return m != PruneMethod::Magnitude; }

std::string_view prune_method_name(PruneMethod method);
// "magnitude", "wanda" or "sparsegpt"; anything else is an error listing the choices.
PruneMethod parse_prune_method(std::string_view name, const char* field = "method");

// |w| of a 2-D float tensor (F32, F16, BF16 or F64), row-major. Throws
// sparq::Error naming `tensor` for another rank or dtype.
std::vector<float> magnitude_scores(const Tensor& weight, const std::string& tensor);

// Wanda's |w_ij| * sqrt(mean_square_j): the input norm ||x_j|| up to a
// factor common to the whole matrix (sqrt(tokens)), which changes no
// comparison. `weight` is [rows, cols] row-major F32, `mean_square` has
// cols entries (calibration/statistics.h). Throws sparq::Error naming
// `tensor` for a size mismatch or a negative or non-finite statistic.
std::vector<float> wanda_scores(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& mean_square,
                                const std::string& tensor);

}  // namespace sparq
