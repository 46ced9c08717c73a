// The channel-scaling methods of the quantize pass, awq and smoothquant,
// one block at a time over the calibration runner (or a statistics cache).
// Per block, the input spaces arrive in forward order and each gets
// per-input-channel scales folded into its preceding op
// (quant/channel_scaling.h):
//   attn_input  -> input_layernorm weight,          q, k, v columns
//   attn_output -> v_proj rows (and bias),          o_proj columns (tied per KV head under GQA)
//   mlp_input   -> post_attention_layernorm weight, gate, up columns
//   mlp_hidden  -> up_proj rows,                    down_proj columns
// awq searches the scales (quant/awq.h) and quantizes with the
// Hessian-scored clip search; smoothquant takes SmoothQuant's scales
// (quant/smoothquant.h) and plain RTN. v_proj and up_proj are quantized for
// good once their rows are scaled (by the next space); until then the block
// runs with a provisional quantization of them, which differs from the final
// one only by a per-row factor, so the runner's later stages see (up to
// FP16 scale rounding) the weights the file will hold. The block the runner
// computes with always holds the effective weights diag(r) Q(W') diag(1/c)
// in the unscaled basis, which is what the folded model computes.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "calibration/block_runner.h"
#include "calibration/statistics.h"
#include "passes/calibrated_quantize.h"
#include "quant/channel_scaling.h"

namespace sparq {

bool is_channel_scaling_method(const std::string& method);

// The tensors (suffixes, as layer_tensor_name takes) one space's fold
// touches. predecessor_bias is empty without attention biases or for norms.
struct SpaceFoldNames {
    std::vector<std::string> successors;
    std::string predecessor;
    std::string predecessor_bias;
    bool predecessor_is_norm = true;
    bool shared_heads = false;  // o_proj under v_proj: scales tied per KV head
};
SpaceFoldNames space_fold_names(const ModelConfig& config, InputSpace space);
HeadSharing head_sharing(const ModelConfig& config);

// The fold of one space of a layer over F32 arrays by full tensor name,
// which must hold every tensor space_fold_names names (sizes checked).
ScaleFold make_space_fold(const ModelConfig& config, int64_t layer, InputSpace space,
                          std::map<std::string, std::vector<float>>& tensors);

class ScaledBlockQuantizer {
public:
    ScaledBlockQuantizer(const ModelSource& model, const QuantizeOptions& options,
                         std::map<std::string, QuantScheme> planned, std::function<void(const std::string&)> log);

    // One space of the block, in forward order (attn_input first). Rewrites
    // the block's linears to their effective weights.
    void on_space(InputSpace space, const ActivationStatistics& statistics, BlockWeights& block);

    std::map<std::string, CalibratedTensor> take_tensors() { return std::move(tensors_); }
    // With a sink, each finished tensor goes there instead of take_tensors().
    void set_sink(std::function<void(const std::string&, CalibratedTensor&&)> sink) { sink_ = std::move(sink); }
    // Tensors the folds changed that are not quantized here (norms, biases,
    // linears left out of the plan), as F32 values in their own shape.
    std::map<std::string, std::vector<float>> take_rescaled() { return std::move(rescaled_); }

private:
    void start_block(BlockWeights& block);
    std::vector<float> choose_scales(InputSpace space, const SpaceFoldNames& names,
                                     const ActivationStatistics& statistics, const BlockOutputProbe* probe,
                                     double& alpha);
    // Quantizes the stored (scaled) weights of one linear; returns the
    // effective weights in the unscaled basis. With `final`, records it.
    std::vector<float> quantize_linear(const std::string& name, const std::vector<double>& hessian, bool final,
                                       double alpha);

    const ModelSource& model_;
    const QuantizeOptions& options_;
    std::map<std::string, QuantScheme> planned_;
    std::function<void(const std::string&)> log_;
    int64_t layer_ = -1;
    // The block's tensors in the scaled ("stored") basis, their originals,
    // and the column and row scales applied so far.
    std::map<std::string, std::vector<float>> stored_, original_;
    std::map<std::string, std::vector<float>> column_scales_, row_scales_;
    std::map<std::string, std::pair<int64_t, int64_t>> shapes_;
    std::map<std::string, double> alpha_of_;
    std::set<std::string> touched_;
    std::vector<double> attn_input_hessian_, mlp_input_hessian_;
    std::map<std::string, CalibratedTensor> tensors_;
    std::function<void(const std::string&, CalibratedTensor&&)> sink_;
    std::map<std::string, std::vector<float>> rescaled_;
};

}  // namespace sparq
