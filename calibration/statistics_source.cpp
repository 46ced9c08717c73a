#include "calibration/statistics_source.h"

#include "calibration/statistics_cache.h"
#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {

CalibrationKey calibration_key(const ModelSource& model, const CalibrationDataOptions& data) {
    CalibrationKey key;
    key.model_checksum = model_checksum(model);
    const std::string bytes = read_text_file(data.path);
    key.data_checksum = xxh64_checksum(bytes.data(), bytes.size());
    key.samples = data.samples;
    key.len = data.len;
    key.seed = data.seed;
    return key;
}

namespace {

// Reads a whole cache into the visitor after checking every dataset.
void visit_cache(const StatisticsCacheReader& reader, const ModelConfig& config, const StatisticsVisitor& visit) {
    for (int64_t l = 0; l < config.num_layers; ++l) {
        for (InputSpace space : kInputSpaces) visit(l, space, reader.read(l, space, input_space_dim(config, space), true));
    }
}

}  // namespace

StatisticsOutcome visit_statistics(const ModelSource& model, const StatisticsRequest& request,
                                   const StatisticsVisitor& visit,
                                   const std::function<void(const std::string&)>& log) {
    StatisticsOutcome outcome;
    const ModelConfig& config = model.config;
    std::optional<CalibrationKey> wanted;
    if (request.data) wanted = calibration_key(model, *request.data);
    if (wanted) outcome.key = *wanted;
    std::string why_not_used;
    if (request.reuse && !request.cache_path.empty() && file_exists(request.cache_path)) {
        // Only problems with the cache itself lead to recomputing; errors of
        // the visitor (the method) propagate.
        std::unique_ptr<StatisticsCacheReader> reader;
        try {
            reader = std::make_unique<StatisticsCacheReader>(request.cache_path);
            const CacheHeader& header = reader->header();
            std::optional<std::string> mismatch;
            if (wanted) {
                mismatch = calibration_key_mismatch(header.key, *wanted);
            } else if (header.key.model_checksum != model_checksum(model)) {
                mismatch = "it was computed for another model (" + header.key.model_checksum + ")";
            }
            if (mismatch) fail_in({request.cache_path, "", ""}, "calibration cache does not match: ", *mismatch);
            reader->verify_all(config, true);
        } catch (const Error& e) {
            reader.reset();
            if (!request.data) {
                fail_in({request.cache_path, "", ""}, "cannot use the calibration cache (", e.what(),
                        "); give --calib to recompute it");
            }
            why_not_used = e.what();
            if (log) log("calibration: rejected " + request.cache_path + ": " + why_not_used + "; recomputing");
        }
        if (reader) {
            const CacheHeader& header = reader->header();
            if (log) log("calibration: using the statistics cached in " + request.cache_path);
            visit_cache(*reader, config, visit);
            outcome.cache = "hit";
            outcome.samples = header.samples_drawn;
            outcome.len = header.key.len;
            outcome.tokens = header.tokens;
            return outcome;
        }
    } else if (!request.data) {
        if (request.cache_path.empty()) fail_in({"", "", "--calib"}, "no calibration data: give --calib FILE");
        fail_in({request.cache_path, "", ""}, "the calibration cache does not exist; give --calib FILE to compute it");
    }

    const CalibrationSamples samples = draw_calibration_samples(*request.data, *model.tokenizer);
    for (const auto& w : samples.warnings) {
        outcome.warnings.push_back(w);
        if (log) log("warning: " + w);
    }
    outcome.samples = samples.samples;
    outcome.len = samples.len;
    outcome.tokens = samples.samples * samples.len;
    std::unique_ptr<StatisticsCacheWriter> writer;
    if (!request.cache_path.empty()) {
        CacheHeader header;
        header.key = *wanted;
        header.samples_drawn = outcome.samples;
        header.tokens = outcome.tokens;
        header.num_layers = config.num_layers;
        header.hidden_size = config.hidden_size;
        header.intermediate_size = config.intermediate_size;
        header.q_dim = config.q_dim();
        header.data_path = request.data->path;
        writer = std::make_unique<StatisticsCacheWriter>(request.cache_path, header);
    }
    RunnerOptions options;
    options.log = log;
    outcome.run = run_calibration(model, samples, options,
                                  [&](InputSpace space, const ActivationStatistics& s, BlockWeights& block) {
                                      if (writer) writer->write(block.layer(), space, s);
                                      visit(block.layer(), space, s);
                                  });
    outcome.warnings.insert(outcome.warnings.end(), outcome.run.warnings.begin(), outcome.run.warnings.end());
    if (writer) {
        writer->commit();
        outcome.cache = why_not_used.empty() ? "written" : "recomputed: " + why_not_used;
    }
    return outcome;
}

}  // namespace sparq
