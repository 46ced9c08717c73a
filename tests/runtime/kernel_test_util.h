// Helpers shared by the runtime kernel tests: random data, quantized
// matrices, tolerance checks, and the fixture that runs a test once per SIMD
// target the kernels were compiled for and this CPU supports.
#pragma once

#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/tensor.h"
#include "quant/layout.h"
#include "quant/quantize_tensor.h"
#include "random_values.h"
#include "runtime/kernels/packed_matmul.h"
#include "simd_targets.h"

namespace sparq::testing {

// Every target to run: compiled into the kernels and supported here.
inline std::vector<int64_t> kernel_targets() { return runnable_targets(packed_kernel_compiled_targets()); }

// A test suite parametrized by Highway target: each test body runs with the
// dispatch forced to that target, and checks the kernels really used it.
class PerTarget : public ForcedTarget {
protected:
    void SetUp() override {
        ForcedTarget::SetUp();
        ASSERT_STREQ(packed_kernel_target(), hwy::TargetName(GetParam()));
    }
};

#define SPARQ_INSTANTIATE_PER_TARGET(suite)                                                   \
    INSTANTIATE_TEST_SUITE_P(Targets, suite, ::testing::ValuesIn(::sparq::testing::kernel_targets()), \
                             ::sparq::testing::target_param_name)

// Weights whose magnitude varies by row and column (as real layers do).
inline std::vector<float> random_weights(int64_t rows, int64_t cols, uint32_t seed) {
    auto w = normal_values(static_cast<size_t>(rows * cols), seed);
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) w[r * cols + c] *= 0.02f * (1.0f + (r % 7)) * (1.0f + (c % 5) * 0.5f);
    return w;
}

inline PackedTensor quantize(const std::vector<float>& w, int64_t rows, int64_t cols, const QuantScheme& s) {
    return quantize_tensor(make_f32_tensor({rows, cols}, w), s, QuantMethod::Rtn, nullptr, "w");
}

// Tolerance of an output: 1e-5 of sum |w_c x_c| (Q8, Q16: x_c widened by
// its block's step, as the activation rounding may move it that far).
inline std::vector<double> magnitude_bounds(const PackedView& w, const float* x, int64_t tokens,
                                            ActivationMode mode) {
    const auto deq = dequantize_tensor(w);
    const int64_t cols = w.cols;
    const int64_t act = q8_block_columns(w.scheme);
    const int64_t blocks = (cols + act - 1) / act;
    std::vector<int8_t> q(static_cast<size_t>(cols));
    std::vector<int16_t> q16(static_cast<size_t>(cols));
    std::vector<float> steps(static_cast<size_t>(blocks), 0.0f);
    std::vector<double> out(static_cast<size_t>(tokens * w.rows));
    for (int64_t t = 0; t < tokens; ++t) {
        if (mode == ActivationMode::Q8) quantize_activation_blocks(x + t * cols, cols, act, q.data(), steps.data());
        if (mode == ActivationMode::Q16) quantize_activation_blocks(x + t * cols, cols, act, q16.data(), steps.data());
        for (int64_t r = 0; r < w.rows; ++r) {
            double sum = 0;
            for (int64_t c = 0; c < cols; ++c) {
                const double step = mode == ActivationMode::F32 ? 0.0 : steps[c / act];
                sum += std::fabs(static_cast<double>(deq[r * cols + c])) * (std::fabs(x[t * cols + c]) + step);
            }
            out[t * w.rows + r] = sum;
        }
    }
    return out;
}

inline const char* mode_name(ActivationMode m) {
    return m == ActivationMode::F32 ? "F32" : m == ActivationMode::Q8 ? "Q8" : "Q16";
}

inline std::vector<QuantScheme> all_schemes(std::initializer_list<int64_t> groups) {
    std::vector<QuantScheme> out;
    for (int bits : {8, 4, 3, 2})
        for (bool sym : {true, false})
            for (int64_t g : groups) out.push_back(QuantScheme{bits, g, sym});
    return out;
}

// Quantized once, shared by every target's run.
inline const PackedTensor& cached_matrix(const QuantScheme& s, int64_t rows, int64_t cols) {
    static std::map<std::tuple<std::string, int64_t, int64_t>, PackedTensor> cache;
    auto key = std::make_tuple(s.name(), rows, cols);
    auto it = cache.find(key);
    if (it == cache.end()) {
        const uint32_t seed = static_cast<uint32_t>(rows * 7919 + cols * 31 + s.bits * 3 + s.group);
        it = cache.emplace(key, quantize(random_weights(rows, cols, seed), rows, cols, s)).first;
    }
    return it->second;
}

// Runs matvec (tokens == 1) or matmul and its twin, and checks each output.
// Returns the number of outputs compared.
inline int64_t compare_with_twin(const PackedView& w, const std::vector<float>& x, int64_t tokens,
                          ActivationMode mode, const std::string& what) {
    const int64_t stride = w.rows + 3;  // a wider output row must stay untouched past w.rows
    std::vector<float> fast(static_cast<size_t>(tokens * stride), -7.0f), ref(fast.size(), -7.0f);
    if (tokens == 1) {
        packed_matvec(w, x.data(), fast.data(), mode);
        packed_matvec_scalar(w, x.data(), ref.data(), mode);
    } else {
        packed_matmul(w, x.data(), tokens, fast.data(), stride, mode);
        packed_matmul_scalar(w, x.data(), tokens, ref.data(), stride, mode);
    }
    const auto bounds = magnitude_bounds(w, x.data(), tokens, mode);
    int64_t compared = 0;
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < stride; ++r) {
            const float f = fast[t * stride + r], e = ref[t * stride + r];
            if (r >= w.rows) {
                if (tokens > 1) {
                    EXPECT_EQ(f, -7.0f) << what << " wrote past the rows";
                }
                continue;
            }
            const double tol = 1e-5 * bounds[t * w.rows + r] + 1e-30;
            if (!(std::fabs(static_cast<double>(f) - e) <= tol)) {
                ADD_FAILURE() << what << " " << mode_name(mode) << " token " << t << " row " << r << ": simd " << f
                              << " twin " << e << " tolerance " << tol;
                return compared;
            }
            ++compared;
        }
    }
    return compared;
}

}  // namespace sparq::testing
