// GPTQ onto the ggml block grids (models/gguf_gptq.h): it lowers the layer's
// output error against the fitted blocks alone, the bytes do not depend on
// the thread count, and a
// Hessian that cannot be factored hands the tensor back to the caller.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/ggml_quantize.h"
#include "models/gguf_gptq.h"
#include "random_values.h"

namespace sparq {
namespace {

using gguf::GgmlType;

std::vector<float> random_weights(int64_t rows, int64_t cols, uint32_t seed) {
    return testing::normal_values(static_cast<size_t>(rows * cols), seed, 0.05f);
}

std::vector<double> random_hessian(int64_t cols, int64_t tokens, uint32_t seed) {
    return testing::correlated_hessian(cols, tokens, seed);
}

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& bytes, int64_t n) {
    std::vector<float> out(static_cast<size_t>(n));
    gguf::dequantize_ggml(type, bytes.data(), bytes.size(), n, out.data(), "w");
    return out;
}

// sum over rows of (w - q) H (w - q)^T: the layer's output error on the calibration inputs.
double output_error(const std::vector<float>& w, const std::vector<float>& q, const std::vector<double>& h, int64_t rows,
                    int64_t cols) {
    double total = 0;
    std::vector<double> d(static_cast<size_t>(cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) d[c] = double(w[r * cols + c]) - q[r * cols + c];
        for (int64_t i = 0; i < cols; ++i) {
            double s = 0;
            for (int64_t j = 0; j < cols; ++j) s += h[i * cols + j] * d[j];
            total += d[i] * s;
        }
    }
    return total;
}

TEST(GgufGptq, LowersTheOutputErrorOfFittedBlocks) {
    const int64_t rows = 24, cols = 512;
    const std::vector<float> w = random_weights(rows, cols, 1);
    const std::vector<double> h = random_hessian(cols, 700, 2);
    std::vector<float> diagonal(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) diagonal[c] = static_cast<float>(h[c * cols + c]);
    for (const GgmlType type : {GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K}) {
        for (const bool act_order : {false, true}) {
            SCOPED_TRACE(std::string(gguf::ggml_type_name(type)) + (act_order ? " act-order" : ""));
            const gguf::GgmlTypeTraits t = gguf::ggml_type_traits(type);
            std::vector<uint8_t> fitted(static_cast<size_t>(rows * cols / t.block_size * t.type_size));
            const size_t row_bytes = fitted.size() / rows;
            for (int64_t r = 0; r < rows; ++r) {
                gguf::quantize_ggml_row(type, w.data() + r * cols, cols, diagonal.data(), fitted.data() + r * row_bytes);
            }
            GptqOptions o;
            o.act_order = act_order;
            o.block_size = 64;  // several lazy batches, k-quant blocks across them
            GptqResult info;
            const std::optional<std::vector<uint8_t>> bytes =
                gptq_quantize_ggml(w.data(), rows, cols, h, type, o, "w", info);
            ASSERT_TRUE(bytes) << info.fallback_reason;
            ASSERT_EQ(bytes->size(), fitted.size());
            const double e_gptq = output_error(w, decode(type, *bytes, rows * cols), h, rows, cols);
            const double e_fitted = output_error(w, decode(type, fitted, rows * cols), h, rows, cols);
            EXPECT_LT(e_gptq, 0.8 * e_fitted) << e_gptq << " against " << e_fitted;

            // Same bytes with one thread.
            ThreadLimit one(1);
            GptqResult again;
            EXPECT_EQ(*bytes, *gptq_quantize_ggml(w.data(), rows, cols, h, type, o, "w", again));
        }
    }
}

TEST(GgufGptq, BrokenHessiansAndBadShapes) {
    const int64_t rows = 2, cols = 256;
    const std::vector<float> w = random_weights(rows, cols, 7);
    std::vector<double> h = random_hessian(cols, 300, 8);
    h[5] = std::nan("");
    GptqResult info;
    EXPECT_FALSE(gptq_quantize_ggml(w.data(), rows, cols, h, GgmlType::Q4_K, GptqOptions{}, "w", info));
    EXPECT_FALSE(info.fallback_reason.empty());
    const std::vector<double> good = random_hessian(cols, 300, 8);
    EXPECT_THROW(gptq_quantize_ggml(w.data(), rows, cols, good, GgmlType::Q4_0, GptqOptions{}, "w", info), Error);
    EXPECT_THROW(gptq_quantize_ggml(w.data(), 1, 480, std::vector<double>(480 * 480, 0.0), GgmlType::Q4_K,
                                    GptqOptions{}, "w", info),
                 Error);
}

}  // namespace
}  // namespace sparq
