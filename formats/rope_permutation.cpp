#include "formats/rope_permutation.h"

#include <cstring>

#include "core/error.h"

namespace sparq {
namespace {

void copy_row(const float* in, int64_t in_row, float* out, int64_t out_row, int64_t cols) {
    std::memcpy(out + out_row * cols, in + in_row * cols, static_cast<size_t>(cols) * sizeof(float));
}

void check_even(int64_t head_size) {
    if (head_size <= 0 || head_size % 2 != 0) fail("RoPE permutation needs a positive even head size, got ", head_size);
}

}  // namespace

void permute_rows_interleaved_to_halves(const float* in, float* out, int64_t n_heads, int64_t head_size,
                                        int64_t cols) {
    check_even(head_size);
    const int64_t half = head_size / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t base = h * head_size;
        for (int64_t a = 0; a < 2; ++a) {
            for (int64_t b = 0; b < half; ++b) copy_row(in, base + 2 * b + a, out, base + a * half + b, cols);
        }
    }
}

void permute_rows_halves_to_interleaved(const float* in, float* out, int64_t n_heads, int64_t head_size,
                                        int64_t cols) {
    check_even(head_size);
    const int64_t half = head_size / 2;
    for (int64_t h = 0; h < n_heads; ++h) {
        const int64_t base = h * head_size;
        for (int64_t a = 0; a < 2; ++a) {
            for (int64_t b = 0; b < half; ++b) copy_row(in, base + a * half + b, out, base + 2 * b + a, cols);
        }
    }
}

}  // namespace sparq
