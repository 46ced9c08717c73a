// Importance-weighted round-to-nearest, llama.cpp's "imatrix" idea: each
// group's clipping range is chosen by the clip search of quant/clip_search.h
// scored with the layer's calibration statistics instead of the plain
// squared error. Codes stay nearest-rounded; only the scale (and zero
// point) choice changes. Two scores, from H = X^T X / tokens:
//   - Diagonal: sum_j H_jj (w_j - dq_j)^2, each input weighted by its mean
//     squared activation (what llama.cpp's importance matrix stores);
//   - GroupHessian (default): d^T H_gg d with d = w - dq over the group and
//     H_gg the group's block of H: the exact output error of the group when
//     the rest of the row is left alone. Cross-channel terms matter: on
//     stories260K int4 g128 it keeps 59% of RTN's perplexity increase where
//     the diagonal keeps 91% (docs/calibration.md).
// Rows run in parallel over fixed chunks: bytes identical for any threads.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "quant/clip_search.h"
#include "quant/layout.h"
#include "quant/reference_codec.h"
#include "quant/scheme.h"

namespace sparq {

enum class ImportanceWeighting { Diagonal, GroupHessian };

// The clip-search candidates of quant/clip_search.h (both RTN shapes at
// ratio 1, the smaller-step shape below), scored by d^T H_gg d where
// h_block points at H_gg inside a row-major matrix with row stride `ld`
// (O(n^2) per candidate, in float). Exact representations are returned as
// is. Returns unencoded params (GPTQ rounds against them).
GroupParams search_clip_params_hessian(const QuantScheme& scheme, const float* x, int64_t n, const double* h_block,
                                       int64_t ld, const ClipGrid& grid = {});

// `weight` is [rows, cols] row-major F32, `hessian` cols x cols row-major
// (finite, diagonal >= 0). Throws sparq::Error naming `tensor_name` for bad
// shapes, non-finite weights or statistics, or a scale beyond FP16.
PackedTensor quantize_importance_weighted(const float* weight, int64_t rows, int64_t cols,
                                          const std::vector<double>& hessian, const QuantScheme& scheme,
                                          ImportanceWeighting weighting, const std::string& tensor_name,
                                          const ClipGrid& grid = {});

}  // namespace sparq
