#include "quant/gptq.h"

#include "quant/imatrix.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <optional>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/quantize_tensor.h"
#include "quant/reference_codec.h"
#include "quant/rtn.h"
#include "quant/subtract_product.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_inputs(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                  const GptqOptions& options) {
    if (rows < 0 || cols < 1) fail("GPTQ needs a weight with at least one column, got [", rows, ", ", cols, "]");
    if (rows > 0 && !weight) fail("GPTQ got no weight data");
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail("the Hessian has ", hessian.size(), " values, expected ", cols, " x ", cols, " for the weight's columns");
    }
    const int64_t b = options.block_size;
    if (b < 8 || (b & (b - 1)) != 0) fail("GPTQ block size must be a power of two >= 8, got ", b);
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (!std::isfinite(weight[i])) {
            fail("non-finite value ", weight[i], " at row ", i / cols, ", column ", i % cols,
                 " (quantization needs finite weights)");
        }
    }
}

// Parameters of one group of values (exact representation first, as RTN
// and the clip search do, so already-quantized weights come back exactly).
// `h_block` is the group's block of H (row stride `ld`).
GroupParams choose_params(const QuantScheme& scheme, const float* x, int64_t n, const float* importance,
                          const double* h_block, int64_t ld, const GptqOptions& options) {
    if (const std::optional<GroupParams> exact = exact_group_params(scheme, x, n)) return *exact;
    switch (options.params) {
        case GroupParamSearch::Rtn:
            return rtn_group_params(scheme, x, n);
        case GroupParamSearch::Mse:
            return search_clip_params(scheme, x, n, nullptr, options.grid);
        case GroupParamSearch::Hessian:
            return search_clip_params_hessian(scheme, x, n, h_block, ld, options.grid);
        case GroupParamSearch::Weighted:
            break;
    }
    return search_clip_params(scheme, x, n, importance, options.grid);
}

// The dequantized value of w under params (the grid point it rounds to).
inline float round_to_grid(const QuantScheme& scheme, float w, GroupParams p) {
    const float scale = p.scale_value();
    const uint8_t code = quantize_value(w, scale, p.zero, min_code(scheme), max_code(scheme));
    return dequantize_value(code, scale, p.zero);
}

// Rows per chunk: enough for the lazy updates to be real matrix products,
// fixed by the shape only (determinism rule of core/parallel.h).
int64_t rows_per_chunk(int64_t rows, int64_t cols) {
    const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 18) / cols);
    return std::max<int64_t>(1, std::min(grain, rows));
}

// The packed layout's groups (quant/layout.h) as a GPTQ grid.
class PackedGroupGrid final : public GptqGrid {
public:
    PackedGroupGrid(const QuantScheme& scheme, const GptqOptions& options, int64_t rows, int64_t cols)
        : scheme_(scheme),
          options_(options),
          span_(scheme.group_span(cols)),
          groups_(groups_per_row(scheme, cols)),
          params_(static_cast<size_t>(rows * groups_)) {}

    int64_t span() const override { return span_; }
    void choose(int64_t row, int64_t first, const float* values, int64_t n, const float* importance,
                const double* h_block, int64_t ld) override {
        params_[static_cast<size_t>(row * groups_ + first / span_)] =
            choose_params(scheme_, values, n, importance, h_block, ld, options_);
    }
    float round(int64_t row, int64_t column, float w) const override {
        return round_to_grid(scheme_, w, params(row, column / span_));
    }
    const GroupParams& params(int64_t row, int64_t group) const {
        return params_[static_cast<size_t>(row * groups_ + group)];
    }

private:
    QuantScheme scheme_;
    GptqOptions options_;
    int64_t span_, groups_;
    std::vector<GroupParams> params_;
};

}  // namespace

bool gptq_round(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian, GptqGrid& grid,
                const GptqOptions& options, const std::string& tensor_name, std::vector<float>& quantized,
                GptqResult& info) {
    try {
        check_inputs(weight, rows, cols, hessian, options);
    } catch (const Error& e) {
        throw e.with_tensor(tensor_name);
    }
    std::vector<int64_t> order(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), int64_t{0});
    if (options.act_order) order = descending_diagonal_order(hessian, cols);
    std::string failure;
    const std::optional<InverseHessianFactor> factor = inverse_hessian_factor(
        hessian, cols, options.act_order ? order : std::vector<int64_t>{}, options.damping, &failure);
    if (!factor) {
        info.fell_back_to_rtn = true;
        info.fallback_reason = failure;
        info.damp_attempts = static_cast<int>(1 + options.damping.fallback.size());
        return false;
    }
    info.damp_fraction = factor->damp_fraction;
    info.damp_attempts = factor->attempts;
    info.dead_columns = factor->dead_columns;

    // Per-column importance for weighted parameter choices: each input's
    // mean squared activation, in original column order.
    std::vector<float> importance(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        const double d = hessian[static_cast<size_t>(c * cols + c)];
        importance[c] = std::isfinite(d) && d > 0 ? static_cast<float>(d) : 0.0f;
    }
    const Eigen::Map<const RowMatrix> upper(factor->upper.data(), cols, cols);
    const bool static_groups = options.act_order || options.static_groups;
    const int64_t span = grid.span();
    const int64_t block = options.block_size;
    const int64_t grain = rows_per_chunk(rows, cols);
    quantized.assign(static_cast<size_t>(rows * cols), 0.0f);
    std::vector<std::optional<std::string>> failures(static_cast<size_t>((rows + grain - 1) / grain));

    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        const int64_t n_rows = end - begin;
        RowMatrix w(n_rows, cols);  // columns in processing order
        for (int64_t r = 0; r < n_rows; ++r) {
            const float* src = weight + (begin + r) * cols;
            for (int64_t i = 0; i < cols; ++i) w(r, i) = src[order[i]];
        }
        std::vector<float> segment(static_cast<size_t>(span));
        try {
            if (static_groups) {
                for (int64_t r = 0; r < n_rows; ++r) {
                    const float* src = weight + (begin + r) * cols;
                    for (int64_t first = 0; first < cols; first += span) {
                        const int64_t n = std::min(span, cols - first);
                        grid.choose(begin + r, first, src + first, n, importance.data() + first,
                                    hessian.data() + first * cols + first, cols);
                    }
                }
            }
            std::vector<float> rounded(static_cast<size_t>(n_rows * cols));  // processing order
            RowMatrix errors(n_rows, block);
            for (int64_t i1 = 0; i1 < cols; i1 += block) {
                const int64_t i2 = std::min(cols, i1 + block), count = i2 - i1;
                for (int64_t i = i1; i < i2; ++i) {
                    const int64_t column = order[static_cast<size_t>(i)];
                    if (!static_groups && column % span == 0) {
                        // Columns run in order here, so the segment is
                        // w(:, i .. i+n): all up to date, because it starts
                        // at a block start or lies inside the block.
                        const int64_t n = std::min(span, cols - column);
                        for (int64_t r = 0; r < n_rows; ++r) {
                            for (int64_t k = 0; k < n; ++k) segment[k] = static_cast<float>(w(r, i + k));
                            grid.choose(begin + r, column, segment.data(), n, importance.data() + column,
                                        hessian.data() + column * cols + column, cols);
                        }
                    }
                    const double d = upper(i, i);
                    const double* u_row = factor->upper.data() + i * cols;
                    for (int64_t r = 0; r < n_rows; ++r) {
                        const double value = w(r, i);
                        const float q = grid.round(begin + r, column, static_cast<float>(value));
                        rounded[static_cast<size_t>(r * cols + i)] = q;
                        const double e = (value - static_cast<double>(q)) / d;
                        errors(r, i - i1) = e;
                        double* w_row = w.data() + r * cols;
                        for (int64_t j = i + 1; j < i2; ++j) w_row[j] -= e * u_row[j];
                    }
                }
                if (i2 < cols) {
                    // w(:, i2..) -= errors(:, 0..count) upper(i1..i2, i2..)
                    subtract_product(w.data() + i2, cols, errors.data(), block, 1,
                                     factor->upper.data() + i1 * cols + i2, cols, n_rows, cols - i2, count);
                }
            }
            for (int64_t r = 0; r < n_rows; ++r) {
                float* dst = quantized.data() + (begin + r) * cols;
                for (int64_t i = 0; i < cols; ++i) dst[order[i]] = rounded[static_cast<size_t>(r * cols + i)];
            }
        } catch (const Error& e) {
            failures[static_cast<size_t>(begin / grain)] = "rows " + std::to_string(begin) + "..: " + e.message();
        }
    });
    for (const auto& f : failures) {
        if (f) fail_in({"", tensor_name, ""}, *f);
    }
    return true;
}

GptqResult gptq_quantize(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                         const QuantScheme& scheme, const GptqOptions& options, const std::string& tensor_name) {
    try {
        validate_quant_scheme(scheme);
    } catch (const Error& e) {
        throw e.with_tensor(tensor_name);
    }
    GptqResult result;
    PackedGroupGrid grid(scheme, options, rows, cols);
    std::vector<float> quantized;
    if (!gptq_round(weight, rows, cols, hessian, grid, options, tensor_name, quantized, result)) {
        Tensor view;
        view.dtype = DType::F32;
        view.shape = {rows, cols};
        view.data = reinterpret_cast<const uint8_t*>(weight);
        view.nbytes = static_cast<size_t>(rows * cols) * sizeof(float);
        result.packed = quantize_tensor(view, scheme, QuantMethod::Rtn, nullptr, tensor_name);
        return result;
    }
    // The layout's canonical encoding of the grid values.
    const int64_t span = scheme.group_span(cols);
    const int64_t groups = groups_per_row(scheme, cols);
    PackedTensor out(scheme, rows, cols);
    const PackedGeometry geometry = out.view().geometry();
    const int64_t grain = rows_per_chunk(rows, cols);
    std::vector<std::optional<std::string>> failures(static_cast<size_t>((rows + grain - 1) / grain));
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        std::vector<uint8_t> codes(static_cast<size_t>(cols)), zeros(static_cast<size_t>(groups));
        std::vector<float> scratch(static_cast<size_t>(span));
        try {
        for (int64_t row = begin; row < end; ++row) {
            const float* values = quantized.data() + row * cols;
            for (int64_t g = 0; g < groups; ++g) {
                const int64_t first = g * span, n = std::min(span, cols - first);
                const GroupParams p = encode_group_canonical(scheme, values + first, n, grid.params(row, g),
                                                             codes.data() + first, scratch.data());
                out.scales[static_cast<size_t>(row * groups + g)] = p.scale;
                zeros[static_cast<size_t>(g)] = static_cast<uint8_t>(p.zero);
            }
            pack_code_row(scheme, codes.data(), cols, out.codes.data() + row * geometry.code_row_bytes);
            if (!scheme.symmetric) {
                pack_zero_row(scheme, zeros.data(), groups, out.zeros.data() + row * geometry.zero_row_bytes);
            }
        }
        } catch (const Error& e) {
            failures[static_cast<size_t>(begin / grain)] = "rows " + std::to_string(begin) + "..: " + e.message();
        }
    });
    for (const auto& f : failures) {
        if (f) fail_in({"", tensor_name, ""}, *f);
    }
    result.packed = std::move(out);
    return result;
}

}  // namespace sparq
