// Scores candidate models on calibration text, for the CLI's searches
// (--owl-search, --smooth-search): a candidate is written to a scratch
// .sparq file, opened on the packed runtime (the kernels it will really
// run, int8 activations included) and its perplexity measured on
// calibration windows drawn with the next seed, so not the very windows
// the calibration statistics came from. The evaluation text is never read.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "calibration/calibration_data.h"
#include "eval/perplexity.h"
#include "models/model_source.h"

namespace sparq::cli {

// Windows scored per candidate: enough to rank them, few enough that a
// search costs about one compression run per candidate.
inline constexpr int64_t kScoredCalibrationWindows = 64;

class CalibrationScorer {
public:
    // Draws min(samples, kScoredCalibrationWindows) windows of `len` tokens
    // from `calib` with seed + 1. Needs the model's tokenizer. Candidates go
    // to `scratch`, which is removed when the scorer goes away.
    CalibrationScorer(const ModelSource& model, const std::string& calib, int64_t samples, int64_t len, uint64_t seed,
                      std::string scratch, std::string tokenizer_path);
    ~CalibrationScorer();
    CalibrationScorer(const CalibrationScorer&) = delete;
    CalibrationScorer& operator=(const CalibrationScorer&) = delete;

    // Writes one candidate (write_to(path) writes a .sparq model there) and
    // returns its perplexity on the windows.
    double score(const std::function<void(const std::string& path)>& write_to) const;

private:
    CalibrationSamples windows_;
    PerplexityOptions eval_;
    std::string scratch_, tokenizer_path_;
};

}  // namespace sparq::cli
