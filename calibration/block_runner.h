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

namespace sparq {

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

private:
    friend struct BlockAssembly;  // builds the runnable block (block_runner.cpp)
    struct Matrix {
        std::vector<float> values;
        int64_t rows = 0, cols = 0;
    };
    const Matrix& find(const std::string& suffix) const;

    int64_t layer_;
    std::map<std::string, Matrix> linears_;
    std::vector<float> attn_norm_, mlp_norm_, bq_, bk_, bv_, bo_;
};

struct RunnerOptions {
    bool sequential = false;
    bool collect_hessian = true;
    std::function<void(const std::string&)> log;
};

struct RunnerReport {
    int64_t samples = 0;
    int64_t tokens = 0;
    std::vector<double> block_seconds;
    double seconds = 0;
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
