// OWL's hyperparameters chosen on calibration data (sparq sparsify
// --owl-search): each (M, lambda) of a small grid prunes the model, the
// pruned model runs on calibration windows (drawn with the next seed, so
// not the very windows the statistics came from), and the candidate with
// the lowest perplexity there wins. The evaluation text is never read.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "models/model_source.h"
#include "passes/sparsify_model.h"

namespace sparq::cli {

struct OwlCandidate {
    double m = 0;
    double lambda = 0;
    double calibration_ppl = 0;
};

struct OwlSearchResult {
    OwlCandidate best;
    std::vector<OwlCandidate> candidates;  // in grid order
};

// The grid: M in {3, 5, 7, 10} x lambda in {0.02, 0.04, 0.08} (the paper's
// 5 and 0.08 among them). `scratch` is a file path the candidates are
// written to in turn (removed at the end). Needs options.calib (text).
// Throws sparq::Error naming the flag when the options do not allow it.
OwlSearchResult search_owl_hyperparameters(const ModelSource& model, const SparsifyOptions& options,
                                           const std::string& tokenizer_path, const std::string& scratch,
                                           const std::function<void(const std::string&)>& log);

}  // namespace sparq::cli
