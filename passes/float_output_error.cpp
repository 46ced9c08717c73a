#include "passes/float_output_error.h"

#include <algorithm>

#include "models/matmul.h"

namespace sparq {

double float_output_error(const float* w, const float* q, int64_t rows, int64_t cols, const std::vector<float>& hessian,
                          const std::vector<double>& row_weights) {
    const int64_t chunk = std::clamp<int64_t>(rows, 1, 256);
    std::vector<float> d(static_cast<size_t>(chunk * cols)), dh(hessian.empty() ? 0 : d.size());
    double sum = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        const int64_t n = std::min(chunk, rows - r0);
        for (int64_t i = 0; i < n * cols; ++i) {
            const size_t at = static_cast<size_t>(r0 * cols + i);
            d[static_cast<size_t>(i)] = q ? w[at] - q[at] : w[at];
        }
        const float* product = d.data();
        if (!hessian.empty()) {
            matmul_f32(d.data(), n, hessian.data(), cols, cols, dh.data(), cols);  // d H (H symmetric)
            product = dh.data();
        }
        for (int64_t r = 0; r < n; ++r) {
            double row = 0;
            for (int64_t c = 0; c < cols; ++c) {
                const size_t at = static_cast<size_t>(r * cols + c);
                row += static_cast<double>(d[at]) * product[at];
            }
            sum += row_weights.empty() ? row : row_weights[static_cast<size_t>(r0 + r)] * row;
        }
    }
    return sum;
}

RelativeOutputErrors relative_output_errors(const float* w, const float* baseline, const float* result, int64_t rows,
                                            int64_t cols, const std::vector<double>& hessian) {
    const std::vector<float> h(hessian.begin(), hessian.end());
    const double energy = float_output_error(w, nullptr, rows, cols, h);
    if (!(energy > 0)) return {};
    return {float_output_error(w, baseline, rows, cols, h) / energy, float_output_error(w, result, rows, cols, h) / energy};
}

}  // namespace sparq
