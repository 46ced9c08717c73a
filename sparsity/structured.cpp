#include "sparsity/structured.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include <Eigen/Dense>

#include "core/error.h"

namespace sparq {

StructuredSpec parse_structured_spec(const std::string& text, const std::string& flag) {
    StructuredSpec spec;
    bool any = false, seen_mlp = false, seen_heads = false;
    std::stringstream items(text);
    std::string item;
    while (std::getline(items, item, ',')) {
        const size_t eq = item.find('=');
        if (eq == std::string::npos) fail_in({"", "", flag}, "expected key=fraction (mlp=F,heads=F), got '", item, "'");
        const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
        double f = 0;
        size_t used = 0;
        try {
            f = std::stod(value, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (used == 0 || used != value.size() || !std::isfinite(f)) {
            fail_in({"", "", flag}, "'", key, "' needs a number, got '", value, "'");
        }
        if (f < 0 || f >= 1) fail_in({"", "", flag}, key, "=", value, " must be a fraction in [0, 1)");
        if (key == "mlp" && !seen_mlp) {
            spec.mlp = f;
            seen_mlp = true;
        } else if (key == "heads" && !seen_heads) {
            spec.heads = f;
            seen_heads = true;
        } else {
            fail_in({"", "", flag}, "unknown or repeated key '", key, "' (expected mlp=F,heads=F)");
        }
        any = true;
    }
    if (!any) fail_in({"", "", flag}, "expected mlp=F,heads=F, got '", text, "'");
    return spec;
}

int64_t kept_mlp_channels(int64_t intermediate, double fraction) {
    if (fraction == 0) return intermediate;
    if (intermediate < 32) {
        fail_in({"", "", "--structured mlp"}, "intermediate size ", intermediate,
                " is below 32: no multiple of 32 channels can be kept");
    }
    const double target = static_cast<double>(intermediate) * (1.0 - fraction);
    int64_t kept = static_cast<int64_t>(std::llround(target / 32.0)) * 32;
    kept = std::clamp<int64_t>(kept, 32, intermediate - intermediate % 32);
    return kept;
}

HeadPlan plan_head_pruning(int64_t num_heads, int64_t num_kv_heads, double fraction, const std::string& flag) {
    if (num_kv_heads <= 0 || num_heads % num_kv_heads != 0) {
        fail_in({"", "", flag}, num_kv_heads, " KV heads do not divide ", num_heads, " heads");
    }
    HeadPlan plan;
    plan.num_heads = num_heads;
    plan.num_kv_heads = num_kv_heads;
    if (fraction == 0) return plan;
    const int64_t group = num_heads / num_kv_heads;
    // Without GQA (group 1) a query head is a whole group: only groups can go.
    const auto per_group = group == 1 ? 0 : static_cast<int64_t>(std::llround(fraction * static_cast<double>(group)));
    if (per_group >= group) {
        fail_in({"", "", flag}, "heads=", fraction, " removes ", per_group, " of the ", group,
                " query heads of every KV group and would leave none");
    }
    if (per_group >= 1) {
        plan.removed_per_group = per_group;
        plan.num_heads = num_kv_heads * (group - per_group);
        return plan;
    }
    // Groups too small to lose a query head each: whole groups go instead.
    const auto groups = static_cast<int64_t>(std::llround(fraction * static_cast<double>(num_kv_heads)));
    if (groups >= num_kv_heads) {
        fail_in({"", "", flag}, "heads=", fraction, " removes all ", num_kv_heads, " KV groups and would leave no head");
    }
    if (groups == 0) {
        fail_in({"", "", flag}, "heads=", fraction, " rounds to removing no head (", num_heads, " heads in ",
                num_kv_heads, " KV groups)");
    }
    plan.whole_groups = true;
    plan.removed_groups = groups;
    plan.num_kv_heads = num_kv_heads - groups;
    plan.num_heads = plan.num_kv_heads * group;
    return plan;
}

std::vector<int64_t> top_indices(const std::vector<double>& importance, int64_t kept) {
    std::vector<int64_t> order(importance.size());
    std::iota(order.begin(), order.end(), 0);
    // Stable on (importance desc, index asc): the same choice on every platform.
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return importance[static_cast<size_t>(a)] > importance[static_cast<size_t>(b)]; });
    order.resize(static_cast<size_t>(std::clamp<int64_t>(kept, 0, static_cast<int64_t>(order.size()))));
    std::sort(order.begin(), order.end());
    return order;
}

KeptHeads select_kept_heads(const HeadPlan& plan, int64_t num_heads, int64_t num_kv_heads,
                            const std::vector<double>& head_importance) {
    if (static_cast<int64_t>(head_importance.size()) != num_heads) {
        fail_in({"", "", "head importance"}, "expected ", num_heads, " values, got ", head_importance.size());
    }
    const int64_t group = num_heads / num_kv_heads;
    KeptHeads out;
    if (plan.whole_groups) {
        std::vector<double> group_importance(static_cast<size_t>(num_kv_heads), 0.0);
        for (int64_t h = 0; h < num_heads; ++h) group_importance[static_cast<size_t>(h / group)] += head_importance[static_cast<size_t>(h)];
        out.kv = top_indices(group_importance, num_kv_heads - plan.removed_groups);
        for (int64_t g : out.kv) {
            for (int64_t i = 0; i < group; ++i) out.query.push_back(g * group + i);
        }
        return out;
    }
    out.kv.resize(static_cast<size_t>(num_kv_heads));
    std::iota(out.kv.begin(), out.kv.end(), 0);
    for (int64_t g = 0; g < num_kv_heads; ++g) {
        const std::vector<double> in_group(head_importance.begin() + g * group, head_importance.begin() + (g + 1) * group);
        for (int64_t i : top_indices(in_group, group - plan.removed_per_group)) out.query.push_back(g * group + i);
    }
    return out;
}

std::vector<int64_t> head_channels(const std::vector<int64_t>& heads, int64_t head_dim) {
    std::vector<int64_t> out;
    out.reserve(heads.size() * static_cast<size_t>(head_dim));
    for (int64_t h : heads) {
        for (int64_t d = 0; d < head_dim; ++d) out.push_back(h * head_dim + d);
    }
    return out;
}

std::vector<float> take_rows(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& kept) {
    std::vector<float> out(kept.size() * static_cast<size_t>(cols));
    for (size_t i = 0; i < kept.size(); ++i) {
        if (kept[i] < 0 || kept[i] >= rows) fail_in({"", "", "rows"}, "row ", kept[i], " outside [0, ", rows, ")");
        std::copy_n(w.begin() + kept[i] * cols, cols, out.begin() + static_cast<int64_t>(i) * cols);
    }
    return out;
}

std::vector<float> take_cols(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& kept) {
    const auto k = static_cast<int64_t>(kept.size());
    for (int64_t c : kept) {
        if (c < 0 || c >= cols) fail_in({"", "", "cols"}, "column ", c, " outside [0, ", cols, ")");
    }
    std::vector<float> out(static_cast<size_t>(rows * k));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < k; ++j) out[static_cast<size_t>(r * k + j)] = w[static_cast<size_t>(r * cols + kept[static_cast<size_t>(j)])];
    }
    return out;
}

std::vector<double> input_channel_importance(const std::vector<float>& w, int64_t rows, int64_t cols,
                                             const std::vector<double>& act) {
    std::vector<double> norm2(static_cast<size_t>(cols), 0.0);
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = w.data() + r * cols;
        for (int64_t c = 0; c < cols; ++c) norm2[static_cast<size_t>(c)] += static_cast<double>(row[c]) * row[c];
    }
    std::vector<double> out(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        const double a = act.empty() ? 1.0 : act[static_cast<size_t>(c)];
        out[static_cast<size_t>(c)] = a * std::sqrt(norm2[static_cast<size_t>(c)]);
    }
    return out;
}

std::vector<double> head_importance(const std::vector<double>& channel_importance, int64_t head_dim) {
    const size_t heads = channel_importance.size() / static_cast<size_t>(head_dim);
    std::vector<double> out(heads, 0.0);
    for (size_t c = 0; c < heads * static_cast<size_t>(head_dim); ++c) {
        out[c / static_cast<size_t>(head_dim)] += channel_importance[c] * channel_importance[c];
    }
    return out;
}

namespace {

using MatrixD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

MatrixD as_matrix(const std::vector<float>& w, int64_t rows, int64_t cols) {
    MatrixD m(rows, cols);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) m(r, c) = w[static_cast<size_t>(r * cols + c)];
    }
    return m;
}

void check_hessian(const std::vector<double>& hessian, int64_t cols) {
    if (static_cast<int64_t>(hessian.size()) != cols * cols) {
        fail_in({"", "", "hessian"}, "expected ", cols, " x ", cols, " values, got ", hessian.size());
    }
}

}  // namespace

double restricted_output_error(const std::vector<float>& w, int64_t rows, int64_t cols,
                               const std::vector<double>& hessian, const std::vector<int64_t>& kept,
                               const std::vector<float>& w_kept) {
    check_hessian(hessian, cols);
    // D = W - W' embedded at the kept columns; error = sum_rows d H d^T.
    MatrixD d = as_matrix(w, rows, cols);
    const auto k = static_cast<int64_t>(kept.size());
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < k; ++j) d(r, kept[static_cast<size_t>(j)]) -= w_kept[static_cast<size_t>(r * k + j)];
    }
    const Eigen::Map<const MatrixD> h(hessian.data(), cols, cols);
    return (d * h).cwiseProduct(d).sum();
}

std::vector<float> reconstruct_restricted(const std::vector<float>& w, int64_t rows, int64_t cols,
                                          const std::vector<double>& hessian, const std::vector<int64_t>& kept,
                                          double damp) {
    check_hessian(hessian, cols);
    const auto k = static_cast<int64_t>(kept.size());
    const Eigen::Map<const MatrixD> h(hessian.data(), cols, cols);
    MatrixD hkk(k, k), hak(cols, k);
    for (int64_t a = 0; a < cols; ++a) {
        for (int64_t j = 0; j < k; ++j) hak(a, j) = h(a, kept[static_cast<size_t>(j)]);
    }
    for (int64_t i = 0; i < k; ++i) hkk.row(i) = hak.row(kept[static_cast<size_t>(i)]);
    const double mean_diag = k ? hkk.diagonal().mean() : 0.0;
    // Damping keeps the solve defined when kept channels are dead or collinear.
    hkk.diagonal().array() += damp * (mean_diag > 0 ? mean_diag : 1.0);
    const MatrixD rhs = (as_matrix(w, rows, cols) * hak).transpose();  // k x rows
    const MatrixD solved = hkk.ldlt().solve(rhs);                         // k x rows (H_KK symmetric)
    std::vector<float> out(static_cast<size_t>(rows * k));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < k; ++j) out[static_cast<size_t>(r * k + j)] = static_cast<float>(solved(j, r));
    }
    return out;
}

}  // namespace sparq
