#include "quant/smoothquant.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sparq {

std::vector<double> column_abs_max(const std::vector<MatrixRef>& linears) {
    if (linears.empty()) fail_in({"", "", "linears"}, "needs at least one matrix");
    const int64_t cols = linears.front().cols;
    std::vector<double> out(static_cast<size_t>(cols), 0.0);
    for (const MatrixRef& m : linears) {
        if (m.cols != cols) fail_in({"", "", "linears"}, "a matrix has ", m.cols, " columns, expected ", cols);
        for (int64_t r = 0; r < m.rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                out[static_cast<size_t>(c)] = std::max(out[static_cast<size_t>(c)],
                                                       static_cast<double>(std::fabs(m.data[r * cols + c])));
            }
        }
    }
    return out;
}

std::vector<double> smoothquant_scales(const std::vector<double>& activation_max, const std::vector<double>& weight_max,
                                       double alpha) {
    if (!(alpha >= 0 && alpha <= 1)) fail_in({"", "", "smooth_alpha"}, "must be in [0, 1], got ", alpha);
    if (activation_max.size() != weight_max.size()) {
        fail_in({"", "", "statistic"}, activation_max.size(), " activation maxima for ", weight_max.size(), " weight columns");
    }
    constexpr double kFloor = 1e-5;
    std::vector<double> s(activation_max.size());
    for (size_t j = 0; j < s.size(); ++j) {
        const double a = activation_max[j], w = weight_max[j];
        if (!(a >= 0) || !std::isfinite(a)) fail_in({"", "", "max_abs"}, "channel ", j, " is ", a, ", expected finite and >= 0");
        if (!(w >= 0) || !std::isfinite(w)) fail_in({"", "", "weight"}, "column ", j, " has max ", w, ", expected finite");
        s[j] = std::pow(std::max(a, kFloor), alpha) / std::pow(std::max(w, kFloor), 1.0 - alpha);
    }
    return s;
}

}  // namespace sparq
