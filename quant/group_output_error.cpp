#include "quant/group_output_error.h"

#include <algorithm>

#include "core/vectorize.h"

namespace sparq {

namespace {

// Outputs [first, first + kTile) of H d, held in registers across the whole
// sum so that H is read once and the outputs are never reloaded.
template <int64_t kTile>
inline void block_times_vector_tile(const float* h_transposed, const float* d, int64_t n, int64_t first, float* s) {
    float sums[kTile] = {};
    for (int64_t j = 0; j < n; ++j) {
        const float* column = h_transposed + j * n + first;
        const float dj = d[j];
        for (int64_t k = 0; k < kTile; ++k) sums[k] += column[k] * dj;
    }
    std::copy(sums, sums + kTile, s + first);
}

}  // namespace

std::vector<float> float_block_transposed(const double* h_block, int64_t n, int64_t ld) {
    std::vector<float> block(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) block[static_cast<size_t>(j * n + i)] = static_cast<float>(h_block[i * ld + j]);
    return block;
}

// Wide tiles give the adds independent chains (64 outputs: four AVX-512 or
// eight AVX2 registers); 16-output tiles keep 32-column groups vectorized.
SPARQ_VECTORIZE_CLONES
void block_times_vector(const float* h_transposed, const float* d, int64_t n, float* s) {
    int64_t first = 0;
    for (; first + 64 <= n; first += 64) block_times_vector_tile<64>(h_transposed, d, n, first, s);
    for (; first + 16 <= n; first += 16) block_times_vector_tile<16>(h_transposed, d, n, first, s);
    for (; first < n; ++first) block_times_vector_tile<1>(h_transposed, d, n, first, s);
}

void block_times_vector_reference(const float* h_transposed, const float* d, int64_t n, float* s) {
    for (int64_t i = 0; i < n; ++i) {
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) sum += h_transposed[j * n + i] * d[j];
        s[i] = sum;
    }
}

double group_output_error(const QuantScheme& scheme, const float* x, int64_t n, const float* h_transposed,
                          GroupParams params, float* scratch) {
    float* d = scratch;
    float* s = scratch + n;
    const float scale = params.scale_value();
    const int lowest = min_code(scheme), highest = max_code(scheme);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t code = quantize_value(x[i], scale, params.zero, lowest, highest);
        d[i] = x[i] - dequantize_value(code, scale, params.zero);
    }
    block_times_vector(h_transposed, d, n, s);
    double error = 0;
    for (int64_t i = 0; i < n; ++i) error += static_cast<double>(d[i]) * s[i];
    return error;
}

}  // namespace sparq
