#include "quant/reference_codec.h"

#include <algorithm>
#include <vector>

namespace sparq {

void quantize_group(const QuantScheme& scheme, const float* x, int64_t n, GroupParams params,
                    uint8_t* codes) {
    const float scale = params.scale_value();
    const int lowest = min_code(scheme);
    const int highest = max_code(scheme);
    for (int64_t i = 0; i < n; ++i) codes[i] = quantize_value(x[i], scale, params.zero, lowest, highest);
}

void dequantize_group(const uint8_t* codes, int64_t n, GroupParams params, float* out) {
    const float scale = params.scale_value();
    for (int64_t i = 0; i < n; ++i) out[i] = dequantize_value(codes[i], scale, params.zero);
}

double group_squared_error(const QuantScheme& scheme, const float* x, int64_t n,
                           const float* importance, GroupParams params) {
    const float scale = params.scale_value();
    const float lowest = static_cast<float>(min_code(scheme) - params.zero);
    const float highest = static_cast<float>(max_code(scheme) - params.zero);
    // Blocks of 64 weighted squares summed by a fixed pairwise tree in float
    // (vectorizes, same result on every machine), blocks summed in double.
    constexpr int64_t kBlock = 64;
    float squares[kBlock];
    double total = 0.0;
    for (int64_t begin = 0; begin < n; begin += kBlock) {
        const int64_t count = std::min(kBlock, n - begin);
        const float* xb = x + begin;
        for (int64_t i = 0; i < count; ++i) {
            const float dq = scale == 0.0f ? 0.0f : scale * quantize_level(xb[i], scale, lowest, highest);
            const float diff = xb[i] - dq;
            squares[i] = (importance ? importance[begin + i] : 1.0f) * diff * diff;
        }
        for (int64_t i = count; i < kBlock; ++i) squares[i] = 0.0f;
        for (int64_t width = kBlock / 2; width >= 1; width /= 2) {
            for (int64_t i = 0; i < width; ++i) squares[i] += squares[i + width];
        }
        total += static_cast<double>(squares[0]);
    }
    return total;
}

GroupParams read_group_params(const PackedView& view, int64_t row, int64_t group) {
    GroupParams p;
    p.scale = view.scale_bits(row, group);
    if (view.scheme.symmetric) {
        p.zero = symmetric_zero_point(view.scheme.bits);
    } else {
        const int width = zero_point_field_bits(view.scheme.bits);
        const int64_t bit = group * width;
        p.zero = (view.zero_row(row)[bit >> 3] >> (bit & 7)) & ((1 << width) - 1);
    }
    return p;
}

void quantize_rows(const float* values, int64_t row_begin, int64_t row_end, PackedTensor& out) {
    const QuantScheme& s = out.scheme;
    const PackedView view = out.view();
    const PackedGeometry g = view.geometry();
    const int64_t span = s.group_span(out.cols);
    std::vector<uint8_t> codes(static_cast<size_t>(out.cols));
    for (int64_t r = row_begin; r < row_end; ++r) {
        const float* row = values + (r - row_begin) * out.cols;
        for (int64_t k = 0; k < g.groups_per_row; ++k) {
            const int64_t begin = k * span;
            const int64_t n = std::min(span, out.cols - begin);
            quantize_group(s, row + begin, n, read_group_params(view, r, k), codes.data() + begin);
        }
        pack_code_row(s, codes.data(), out.cols, out.codes.data() + r * g.code_row_bytes);
    }
}

void dequantize_rows(const PackedView& view, int64_t row_begin, int64_t row_end, float* out) {
    const PackedGeometry g = view.geometry();
    const int64_t span = view.scheme.group_span(view.cols);
    std::vector<uint8_t> codes(static_cast<size_t>(view.cols));
    for (int64_t r = row_begin; r < row_end; ++r) {
        unpack_code_row(view.scheme, view.code_row(r), view.cols, codes.data());
        float* row = out + (r - row_begin) * view.cols;
        for (int64_t k = 0; k < g.groups_per_row; ++k) {
            const int64_t begin = k * span;
            const int64_t n = std::min(span, view.cols - begin);
            dequantize_group(codes.data() + begin, n, read_group_params(view, r, k), row + begin);
        }
    }
}

}  // namespace sparq
