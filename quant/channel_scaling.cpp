#include "quant/channel_scaling.h"

#include <cmath>

#include "core/error.h"

namespace sparq {

namespace {

int64_t heads_per_kv(const HeadSharing& sharing, const std::string& where) {
    if (sharing.heads < 1 || sharing.kv_heads < 1 || sharing.head_dim < 1 || sharing.heads % sharing.kv_heads != 0) {
        fail_in({"", where, "heads"}, "need heads a positive multiple of kv_heads and head_dim >= 1, got ",
                sharing.heads, " heads, ", sharing.kv_heads, " kv heads, head_dim ", sharing.head_dim);
    }
    return sharing.heads / sharing.kv_heads;
}

void check_shape(MatrixRef m, const char* role, const std::string& where) {
    if (!m.data || m.rows < 1 || m.cols < 1) fail_in({"", where, role}, "is empty");
}

}  // namespace

void check_channel_scales(const std::vector<float>& s, int64_t cols, const std::string& where) {
    if (static_cast<int64_t>(s.size()) != cols) {
        fail_in({"", where, "scales"}, "has ", s.size(), " values for ", cols, " input channels");
    }
    for (size_t j = 0; j < s.size(); ++j) {
        if (!(s[j] > 0) || !std::isfinite(s[j])) {
            fail_in({"", where, "scales"}, "channel ", j, " has scale ", s[j], ", expected a finite positive number");
        }
    }
}

std::vector<double> tie_shared_heads(const std::vector<double>& values, const HeadSharing& sharing) {
    const int64_t group = heads_per_kv(sharing, "");
    const int64_t hd = sharing.head_dim;
    if (static_cast<int64_t>(values.size()) != sharing.heads * hd) {
        fail_in({"", "", "scales"}, "has ", values.size(), " values for ", sharing.heads, " heads of ", hd);
    }
    for (size_t i = 0; i < values.size(); ++i) {
        if (!(values[i] > 0) || !std::isfinite(values[i])) {
            fail_in({"", "", "scales"}, "channel ", i, " is ", values[i], ", expected a finite positive number");
        }
    }
    std::vector<double> tied(values.size());
    for (int64_t kv = 0; kv < sharing.kv_heads; ++kv) {
        for (int64_t d = 0; d < hd; ++d) {
            double log_sum = 0;
            for (int64_t h = kv * group; h < (kv + 1) * group; ++h) log_sum += std::log(values[static_cast<size_t>(h * hd + d)]);
            const double mean = group == 1 ? values[static_cast<size_t>(kv * hd + d)] : std::exp(log_sum / group);
            for (int64_t h = kv * group; h < (kv + 1) * group; ++h) tied[static_cast<size_t>(h * hd + d)] = mean;
        }
    }
    return tied;
}

std::vector<float> shared_head_rows(const std::vector<float>& scales, const HeadSharing& sharing) {
    const int64_t group = heads_per_kv(sharing, "");
    const int64_t hd = sharing.head_dim;
    if (static_cast<int64_t>(scales.size()) != sharing.heads * hd) {
        fail_in({"", "", "scales"}, "has ", scales.size(), " values for ", sharing.heads, " heads of ", hd);
    }
    std::vector<float> rows(static_cast<size_t>(sharing.kv_heads * hd));
    for (int64_t h = 0; h < sharing.heads; ++h) {
        for (int64_t d = 0; d < hd; ++d) {
            const float s = scales[static_cast<size_t>(h * hd + d)];
            float& r = rows[static_cast<size_t>((h / group) * hd + d)];
            if (h % group == 0) {
                r = s;
            } else if (r != s) {
                // A v row feeds every head of its group: one scale for all.
                fail_in({"", "", "scales"}, "heads ", h - h % group, " and ", h, " share a KV head but have scales ",
                        r, " and ", s, " at dim ", d);
            }
        }
    }
    return rows;
}

void scale_columns(MatrixRef m, const std::vector<float>& s) {
    for (int64_t r = 0; r < m.rows; ++r) {
        float* row = m.data + r * m.cols;
        for (int64_t c = 0; c < m.cols; ++c) row[c] *= s[static_cast<size_t>(c)];
    }
}

void unscale_columns(MatrixRef m, const std::vector<float>& s) {
    for (int64_t r = 0; r < m.rows; ++r) {
        float* row = m.data + r * m.cols;
        for (int64_t c = 0; c < m.cols; ++c) row[c] /= s[static_cast<size_t>(c)];
    }
}

void divide_rows(MatrixRef m, const std::vector<float>& s) {
    for (int64_t r = 0; r < m.rows; ++r) {
        float* row = m.data + r * m.cols;
        for (int64_t c = 0; c < m.cols; ++c) row[c] /= s[static_cast<size_t>(r)];
    }
}

void multiply_rows(MatrixRef m, const std::vector<float>& s) {
    for (int64_t r = 0; r < m.rows; ++r) {
        float* row = m.data + r * m.cols;
        for (int64_t c = 0; c < m.cols; ++c) row[c] *= s[static_cast<size_t>(r)];
    }
}

std::vector<float> predecessor_scales(const ScaleFold& fold, const std::vector<float>& s) {
    return fold.shared_heads ? shared_head_rows(s, fold.sharing) : s;
}

void fold_channel_scales(const ScaleFold& fold, const std::vector<float>& s, const std::string& where) {
    if (fold.successors.empty()) fail_in({"", where, "successors"}, "a fold needs at least one linear to scale");
    const int64_t cols = fold.successors.front().cols;
    for (const MatrixRef& m : fold.successors) {
        check_shape(m, "successor", where);
        if (m.cols != cols) fail_in({"", where, "successor"}, "has ", m.cols, " columns, expected ", cols);
    }
    check_shape(fold.predecessor, "predecessor", where);
    check_channel_scales(s, cols, where);
    std::vector<float> rows;
    try {
        rows = predecessor_scales(fold, s);
    } catch (const Error& e) {
        throw e.with_tensor(where);
    }
    if (static_cast<int64_t>(rows.size()) != fold.predecessor.rows) {
        fail_in({"", where, "predecessor"}, "has ", fold.predecessor.rows, " rows for ", rows.size(), " scaled channels");
    }
    for (const MatrixRef& m : fold.successors) scale_columns(m, s);
    divide_rows(fold.predecessor, rows);
    if (fold.predecessor_bias) divide_rows({fold.predecessor_bias, fold.predecessor.rows, 1}, rows);
}

std::vector<double> scaled_basis_hessian(const std::vector<double>& hessian, const std::vector<float>& s,
                                         int64_t cols, const std::string& where) {
    check_channel_scales(s, cols, where);
    if (hessian.size() != static_cast<size_t>(cols * cols)) {
        fail_in({"", where, "hessian"}, "expected ", cols, " x ", cols, " values, got ", hessian.size());
    }
    std::vector<double> scaled(hessian.size());
    for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j < cols; ++j) {
            const size_t at = static_cast<size_t>(i * cols + j);
            scaled[at] = hessian[at] / (static_cast<double>(s[i]) * s[j]);
        }
    }
    return scaled;
}

}  // namespace sparq
