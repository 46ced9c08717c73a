#include "tools/calibration_scoring.h"

#include <algorithm>
#include <filesystem>
#include <utility>

#include "tools/model_loading.h"

namespace sparq::cli {

CalibrationScorer::CalibrationScorer(const ModelSource& model, const std::string& calib, int64_t samples, int64_t len,
                                     uint64_t seed, std::string scratch, std::string tokenizer_path)
    : scratch_(std::move(scratch)), tokenizer_path_(std::move(tokenizer_path)) {
    CalibrationDataOptions scoring;
    scoring.path = calib;
    scoring.samples = std::min(samples, kScoredCalibrationWindows);
    scoring.len = len;
    scoring.seed = seed + 1;
    windows_ = draw_calibration_samples(scoring, *model.tokenizer);
    eval_.ctx = windows_.len;
    eval_.replace_first_with_bos = model.tokenizer->vocabulary().add_bos;
    eval_.bos_id = model.tokenizer->bos_id();
}

CalibrationScorer::~CalibrationScorer() {
    std::error_code ignored;
    std::filesystem::remove(scratch_, ignored);
}

double CalibrationScorer::score(const std::function<void(const std::string& path)>& write_to) const {
    write_to(scratch_);
    const RunnableModel runnable = open_runnable(scratch_, tokenizer_path_, false);
    return evaluate_perplexity(*runnable.model, windows_.tokens, eval_).ppl;
}

}  // namespace sparq::cli
