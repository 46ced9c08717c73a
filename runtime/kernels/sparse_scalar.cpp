// Scalar twins of the sparse kernels: decode each row's stored values with
// the reference codec and sum their products in double.
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "quant/reference_codec.h"
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

// y = sum over blocks of dx_b * d_g * sum over the block's kept (u - z) q,
// the kept (column, code) pairs of one row given in column order.
void q8_row_twin(const PackedView& params, int64_t r, int64_t span, const kernels::SparseQ8Activations& a,
                 const std::vector<int64_t>& columns, const uint8_t* codes, float* y, int64_t y_stride) {
    const int64_t blocks = 2 * a.chunks;
    std::vector<int64_t> sums(static_cast<size_t>(blocks));
    for (int64_t t = 0; t < a.tokens; ++t) {
        const int8_t* q = a.q.data() + t * a.chunks * 64;
        std::fill(sums.begin(), sums.end(), 0);
        for (size_t j = 0; j < columns.size(); ++j) {
            const int64_t c = columns[j];
            const int z = read_group_params(params, r, c / span).zero;
            sums[c / 32] += (static_cast<int64_t>(codes[j]) - z) * q[c];
        }
        double sum = 0.0;
        for (int64_t b = 0; b < blocks; ++b) {
            // Blocks of padding columns belong to no group and hold dx = 0.
            const double d = 32 * b < params.cols ? read_group_params(params, r, 32 * b / span).scale_value() : 0.0;
            sum += static_cast<double>(a.block_scales[t * blocks + b]) * d * static_cast<double>(sums[b]);
        }
        y[t * y_stride + r] = static_cast<float>(sum);
    }
}

}  // namespace

void nm_sparse_matmul_q8_scalar(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride) {
    if (!sparse_q8_applies(w.scheme.quant, w.cols) || w.scheme.n != 2 || w.scheme.m != 4) {
        return nm_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    }
    check_stride(w.rows, y_stride);
    const NmSparseScheme& s = w.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, w.rows, w.cols);
    const PackedView params = w.group_params();
    const int64_t span = s.quant.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q8(x, tokens, w.cols, span);
    std::vector<uint8_t> kept(static_cast<size_t>(g.kept_per_row));
    std::vector<int64_t> columns(static_cast<size_t>(g.kept_per_row));
    for (int64_t r = 0; r < w.rows; ++r) {
        unpack_code_row(s.quant, w.values + r * g.value_row_bytes, g.kept_per_row, kept.data());
        const uint8_t* index_row = w.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) columns[j] = (j / s.n) * s.m + index_field(index_row, 2, j);
        q8_row_twin(params, r, span, a, columns, kept.data(), y, y_stride);
    }
}

void bitmask_sparse_matmul_q8_scalar(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                     int64_t y_stride) {
    if (w.scheme.bits != 8 || !sparse_q8_applies(w.scheme, w.cols)) return bitmask_sparse_matmul_scalar(w, x, tokens, y, y_stride);
    check_stride(w.rows, y_stride);
    const PackedView params = w.group_params();
    const int64_t span = w.scheme.group_span(w.cols);
    const auto a = kernels::prepare_sparse_q8(x, tokens, w.cols, span);
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
        q8_row_twin(params, r, span, a, columns, kept.data(), y, y_stride);
    }
}

}  // namespace sparq
