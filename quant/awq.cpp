#include "quant/awq.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "quant/channel_scaling.h"
#include "quant/hessian.h"
#include "quant/imatrix.h"
#include "quant/quantize_tensor.h"

namespace sparq {

namespace {

void check_statistic(const std::vector<double>& statistic, int64_t cols, const std::string& where) {
    if (static_cast<int64_t>(statistic.size()) != cols) {
        fail_in({"", where, "statistic"}, "has ", statistic.size(), " values for ", cols, " input channels");
    }
    for (size_t j = 0; j < statistic.size(); ++j) {
        if (!(statistic[j] >= 0) || !std::isfinite(statistic[j])) {
            fail_in({"", where, "statistic"}, "channel ", j, " is ", statistic[j], ", expected finite and >= 0");
        }
    }
}

void check_hessian(const std::vector<double>& hessian, int64_t cols, const std::string& where) {
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail_in({"", where, "hessian"}, "has ", hessian.size(), " values, expected ", cols, " x ", cols);
    }
    for (size_t i = 0; i < hessian.size(); ++i) {
        if (!std::isfinite(hessian[i])) fail_in({"", where, "hessian"}, "has a non-finite value at ", i);
    }
}

}  // namespace

std::vector<float> awq_scales(const std::vector<double>& statistic, double alpha) {
    std::vector<float> s(statistic.size(), 1.0f);
    const double top = statistic.empty() ? 0.0 : *std::max_element(statistic.begin(), statistic.end());
    if (!(top > 0) || alpha == 0) return s;
    const double floor = top * 1e-5;
    // log(s_j) = alpha (log m_j - (log max + log min) / 2): equal statistics
    // give exactly 1, and the normalization keeps the scales centred on 1
    // in log space so neither the weights nor the norm drift in magnitude.
    double lo = INFINITY, hi = -INFINITY;
    std::vector<double> logs(statistic.size());
    for (size_t j = 0; j < statistic.size(); ++j) {
        logs[j] = std::log(std::max(statistic[j], floor));
        lo = std::min(lo, logs[j]);
        hi = std::max(hi, logs[j]);
    }
    const double centre = 0.5 * (lo + hi);
    for (size_t j = 0; j < statistic.size(); ++j) s[j] = static_cast<float>(std::exp(alpha * (logs[j] - centre)));
    return s;
}

std::vector<double> awq_weight_statistic(const std::vector<AwqLinear>& linears, int64_t cols) {
    std::vector<double> out(static_cast<size_t>(std::max<int64_t>(cols, 0)), 0.0);
    int64_t rows = 0;
    for (const AwqLinear& l : linears) {
        const int64_t span = l.scheme.group_span(cols);
        for (int64_t r = 0; r < l.rows; ++r) {
            const float* row = l.weight + r * cols;
            for (int64_t g = 0; g < cols; g += span) {
                const int64_t end = std::min(cols, g + span);
                double top = 0;
                for (int64_t j = g; j < end; ++j) top = std::max(top, static_cast<double>(std::fabs(row[j])));
                if (top == 0) continue;
                for (int64_t j = g; j < end; ++j) out[static_cast<size_t>(j)] += std::fabs(row[j]) / top;
            }
        }
        rows += l.rows;
    }
    for (double& w : out) w = std::max(rows > 0 ? w / static_cast<double>(rows) : 0.0, 1e-6);
    return out;
}

std::vector<float> awq_duo_scales(const std::vector<double>& statistic, const std::vector<double>& weight_statistic,
                                  double alpha) {
    std::vector<double> ratio(statistic.size());
    const double top = statistic.empty() ? 0.0 : *std::max_element(statistic.begin(), statistic.end());
    const double wtop = weight_statistic.empty() ? 0.0 : *std::max_element(weight_statistic.begin(), weight_statistic.end());
    if (!(top > 0) || !(wtop > 0)) return std::vector<float>(statistic.size(), 1.0f);
    for (size_t j = 0; j < ratio.size(); ++j) {
        ratio[j] = std::pow(std::max(statistic[j], top * 1e-5), alpha) /
                   std::pow(std::max(weight_statistic[j], wtop * 1e-5), 1.0 - alpha);
    }
    return awq_scales(ratio, 1.0);
}

AwqChoice awq_search(const std::vector<AwqLinear>& linears, int64_t cols, const std::vector<double>& hessian,
                     const std::vector<double>& statistic, const AwqGrid& grid,
                     const std::vector<double>* weight_statistic, const AwqModuleError& module_error) {
    if (linears.empty()) fail_in({"", "", "linears"}, "AWQ needs at least one linear to search scales for");
    const std::string& where = linears.front().name;
    if (cols < 1) fail_in({"", where, "cols"}, "must be at least 1, got ", cols);
    if (grid.intervals < 1) fail_in({"", where, "awq_grid"}, "must be at least 1 interval, got ", grid.intervals);
    check_statistic(statistic, cols, where);
    check_hessian(hessian, cols, where);
    for (const AwqLinear& l : linears) {
        if (!l.weight || l.rows < 1) fail_in({"", l.name, "weight"}, "is empty");
        try {
            validate_quant_scheme(l.scheme);
        } catch (const Error& e) {
            throw e.with_tensor(l.name);
        }
        for (int64_t i = 0; i < l.rows * cols; ++i) {
            if (!std::isfinite(l.weight[i])) {
                fail_in({"", l.name, ""}, "non-finite value ", l.weight[i], " at row ", i / cols, ", column ", i % cols);
            }
        }
    }
    // Every candidate is scored on the same rows: all of them, or every
    // k-th row of each linear when the space is large (AwqGrid::scored_weights).
    int64_t weights = 0;
    for (const AwqLinear& l : linears) weights += l.rows * cols;
    const int64_t stride = module_error ? 1 : grid.row_stride(weights);
    std::vector<std::vector<float>> sampled_rows;
    std::vector<AwqLinear> scored = linears;
    if (stride > 1) {
        sampled_rows.reserve(scored.size());
        for (AwqLinear& l : scored) {
            const int64_t kept = (l.rows + stride - 1) / stride;
            std::vector<float>& rows = sampled_rows.emplace_back(static_cast<size_t>(kept * cols));
            for (int64_t r = 0; r < kept; ++r)
                std::copy(l.weight + r * stride * cols, l.weight + (r * stride + 1) * cols, rows.begin() + r * cols);
            l.weight = rows.data();
            l.rows = kept;
        }
    }
    // The candidates: each alpha of the grid, plain and (given a weight statistic) duo.
    struct Candidate {
        double alpha;
        bool duo;
        std::vector<float> scales;
    };
    std::vector<Candidate> candidates;
    for (int family = 0; family < (weight_statistic ? 2 : 1); ++family) {
        for (int k = 0; k <= grid.intervals; ++k) {
            const double alpha = grid.alpha(k);
            candidates.push_back({alpha, family == 1,
                                  family == 1 ? awq_duo_scales(statistic, *weight_statistic, alpha)
                                              : awq_scales(statistic, alpha)});
        }
    }
    std::vector<float> scaled;
    auto output_error = [&](const std::vector<float>& s, bool clip) {
        double error = 0;
        std::vector<std::vector<float>> effective;
        for (const AwqLinear& l : scored) {
            scaled.assign(l.weight, l.weight + l.rows * cols);
            scale_columns({scaled.data(), l.rows, cols}, s);
            std::vector<float> q = dequantize_tensor(
                clip ? quantize_scaled_clip_search(scaled.data(), l.rows, cols, hessian, s, l.scheme, l.name)
                     : quantize_tensor(borrowed_f32_tensor(scaled.data(), l.rows, cols), l.scheme, QuantMethod::Rtn, nullptr,
                                       l.name));
            unscale_columns({q.data(), l.rows, cols}, s);
            if (clip && module_error) {
                effective.push_back(std::move(q));
            } else {
                error += hessian_weighted_error(l.weight, q.data(), l.rows, cols, hessian);
            }
        }
        return clip && module_error ? module_error(effective) : error;
    };
    AwqChoice best;
    best.row_stride = stride;
    // Phase 2 below: the best few by the RTN score, and alpha 0, scored
    // after the clip search. When every candidate is a finalist (the
    // default) the RTN ranking decides nothing, so only alpha 0's RTN
    // error is computed, as the log's point of comparison.
    const bool rank_by_rtn = grid.refine <= 0 || static_cast<size_t>(grid.refine) + 1 < candidates.size();
    std::vector<size_t> finalists;
    if (rank_by_rtn) {
        for (const Candidate& c : candidates) best.errors.push_back(output_error(c.scales, false));
        // Ties keep the earlier candidate: smaller alpha, plain before duo.
        std::vector<size_t> order(candidates.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return best.errors[a] < best.errors[b]; });
        if (grid.refine > 0) {
            finalists.push_back(0);
            for (size_t i = 0; i < order.size() && static_cast<int>(finalists.size()) <= grid.refine; ++i) {
                if (order[i] != 0) finalists.push_back(order[i]);
            }
            std::sort(finalists.begin(), finalists.end());
        } else {
            finalists.push_back(order.front());
        }
    } else {
        best.errors.push_back(output_error(candidates.front().scales, false));
        for (size_t i = 0; i < candidates.size(); ++i) finalists.push_back(i);
    }
    best.error = INFINITY;
    for (size_t i : finalists) {
        const double error = grid.refine > 0 ? output_error(candidates[i].scales, true) : best.errors[i];
        if (error < best.error) {
            best.error = error;
            best.alpha = candidates[i].alpha;
            best.duo = candidates[i].duo;
            best.scales = candidates[i].scales;
        }
    }
    return best;
}

PackedTensor quantize_scaled_clip_search(const float* scaled_weight, int64_t rows, int64_t cols,
                                         const std::vector<double>& hessian, const std::vector<float>& scales,
                                         const QuantScheme& scheme, const std::string& tensor_name) {
    check_hessian(hessian, cols, tensor_name);
    const std::vector<double> scaled_hessian = scaled_basis_hessian(hessian, scales, cols, tensor_name);
    return quantize_importance_weighted(scaled_weight, rows, cols, scaled_hessian, scheme,
                                        ImportanceWeighting::GroupHessian, tensor_name);
}

}  // namespace sparq
