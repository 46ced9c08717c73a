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

namespace {

// x (n rows of dim) as dim rows of n, the layout the product below reads.
void transpose_rows(const float* x, int64_t n, int64_t dim, std::vector<float>& out) {
    out.resize(static_cast<size_t>(dim * n));
    parallel_for(0, dim, kChannelChunk, [&](int64_t c0, int64_t c1) {
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = c0; i < c1; ++i) out[static_cast<size_t>(i * n + t)] = x[t * dim + i];
    });
}

// sum[i][j] += sum_t at[i][t] bt[j][t] for at, bt of dim rows of n (X^T Y
// of row-major X, Y): matmul_f32 sums each product in a fixed order. In
// bands of rows, so the float product needs 256 rows of the result, not all
// of it (127 MB at width 5632). With `upper_only` (X^T X, symmetric) a band
// is multiplied only by the rows from its own first one on: the columns
// j >= i that the caller mirrors, half the work; the entries left of the
// diagonal inside the band are filled too and never read.
void add_transposed_product(const float* at, const float* bt, int64_t dim, int64_t n, bool upper_only,
                            std::vector<float>& product, double* sum) {
    constexpr int64_t kBand = 256;
    product.resize(static_cast<size_t>(std::min<int64_t>(kBand, dim) * dim));
    for (int64_t first = 0; first < dim; first += kBand) {
        const int64_t band = std::min(kBand, dim - first);
        const int64_t from = upper_only ? first : 0;
        const int64_t width = dim - from;
        matmul_f32(at + first * n, band, bt + from * n, width, n, product.data(), width);
        // One addition per element: any chunking gives the same bits.
        parallel_for(0, band, std::max<int64_t>(1, (int64_t{1} << 16) / width), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                double* row = sum + (first + r) * dim + from;
                const float* p = product.data() + r * width;
                for (int64_t j = 0; j < width; ++j) row[j] += p[j];
            }
        });
    }
}

}  // namespace

void StatisticsAccumulator::add(const float* x, int64_t n) {
    if (n <= 0) return;
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
    transpose_rows(x, n, dim_, transposed_);
    add_transposed_product(transposed_.data(), transposed_.data(), dim_, n, true, product_, hessian_sum_.data());
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
        // In place: only the upper triangle was accumulated (see
        // add_transposed_product); it is mirrored, so H is exactly symmetric.
        s.hessian = std::move(hessian_sum_);
        // Row i owns the pairs (i, j > i) and their mirrors: disjoint
        // writes, so rows run in parallel.
        double* h = s.hessian.data();
        const int64_t d = dim_;
        parallel_for(0, d, std::max<int64_t>(1, (int64_t{1} << 16) / d), [&](int64_t r0, int64_t r1) {
            for (int64_t i = r0; i < r1; ++i) {
                h[i * d + i] *= inv;
                for (int64_t j = i + 1; j < d; ++j) {
                    const double v = h[i * d + j] * inv;
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

CrossProductAccumulator::CrossProductAccumulator(int64_t dim) : dim_(dim) {
    if (dim < 1) fail("cross products need a positive width, got ", dim);
    sum_.assign(static_cast<size_t>(dim * dim), 0.0);
}

void CrossProductAccumulator::add(const float* a, const float* b, int64_t n) {
    if (n <= 0) return;
    transpose_rows(a, n, dim_, a_transposed_);
    transpose_rows(b, n, dim_, b_transposed_);
    add_transposed_product(a_transposed_.data(), b_transposed_.data(), dim_, n, false, product_, sum_.data());
    tokens_ += n;
}

std::vector<double> CrossProductAccumulator::finish() {
    std::vector<double> mean = std::move(sum_);
    const double inv = tokens_ > 0 ? 1.0 / static_cast<double>(tokens_) : 0.0;
    for (double& v : mean) v *= inv;
    tokens_ = 0;
    std::vector<float>().swap(a_transposed_);
    std::vector<float>().swap(b_transposed_);
    std::vector<float>().swap(product_);
    return mean;
}

}  // namespace sparq
