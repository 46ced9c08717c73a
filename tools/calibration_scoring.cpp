#include "tools/calibration_scoring.h"

#include <algorithm>
#include <filesystem>

#include "tools/model_loading.h"

namespace sparq::cli {

CalibrationScorer::CalibrationScorer(const ModelSource& model, const std::string& calib, int64_t samples, int64_t len,
                                     uint64_t seed) {
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

double CalibrationScorer::perplexity(const std::string& path, const std::string& tokenizer_path) const {
    const RunnableModel runnable = open_runnable(path, tokenizer_path, false);
    return evaluate_perplexity(*runnable.model, windows_.tokens, eval_).ppl;
}

ScratchFile::~ScratchFile() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
}

}  // namespace sparq::cli
