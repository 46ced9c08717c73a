// AWQ (activation-aware weight quantization, Lin et al. 2023): the linears
// reading one input space get per-input-channel scales s = m^alpha, m the
// channel's mean |x| over the calibration tokens, normalized so that
// sqrt(max(s) min(s)) = 1 (as llm-awq does). Each alpha of a grid over
// [0, 1] is scored by the output error the group would have after
// quantization, sum over its linears and rows of d^T H d with
// d = w - Q(w diag(s)) diag(1/s) and H = X^T X / tokens (the exact mean
// squared output error on the calibration inputs); the smallest wins, ties
// to the smaller alpha, so alpha = 0 (s = 1, plain RTN) is never beaten by
// a worse candidate. The scales are folded into the preceding op
// (quant/channel_scaling.h); the scaled weights are then quantized with the
// Hessian-scored clip search of quant/imatrix.h on the scaled basis.
// Two families of candidates: m^alpha (llm-awq) and, given a per-column
// weight statistic w, m^alpha / w^(1 - alpha) (AutoAWQ's "duo scaling",
// w the mean of |w| / max|w| of its group). llm-awq scores the candidates
// after plain RTN and clips afterwards; here the few best by that score
// are re-scored after the clip search itself (AwqGrid::refine).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quant/layout.h"
#include "quant/scheme.h"

namespace sparq {

struct AwqGrid {
    int intervals = 20;  // alpha = k / intervals for k = 0 .. intervals
    // Scales chosen by the RTN score alone can lose to no scaling once the
    // Hessian-scored clip search runs (stories260K int4 g128: +12.5%
    // perplexity against +9.0% for the clip search alone); the final
    // choice by the clip-search score, alpha 0 among the finalists, never
    // loses to the clip search alone on the calibration output error.
    // The candidates are first scored after plain RTN; the `refine` best of
    // them and alpha 0 are then scored after the clip search, which picks.
    // 0: the RTN score picks (llm-awq's way). By default all are rescored
    // (and the RTN score, which would only rank them, is not computed):
    // on stories260K int4 g128 the 3 best by RTN keep 57-60% of RTN's
    // perplexity increase where all of them keep 51-52%.
    int refine = 1000;
    // Candidates are scored on every k-th row of every linear, k the
    // smallest stride that leaves at most this many weights (0: all rows).
    // The score is a sum of independent per-row terms and the same rows
    // serve every candidate, so the sample ranks them as the whole does up
    // to sampling noise. Scoring all rows of all 42 candidates is what made
    // a 1B-class block cost 815 s (95-98 s with this budget); small models
    // (small-llama-v2's largest space holds 393,216 weights) are scored
    // whole. The chosen scales then quantize every row. Not applied to a
    // module score (it needs whole weights).
    int64_t scored_weights = int64_t{1} << 20;
    double alpha(int k) const { return static_cast<double>(k) / intervals; }
    // The row stride for linears holding `weights` weights in all.
    int64_t row_stride(int64_t weights) const {
        return scored_weights > 0 && weights > scored_weights ? (weights + scored_weights - 1) / scored_weights : 1;
    }
};

// One linear of the group: [rows, cols] row-major F32 in the unscaled basis.
struct AwqLinear {
    const float* weight = nullptr;
    int64_t rows = 0;
    QuantScheme scheme;
    std::string name;
};

struct AwqChoice {
    double alpha = 0;
    bool duo = false;
    std::vector<float> scales;     // cols values
    double error = 0;              // sum d^T H d at the choice (after the clip search when refining)
    // After RTN, per candidate (plain alphas, then duo alphas) when the RTN
    // score picks the finalists; alpha 0's alone when all are finalists.
    std::vector<double> errors;
    int64_t row_stride = 1;        // the candidates were scored on every row_stride-th row
};

// Scales for one alpha from a per-channel statistic (finite, >= 0). Values
// below 1e-5 of the largest are raised to it, so a dead channel gets a
// bounded scale; an all-zero statistic or alpha 0 gives all ones exactly.
std::vector<float> awq_scales(const std::vector<double>& statistic, double alpha);

// The grid search. `statistic` (cols values) must already be tied where the
// fold needs it (quant/channel_scaling.h tie_shared_heads). Throws
// sparq::Error naming the first linear for bad sizes, a grid below one
// interval, non-finite weights or statistics.
//
// `module_error`, when given, replaces the sum of the linears' own output
// errors as the score of the finalists (after the clip search): it receives
// each linear's effective weights (quantized, back in the unscaled basis),
// in the order of `linears`, and returns the error of the module reading
// them (calibration/block_runner.h BlockOutputProbe: llm-awq's block
// output). The RTN pre-scoring stays on H.
using AwqModuleError = std::function<double(const std::vector<std::vector<float>>& effective)>;
AwqChoice awq_search(const std::vector<AwqLinear>& linears, int64_t cols, const std::vector<double>& hessian,
                     const std::vector<double>& statistic, const AwqGrid& grid = {},
                     const std::vector<double>* weight_statistic = nullptr, const AwqModuleError& module_error = {});

// AutoAWQ's weight statistic for duo scaling: per column, the mean over
// all rows of all linears of |w| / max|w| of the row's group, floored at
// 1e-6 (positive, so it can be tied).
std::vector<double> awq_weight_statistic(const std::vector<AwqLinear>& linears, int64_t cols);

// AutoAWQ's "duo" scales m^alpha / w^(1 - alpha), w a per-column weight
// statistic, normalized like awq_scales.
std::vector<float> awq_duo_scales(const std::vector<double>& statistic, const std::vector<double>& weight_statistic,
                                  double alpha);

// Quantizes weights already in the scaled basis (w diag(s)) with the clip
// search scored by the scaled Hessian diag(1/s) H diag(1/s), H the
// unscaled basis' Hessian: the same output error as in the unscaled basis.
PackedTensor quantize_scaled_clip_search(const float* scaled_weight, int64_t rows, int64_t cols,
                                         const std::vector<double>& hessian, const std::vector<float>& scales,
                                         const QuantScheme& scheme, const std::string& tensor_name);

}  // namespace sparq
