// The MLP's gate: gate[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x).
//
// SIMD through Highway's runtime dispatch. Decode spent ~2% of its time on
// this product with the C library's scalar expf (5632 per layer of a 1B
// model); Highway's Exp (at most 1 ULP from e^x) on e^-|x|, which never
// overflows, keeps the result within a few ULP of the exact value. The
// result depends on the SIMD target (another exp), never on the thread
// count.
#pragma once

#include <cstdint>

namespace sparq {

void silu_times(float* gate, const float* up, int64_t n);

// The twin: the C library's expf on x / (1 + e^-x), as the reference
// forward computed it before, in plain scalar code.
void silu_times_scalar(float* gate, const float* up, int64_t n);

// Name of the SIMD target silu_times runs on, and the targets compiled.
const char* silu_target_name();
int64_t silu_compiled_targets();

}  // namespace sparq
