// A random linear layer and the Hessian proxy H = X^T X / tokens of
// correlated random inputs with unequal channel scales (H far from
// diagonal), for the pruning solvers' tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace sparq::testing {

struct Layer {
    int64_t rows = 0, cols = 0;
    std::vector<float> w;
    std::vector<double> h;  // X^T X / tokens of correlated random inputs
};

inline Layer random_layer(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    Layer l;
    l.rows = rows;
    l.cols = cols;
    l.w.resize(static_cast<size_t>(rows * cols));
    for (float& v : l.w) v = static_cast<float>(normal(rng));
    const int64_t tokens = 4 * cols;
    std::vector<double> x(static_cast<size_t>(tokens * cols));
    for (int64_t t = 0; t < tokens; ++t) {
        double shared = normal(rng);
        for (int64_t c = 0; c < cols; ++c) x[t * cols + c] = (0.5 + (c % 5)) * (normal(rng) + 0.7 * shared);
    }
    l.h.assign(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t i = 0; i < cols; ++i) {
            for (int64_t j = 0; j < cols; ++j) l.h[i * cols + j] += x[t * cols + i] * x[t * cols + j] / tokens;
        }
    }
    return l;
}

}  // namespace sparq::testing
