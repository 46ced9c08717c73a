// One query's attention over one head of the KV cache:
//   out[i] = sum_s p_s v_s[i],  p = softmax over s of scale * (q . k_s),
// for the visible positions s in [first, span) (causal; a sliding window
// starts later), k_s = keys + s * stride and v_s = values + s * stride.
//
// SIMD through Highway's runtime dispatch, for decode: per token and layer
// every head scores every cached position, and the plain code (baseline
// SSE2, the C library's scalar expf per position) took ~2% of a 1B model's
// decode at 64 positions and ~4% at 256 (docs/results.md, session 26). The
// exponentials are Highway's Exp (at most 1 ULP from e^x), so the result
// depends on the SIMD target, never on the thread count. A NaN score (or
// infinities that leave no finite maximum) makes every output NaN, as in the
// twin.
#pragma once

#include <cstdint>

namespace sparq {

// `scores` has room for `span` floats (scratch).
void attend_one_head(const float* q, const float* keys, const float* values, int64_t stride, int64_t head_dim,
                     int64_t first, int64_t span, float scale, float* scores, float* out);

// The twin: the plain loops the reference forward ran before (sums of
// eight lanes, expf, the normalizer summed in double).
void attend_one_head_scalar(const float* q, const float* keys, const float* values, int64_t stride,
                            int64_t head_dim, int64_t first, int64_t span, float scale, float* scores, float* out);

// Name of the SIMD target attend_one_head runs on, and the targets compiled.
const char* attention_target_name();
int64_t attention_compiled_targets();

}  // namespace sparq
