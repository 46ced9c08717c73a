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

}  // namespace

void nm_sparse_matmul_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    check_stride(w.rows, y_stride);
    const NmSparseScheme& s = w.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, w.rows, w.cols);
    const PackedView params = w.group_params();
    const int64_t span = s.quant.group_span(w.cols);
    const int width = nm_index_field_bits(s.m);
    std::vector<uint8_t> kept(static_cast<size_t>(g.kept_per_row));
    for (int64_t r = 0; r < w.rows; ++r) {
        unpack_code_row(s.quant, w.values + r * g.value_row_bytes, g.kept_per_row, kept.data());
        const uint8_t* index_row = w.indices + r * g.index_row_bytes;
        for (int64_t t = 0; t < tokens; ++t) {
            double sum = 0.0;
            for (int64_t j = 0; j < g.kept_per_row; ++j) {
                const int64_t c = (j / s.n) * s.m + index_field(index_row, width, j);
                const GroupParams p = read_group_params(params, r, c / span);
                sum += static_cast<double>(dequantize_value(kept[j], p.scale_value(), p.zero)) * x[t * w.cols + c];
            }
            y[t * y_stride + r] = static_cast<float>(sum);
        }
    }
}

void bitmask_sparse_matmul_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                  int64_t y_stride) {
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.group_span(w.cols);
    std::vector<uint8_t> kept(static_cast<size_t>(w.cols));
    std::vector<int64_t> columns;
    for (int64_t r = 0; r < w.rows; ++r) {
        const uint8_t* mask = w.mask + r * w.mask_row_bytes();
        columns.clear();
        for (int64_t c = 0; c < w.cols; ++c) {
            if ((mask[c / 8] >> (c % 8)) & 1) columns.push_back(c);
        }
        const int64_t k = static_cast<int64_t>(columns.size());
        if (k > 0) unpack_code_row(w.scheme, w.values + w.row_offset(r), k, kept.data());
        for (int64_t t = 0; t < tokens; ++t) {
            double sum = 0.0;
            for (int64_t j = 0; j < k; ++j) {
                const GroupParams p = read_group_params(params, r, columns[j] / span);
                sum += static_cast<double>(dequantize_value(kept[j], p.scale_value(), p.zero)) *
                       x[t * w.cols + columns[j]];
            }
            y[t * y_stride + r] = static_cast<float>(sum);
        }
    }
}

namespace {

// y = sum over activation blocks of dx_b * d_g(b) * sum over the block's
// kept (u - z) q, the kept (column, code) pairs of one row given in column
// order.
void q16_row_twin(const PackedView& params, int64_t r, int64_t span, const kernels::SparseQ16Activations& a,
                  const std::vector<int64_t>& columns, const uint8_t* codes, float* y, int64_t y_stride) {
    std::vector<int64_t> sums(static_cast<size_t>(a.blocks));
    for (int64_t t = 0; t < a.tokens; ++t) {
        const int16_t* q = a.q.data() + t * a.padded_cols;
        std::fill(sums.begin(), sums.end(), 0);
        for (size_t j = 0; j < columns.size(); ++j) {
            const int64_t c = columns[j];
            const int z = read_group_params(params, r, c / span).zero;
            sums[c / a.block] += (static_cast<int64_t>(codes[j]) - z) * q[c];
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

void nm_sparse_matmul_q16_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y,
                                 int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return nm_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    check_stride(w.rows, y_stride);
    const NmSparseScheme& s = w.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, w.rows, w.cols);
    const PackedView params = w.group_params();
    const int64_t span = s.quant.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q16(x, tokens, w.cols, q8_block_columns(s.quant));
    std::vector<uint8_t> kept(static_cast<size_t>(g.kept_per_row));
    std::vector<int64_t> columns(static_cast<size_t>(g.kept_per_row));
    for (int64_t r = 0; r < w.rows; ++r) {
        unpack_code_row(s.quant, w.values + r * g.value_row_bytes, g.kept_per_row, kept.data());
        const uint8_t* index_row = w.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) columns[j] = (j / s.n) * s.m + index_field(index_row, 2, j);
        q16_row_twin(params, r, span, a, columns, kept.data(), y, y_stride);
    }
}

void bitmask_sparse_matmul_q16_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                      int64_t y_stride) {
    if (!sparse_q16_applies(w.scheme, w.cols)) return bitmask_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q16(x, tokens, w.cols, q8_block_columns(w.scheme));
    std::vector<uint8_t> kept(static_cast<size_t>(w.cols));
    std::vector<int64_t> columns;
    for (int64_t r = 0; r < w.rows; ++r) {
        const uint8_t* mask = w.mask + r * w.mask_row_bytes();
        columns.clear();
        for (int64_t c = 0; c < w.cols; ++c) {
            if ((mask[c / 8] >> (c % 8)) & 1) columns.push_back(c);
        }
        const int64_t k = static_cast<int64_t>(columns.size());
        if (k > 0) unpack_code_row(w.scheme, w.values + w.row_offset(r), k, kept.data());
        q16_row_twin(params, r, span, a, columns, kept.data(), y, y_stride);
    }
}

}  // namespace sparq
