// Deterministic random inputs shared by tests that need plain normal values
// (the runtime kernel tests build their shaped weights on them in
// kernel_test_util.h).
#pragma once

#include <cstddef>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

namespace sparq::testing {

// n values from N(0, scale^2), the same sequence for the same seed and
// type (float and double draw different sequences).
template <class T = float>
std::vector<T> normal_values(size_t n, uint32_t seed, T scale = T{1}) {
    std::mt19937 rng(seed);
    std::normal_distribution<T> normal(T{0}, scale);
    std::vector<T> v(n);
    for (T& x : v) x = normal(rng);
    return v;
}

// H = X^T X / tokens (cols x cols, row-major) for activations with
// correlated channels of uneven energy: what makes GPTQ's act-order and
// error feedback matter.
inline std::vector<double> correlated_hessian(int64_t cols, int64_t tokens, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<double> x(static_cast<size_t>(tokens * cols));
    std::vector<double> channel_scale(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) channel_scale[c] = 0.2 + 3.0 * std::fabs(normal(rng));
    for (int64_t t = 0; t < tokens; ++t) {
        const double shared = normal(rng);
        for (int64_t c = 0; c < cols; ++c) x[t * cols + c] = channel_scale[c] * (normal(rng) + 0.7 * shared);
    }
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t i = 0; i < cols; ++i) {
            for (int64_t j = 0; j < cols; ++j) h[i * cols + j] += x[t * cols + i] * x[t * cols + j];
        }
    }
    for (double& v : h) v /= static_cast<double>(tokens);
    return h;
}

}  // namespace sparq::testing
