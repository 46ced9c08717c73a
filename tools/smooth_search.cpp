#include "tools/smooth_search.h"

#include <cstdio>

#include "core/error.h"
#include "models/sparq_model.h"
#include "tools/calibration_scoring.h"

namespace sparq::cli {

namespace {

constexpr double kGridAlpha[] = {0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9};

}  // namespace

SmoothSearchResult search_smooth_alpha(const ModelSource& model, const QuantizeOptions& options,
                                       const std::string& tokenizer_path, const std::string& scratch,
                                       const std::function<void(const std::string&)>& log) {
    if (options.method != "smoothquant") fail_in({"", "", "--smooth-search"}, "needs --method smoothquant");
    if (options.calib.empty()) fail_in({"", "", "--smooth-search"}, "needs --calib FILE (the candidates are scored on it)");
    if (!model.tokenizer) fail_in({"", "", "--smooth-search"}, "the model has no tokenizer to read the calibration text");
    if (options.target_bpw > 0) fail_in({"", "", "--smooth-search"}, "is not available with --target-bpw");
    const CalibrationScorer scorer(model, options.calib, options.calib_samples, options.calib_len, options.seed, scratch,
                                   tokenizer_path);
    const auto score = [&](const QuantizeOptions& candidate) {
        return scorer.score([&](const std::string& path) {
            SparqModelWriter writer(path, model.config, *model.tokenizer);
            quantize_model(model, candidate, nullptr, [&](ModelTensorEntry&& entry) { writer.add(entry); });
            writer.commit(nlohmann::json::object());
        });
    };
    SmoothSearchResult result;
    // The same weight quantizer without the smoothing.
    QuantizeOptions unsmoothed = options;
    unsmoothed.method = options.smooth_weights;
    unsmoothed.smooth_weights = "rtn";
    unsmoothed.act_bits = 8;
    result.unsmoothed_calibration_ppl = score(unsmoothed);
    for (double alpha : kGridAlpha) {
        QuantizeOptions candidate = options;
        candidate.smooth_alpha = alpha;
        const double ppl = score(candidate);
        result.candidates.push_back({alpha, ppl});
        if (log) {
            char line[120];
            std::snprintf(line, sizeof line, "smooth search: alpha %.2f: calibration perplexity %.4f", alpha, ppl);
            log(line);
        }
        // Ties keep the earlier candidate: the grid order decides, not chance.
        if (result.candidates.size() == 1 || ppl < result.best.calibration_ppl) result.best = result.candidates.back();
    }
    if (log) {
        char line[200];
        std::snprintf(line, sizeof line, "smooth search: alpha %.2f chosen (%.4f); without smoothing %.4f%s",
                      result.best.alpha, result.best.calibration_ppl, result.unsmoothed_calibration_ppl,
                      result.best.calibration_ppl < result.unsmoothed_calibration_ppl
                          ? ""
                          : (": smoothing does not help this model (--method " + options.smooth_weights +
                             " --act-bits 8 is as good)").c_str());
        log(line);
    }
    return result;
}

}  // namespace sparq::cli
