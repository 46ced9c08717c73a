// Deterministic random inputs shared by tests that need plain normal values
// (the runtime kernel tests build their shaped weights on them in
// kernel_test_util.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace sparq::testing {

// n values from N(0, scale^2), the same sequence for the same seed.
inline std::vector<float> normal_values(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = normal(rng);
    return v;
}

}  // namespace sparq::testing
