#include "sparsity/scores.h"

#include <cmath>

#include "core/error.h"

namespace sparq {

std::string_view prune_method_name(PruneMethod method) {
    switch (method) {
        case PruneMethod::Magnitude:
            return "magnitude";
        case PruneMethod::Wanda:
            return "wanda";
        case PruneMethod::SparseGPT:
            return "sparsegpt";
    }
    return "magnitude";
}

PruneMethod parse_prune_method(std::string_view name, const char* field) {
    if (name == "magnitude") return PruneMethod::Magnitude;
    if (name == "wanda") return PruneMethod::Wanda;
    if (name == "sparsegpt") return PruneMethod::SparseGPT;
    fail_in({"", "", field}, "must be magnitude, wanda or sparsegpt, got '", name, "'");
}

std::vector<float> magnitude_scores(const Tensor& weight, const std::string& tensor) {
    if (weight.shape.size() != 2) {
        fail_in({"", tensor, "shape"}, "pruning needs a 2-D weight, got shape ", shape_string(weight.shape));
    }
    if (weight.dtype != DType::F32 && weight.dtype != DType::F16 && weight.dtype != DType::BF16 &&
        weight.dtype != DType::F64) {
        fail_in({"", tensor, "dtype"}, "pruning needs F32, F16, BF16 or F64 weights");
    }
    std::vector<float> scores = weight.to_f32();
    for (float& s : scores) s = std::fabs(s);
    return scores;
}

std::vector<float> wanda_scores(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& mean_square,
                                const std::string& tensor) {
    if (static_cast<int64_t>(mean_square.size()) != cols) {
        fail_in({"", tensor, "statistics"}, "Wanda needs one activation statistic per input column: ", cols,
                " columns, ", mean_square.size(), " statistics");
    }
    std::vector<float> norm(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        const double v = mean_square[static_cast<size_t>(c)];
        if (!(v >= 0) || !std::isfinite(v)) {
            fail_in({"", tensor, "statistics"}, "mean square activation of input ", c, " is ", v,
                    " (expected a finite value >= 0)");
        }
        norm[static_cast<size_t>(c)] = static_cast<float>(std::sqrt(v));
    }
    std::vector<float> scores(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        const float* w = weight + r * cols;
        float* s = scores.data() + r * cols;
        for (int64_t c = 0; c < cols; ++c) s[c] = std::fabs(w[c]) * norm[static_cast<size_t>(c)];
    }
    return scores;
}

}  // namespace sparq
