// The scalar twins of the packed kernels, and the Q8 activation quantizer
// both paths share. Written for obviousness: unpack each row with the
// reference codec and sum in double.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "quant/reference_codec.h"
#include "runtime/kernels/packed_matmul.h"

namespace sparq {

int64_t q8_block_columns(const QuantScheme& s) {
    return s.group == 0 ? 256 : std::clamp<int64_t>(s.group, kActivationBlock, 256);
}

namespace {

template <typename T>
void quantize_blocks(const float* x, int64_t cols, int64_t block, T* q, float* scales) {
    constexpr float kMax = sizeof(T) == 1 ? 127.0f : 32767.0f;
    if (block < kActivationBlock || block % kActivationBlock != 0) {
        fail("activation block of ", block, " columns: must be a positive multiple of ", kActivationBlock);
    }
    for (int64_t begin = 0, b = 0; begin < cols; begin += block, ++b) {
        const int64_t n = std::min(block, cols - begin);
        float amax = 0.0f;
        bool finite = true;
        for (int64_t i = 0; i < n; ++i) {
            finite = finite && std::isfinite(x[begin + i]);
            amax = std::max(amax, std::fabs(x[begin + i]));
        }
        if (!finite || amax == 0.0f) {
            std::fill(q + begin, q + begin + n, T{0});
            scales[b] = finite ? 0.0f : std::numeric_limits<float>::quiet_NaN();
            continue;
        }
        scales[b] = amax / kMax;
        // One reciprocal per block; x / amax * kMax only where kMax / amax
        // overflows (subnormal amax).
        const float inv = kMax / amax;
        const bool normal = std::isfinite(inv);
        for (int64_t i = 0; i < n; ++i) {
            const float v = x[begin + i];
            const float level = round_half_even(normal ? v * inv : v / amax * kMax);
            q[begin + i] = static_cast<T>(std::clamp(level, -kMax, kMax));
        }
    }
}

}  // namespace

void quantize_activation_blocks(const float* x, int64_t cols, int64_t block, int8_t* q, float* scales) {
    quantize_blocks(x, cols, block, q, scales);
}

void quantize_activation_blocks(const float* x, int64_t cols, int64_t block, int16_t* q, float* scales) {
    quantize_blocks(x, cols, block, q, scales);
}

void packed_matmul_scalar(const PackedView& w, const float* x, int64_t tokens, float* y, int64_t y_stride,
                          ActivationMode mode) {
    if (y_stride < w.rows) fail("packed matmul: output stride ", y_stride, " < rows ", w.rows);
    const int64_t cols = w.cols;
    const int64_t span = w.scheme.group_span(cols);
    const int64_t groups = groups_per_row(w.scheme, cols);
    const int64_t act = q8_block_columns(w.scheme);
    const int64_t blocks = (cols + act - 1) / act;
    // Integer activations (Q8 or Q16), held as int16 either way.
    std::vector<int16_t> q;
    std::vector<float> block_scales;
    if (mode != ActivationMode::F32) {
        q.resize(static_cast<size_t>(tokens * cols));
        block_scales.resize(static_cast<size_t>(tokens * blocks));
        std::vector<int8_t> q8(static_cast<size_t>(cols));
        for (int64_t t = 0; t < tokens; ++t) {
            int16_t* qt = q.data() + t * cols;
            float* st = block_scales.data() + t * blocks;
            if (mode == ActivationMode::Q16) {
                quantize_activation_blocks(x + t * cols, cols, act, qt, st);
            } else {
                quantize_activation_blocks(x + t * cols, cols, act, q8.data(), st);
                std::copy(q8.begin(), q8.end(), qt);
            }
        }
    }
    std::vector<uint8_t> codes(static_cast<size_t>(cols));
    for (int64_t r = 0; r < w.rows; ++r) {
        unpack_code_row(w.scheme, w.code_row(r), cols, codes.data());
        for (int64_t t = 0; t < tokens; ++t) {
            double sum = 0.0;
            for (int64_t g = 0; g < groups; ++g) {
                const GroupParams p = read_group_params(w, r, g);
                const int64_t begin = g * span;
                const int64_t end = std::min(cols, begin + span);
                if (mode == ActivationMode::F32) {
                    for (int64_t c = begin; c < end; ++c) {
                        sum += static_cast<double>(dequantize_value(codes[c], p.scale_value(), p.zero)) *
                               x[t * cols + c];
                    }
                    continue;
                }
                // Q8, Q16: an exact integer sum per (group, activation block) piece.
                for (int64_t c = begin; c < end;) {
                    const int64_t b = c / act;
                    const int64_t piece_end = std::min(end, (b + 1) * act);
                    int64_t isum = 0;
                    for (; c < piece_end; ++c) isum += (codes[c] - p.zero) * int64_t{q[t * cols + c]};
                    sum += static_cast<double>(p.scale_value()) * block_scales[t * blocks + b] *
                           static_cast<double>(isum);
                }
            }
            y[t * y_stride + r] = static_cast<float>(sum);
        }
    }
}

void packed_matvec_scalar(const PackedView& w, const float* x, float* y, ActivationMode mode) {
    packed_matmul_scalar(w, x, 1, y, w.rows, mode);
}

}  // namespace sparq
