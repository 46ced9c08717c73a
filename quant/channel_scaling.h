// Per-input-channel scaling folded into the preceding operation, the common
// ground of AWQ (quant/awq.h) and SmoothQuant (quant/smoothquant.h).
//
// A linear y = W x whose input x comes out of an op that is linear per
// channel (an RMSNorm's weight, or the rows of another linear) can be
// rewritten as y = (W diag(s)) (x / s): the successors' columns are
// multiplied by s and the predecessor's outputs divided by s, which leaves
// the full-precision model unchanged (up to float rounding) while changing
// what quantization sees: large s protects a column of W (AWQ), small s
// shrinks an activation outlier (SmoothQuant).
//
// The folds of a Llama block (passes/scaled_quantize.h names the tensors):
//   input_layernorm          -> q, k, v columns
//   v_proj rows (and bias)   -> o_proj columns
//   post_attention_layernorm -> gate, up columns
//   up_proj rows             -> down_proj columns (silu(g) * u is linear in u)
// With grouped-query attention, o_proj's input channel (h, d) is v's output
// channel (h / group, d), so the scales of the heads sharing a KV head must
// be equal: tie_shared_heads makes them so.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparq {

// A [rows, cols] row-major F32 matrix the caller owns; an RMSNorm weight is
// a matrix of one column.
struct MatrixRef {
    float* data = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
};

// How o_proj's input channels map to v_proj's output rows: channel
// h * head_dim + d reads row (h / (heads / kv_heads)) * head_dim + d.
struct HeadSharing {
    int64_t heads = 1;
    int64_t kv_heads = 1;
    int64_t head_dim = 1;
};

// Values per o_proj input channel made equal across the heads that share a
// KV head: each becomes the geometric mean over those heads (so that any
// power of a tied statistic is tied too). Values must be positive.
// Throws sparq::Error for a size that is not heads * head_dim, heads not a
// multiple of kv_heads, or a non-positive value.
std::vector<double> tie_shared_heads(const std::vector<double>& values, const HeadSharing& sharing);

// The per-v-row scales of tied o_proj input scales (kv_heads * head_dim
// values); throws sparq::Error when the scales are not tied.
std::vector<float> shared_head_rows(const std::vector<float>& scales, const HeadSharing& sharing);

// m[:, j] *= s[j] and m[:, j] /= s[j] (s has m.cols values).
void scale_columns(MatrixRef m, const std::vector<float>& s);
void unscale_columns(MatrixRef m, const std::vector<float>& s);
// m[i, :] /= s[i] and m[i, :] *= s[i] (s has m.rows values).
void divide_rows(MatrixRef m, const std::vector<float>& s);
void multiply_rows(MatrixRef m, const std::vector<float>& s);

// One fold: the successors read the predecessor's output. The
// predecessor's rows (and bias) are divided by the scales mapped through
// `sharing` when given (v_proj -> o_proj), else by the scales themselves.
struct ScaleFold {
    std::vector<MatrixRef> successors;
    MatrixRef predecessor;
    float* predecessor_bias = nullptr;  // predecessor.rows values, or null
    bool shared_heads = false;
    HeadSharing sharing;
};

// The predecessor's per-row scales for successor scales s (s itself, or
// shared_head_rows(s) for a shared-heads fold).
std::vector<float> predecessor_scales(const ScaleFold& fold, const std::vector<float>& s);

// Applies the fold in place. Throws sparq::Error naming `where` when the
// shapes disagree with s or a scale is not finite and positive.
void fold_channel_scales(const ScaleFold& fold, const std::vector<float>& s, const std::string& where);

// Checks scales: cols values, each finite and > 0.
void check_channel_scales(const std::vector<float>& s, int64_t cols, const std::string& where);

// The Hessian of the scaled basis: inputs x' = x / s, so
// X'^T X' = diag(1/s) H diag(1/s) for H (cols x cols, row-major) of x.
// Weights quantized in that basis against it see the same output error as
// in the unscaled one. Throws sparq::Error naming `where` for bad sizes or
// scales.
std::vector<double> scaled_basis_hessian(const std::vector<double>& hessian, const std::vector<float>& s,
                                         int64_t cols, const std::string& where);

}  // namespace sparq
