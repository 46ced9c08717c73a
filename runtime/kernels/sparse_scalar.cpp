// Scalar twins of the sparse kernels: decode each row's stored values with
// the reference codec and sum their products in double.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "quant/reference_codec.h"
#include "runtime/kernels/packed_matmul.h"
#include "runtime/kernels/sparse_matmul.h"

namespace sparq {

namespace {

unsigned index_field(const uint8_t* row, int width, int64_t j) {
    const int64_t bit = j * width;
    return (row[bit >> 3] >> (bit & 7)) & ((1u << width) - 1);
}

void check_stride(int64_t rows, int64_t y_stride) {
    if (y_stride < rows) fail("sparse matmul: output stride ", y_stride, " < rows ", rows);
}

// The kept (column, code) pairs of one row, in column order.
struct KeptRow {
    std::vector<int64_t> columns;
    std::vector<uint8_t> codes;
};

// Calls row_fn(r, kept) for every row of a 2:4 / N:M tensor.
template <class RowFn>
void for_each_nm_row(const NmSparseView& w, RowFn row_fn) {
    const NmSparseScheme& s = w.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, w.rows, w.cols);
    const int width = nm_index_field_bits(s.m);
    KeptRow kept;
    kept.codes.resize(static_cast<size_t>(g.kept_per_row));
    kept.columns.resize(static_cast<size_t>(g.kept_per_row));
    for (int64_t r = 0; r < w.rows; ++r) {
        unpack_code_row(s.quant, w.values + r * g.value_row_bytes, g.kept_per_row, kept.codes.data());
        const uint8_t* index_row = w.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) kept.columns[j] = (j / s.n) * s.m + index_field(index_row, width, j);
        row_fn(r, kept);
    }
}

// Calls row_fn(r, kept) for every row of a bitmask tensor.
template <class RowFn>
void for_each_bitmask_row(const BitmaskSparseView& w, RowFn row_fn) {
    KeptRow kept;
    kept.codes.resize(static_cast<size_t>(w.cols));
    for (int64_t r = 0; r < w.rows; ++r) {
        const uint8_t* mask = w.mask + r * w.mask_row_bytes();
        kept.columns.clear();
        for (int64_t c = 0; c < w.cols; ++c) {
            if ((mask[c / 8] >> (c % 8)) & 1) kept.columns.push_back(c);
        }
        const int64_t k = static_cast<int64_t>(kept.columns.size());
        if (k > 0) unpack_code_row(w.scheme, w.values + w.row_offset(r), k, kept.codes.data());
        row_fn(r, kept);
    }
}

// y = sum over kept of the dequantized value times x, in double.
void f32_row_twin(const PackedView& params, int64_t r, int64_t span, const float* x, int64_t tokens, int64_t cols,
                  const KeptRow& kept, float* y, int64_t y_stride) {
    for (int64_t t = 0; t < tokens; ++t) {
        double sum = 0.0;
        for (size_t j = 0; j < kept.columns.size(); ++j) {
            const int64_t c = kept.columns[j];
            const GroupParams p = read_group_params(params, r, c / span);
            sum += static_cast<double>(dequantize_value(kept.codes[j], p.scale_value(), p.zero)) * x[t * cols + c];
        }
        y[t * y_stride + r] = static_cast<float>(sum);
    }
}

// y = sum over activation blocks of dx_b * d_g(b) * sum over the block's
// kept (u - z) q.
void q16_row_twin(const PackedView& params, int64_t r, int64_t span, const kernels::SparseQ16Activations& a,
                  const KeptRow& kept, float* y, int64_t y_stride) {
    std::vector<int64_t> sums(static_cast<size_t>(a.blocks));
    for (int64_t t = 0; t < a.tokens; ++t) {
        const int16_t* q = a.q.data() + t * a.padded_cols;
        std::fill(sums.begin(), sums.end(), 0);
        for (size_t j = 0; j < kept.columns.size(); ++j) {
            const int64_t c = kept.columns[j];
            const int z = read_group_params(params, r, c / span).zero;
            sums[c / a.block] += (static_cast<int64_t>(kept.codes[j]) - z) * q[c];
        }
        double sum = 0.0;
        for (int64_t b = 0; b < a.blocks; ++b) {
            const double d = read_group_params(params, r, b * a.block / span).scale_value();
            sum += static_cast<double>(a.block_scales[t * a.blocks + b]) * d * static_cast<double>(sums[b]);
        }
        y[t * y_stride + r] = static_cast<float>(sum);
    }
}

}  // namespace

void nm_sparse_matmul_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.quant.group_span(w.cols);
    for_each_nm_row(w, [&](int64_t r, const KeptRow& kept) {
        f32_row_twin(params, r, span, x, tokens, w.cols, kept, y, y_stride);
    });
}

void bitmask_sparse_matmul_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                  int64_t y_stride) {
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.group_span(w.cols);
    for_each_bitmask_row(w, [&](int64_t r, const KeptRow& kept) {
        f32_row_twin(params, r, span, x, tokens, w.cols, kept, y, y_stride);
    });
}

void nm_sparse_matmul_q16_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y,
                                 int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return nm_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.quant.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q16(x, tokens, w.cols, q8_block_columns(w.scheme.quant));
    for_each_nm_row(w, [&](int64_t r, const KeptRow& kept) { q16_row_twin(params, r, span, a, kept, y, y_stride); });
}

void bitmask_sparse_matmul_q16_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                      int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return bitmask_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q16(x, tokens, w.cols, q8_block_columns(w.scheme));
    for_each_bitmask_row(w, [&](int64_t r, const KeptRow& kept) { q16_row_twin(params, r, span, a, kept, y, y_stride); });
}

}  // namespace sparq
