// GPTQ (Frantar et al., 2022): quantize a weight column by column and, after
// each column, spread its rounding error over the columns not yet quantized
// so that the layer's output on the calibration inputs changes least. With
// H = X^T X / tokens and U the upper Cholesky factor of the damped H^-1
// (quant/hessian.h), column i's error e = (w_i - q_i) / U_ii updates every
// later column j by -e U_ij. Updates within a block of columns are applied
// at once; the rest of the matrix is updated lazily, one matrix product per
// block ("lazy batch updates").
//
// Group parameters (scale, zero point) follow the packed layout of
// quant/layout.h, so the output is an ordinary PackedTensor:
//   - in column order, a group's parameters are chosen when its first
//     column comes up, from the weights as updated so far;
//   - with act-order (columns in descending order of H's diagonal, the
//     inputs with the most energy first) the parameters are "static":
//     chosen from the original weights before any update, one set per group
//     of the layout, so group boundaries still match the packed layout.
// Parameters are chosen by RTN, the clip search, the clip search weighted
// by diag(H) (each input's mean squared activation), or the clip search
// scored by the group's block of H (quant/imatrix.h). The weighted search is
// the default: on stories260K the block score is no better once GPTQ
// compensates the errors (docs/calibration.md), and it costs O(group^2)
// per candidate, most of GPTQ's time on a 1B model.
//
// When H cannot be factored even with the stronger dampening of
// DampingOptions, the layer falls back to RTN and the result says why.
// Rows are independent given U: they run in parallel over fixed row chunks,
// so the bytes are identical for any thread count.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/clip_search.h"
#include "quant/hessian.h"
#include "quant/layout.h"
#include "quant/scheme.h"

namespace sparq {

enum class GroupParamSearch {
    Rtn,       // quant/rtn.h rules
    Mse,       // clip search, unweighted
    Weighted,  // clip search weighted by diag(H)
    Hessian,   // clip search scored by the group's block of H (quant/imatrix.h)
};

struct GptqOptions {
    DampingOptions damping;
    int64_t block_size = 128;  // columns per lazy batch; a power of two >= 8
    bool act_order = true;
    bool static_groups = false;  // implied by act_order
    GroupParamSearch params = GroupParamSearch::Weighted;
    ClipGrid grid;
};

struct GptqResult {
    PackedTensor packed;
    double damp_fraction = 0;  // dampening that succeeded (x mean diagonal)
    int damp_attempts = 0;
    int64_t dead_columns = 0;  // inputs never active in calibration
    bool fell_back_to_rtn = false;
    std::string fallback_reason;  // why, when fell_back_to_rtn
};

// The grid a GPTQ run rounds each column onto. A row's values share
// parameters in segments of span() consecutive columns; a segment's are
// chosen from its current values when its first column comes up (or, with
// static groups, from the original weights before the run). choose() is
// called for different rows from different threads, never for one row from
// two.
class GptqGrid {
public:
    virtual ~GptqGrid() = default;
    virtual int64_t span() const = 0;
    // Row `row`'s parameters for the segment starting at column `first` (a
    // multiple of span()) from its n values; `importance` holds their inputs'
    // mean squares and `h_block` the segment's block of H (row stride ld).
    virtual void choose(int64_t row, int64_t first, const float* values, int64_t n, const float* importance,
                        const double* h_block, int64_t ld) = 0;
    // w rounded onto row `row`'s grid at `column`, whose segment is chosen.
    virtual float round(int64_t row, int64_t column, float w) const = 0;
};

// GPTQ's column loop over any grid: `quantized` receives the rows x cols
// grid values (column order) and `info` the dampening used. Returns false,
// with info.fallback_reason, when H cannot be factored (nothing quantized).
// Throws sparq::Error naming `tensor_name` as gptq_quantize does.
bool gptq_round(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian, GptqGrid& grid,
                const GptqOptions& options, const std::string& tensor_name, std::vector<float>& quantized,
                GptqResult& info);

// `weight` is [rows, cols] row-major F32, `hessian` cols x cols row-major.
// Throws sparq::Error naming `tensor_name` for bad shapes or options, a
// non-finite weight (row and column), or a group scale beyond FP16.
GptqResult gptq_quantize(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                         const QuantScheme& scheme, const GptqOptions& options, const std::string& tensor_name);

}  // namespace sparq
