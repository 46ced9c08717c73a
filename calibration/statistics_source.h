// Where a calibrated method gets each block's full-precision statistics: a
// matching cache, or a fresh statistics pass of the runner (written to the
// cache when one is named). The rules:
//   - cache named, file present, key matches (model, data, samples, len,
//     seed) and every dataset verifies: used ("hit");
//   - mismatched or damaged cache with calibration data given: the reason
//     is logged, the statistics are recomputed and the cache rewritten
//     ("recomputed: <why>"); never used silently;
//   - cache without data: it must match the model and verify, else
//     sparq::Error naming the file and why;
//   - no cache: computed ("none"), or computed and written when a cache path
//     is named but absent ("written").
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "calibration/block_runner.h"
#include "calibration/calibration_data.h"
#include "calibration/statistics_cache.h"
#include "calibration/statistics.h"
#include "models/model_source.h"

namespace sparq {

struct StatisticsRequest {
    std::optional<CalibrationDataOptions> data;  // to compute (or check a cache against)
    std::string cache_path;                      // empty: no cache
    bool reuse = true;  // false: always recompute and (over)write the cache
};

struct StatisticsOutcome {
    std::string cache = "none";  // "none", "hit", "written", "recomputed: <why>"
    int64_t samples = 0, len = 0, tokens = 0;
    std::vector<std::string> warnings;
    RunnerReport run;  // empty on a hit
    CalibrationKey key;  // of the data asked for (empty without data)
};

// Called once per (block, space) in forward order.
using StatisticsVisitor = std::function<void(int64_t layer, InputSpace space, const ActivationStatistics& statistics)>;

StatisticsOutcome visit_statistics(const ModelSource& model, const StatisticsRequest& request,
                                   const StatisticsVisitor& visit,
                                   const std::function<void(const std::string&)>& log = {});

// The cache key for a model and data options (checksums the data file).
CalibrationKey calibration_key(const ModelSource& model, const CalibrationDataOptions& data);

}  // namespace sparq
