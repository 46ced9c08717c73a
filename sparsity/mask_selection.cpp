#include "sparsity/mask_selection.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "core/error.h"
#include "core/parallel.h"

namespace sparq {

SparsityTarget SparsityTarget::unstructured(double fraction) {
    SparsityTarget t;
    t.kind = Kind::Unstructured;
    t.sparsity = fraction;
    return t;
}

SparsityTarget SparsityTarget::nm(int n, int m) {
    SparsityTarget t;
    t.kind = Kind::NM;
    t.n = n;
    t.m = m;
    return t;
}

double SparsityTarget::nominal_sparsity() const {
    return kind == Kind::NM ? 1.0 - static_cast<double>(n) / static_cast<double>(m) : sparsity;
}

std::string SparsityTarget::name() const {
    if (kind == Kind::NM) return std::to_string(n) + ":" + std::to_string(m);
    char text[32];
    std::snprintf(text, sizeof text, "%g", sparsity);
    return text;
}

void SparsityTarget::validate(const char* field) const {
    if (kind == Kind::NM) {
        // n == m would prune nothing and n > m is meaningless; the nm_sparse
        // encoding stores index fields of at most 8 bits, so m <= 256.
        if (m < 2 || m > 256 || n < 1 || n >= m) {
            fail_in({"", "", field}, "N:M needs 1 <= N < M <= 256, got ", n, ":", m);
        }
        return;
    }
    if (!(sparsity >= 0.0 && sparsity < 1.0)) {
        fail_in({"", "", field}, "must be a fraction in [0, 1), got ", sparsity);
    }
}

SparsityTarget parse_nm_pattern(const std::string& text, const char* field) {
    const size_t colon = text.find(':');
    auto number = [&](size_t begin, size_t end) {
        int value = 0;
        const char* first = text.data() + begin;
        const char* last = text.data() + end;
        const auto [ptr, ec] = std::from_chars(first, last, value);
        if (begin == end || ec != std::errc() || ptr != last) {
            fail_in({"", "", field}, "must look like N:M (e.g. 2:4), got '", text, "'");
        }
        return value;
    };
    if (colon == std::string::npos) fail_in({"", "", field}, "must look like N:M (e.g. 2:4), got '", text, "'");
    const SparsityTarget t = SparsityTarget::nm(number(0, colon), number(colon + 1, text.size()));
    t.validate(field);
    return t;
}

int64_t kept_per_row(int64_t cols, double sparsity) {
    const int64_t pruned = std::llround(sparsity * static_cast<double>(cols));
    return std::clamp<int64_t>(cols - pruned, 0, cols);
}

int64_t PruneMask::pruned_count() const {
    return static_cast<int64_t>(std::count(keep.begin(), keep.end(), uint8_t{0}));
}

namespace {

// Strict total order on columns of one row: larger score first, then lower
// column. With NaN excluded it never ties, so the kept set is unique.
struct KeepsFirst {
    const float* score;
    bool operator()(int64_t a, int64_t b) const {
        if (score[a] != score[b]) return score[a] > score[b];
        return a < b;
    }
};

void check_no_nan(const float* row, int64_t cols, int64_t r, const std::string& tensor) {
    for (int64_t c = 0; c < cols; ++c) {
        if (std::isnan(row[c])) {
            fail_in({"", tensor, "scores"}, "pruning score is NaN at row ", r, ", column ", c,
                    " (the weight or its statistics hold NaN)");
        }
    }
}

void select_row_unstructured(const float* row, int64_t cols, int64_t keep_count, uint8_t* keep,
                             std::vector<int64_t>& order) {
    order.resize(static_cast<size_t>(cols));
    std::iota(order.begin(), order.end(), int64_t{0});
    const KeepsFirst first{row};
    std::nth_element(order.begin(), order.begin() + keep_count, order.end(), first);
    std::fill(keep, keep + cols, uint8_t{0});
    for (int64_t i = 0; i < keep_count; ++i) keep[order[static_cast<size_t>(i)]] = 1;
}

void select_row_nm(const float* row, int64_t cols, int n, int m, uint8_t* keep, std::vector<int64_t>& order) {
    order.resize(static_cast<size_t>(m));
    std::fill(keep, keep + cols, uint8_t{0});
    for (int64_t run = 0; run < cols; run += m) {
        std::iota(order.begin(), order.end(), run);
        std::partial_sort(order.begin(), order.begin() + n, order.end(), KeepsFirst{row});
        for (int i = 0; i < n; ++i) keep[order[static_cast<size_t>(i)]] = 1;
    }
}

}  // namespace

PruneMask select_mask(const float* scores, int64_t rows, int64_t cols, const SparsityTarget& target,
                      const std::string& tensor) {
    try {
        target.validate(target.kind == SparsityTarget::Kind::NM ? "pattern" : "sparsity");
    } catch (const Error& e) {
        throw e.with_tensor(tensor);
    }
    if (rows < 0 || cols < 0) fail_in({"", tensor, "shape"}, "negative shape [", rows, ", ", cols, "]");
    if (target.kind == SparsityTarget::Kind::NM && cols % target.m != 0) {
        fail_in({"", tensor, "shape"}, "rows of ", cols, " columns cannot be cut into runs of ", target.m,
                " for the ", target.name(), " pattern (leave this tensor out with --ignore)");
    }
    PruneMask mask;
    mask.rows = rows;
    mask.cols = cols;
    mask.keep.assign(static_cast<size_t>(rows * cols), 1);
    if (rows == 0 || cols == 0) return mask;
    const int64_t keep_count = kept_per_row(cols, target.sparsity);
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / cols);
    parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        std::vector<int64_t> order;
        for (int64_t r = r0; r < r1; ++r) {
            const float* row = scores + r * cols;
            uint8_t* keep = mask.keep.data() + r * cols;
            check_no_nan(row, cols, r, tensor);
            if (target.kind == SparsityTarget::Kind::NM) {
                select_row_nm(row, cols, target.n, target.m, keep, order);
            } else {
                select_row_unstructured(row, cols, keep_count, keep, order);
            }
        }
    });
    return mask;
}

void select_row_keep(const float* scores, int64_t cols, int64_t keep_count, uint8_t* keep) {
    std::vector<int64_t> order;
    select_row_unstructured(scores, cols, std::clamp<int64_t>(keep_count, 0, cols), keep, order);
}

void apply_mask(const PruneMask& mask, float* weights) {
    const size_t n = mask.keep.size();
    for (size_t i = 0; i < n; ++i) {
        if (!mask.keep[i]) weights[i] = 0.0f;
    }
}

}  // namespace sparq
