// RTN over whole rows with one fused SIMD kernel per group (Highway,
// runtime dispatch): range and finite check in one pass, both candidate
// scales' levels and squared errors in a second, the choice and the
// canonical form decided from lane statistics, codes (and the report's
// error sums) in a third. It emits exactly the bytes of the plain
// reference, quantize_group_rtn (quant/rtn.h), for every group: the
// arithmetic is the reference's, op for op (no FMA, the same summation
// order), and groups it has no fast path for (exactly representable
// values, a common factor in the levels, all-zero groups) are handed to
// the reference itself. Tests compare the two on every compiled target.
#pragma once

#include <cstdint>

#include "quant/scheme.h"

namespace sparq {

struct RtnRowJob {
    QuantScheme scheme;
    const float* row = nullptr;  // cols finite-or-not floats
    int64_t cols = 0;
    uint8_t* codes = nullptr;    // cols unpacked codes
    uint16_t* scales = nullptr;  // groups_per_row FP16 scales
    uint8_t* zeros = nullptr;    // groups_per_row zero points (may be null for symmetric schemes)
    // Optional: sum w^2 and sum (w - dequantized)^2 are added here group by
    // group, in the order and precision of the reference loop of
    // quantize_tensor (8 double lanes per group, then lane by lane).
    double* signal = nullptr;
    double* noise = nullptr;
    float* scratch = nullptr;  // rtn_row_scratch_floats(scheme, cols) floats
    // The group being quantized, for error messages when a scale rule
    // throws sparq::Error (FP16 overflow).
    int64_t current_group = 0;
};

int64_t rtn_row_scratch_floats(const QuantScheme& scheme, int64_t cols);

// Quantizes job.row group by group. Returns -1 when the row is done, or the
// index of the first group holding NaN or Inf (groups after it untouched).
int64_t quantize_row_rtn(RtnRowJob& job);

// The same row through the plain per-group reference (quantize_group_rtn,
// dequantize_group and quantize_tensor's error sums): the twin the tests
// compare the SIMD kernel with.
int64_t quantize_row_rtn_reference(RtnRowJob& job);

// Adds sum w^2 and sum (w - dq)^2 of one group to the totals: 8 lanes in
// double (lane j takes elements j, j + 8, ...), then the lanes in order, so
// the sums are the same on every machine and for any thread count.
void add_group_error_sums(const float* w, const float* dq, int64_t n, double* signal, double* noise);

// The Highway target quantize_row_rtn dispatches to, and those compiled.
const char* rtn_row_target();
int64_t rtn_row_compiled_targets();

}  // namespace sparq
