// SparseGPT (Frantar & Alistarh, 2023): prune a linear layer so that its
// output on the calibration inputs changes least, by the optimal-brain-
// surgeon update GPTQ also uses. With H = X^T X / tokens and U the upper
// Cholesky factor of the damped H^-1 (quant/hessian.h: the same factor,
// dampening ladder and dead-input rule as GPTQ), columns are processed in
// order; column i's value w_i becomes q_i (0 where pruned, else w_i, or its
// quantized value in joint mode), and the error e = (w_i - q_i) / U_ii
// updates every later column j by -e U_ij (lazily, one matrix product per
// block of columns, as GPTQ does).
//
// Mask selection is adaptive, on the weights as updated so far, with the
// OBS saliency w^2 / U_ii^2:
//   - unstructured: at the start of each block of `block_size` columns,
//     each row prunes its lowest-saliency columns of the block; the count
//     per block is round(s * end) - round(s * start), so every row prunes
//     exactly round(s * cols) over the whole row (sparsity/mask_selection.h's
//     per-row count);
//   - N:M: at the start of each run of M columns, each row keeps the N of
//     highest saliency.
// A fixed mask can be given instead (GPTQ that keeps another method's mask:
// the pruned positions are forced to 0 and their error is compensated).
//
// Joint quantization (a scheme given): kept values are rounded to the
// scheme's grid inside the same pass, as the SparseGPT paper does. A
// group's parameters are chosen when its first column comes up, from the
// weights as updated so far with the positions already known to be pruned
// left out (the clip search weighted by diag(H), or plain RTN), so the
// output is an ordinary PackedTensor whose pruned codes are the zero point.
//
// Rows are independent given U: they run in parallel over fixed row chunks,
// so the result is identical for any thread count.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "quant/hessian.h"
#include "quant/layout.h"
#include "quant/scheme.h"
#include "sparsity/mask_selection.h"

namespace sparq {

struct SparseGptOptions {
    DampingOptions damping;
    int64_t block_size = 128;  // columns per lazy batch and per unstructured mask choice; multiple of M for N:M
    bool clip_search = true;   // joint mode: clip search weighted by diag(H); false = RTN parameters
};

struct SparseGptResult {
    std::vector<float> weights;            // [rows, cols]: reconstructed (dequantized in joint mode), pruned = 0
    PruneMask mask;
    std::optional<PackedTensor> packed;    // joint mode only
    double damp_fraction = 0;
    int64_t dead_columns = 0;
    bool fell_back = false;                // H could not be factored: plain selection on |w|, no update
    std::string fallback_reason;
};

// `weight` [rows, cols] row-major F32, `hessian` cols x cols row-major.
// `fixed_mask` (rows x cols) replaces the selection when given; `target`
// is then only used for validation. `quant` turns on joint quantization.
// Throws sparq::Error naming `tensor` for bad shapes or options, a
// non-finite weight, or an N:M pattern the columns or block size do not fit.
SparseGptResult sparsegpt_prune(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                                const SparsityTarget& target, const std::optional<QuantScheme>& quant,
                                const SparseGptOptions& options, const std::string& tensor,
                                const PruneMask* fixed_mask = nullptr);

// Joint quantization for a mask already chosen, exact on the mask: groups
// of columns are quantized in order (parameters from the kept values as
// they stand, as above), and after each group the kept weights of the
// groups still to come are refit to the original weights with the ones
// already quantized held fixed (sparsity/mask_refit.h, `refit_iterations`
// conjugate-gradient steps). Unlike the OBS pass, no compensation ever
// flows into a pruned position. `start` is the float pruning result (its
// pruned positions 0), `original` the unpruned weights.
SparseGptResult quantize_masked_with_refit(const float* original, const float* start, int64_t rows, int64_t cols,
                                           const std::vector<double>& hessian, const PruneMask& mask,
                                           const QuantScheme& quant, const SparseGptOptions& options,
                                           int refit_iterations, const std::string& tensor);

// Multiply-adds quantize_masked_with_refit spends on a [rows, cols] weight
// with groups of `span` columns: one refit per group, each (iterations + 2)
// products of the rows with H. That is (iterations + 2) x groups times the
// OBS pass's rows x cols^2: fine for small layers, hours for a 1B-class
// down_proj (176 groups, some 1e14 in all).
double quantize_masked_with_refit_cost(int64_t rows, int64_t cols, int64_t span, int refit_iterations);

// The joint pass leaves the group-wise quantizer out above this and logs it.
// Measured: 8.2e11 took 80 s on two cores (a 1B-class k_proj), so the line
// is some 20 s per layer; the shared models' layers cost at most 4.3e10.
inline constexpr double kMaskedRefitBudget = 2e11;

}  // namespace sparq
