#include "calibration/statistics.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "models/matmul.h"

namespace sparq {

const char* input_space_name(InputSpace space) {
    switch (space) {
        case InputSpace::AttnInput: return "attn_input";
        case InputSpace::AttnOutput: return "attn_output";
        case InputSpace::MlpInput: return "mlp_input";
        case InputSpace::MlpHidden: return "mlp_hidden";
    }
    return "?";
}

const std::vector<std::string>& input_space_linears(InputSpace space) {
    static const std::vector<std::string> attn_input = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                                        "self_attn.v_proj.weight"};
    static const std::vector<std::string> attn_output = {"self_attn.o_proj.weight"};
    static const std::vector<std::string> mlp_input = {"mlp.gate_proj.weight", "mlp.up_proj.weight"};
    static const std::vector<std::string> mlp_hidden = {"mlp.down_proj.weight"};
    switch (space) {
        case InputSpace::AttnInput: return attn_input;
        case InputSpace::AttnOutput: return attn_output;
        case InputSpace::MlpInput: return mlp_input;
        case InputSpace::MlpHidden: break;
    }
    return mlp_hidden;
}

int64_t input_space_dim(const ModelConfig& config, InputSpace space) {
    switch (space) {
        case InputSpace::AttnInput:
        case InputSpace::MlpInput: return config.hidden_size;
        case InputSpace::AttnOutput: return config.q_dim();
        case InputSpace::MlpHidden: break;
    }
    return config.intermediate_size;
}

std::optional<LinearLocation> locate_block_linear(const std::string& name) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) return std::nullopt;
    size_t pos = prefix.size();
    int64_t layer = 0;
    size_t digits = 0;
    while (pos < name.size() && name[pos] >= '0' && name[pos] <= '9' && digits < 9) {
        layer = layer * 10 + (name[pos] - '0');
        ++pos;
        ++digits;
    }
    if (digits == 0 || pos >= name.size() || name[pos] != '.') return std::nullopt;
    const std::string suffix = name.substr(pos + 1);
    for (InputSpace space : kInputSpaces) {
        for (const std::string& s : input_space_linears(space)) {
            if (s == suffix) return LinearLocation{layer, space, suffix};
        }
    }
    return std::nullopt;
}

StatisticsAccumulator::StatisticsAccumulator(int64_t dim, bool with_hessian)
    : dim_(dim), with_hessian_(with_hessian) {
    if (dim < 1) fail("activation statistics need a positive width, got ", dim);
    const size_t d = static_cast<size_t>(dim);
    if (with_hessian_) hessian_sum_.assign(d * d, 0.0);
    abs_sum_.assign(d, 0.0);
    max_abs_.assign(d, 0.0);
    square_sum_.assign(d, 0.0);
}

// Channels per chunk of the elementwise loops below: each chunk owns its
// channels' sums and keeps the token order, so the sums are the serial
// ones, bit for bit, on any thread count.
constexpr int64_t kChannelChunk = 256;

void StatisticsAccumulator::add(const float* x, int64_t n) {
    if (n <= 0) return;
    const size_t d = static_cast<size_t>(dim_);
    parallel_for(0, dim_, kChannelChunk, [&](int64_t c0, int64_t c1) {
        for (int64_t t = 0; t < n; ++t) {
            const float* row = x + t * dim_;
            for (int64_t i = c0; i < c1; ++i) {
                const double v = row[i];
                abs_sum_[i] += std::fabs(v);
                max_abs_[i] = std::max(max_abs_[i], std::fabs(v));
                square_sum_[i] += v * v;
            }
        }
    });
    tokens_ += n;
    if (!with_hessian_) return;
    // X^T X as the product of X^T with itself: matmul_f32 computes
    // out[i][j] = sum_t xt[i][t] xt[j][t] with a fixed summation order. In
    // bands of rows, so the float product needs 256 rows, not all of H
    // (127 MB at width 5632).
    transposed_.resize(d * static_cast<size_t>(n));
    parallel_for(0, dim_, kChannelChunk, [&](int64_t c0, int64_t c1) {
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = c0; i < c1; ++i) transposed_[static_cast<size_t>(i * n + t)] = x[t * dim_ + i];
    });
    constexpr int64_t kBand = 256;
    product_.resize(static_cast<size_t>(std::min<int64_t>(kBand, dim_)) * d);
    for (int64_t first = 0; first < dim_; first += kBand) {
        const int64_t band = std::min(kBand, dim_ - first);
        matmul_f32(transposed_.data() + first * n, band, transposed_.data(), dim_, n, product_.data(), dim_);
        double* sum = hessian_sum_.data() + static_cast<size_t>(first) * d;
        // One addition per element: any chunking gives the same bits.
        parallel_for(0, band * dim_, int64_t{1} << 16, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) sum[i] += product_[static_cast<size_t>(i)];
        });
    }
}

ActivationStatistics StatisticsAccumulator::finish() {
    ActivationStatistics s;
    s.dim = dim_;
    s.tokens = tokens_;
    const double inv = tokens_ > 0 ? 1.0 / static_cast<double>(tokens_) : 0.0;
    s.mean_abs = std::move(abs_sum_);
    s.mean_square = std::move(square_sum_);
    for (double& v : s.mean_abs) v *= inv;
    for (double& v : s.mean_square) v *= inv;
    s.max_abs = std::move(max_abs_);
    if (with_hessian_) {
        // In place. The SIMD product may round (i, j) and (j, i)
        // differently; solvers factor one triangle, so make it exactly
        // symmetric.
        s.hessian = std::move(hessian_sum_);
        // Row i owns the pairs (i, j > i) and their mirrors: disjoint
        // writes, so rows run in parallel.
        double* h = s.hessian.data();
        const int64_t d = dim_;
        parallel_for(0, d, std::max<int64_t>(1, (int64_t{1} << 16) / d), [&](int64_t r0, int64_t r1) {
            for (int64_t i = r0; i < r1; ++i) {
                h[i * d + i] *= inv;
                for (int64_t j = i + 1; j < d; ++j) {
                    const double v = 0.5 * (h[i * d + j] + h[j * d + i]) * inv;
                    h[i * d + j] = v;
                    h[j * d + i] = v;
                }
            }
        });
    }
    tokens_ = 0;
    std::vector<float>().swap(transposed_);
    std::vector<float>().swap(product_);
    return s;
}

}  // namespace sparq
