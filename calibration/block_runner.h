// The layer-sequential calibration runner: pushes the calibration samples
// through the model one transformer block at a time, with the reference
// forward's own block code (LlamaTransformer::forward_block), and hands the
// statistics of each input space (calibration/statistics.h) to a callback.
//
// Memory is bounded by one block: only block l's weights (as F32), the
// hidden states of all samples entering it (samples x len x hidden floats)
// and one space's statistics live at a time; other blocks stay in the
// (memory-mapped) source until their turn.
//
// Two modes:
//   - statistics (default): one pass per block; every space's statistics
//     come from the full-precision block, and the full-precision output
//     feeds the next block. This is what `sparq calibrate` caches.
//   - sequential: the spaces are handled in forward order (q/k/v, o,
//     gate/up, down); before each, the block runs with the linears the
//     callback has already rewritten (e.g. quantized), and after the last,
//     the rewritten block's output feeds the next block. So every method
//     sees the inputs the compressed model will really give it, and errors
//     are compensated sequentially, as GPTQ does. Attention runs once per
//     block (its output, o_proj's input, is kept for all samples: one more
//     samples x len x q_dim buffer while o_proj is handled), and MLP stages
//     stop right after the linear they observe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "calibration/calibration_data.h"
#include "calibration/statistics.h"
#include "models/model_source.h"
#include "quant/hessian.h"

namespace sparq {

// The module that reads one input space, run on calibration inputs with
// some of its linears replaced: the attention heads for q/k/v (their
// output, o_proj's input), the MLP for gate/up. Its output error is what
// llm-awq scores scale candidates on (its "module2inspect"): errors the
// module absorbs (a key's error through the softmax, a gate's where the
// SiLU is flat) count for what they change downstream, not for their size.
// Offered in sequential mode only, during the AttnInput and MlpInput
// callbacks (BlockWeights::output_probe), over the first samples of the
// calibration set up to kProbeTokens tokens.
class BlockOutputProbe {
public:
    static constexpr int64_t kProbeTokens = 8192;
    virtual ~BlockOutputProbe() = default;
    // Sum over the probed tokens and outputs of (module(x; replaced) -
    // module(x; current))^2. `replaced` maps suffixes of the space's linears
    // ("self_attn.k_proj.weight", ...) to [rows, cols] weights of the same
    // shape; the others keep the block's current weights.
    virtual double output_error(const std::map<std::string, const float*>& replaced) const = 0;
};

// One block's linear weights as F32 [rows, cols] row-major, which a
// callback may rewrite in place (same size) to change what later stages and
// blocks see.
class BlockWeights {
public:
    BlockWeights(const ModelSource& model, int64_t layer);

    int64_t layer() const { return layer_; }
    // suffix: "self_attn.q_proj.weight", ... (input_space_linears()).
    std::vector<float>& weight(const std::string& suffix);
    int64_t rows(const std::string& suffix) const;
    int64_t cols(const std::string& suffix) const;
    std::string tensor_name(const std::string& suffix) const;
    // The current stage's module probe, or null (see BlockOutputProbe).
    const BlockOutputProbe* output_probe() const { return probe_; }

private:
    friend struct BlockAssembly;  // builds the runnable block (block_runner.cpp)
    friend struct ProbeScope;     // sets probe_ for one callback (block_runner.cpp)
    struct Matrix {
        std::vector<float> values;
        int64_t rows = 0, cols = 0;
    };
    const Matrix& find(const std::string& suffix) const;

    int64_t layer_;
    std::map<std::string, Matrix> linears_;
    std::vector<float> attn_norm_, mlp_norm_, bq_, bk_, bv_, bo_;
    const BlockOutputProbe* probe_ = nullptr;
};

struct RunnerOptions {
    bool sequential = false;
    bool collect_hessian = true;
    // Sequential only: before each space's callback, replace its linears'
    // weights by the upstream-corrected ones (calibration/upstream_correction.h),
    // so the methods target the full-precision model's outputs. Costs the
    // full-precision hidden states of all samples (one more samples x len x
    // hidden buffer), one more block of F32 weights, the full-precision
    // block's forward, and per space one cols x cols cross product and
    // solve.
    bool correct_upstream = false;
    DampingOptions correction_damping;
    std::function<void(const std::string&)> log;
};

struct RunnerReport {
    int64_t samples = 0;
    int64_t tokens = 0;
    std::vector<double> block_seconds;
    double seconds = 0;
    int64_t corrected_linears = 0;  // upstream correction applied
    std::vector<std::string> warnings;  // also logged
};

// Called once per (block, space), in forward order within each block.
using SpaceCallback =
    std::function<void(InputSpace space, const ActivationStatistics& statistics, BlockWeights& block)>;

// Throws sparq::Error for a token outside the vocabulary or a model the
// reference forward cannot run.
RunnerReport run_calibration(const ModelSource& model, const CalibrationSamples& samples,
                             const RunnerOptions& options, const SpaceCallback& callback);

}  // namespace sparq
