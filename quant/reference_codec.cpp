#include "quant/reference_codec.h"

#include <algorithm>
#include <vector>

#include "core/vectorize.h"

namespace sparq {

SPARQ_VECTORIZE_CLONES
void quantize_group(const QuantScheme& scheme, const float* x, int64_t n, GroupParams params,
                    uint8_t* codes) {
    const float scale = params.scale_value();
    const int lowest = min_code(scheme);
    const int highest = max_code(scheme);
    if (scale == 0.0f) {
        std::fill(codes, codes + n, static_cast<uint8_t>(params.zero));
        return;
    }
    // quantize_value's arithmetic with its branches turned into selects, so
    // this loop (every RTN group runs it) vectorizes: NaN becomes the lowest
    // level, as quantize_value maps it to the lowest code.
    const float low_level = static_cast<float>(lowest - params.zero);
    const float high_level = static_cast<float>(highest - params.zero);
    for (int64_t i = 0; i < n; ++i) {
        float v = x[i] / scale;
        v = v != v ? -1024.0f : v;
        v = v < -1024.0f ? -1024.0f : (v > 1024.0f ? 1024.0f : v);
        float q = round_half_even(v);
        q = q < low_level ? low_level : (q > high_level ? high_level : q);
        codes[i] = static_cast<uint8_t>(static_cast<int>(q) + params.zero);
    }
}

SPARQ_VECTORIZE_CLONES
void dequantize_group(const uint8_t* codes, int64_t n, GroupParams params, float* out) {
    const float scale = params.scale_value();
    for (int64_t i = 0; i < n; ++i) out[i] = dequantize_value(codes[i], scale, params.zero);
}

SPARQ_VECTORIZE_CLONES
double group_squared_error(const QuantScheme& scheme, const float* x, int64_t n,
                           const float* importance, GroupParams params) {
    const float scale = params.scale_value();
    const float lowest = static_cast<float>(min_code(scheme) - params.zero);
    const float highest = static_cast<float>(max_code(scheme) - params.zero);
    // Blocks of 64 weighted squares, each summed in float into 16 lanes
    // (lane j takes elements j, j + 16, ...) and the lanes by a fixed
    // pairwise tree; blocks summed in double. The order is fixed, so the
    // value is the same on every machine, and the lane loop vectorizes.
    constexpr int64_t kBlock = 64, kLanes = 16;
    const auto weighted_square = [&](int64_t i) {
        const float dq = scale == 0.0f ? 0.0f : scale * quantize_level(x[i], scale, lowest, highest);
        const float diff = x[i] - dq;
        return (importance ? importance[i] : 1.0f) * diff * diff;
    };
    double total = 0.0;
    for (int64_t begin = 0; begin < n; begin += kBlock) {
        const int64_t count = std::min(kBlock, n - begin);
        float lanes[kLanes] = {};
        int64_t i = 0;
        for (; i + kLanes <= count; i += kLanes) {
            for (int64_t j = 0; j < kLanes; ++j) lanes[j] += weighted_square(begin + i + j);
        }
        for (int64_t j = 0; i + j < count; ++j) lanes[j] += weighted_square(begin + i + j);
        for (int64_t width = kLanes / 2; width >= 1; width /= 2) {
            for (int64_t j = 0; j < width; ++j) lanes[j] += lanes[j + width];
        }
        total += static_cast<double>(lanes[0]);
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
