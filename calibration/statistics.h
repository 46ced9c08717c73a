// What calibration records about the inputs of a transformer block's linear
// layers. Linears that read the same vector share one "input space": q/k/v
// read the attention norm's output, gate/up the MLP norm's output; o_proj
// and down_proj each have their own. Per space: the Hessian proxy
// H = X^T X / tokens (GPTQ, SparseGPT; quant/hessian.h factors it) and
// per-channel statistics (mean |x|, max |x|, mean x^2: imatrix, AWQ, Wanda).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/config.h"

namespace sparq {

enum class InputSpace { AttnInput, AttnOutput, MlpInput, MlpHidden };

inline constexpr std::array<InputSpace, 4> kInputSpaces = {InputSpace::AttnInput, InputSpace::AttnOutput,
                                                           InputSpace::MlpInput, InputSpace::MlpHidden};

// "attn_input", "attn_output", "mlp_input", "mlp_hidden" (the cache's group names).
const char* input_space_name(InputSpace space);
// Tensor name suffixes of the linears reading the space ("self_attn.q_proj.weight", ...).
const std::vector<std::string>& input_space_linears(InputSpace space);
// Width of the space's vectors (the linears' cols).
int64_t input_space_dim(const ModelConfig& config, InputSpace space);
// The layer and space of a block linear's full name, or nullopt.
struct LinearLocation {
    int64_t layer = 0;
    InputSpace space = InputSpace::AttnInput;
    std::string suffix;
};
std::optional<LinearLocation> locate_block_linear(const std::string& tensor_name);

// Normalized statistics of one space over all calibration tokens.
struct ActivationStatistics {
    int64_t dim = 0;
    int64_t tokens = 0;
    std::vector<double> hessian;  // dim x dim row-major mean of x x^T; empty when not collected
    std::vector<double> mean_abs, max_abs, mean_square;  // dim each
};

// Something shown the rows of activations a linear reads (the calibration
// runner's observers).
class RowObserver {
public:
    virtual ~RowObserver() = default;
    // x: n rows of the space's width.
    virtual void add(const float* x, int64_t n) = 0;
};

// Accumulates statistics from rows of activations. Sums run in double in
// the order rows arrive, the products per batch with the deterministic
// matrix product of models/matmul.h, the elementwise work in parallel over
// fixed channel chunks, so results are the same for any thread count.
class StatisticsAccumulator final : public RowObserver {
public:
    StatisticsAccumulator(int64_t dim, bool with_hessian);
    // x: n rows of dim floats.
    void add(const float* x, int64_t n) override;
    int64_t tokens() const { return tokens_; }
    // The normalized statistics. Moves the sums out (a 5632-wide Hessian is
    // 250 MB): the accumulator is empty afterwards.
    ActivationStatistics finish();

private:
    int64_t dim_;
    bool with_hessian_;
    int64_t tokens_ = 0;
    std::vector<double> hessian_sum_, abs_sum_, max_abs_, square_sum_;
    std::vector<float> transposed_, product_;
};

// Accumulates the mean of a b^T over pairs of rows: a from one run of the
// model, b from another over the same tokens (the compressed and the
// full-precision model: calibration/upstream_correction.h). Summed like
// the Hessian above (the same product, double sums, fixed order), so the
// result is the same for any thread count.
class CrossProductAccumulator {
public:
    explicit CrossProductAccumulator(int64_t dim);
    // a, b: n rows of dim floats each, row t of a and of b the same token.
    void add(const float* a, const float* b, int64_t n);
    int64_t tokens() const { return tokens_; }
    // dim x dim row-major, entry (i, j) the mean of a_i b_j. Moves the sums
    // out: the accumulator is empty afterwards.
    std::vector<double> finish();

private:
    int64_t dim_;
    int64_t tokens_ = 0;
    std::vector<double> sum_;
    std::vector<float> a_transposed_, b_transposed_, product_;
};

}  // namespace sparq
