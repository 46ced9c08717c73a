// Error-minimizing choice of the clipping range per group: try a grid of
// clip ratios, quantize with the RTN scale of the shrunk range (asymmetric:
// both ends shrink), and keep the ratio with the smallest weighted squared
// reconstruction error sum_i importance_i * (x_i - dequant_i)^2. The
// importance is per input column (all 1 by default) so calibrated methods
// can plug activation statistics in. At ratio 1 both RTN candidates of
// quant/rtn.h compete, so the search never does worse than RTN on any
// group; below it only the smaller-step candidate is tried.
#pragma once

#include <cstdint>

#include "quant/reference_codec.h"
#include "quant/scheme.h"

namespace sparq {

// Ratios 1, 1 - step, ..., min_ratio with step = (1 - min_ratio) / steps:
// by default 1.00, 0.99, ..., 0.50 (51 ratios).
struct ClipGrid {
    float min_ratio = 0.5f;
    int steps = 50;

    float ratio(int k) const {
        return static_cast<float>(1.0 - (1.0 - static_cast<double>(min_ratio)) * k / steps);
    }
};

// Searches the grid and encodes the group with the winner (ties keep the
// larger ratio), in the canonical form of quant/rtn.h. `scratch` holds n
// floats. Returns the stored params.
GroupParams quantize_group_mse(const QuantScheme& scheme, const float* x, int64_t n,
                               const float* importance, const ClipGrid& grid, uint8_t* codes,
                               float* scratch);

// The grid search alone, without encoding: the parameters the search picks
// for a group (quantize_group_mse first checks for an exact representation,
// then encodes these canonically). Solvers that fix a group's parameters
// before rounding its values one column at a time (GPTQ) call it directly.
GroupParams search_clip_params(const QuantScheme& scheme, const float* x, int64_t n,
                               const float* importance, const ClipGrid& grid);

}  // namespace sparq
