#include "tools/owl_search.h"

#include <cstdio>

#include "core/error.h"
#include "models/sparq_model.h"
#include "tools/calibration_scoring.h"

namespace sparq::cli {

namespace {

constexpr double kGridM[] = {3, 5, 7, 10};
constexpr double kGridLambda[] = {0.02, 0.04, 0.08};

}  // namespace

OwlSearchResult search_owl_hyperparameters(const ModelSource& model, const SparsifyOptions& options,
                                           const std::string& tokenizer_path, const std::string& scratch,
                                           const std::function<void(const std::string&)>& log) {
    if (options.layer_ratios != "owl") fail_in({"", "", "--owl-search"}, "needs --layer-ratios owl");
    if (options.calib.empty()) fail_in({"", "", "--owl-search"}, "needs --calib FILE (the candidates are scored on it)");
    if (!model.tokenizer) fail_in({"", "", "--owl-search"}, "the model has no tokenizer to read the calibration text");
    if (!options.structured.empty()) fail_in({"", "", "--owl-search"}, "is not available with --structured");
    const CalibrationScorer scorer(model, options.calib, options.calib_samples, options.calib_len, options.seed, scratch,
                                   tokenizer_path);
    OwlSearchResult result;
    for (double m : kGridM) {
        for (double lambda : kGridLambda) {
            SparsifyOptions candidate = options;
            candidate.owl_m = m;
            candidate.owl_lambda = lambda;
            const double ppl = scorer.score([&](const std::string& path) {
                const SparsifyResult pruned = sparsify_model(model, candidate, nullptr);
                write_sparq_model(path, model.config, *model.tokenizer, pruned.tensors, nlohmann::json::object());
            });
            result.candidates.push_back({m, lambda, ppl});
            if (log) {
                char line[160];
                std::snprintf(line, sizeof line, "owl search: M %.0f, lambda %.2f: calibration perplexity %.4f", m,
                              lambda, ppl);
                log(line);
            }
            // Ties keep the earlier candidate: the grid order decides, not chance.
            if (result.candidates.size() == 1 || ppl < result.best.calibration_ppl) result.best = result.candidates.back();
        }
    }
    return result;
}

}  // namespace sparq::cli
