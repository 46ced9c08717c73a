#include "passes/calibrated_sparsify.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "passes/calibrated_quantize.h"
#include "calibration/block_runner.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "passes/float_output_error.h"
#include "passes/tensor_selection.h"
#include "quant/hessian.h"
#include "quant/quantize_tensor.h"
#include "sparsity/owl.h"
#include "sparsity/scores.h"
#include "sparsity/mask_refit.h"
#include "sparsity/sparsegpt.h"

namespace sparq {

namespace {

// What the pass does to one block linear.
struct Job {
    bool prune = false;
    std::optional<QuantScheme> gptq;  // quantized in the OBS pass
};

std::vector<float> abs_scores(const float* w, int64_t n) {
    std::vector<float> s(w, w + n);
    for (float& v : s) v = std::fabs(v);
    return s;
}

class LinearPruner {
public:
    LinearPruner(const SparsifyOptions& options, const std::vector<SparsePlannedTensor>& plan,
                 const std::function<void(const std::string&)>& log)
        : options_(options), method_(parse_prune_method(options.method, "--method")), target_(options.target()),
          log_(log), start_(std::chrono::steady_clock::now()) {
        const bool gptq = options.quantizes() && options.quant_method == "gptq";
        for (const SparsePlannedTensor& p : plan) {
            if (!locate_block_linear(p.tensor.name)) continue;
            Job job;
            job.prune = p.prune;
            if (gptq && p.tensor.action == TensorAction::Quantize) job.gptq = p.tensor.scheme;
            if (job.prune || job.gptq) jobs_[p.tensor.name] = job;
        }
        solver_.damping.fraction = options.damp;
        solver_.block_size = options.block_size;
        refit_ = options.refit_iterations;
    }

    bool handles(const std::string& name) const { return jobs_.count(name) != 0; }
    bool prunes(const std::string& name) const { return handles(name) && jobs_.at(name).prune; }
    bool needs_hessian() const {
        if (method_ == PruneMethod::SparseGPT || options_.refit_iterations > 0) return true;
        for (const auto& [name, job] : jobs_) {
            if (job.gptq) return true;
        }
        return false;
    }
    void set_layer_sparsity(std::vector<double> s) { layer_sparsity_ = std::move(s); }

    // Prunes (and quantizes) one linear; returns the values the model will
    // compute with.
    const std::vector<float>& process(const std::string& name, int64_t layer, const float* w, int64_t rows,
                                      int64_t cols, const ActivationStatistics& stats) {
        const Job& job = jobs_.at(name);
        if (stats.dim != cols) fail_in({"", name, ""}, "statistics of width ", stats.dim, " for ", cols, " columns");
        SparsityTarget target = target_;
        if (target.kind == SparsityTarget::Kind::Unstructured && !layer_sparsity_.empty()) {
            target.sparsity = layer_sparsity_.at(static_cast<size_t>(layer));
        }
        CalibratedPrunedTensor out;
        // Without H (Wanda alone collects none) the errors are unknown: NaN, null in the report.
        out.report.weighted_error = out.report.weighted_error_rtn = NAN;
        std::optional<SparseGptResult> solved;
        if (!job.prune) {
            PruneMask all;
            all.rows = rows;
            all.cols = cols;
            all.keep.assign(static_cast<size_t>(rows * cols), 1);
            solved = sparsegpt_prune(w, rows, cols, stats.hessian, target, job.gptq, solver_, name, &all);
        } else if (method_ == PruneMethod::SparseGPT && (!job.gptq || refit_ == 0)) {
            // Pruned (and, in joint mode, quantized) in one OBS pass.
            solved = sparsegpt_prune(w, rows, cols, stats.hessian, target, job.gptq, solver_, name);
            if (!job.gptq) refit(name, w, rows, cols, stats.hessian, *solved);
        } else {
            // Float pruning, the refit to its mask (when asked), then GPTQ keeping the mask.
            SparseGptResult pruned;
            if (method_ == PruneMethod::SparseGPT) {
                pruned = sparsegpt_prune(w, rows, cols, stats.hessian, target, std::nullopt, solver_, name);
            } else {
                const std::vector<float> scores = method_ == PruneMethod::Wanda
                                                      ? wanda_scores(w, rows, cols, stats.mean_square, name)
                                                      : abs_scores(w, rows * cols);
                pruned.mask = select_mask(scores.data(), rows, cols, target, name);
                pruned.weights.assign(w, w + rows * cols);
                apply_mask(pruned.mask, pruned.weights.data());
            }
            refit(name, w, rows, cols, stats.hessian, pruned);
            if (job.gptq) {
                // GPTQ keeping the mask. After a refit the kept weights are
                // at the optimum for the mask, so the pruning error's
                // gradient vanishes on every kept position and GPTQ's error
                // adds to it with no cross term: quantizing the refit weights
                // loses nothing by not seeing the original ones.
                solved = sparsegpt_prune(pruned.weights.data(), rows, cols, stats.hessian, target, job.gptq,
                                         solver_, name, &pruned.mask);
                // Neither quantizer wins on every layer (the OBS pass
                // compensates inside a group, the refit exactly on the mask
                // between groups): keep the one with the lower calibration
                // output error against the original weights. The group-wise
                // one only where it takes seconds, not hours.
                if (refit_ > 0 && !pruned.fell_back) {
                    const double cost = quantize_masked_with_refit_cost(rows, cols, job.gptq->group_span(cols), refit_);
                    if (cost <= kMaskedRefitBudget) {
                        SparseGptResult by_groups = quantize_masked_with_refit(
                            w, pruned.weights.data(), rows, cols, stats.hessian, pruned.mask, *job.gptq, solver_, refit_,
                            name);
                        if (hessian_weighted_error(w, by_groups.weights.data(), rows, cols, stats.hessian) <
                            hessian_weighted_error(w, solved->weights.data(), rows, cols, stats.hessian)) {
                            solved = std::move(by_groups);
                        }
                    } else if (log_) {
                        char line[256];
                        std::snprintf(line, sizeof line,
                                      "%s: the group-wise refit quantizer is left out (%.2g multiply-adds, over "
                                      "%.2g); the OBS pass with the mask fixed quantizes it",
                                      name.c_str(), cost, kMaskedRefitBudget);
                        log_(line);
                    }
                }
            } else if (method_ == PruneMethod::SparseGPT) {
                solved = std::move(pruned);
            } else {
                out.weights = std::move(pruned.weights);
                out.mask = std::move(pruned.mask);
            }
        }
        if (solved) {
            out.weights = std::move(solved->weights);
            out.mask = std::move(solved->mask);
            out.packed = std::move(solved->packed);
            out.report.damp = solved->damp_fraction;
            out.report.dead_inputs = solved->dead_columns;
            out.report.fell_back_to_rtn = solved->fell_back;
            out.report.fallback_reason = solved->fallback_reason;
            if (solved->fell_back && log_) {
                log_("warning: " + name + ": the Hessian could not be factored, no reconstruction: " +
                     solved->fallback_reason);
            }
        }
        if (!stats.hessian.empty()) report_errors(w, rows, cols, stats.hessian, target, job, name, out);
        if (log_) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
            char line[320];
            std::snprintf(line, sizeof line, "[%.1fs] %s %s %s%s: weighted error %.3g (magnitude%s %.3g)", s,
                          name.c_str(), options_.method.c_str(), job.prune ? target.name().c_str() : "dense",
                          job.gptq ? " + gptq" : "", out.report.weighted_error, job.gptq ? " + rtn" : "",
                          out.report.weighted_error_rtn);
            log_(line);
        }
        auto [it, inserted] = tensors_.insert_or_assign(name, std::move(out));
        return it->second.weights;
    }

    std::map<std::string, CalibratedPrunedTensor> take() { return std::move(tensors_); }

private:
    // Moves the kept weights of a float pruning result to the optimum for
    // its mask (sparsity/mask_refit.h); nothing when off or when SparseGPT
    // fell back for want of a usable H.
    void refit(const std::string& name, const float* w, int64_t rows, int64_t cols, const std::vector<double>& hessian,
               SparseGptResult& pruned) const {
        if (refit_ == 0 || pruned.fell_back || hessian.empty()) return;
        const MaskRefitResult r =
            refit_kept_weights(w, pruned.weights.data(), rows, cols, pruned.mask, hessian, {refit_, options_.damp}, name);
        if (log_) {
            char line[240];
            std::snprintf(line, sizeof line, "%s: kept weights refit to the mask, damped output error %.4g -> %.4g",
                          name.c_str(), r.error_before, r.error_after);
            log_(line);
        }
    }

    // H-weighted errors relative to the layer's weighted energy: the
    // method's result, and magnitude pruning (+ RTN when quantizing) at the
    // same target as the point of comparison.
    void report_errors(const float* w, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                       const SparsityTarget& target, const Job& job, const std::string& name,
                       CalibratedPrunedTensor& out) const {
        std::vector<float> baseline(w, w + rows * cols);
        if (job.prune) {
            const std::vector<float> scores = abs_scores(w, rows * cols);
            apply_mask(select_mask(scores.data(), rows, cols, target, name), baseline.data());
        }
        if (job.gptq) {
            baseline = dequantize_tensor(quantize_tensor(make_f32_tensor({rows, cols}, std::move(baseline)), *job.gptq,
                                                         QuantMethod::Rtn, nullptr, name));
        }
        const RelativeOutputErrors errors =
            relative_output_errors(w, baseline.data(), out.weights.data(), rows, cols, hessian);
        out.report.weighted_error_rtn = errors.baseline;
        out.report.weighted_error = errors.result;
    }

    const SparsifyOptions& options_;
    PruneMethod method_;
    SparsityTarget target_;
    std::function<void(const std::string&)> log_;
    std::chrono::steady_clock::time_point start_;
    std::map<std::string, Job> jobs_;
    SparseGptOptions solver_;
    int refit_ = 0;
    std::vector<double> layer_sparsity_;
    std::map<std::string, CalibratedPrunedTensor> tensors_;
};

CalibrationDataOptions data_options(const SparsifyOptions& o) {
    CalibrationDataOptions d;
    d.path = o.calib;
    d.samples = o.calib_samples;
    d.len = o.calib_len;
    d.seed = o.seed;
    return d;
}

StatisticsRequest statistics_request(const SparsifyOptions& o) {
    StatisticsRequest request;
    if (!o.calib.empty()) request.data = data_options(o);
    request.cache_path = o.calib_cache;
    return request;
}

// OWL's first pass: each block's outlier ratio of Wanda scores over the
// linears it prunes, from full-precision statistics.
std::vector<double> owl_outlier_ratios(const ModelSource& model, const SparsifyOptions& options,
                                       const LinearPruner& pruner,
                                       const std::function<void(const std::string&)>& log) {
    std::vector<double> ratios(static_cast<size_t>(model.config.num_layers), 0.0);
    OutlierRatio tally;
    std::vector<std::vector<float>> block_scores;
    visit_statistics(
        model, statistics_request(options),
        [&](int64_t layer, InputSpace space, const ActivationStatistics& stats) {
            for (const std::string& suffix : input_space_linears(space)) {
                const std::string name = layer_tensor_name(layer, suffix);
                if (!pruner.prunes(name)) continue;
                const Tensor& t = model.tensors.get(name);
                const std::vector<float> w = t.to_f32();
                block_scores.push_back(wanda_scores(w.data(), t.shape[0], t.shape[1], stats.mean_square, name));
                tally.add_to_mean(block_scores.back().data(), static_cast<int64_t>(block_scores.back().size()));
            }
            if (space != kInputSpaces.back()) return;
            for (const auto& s : block_scores) tally.count(s.data(), static_cast<int64_t>(s.size()), options.owl_m);
            ratios[static_cast<size_t>(layer)] = tally.ratio();
            tally = OutlierRatio{};
            block_scores.clear();
        },
        log);
    return ratios;
}

}  // namespace

CalibratedSparsification sparsify_calibrated(const ModelSource& model, const SparsifyOptions& options,
                                             const std::vector<SparsePlannedTensor>& plan,
                                             const std::function<void(const std::string&)>& log) {
    if (!model.tokenizer && !options.calib.empty()) fail_in({model.path, "", ""}, "calibration needs the model's tokenizer");
    const auto start = std::chrono::steady_clock::now();
    LinearPruner pruner(options, plan, log);
    CalibratedSparsification out;
    const SparsityTarget target = options.target();
    const CalibrationDataOptions data = data_options(options);
    if (!options.calib.empty() && options.calib_len > model.config.max_position_embeddings) {
        const std::string w = "--calib-len " + std::to_string(options.calib_len) +
                              " exceeds the model's max_position_embeddings " +
                              std::to_string(model.config.max_position_embeddings);
        out.summary.warnings.push_back(w);
        if (log) log("warning: " + w);
    }
    if (target.kind == SparsityTarget::Kind::Unstructured) {
        out.layer_sparsity.assign(static_cast<size_t>(model.config.num_layers), target.sparsity);
        if (options.layer_ratios == "owl") {
            out.outlier_ratios = owl_outlier_ratios(model, options, pruner, log);
            out.layer_sparsity = owl_layer_sparsities(out.outlier_ratios, target.sparsity,
                                                      OwlOptions{options.owl_m, options.owl_lambda});
            if (log) {
                for (size_t l = 0; l < out.layer_sparsity.size(); ++l) {
                    char line[160];
                    std::snprintf(line, sizeof line, "owl: block %zu outlier ratio %.4f%% -> sparsity %.4f", l,
                                  100.0 * out.outlier_ratios[l], out.layer_sparsity[l]);
                    log(line);
                }
            }
        }
        pruner.set_layer_sparsity(out.layer_sparsity);
    }

    if (options.calib_cache.empty()) {
        // Sequential: each stage sees the already-pruned linears.
        const CalibrationSamples samples = draw_calibration_samples(data, *model.tokenizer);
        for (const auto& w : samples.warnings) {
            out.summary.warnings.push_back(w);
            if (log) log("warning: " + w);
        }
        RunnerOptions runner;
        runner.sequential = true;
        runner.collect_hessian = pruner.needs_hessian();
        runner.correct_upstream = options.correct_upstream;
        runner.correction_damping.fraction = options.damp;
        runner.log = log;
        const RunnerReport report = run_calibration(
            model, samples, runner, [&](InputSpace space, const ActivationStatistics& stats, BlockWeights& block) {
                for (const std::string& suffix : input_space_linears(space)) {
                    const std::string name = block.tensor_name(suffix);
                    if (!pruner.handles(name)) continue;
                    // In place: the runner's linears point into this buffer.
                    std::vector<float>& w = block.weight(suffix);
                    const std::vector<float>& result =
                        pruner.process(name, block.layer(), w.data(), block.rows(suffix), block.cols(suffix), stats);
                    std::copy(result.begin(), result.end(), w.begin());
                }
            });
        out.summary.samples = samples.samples;
        out.summary.len = samples.len;
        out.summary.tokens = report.tokens;
        out.summary.sequential = true;
        out.summary.corrected_linears = report.corrected_linears;
        out.summary.cache = "none";
        out.summary.block_seconds = report.block_seconds;
        // The runner's own warnings (already logged by it) belong in the
        // summary too, as record_statistics_outcome gives the cached path.
        out.summary.warnings.insert(out.summary.warnings.end(), report.warnings.begin(), report.warnings.end());
    } else {
        const StatisticsOutcome outcome = visit_statistics(
            model, statistics_request(options),
            [&](int64_t layer, InputSpace space, const ActivationStatistics& stats) {
                for (const std::string& suffix : input_space_linears(space)) {
                    const std::string name = layer_tensor_name(layer, suffix);
                    if (!pruner.handles(name)) continue;
                    const Tensor& t = model.tensors.get(name);
                    const std::vector<float> w = t.to_f32();
                    pruner.process(name, layer, w.data(), t.shape[0], t.shape[1], stats);
                }
            },
            log);
        record_statistics_outcome(outcome, out.summary);
    }
    out.tensors = pruner.take();
    out.summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

}  // namespace sparq
