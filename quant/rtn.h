// Round-to-nearest (RTN) quantization of one group, and the canonical form
// that makes quantize(dequantize(quantize(x))) reproduce the same bytes.
//
// Scale rules. Each candidate keeps every element within half a step of
// its value when nothing is clipped (clip ratio 1), and the FP16 scale is
// rounded *up* so the bound survives FP16 rounding:
//   int8 sym:     d = absmax / 127, q in [-127, 127] (Q8_0); one candidate.
//   int4/3/2 sym: all 2^b levels q in [-h, h-1], h = 2^(b-1). With L the
//     larger and S the smaller of the positive and negative extremes, the
//     side of L gets the extra level -h (the sign of d says which side).
//     Two candidates: "long side fits" d = max(L/h, S/(h-1/2)) and "short
//     side fits" d = max(L/(h+1/2), S/(h-1)); in each, one side fits the
//     grid exactly and the other may overhang by at most half a step.
//     On N(0,1) groups of 128 the better of the two gives 19.9 dB at int4,
//     where absmax/7 on [-7, 7] gives 18.6 dB and llama.cpp's Q4_0 rule
//     (d = max/-8, which clips up to a whole step) 19.7 dB; at int2 6.6 dB
//     against 2.3 dB for the three-level absmax/1.
//   asym: the range [min(x, 0), max(x, 0)] (zero stays exact) maps to
//     codes [0, Q] with an integer zero point z. Over the z around the
//     crossover Q*(-min)/(max-min), the smallest d of the same two shapes
//     ("low end fits in z levels, high end overhangs <= 1/2" and the
//     mirror); the other shape at that z is the second candidate.
// RTN takes the candidate with the smaller squared error (ties: the smaller
// step), which e.g. stores a constant group almost exactly instead of half
// a step off.
//
#pragma once

#include <cstdint>
#include <optional>

#include "quant/reference_codec.h"
#include "quant/scheme.h"

namespace sparq {

// The extremes of a group, widened to include 0.
struct GroupRange {
    float lowest = 0;   // <= 0
    float highest = 0;  // >= 0
};
GroupRange group_range(const float* x, int64_t n);

// The smallest FP16 value >= magnitude (>= 0). Returns the FP16 infinity
// bits (0x7c00) when the magnitude exceeds 65504.
uint16_t fp16_round_up(float magnitude);

// The candidates above for a range shrunk by clip_ratio (1 = no clipping),
// smallest step first. Throws sparq::Error when a scale exceeds FP16.
struct RtnCandidates {
    GroupParams params[2];
    int count = 0;
};
RtnCandidates rtn_candidates(const QuantScheme& scheme, GroupRange range, float clip_ratio);

// The candidate with the smaller weighted squared error on x.
GroupParams best_candidate(const QuantScheme& scheme, const float* x, int64_t n,
                           const float* importance, const RtnCandidates& candidates,
                           double* error = nullptr);

// Plain absmax rounding, the textbook RTN that llama.cpp's Q4_0/Q8_0 and
// the usual sensitivity tables use, kept as a baseline for comparisons
// (sparq's own rule above is stronger): symmetric d = max|x| / (2^(b-1) -
// 1) with levels within +-(2^(b-1) - 1); asymmetric d = (max - min) / (2^b
// - 1) and zero = round(-min / d). d is rounded up to FP16. Throws
// sparq::Error when d exceeds FP16.
GroupParams absmax_group_params(const QuantScheme& scheme, const float* x, int64_t n);

// RTN parameters of a group (unweighted error).
GroupParams rtn_group_params(const QuantScheme& scheme, const float* x, int64_t n);

// Parameters that represent every x exactly, in canonical form, if the
// scheme can. O(n): values in units of 2^-24 and their gcd.
std::optional<GroupParams> exact_group_params(const QuantScheme& scheme, const float* x,
                                              int64_t n);

// Encodes x with `params` into codes, then re-expresses the dequantized
// result canonically. `scratch` holds n floats. Returns the stored params.
GroupParams encode_group_canonical(const QuantScheme& scheme, const float* x, int64_t n,
                                   GroupParams params, uint8_t* codes, float* scratch);

// The whole RTN path for one group: exact representation if there is one,
// else the rule above, in canonical form.
GroupParams quantize_group_rtn(const QuantScheme& scheme, const float* x, int64_t n,
                               uint8_t* codes, float* scratch);

}  // namespace sparq
