// The clip searches' score for one quantization group: the calibration
// output error d^T H_gg d of the group's rounding error d (w - dequantized w)
// under its block H_gg of the layer's Hessian, the rest of the row left
// alone (quant/imatrix.h, GPTQ's clip search, AWQ's candidates).
//
// Computed in float on a float copy of the block: the score only ranks the
// candidates of one group. The block is stored column by column so that
// H_gg d runs as a sum of scaled columns: each output is then still the
// left-to-right float sum a dot product of its row with d gives, but the
// loop over outputs vectorizes. That loop is cloned for AVX2 and AVX-512
// (core/vectorize.h) and adds in the same order on every clone
// (-ffp-contract=off): the same scores, so the same choices, on every CPU.
#pragma once

#include <cstdint>
#include <vector>

#include "quant/reference_codec.h"
#include "quant/scheme.h"

namespace sparq {

// H's n x n block at h_block (row stride ld) as floats, column by column:
// H_ij lands at [j * n + i].
std::vector<float> float_block_transposed(const double* h_block, int64_t n, int64_t ld);

// s_i = sum over j of H_ij d_j, summed over j ascending in float, for the
// block stored by float_block_transposed.
void block_times_vector(const float* h_transposed, const float* d, int64_t n, float* s);
// The same sums as n row-by-row dot products: the twin the tests compare against.
void block_times_vector_reference(const float* h_transposed, const float* d, int64_t n, float* s);

// d^T H_gg d (d_i and (H d)_i in float, their products summed in double,
// i ascending) for x[0, n) quantized with params. `scratch` holds 2n floats.
double group_output_error(const QuantScheme& scheme, const float* x, int64_t n, const float* h_transposed,
                          GroupParams params, float* scratch);

}  // namespace sparq
