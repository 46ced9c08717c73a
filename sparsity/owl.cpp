#include "sparsity/owl.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sparq {

void OwlOptions::validate() const {
    if (!(outlier_multiple > 0) || !std::isfinite(outlier_multiple)) {
        fail_in({"", "", "--owl-m"}, "the outlier multiple M must be > 0, got ", outlier_multiple);
    }
    if (!(lambda >= 0 && lambda < 0.5)) fail_in({"", "", "--owl-lambda"}, "lambda must be in [0, 0.5), got ", lambda);
}

void OutlierRatio::add_to_mean(const float* scores, int64_t n) {
    // Summed in order, in double: the same for any thread count.
    for (int64_t i = 0; i < n; ++i) sum_ += scores[i];
    n_ += n;
}

void OutlierRatio::count(const float* scores, int64_t n, double outlier_multiple) {
    const double threshold = n_ ? outlier_multiple * sum_ / static_cast<double>(n_) : 0.0;
    for (int64_t i = 0; i < n; ++i) outliers_ += static_cast<double>(scores[i]) > threshold;
    counted_ += n;
}

double OutlierRatio::ratio() const {
    return counted_ ? static_cast<double>(outliers_) / static_cast<double>(counted_) : 0.0;
}

std::vector<double> owl_layer_sparsities(const std::vector<double>& outlier_ratios, double target,
                                         const OwlOptions& options) {
    options.validate();
    if (!(target >= 0 && target < 1)) fail_in({"", "", "--sparsity"}, "must be a fraction in [0, 1), got ", target);
    const size_t n = outlier_ratios.size();
    std::vector<double> out(n, target);
    if (n == 0) return out;
    const auto [lo, hi] = std::minmax_element(outlier_ratios.begin(), outlier_ratios.end());
    if (!(*hi > *lo)) return out;  // no block stands out: uniform
    std::vector<double> keep(n);
    double mean = 0;
    for (size_t i = 0; i < n; ++i) {
        keep[i] = (outlier_ratios[i] - *lo) / (*hi - *lo) * 2.0 * options.lambda;
        mean += keep[i];
    }
    mean /= static_cast<double>(n);
    for (size_t i = 0; i < n; ++i) {
        out[i] = 1.0 - (keep[i] - mean + (1.0 - target));
        if (!(out[i] >= 0 && out[i] < 1)) {
            fail_in({"", "", "--owl-lambda"}, "block ", i, " would get sparsity ", out[i], " (target ", target,
                    ", lambda ", options.lambda, "): lower lambda");
        }
    }
    return out;
}

}  // namespace sparq
