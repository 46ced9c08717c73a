// SmoothQuant's migration strength chosen on calibration data (sparq
// quantize --method smoothquant --smooth-search): each alpha of a grid
// quantizes the model (W8A8: the runtime's int8-activation kernels score
// it, as they will run it), the candidate runs on calibration windows
// (tools/calibration_scoring.h), and the lowest perplexity there wins. The
// evaluation text is never read. The SmoothQuant paper tunes alpha per
// model by hand (0.5 for most, up to 0.85 for GLM-130B); this makes that
// choice reproducible.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "models/model_source.h"
#include "passes/quantize_model.h"

namespace sparq::cli {

struct SmoothCandidate {
    double alpha = 0;
    double calibration_ppl = 0;
};

struct SmoothSearchResult {
    SmoothCandidate best;
    std::vector<SmoothCandidate> candidates;  // in grid order
    // The same W8A8 quantization with no smoothing (--method rtn
    // --act-bits 8), scored alike: tells whether smoothing helps at all
    // (models without activation outliers gain nothing from it).
    double unsmoothed_calibration_ppl = 0;
};

// The grid: alpha in {0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9} (the paper's
// default 0.5 among them). `scratch` is a file path the candidates are
// written to in turn (removed at the end). Needs options.method
// "smoothquant" and options.calib (text). Throws sparq::Error naming the
// flag when the options do not allow it.
SmoothSearchResult search_smooth_alpha(const ModelSource& model, const QuantizeOptions& options,
                                       const std::string& tokenizer_path, const std::string& scratch,
                                       const std::function<void(const std::string&)>& log);

}  // namespace sparq::cli
