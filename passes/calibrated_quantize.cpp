#include "passes/calibrated_quantize.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "calibration/block_runner.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "passes/float_output_error.h"
#include "passes/method_registry.h"
#include "passes/scaled_quantize.h"
#include "quant/gptq.h"
#include "quant/imatrix.h"

namespace sparq {

bool is_calibrated_method(const std::string& method) {
    const MethodInfo* m = find_method(PassKind::Quantize, method);
    return m && m->calibrated;
}

namespace {

GroupParamSearch parse_group_search(const std::string& name) {
    if (name == "rtn") return GroupParamSearch::Rtn;
    if (name == "mse") return GroupParamSearch::Mse;
    if (name == "weighted") return GroupParamSearch::Weighted;
    if (name == "hessian") return GroupParamSearch::Hessian;
    fail_in({"", "", "gptq_params"}, "must be rtn, mse, weighted or hessian, got '", name, "'");
}

}  // namespace

GptqOptions gptq_options_of(const QuantizeOptions& options) {
    GptqOptions gptq;
    gptq.damping.fraction = options.damp;
    gptq.act_order = options.act_order;
    gptq.params = parse_group_search(options.gptq_params);
    return gptq;
}

namespace {

double sqnr_db_of(const float* w, const std::vector<float>& q) {
    double signal = 0, noise = 0;
    for (size_t i = 0; i < q.size(); ++i) {
        const double d = static_cast<double>(w[i]) - q[i];
        signal += static_cast<double>(w[i]) * w[i];
        noise += d * d;
    }
    if (noise == 0) return INFINITY;
    if (signal == 0) return -INFINITY;
    return 10.0 * std::log10(signal / noise);
}

class TensorQuantizer {
public:
    TensorQuantizer(const QuantizeOptions& options, const std::vector<PlannedTensor>& plan,
                    const std::function<void(const std::string&)>& log, CalibratedSink sink)
        : options_(options), log_(log), sink_(std::move(sink)), start_(std::chrono::steady_clock::now()) {
        for (const auto& p : plan) {
            if (p.action == TensorAction::Quantize && locate_block_linear(p.name)) planned_[p.name] = p.scheme;
        }
        gptq_ = gptq_options_of(options);
    }

    bool planned(const std::string& name) const { return planned_.count(name) != 0; }

    // Quantizes one linear with its space's statistics; returns the
    // dequantized weights (what the model will compute with).
    std::vector<float> quantize(const std::string& name, const float* w, int64_t rows, int64_t cols,
                                const ActivationStatistics& stats) {
        const QuantScheme& scheme = planned_.at(name);
        if (stats.dim != cols) fail_in({"", name, ""}, "statistics of width ", stats.dim, " for ", cols, " columns");
        CalibratedTensor result;
        if (options_.method == "gptq") {
            GptqResult r = gptq_quantize(w, rows, cols, stats.hessian, scheme, gptq_, name);
            result.packed = std::move(r.packed);
            result.report.damp = r.damp_fraction;
            result.report.dead_inputs = r.dead_columns;
            result.report.fell_back_to_rtn = r.fell_back_to_rtn;
            result.report.fallback_reason = r.fallback_reason;
            if (r.fell_back_to_rtn && log_) log_("warning: " + name + ": GPTQ fell back to RTN: " + r.fallback_reason);
        } else {
            const ImportanceWeighting weighting = options_.imatrix_score == "diagonal"
                                                      ? ImportanceWeighting::Diagonal
                                                      : ImportanceWeighting::GroupHessian;
            result.packed = quantize_importance_weighted(w, rows, cols, stats.hessian, scheme, weighting, name);
        }
        std::vector<float> dequantized = dequantize_tensor(result.packed);
        const std::vector<float> rtn =
            dequantize_tensor(quantize_tensor(borrowed_f32_tensor(w, rows, cols), scheme, QuantMethod::Rtn, nullptr, name));
        const RelativeOutputErrors errors =
            relative_output_errors(w, rtn.data(), dequantized.data(), rows, cols, stats.hessian);
        result.report.weighted_error_rtn = errors.baseline;
        result.report.weighted_error = errors.result;
        result.sqnr_db = sqnr_db_of(w, dequantized);
        if (log_) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
            char line[320];
            std::snprintf(line, sizeof line, "[%.1fs] %s %s %s: weighted error %.3g (rtn %.3g), sqnr %.2f dB", s,
                          name.c_str(), scheme.name().c_str(), options_.method.c_str(), result.report.weighted_error,
                          result.report.weighted_error_rtn, result.sqnr_db);
            log_(line);
        }
        if (sink_) {
            sink_(name, std::move(result));
        } else {
            tensors_[name] = std::move(result);
        }
        return dequantized;
    }

    std::map<std::string, CalibratedTensor> take() { return std::move(tensors_); }

private:
    const QuantizeOptions& options_;
    std::function<void(const std::string&)> log_;
    CalibratedSink sink_;
    std::chrono::steady_clock::time_point start_;
    std::map<std::string, QuantScheme> planned_;
    GptqOptions gptq_;
    std::map<std::string, CalibratedTensor> tensors_;
};

}  // namespace

void record_statistics_outcome(const StatisticsOutcome& outcome, CalibrationSummary& summary) {
    summary.samples = outcome.samples;
    summary.len = outcome.len;
    summary.tokens = outcome.tokens;
    summary.cache = outcome.cache;
    summary.block_seconds = outcome.run.block_seconds;
    summary.warnings.insert(summary.warnings.end(), outcome.warnings.begin(), outcome.warnings.end());
}

CalibratedQuantization quantize_calibrated(const ModelSource& model, const QuantizeOptions& options,
                                           const std::vector<PlannedTensor>& plan,
                                           const std::function<void(const std::string&)>& log,
                                           const CalibratedSink& sink) {
    if (!is_calibrated_method(options.method)) fail_in({"", "", "--method"}, "'", options.method, "' is not calibrated");
    if (!model.tokenizer) fail_in({model.path, "", ""}, "calibration needs the model's tokenizer");
    const auto start = std::chrono::steady_clock::now();
    TensorQuantizer quantizer(options, plan, log, sink);
    CalibratedQuantization out;
    // awq, smoothquant: the scaler takes every space of a block (folds
    // cross spaces); the per-tensor quantizer is not used.
    std::unique_ptr<ScaledBlockQuantizer> scaler;
    std::unique_ptr<BlockWeights> cached_block;  // the cache path's block (no runner weights)
    if (is_channel_scaling_method(options.method)) {
        std::map<std::string, QuantScheme> planned;
        for (const auto& p : plan) {
            if (p.action == TensorAction::Quantize && locate_block_linear(p.name)) planned[p.name] = p.scheme;
        }
        scaler = std::make_unique<ScaledBlockQuantizer>(model, options, std::move(planned), log);
        scaler->set_sink(sink);
    }
    CalibrationDataOptions data;
    data.path = options.calib;
    data.samples = options.calib_samples;
    data.len = options.calib_len;
    data.seed = options.seed;

    if (options.sequential_calibration()) {
        // Sequential: each stage sees the already-quantized linears.
        const CalibrationSamples samples = draw_calibration_samples(data, *model.tokenizer);
        for (const auto& w : samples.warnings) {
            out.summary.warnings.push_back(w);
            if (log) log("warning: " + w);
        }
        RunnerOptions runner;
        runner.sequential = true;
        runner.correct_upstream = options.correct_upstream;
        runner.correction_damping.fraction = options.damp;
        runner.log = log;
        const RunnerReport report = run_calibration(
            model, samples, runner, [&](InputSpace space, const ActivationStatistics& stats, BlockWeights& block) {
                if (scaler) return scaler->on_space(space, stats, block);
                for (const std::string& suffix : input_space_linears(space)) {
                    const std::string name = block.tensor_name(suffix);
                    if (!quantizer.planned(name)) continue;
                    // In place: the runner's linears point into this buffer.
                    std::vector<float>& w = block.weight(suffix);
                    const std::vector<float> q =
                        quantizer.quantize(name, w.data(), block.rows(suffix), block.cols(suffix), stats);
                    std::copy(q.begin(), q.end(), w.begin());
                }
            });
        out.summary.samples = samples.samples;
        out.summary.len = samples.len;
        out.summary.tokens = report.tokens;
        out.summary.sequential = true;
        out.summary.corrected_linears = report.corrected_linears;
        out.summary.cache = "none";
        out.summary.block_seconds = report.block_seconds;
        out.summary.warnings.insert(out.summary.warnings.end(), report.warnings.begin(), report.warnings.end());
    } else {
        StatisticsRequest request;
        if (!options.calib.empty()) request.data = data;
        request.cache_path = options.calib_cache;
        const StatisticsOutcome outcome = visit_statistics(
            model, request,
            [&](int64_t layer, InputSpace space, const ActivationStatistics& stats) {
                if (scaler) {
                    if (space == InputSpace::AttnInput) cached_block = std::make_unique<BlockWeights>(model, layer);
                    if (!cached_block || cached_block->layer() != layer) {
                        fail_in({options.calib_cache, "", ""}, "statistics of block ", layer, " arrived without its attn_input");
                    }
                    return scaler->on_space(space, stats, *cached_block);
                }
                for (const std::string& suffix : input_space_linears(space)) {
                    const std::string name = layer_tensor_name(layer, suffix);
                    if (!quantizer.planned(name)) continue;
                    const Tensor& t = model.tensors.get(name);
                    const std::vector<float> w = t.to_f32();
                    quantizer.quantize(name, w.data(), t.shape[0], t.shape[1], stats);
                }
            },
            log);
        record_statistics_outcome(outcome, out.summary);
    }
    out.tensors = quantizer.take();
    if (scaler) {
        out.tensors = scaler->take_tensors();
        out.rescaled = scaler->take_rescaled();
    }
    out.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

}  // namespace sparq
