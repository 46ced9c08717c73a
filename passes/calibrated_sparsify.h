// The calibrated part of `sparq sparsify`: Wanda, SparseGPT, OWL layer
// ratios and joint GPTQ, for the planned block linears (everything else
// follows passes/sparsify_model.cpp's plain path).
//   - Statistics: with calibration text and no cache, the runner goes block
//     by block and stage by stage (q/k/v, o, gate/up, down), each stage
//     seeing the outputs of the already-pruned linears, as the SparseGPT
//     and Wanda reference code do; with a cache, its full-precision
//     statistics are used (calibration/statistics_source.h rules).
//   - OWL: a first full-precision statistics pass counts each block's
//     Wanda-score outliers (sparsity/owl.h), giving each block its sparsity.
//   - Per linear: magnitude or Wanda choose a mask (per row / N:M) and zero
//     it; SparseGPT chooses and reconstructs (sparsity/sparsegpt.h). With
//     --quant-method gptq the kept weights are quantized in an OBS pass that
//     keeps the mask: SparseGPT prunes and quantizes each column block
//     together; after magnitude or Wanda, GPTQ runs on the pruned weights
//     with their mask fixed (pruned positions stay exactly zero).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "passes/sparsify_model.h"

namespace sparq {

struct CalibratedPrunedTensor {
    std::vector<float> weights;          // final values (dequantized when packed), pruned = 0
    PruneMask mask;                      // all kept for a tensor only quantized
    std::optional<PackedTensor> packed;  // quantized in the pass (gptq)
    CalibratedTensorReport report;       // weighted_error_rtn: magnitude pruning (+RTN) at the same target
};

struct CalibratedSparsification {
    std::map<std::string, CalibratedPrunedTensor> tensors;  // by full tensor name
    CalibrationSummary summary;
    std::vector<double> layer_sparsity;  // per block (unstructured targets; empty for N:M)
    std::vector<double> outlier_ratios;  // per block, OWL only
};

CalibratedSparsification sparsify_calibrated(const ModelSource& model, const SparsifyOptions& options,
                                             const std::vector<SparsePlannedTensor>& plan,
                                             const std::function<void(const std::string&)>& log = {});

}  // namespace sparq
