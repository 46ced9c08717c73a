// Row orders of the query/key projections for the two RoPE conventions.
// Meta's original Llama and llama2.c rotate interleaved pairs (2i, 2i+1) of
// each head; Hugging Face rotates halves (i, i + head_size/2). Hugging Face's
// converter therefore permutes the rows of q_proj and k_proj; these functions
// do the same (and its inverse, which GGUF export needs since llama.cpp uses
// the interleaved order).
#pragma once

#include <cstdint>

namespace sparq {

// in and out are [n_heads * head_size, cols] row-major and must not alias.
// For each head h, a in {0,1}, b in [0, head_size/2):
//   out row h*head_size + a*(head_size/2) + b = in row h*head_size + 2*b + a.
// head_size must be even.
void permute_rows_interleaved_to_halves(const float* in, float* out, int64_t n_heads, int64_t head_size,
                                        int64_t cols);

// The inverse: out row h*head_size + 2*b + a = in row h*head_size + a*(head_size/2) + b.
void permute_rows_halves_to_interleaved(const float* in, float* out, int64_t n_heads, int64_t head_size,
                                        int64_t cols);

}  // namespace sparq
