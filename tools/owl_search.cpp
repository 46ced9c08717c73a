#include "tools/owl_search.h"

#include <cstdio>
#include <filesystem>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "eval/perplexity.h"
#include "models/sparq_model.h"
#include "tools/model_loading.h"

namespace sparq::cli {

namespace {

constexpr double kGridM[] = {3, 5, 7, 10};
constexpr double kGridLambda[] = {0.02, 0.04, 0.08};
// Windows scored per candidate: enough to rank them, few enough that the
// search costs about one pruning run per candidate.
constexpr int64_t kScoredWindows = 64;

// Removes the scratch file however the search ends.
struct ScratchFile {
    std::string path;
    ~ScratchFile() {
        std::error_code ignored;
        std::filesystem::remove(path, ignored);
    }
};

}  // namespace

OwlSearchResult search_owl_hyperparameters(const ModelSource& model, const SparsifyOptions& options,
                                           const std::string& tokenizer_path, const std::string& scratch,
                                           const std::function<void(const std::string&)>& log) {
    if (options.layer_ratios != "owl") fail_in({"", "", "--owl-search"}, "needs --layer-ratios owl");
    if (options.calib.empty()) fail_in({"", "", "--owl-search"}, "needs --calib FILE (the candidates are scored on it)");
    if (!model.tokenizer) fail_in({"", "", "--owl-search"}, "the model has no tokenizer to read the calibration text");
    if (!options.structured.empty()) fail_in({"", "", "--owl-search"}, "is not available with --structured");
    CalibrationDataOptions scoring;
    scoring.path = options.calib;
    scoring.samples = std::min(options.calib_samples, kScoredWindows);
    scoring.len = options.calib_len;
    scoring.seed = options.seed + 1;
    const CalibrationSamples windows = draw_calibration_samples(scoring, *model.tokenizer);
    PerplexityOptions eval;
    eval.ctx = windows.len;
    eval.replace_first_with_bos = model.tokenizer->vocabulary().add_bos;
    eval.bos_id = model.tokenizer->bos_id();

    ScratchFile file{scratch};
    OwlSearchResult result;
    for (double m : kGridM) {
        for (double lambda : kGridLambda) {
            SparsifyOptions candidate = options;
            candidate.owl_m = m;
            candidate.owl_lambda = lambda;
            const SparsifyResult pruned = sparsify_model(model, candidate, nullptr);
            write_sparq_model(scratch, model.config, *model.tokenizer, pruned.tensors, nlohmann::json::object());
            const RunnableModel runnable = open_runnable(scratch, tokenizer_path, false);
            const double ppl = evaluate_perplexity(*runnable.model, windows.tokens, eval).ppl;
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
