#include "core/half.h"

namespace sparq {

void fp16_to_fp32_row(const uint16_t* in, float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = fp16_to_fp32(in[i]);
}

void bf16_to_fp32_row(const uint16_t* in, float* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = bf16_to_fp32(in[i]);
}

void fp32_to_fp16_row(const float* in, uint16_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = fp32_to_fp16(in[i]);
}

void fp32_to_bf16_row(const float* in, uint16_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = fp32_to_bf16(in[i]);
}

}  // namespace sparq
