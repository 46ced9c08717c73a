// The calibrated methods of the quantize pass, for the planned block
// linears (embedding and head follow the plan with RTN):
//   - imatrix: the clip search of quant/clip_search.h weighted per input
//     channel by its mean squared activation (llama.cpp's importance
//     matrix), from full-precision statistics;
//   - gptq: quant/gptq.h with each input space's Hessian. With calibration
//     text and no cache, the runner goes block by block and stage by stage
//     (q/k/v, o, gate/up, down), each stage seeing the outputs of the
//     already-quantized linears ("sequential"); with a cache, the cached
//     full-precision Hessians are used.
//   - awq, smoothquant: per-input-channel scales folded into the preceding
//     op (passes/scaled_quantize.h), sequential like gptq without a cache.
// Statistics come from calibration/statistics_source.h (cache rules there).
// Every quantized tensor reports its H-weighted error before (RTN) and
// after. Memory stays bounded by one block plus the packed results.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "calibration/statistics_source.h"
#include "passes/quantize_model.h"
#include "quant/gptq.h"

namespace sparq {

bool is_calibrated_method(const std::string& method);

// The GPTQ options the quantize options name (--damp, --no-act-order,
// --gptq-params), shared by --method gptq and SmoothQuant's GPTQ weights.
GptqOptions gptq_options_of(const QuantizeOptions& options);

// Adds what visit_statistics reports (samples, cache use, block times,
// warnings) to a pass's calibration summary; shared by the calibrated
// quantize and sparsify passes.
void record_statistics_outcome(const StatisticsOutcome& outcome, CalibrationSummary& summary);

struct CalibratedTensor {
    PackedTensor packed;
    CalibratedTensorReport report;
    double sqnr_db = 0;
};

struct CalibratedQuantization {
    std::map<std::string, CalibratedTensor> tensors;  // by full tensor name
    // awq, smoothquant: tensors kept dense whose values the channel-scaling
    // folds changed (norms, v biases, unplanned linears), F32 by full name.
    std::map<std::string, std::vector<float>> rescaled;
    CalibrationSummary summary;
};

// With a sink, each tensor goes to it as soon as its method is done (block
// by block) instead of into CalibratedQuantization::tensors, so a caller
// can write it and free it: memory then holds one block, not every packed
// result of the model.
using CalibratedSink = std::function<void(const std::string& name, CalibratedTensor&& tensor)>;

CalibratedQuantization quantize_calibrated(const ModelSource& model, const QuantizeOptions& options,
                                           const std::vector<PlannedTensor>& plan,
                                           const std::function<void(const std::string&)>& log = {},
                                           const CalibratedSink& sink = {});

}  // namespace sparq
