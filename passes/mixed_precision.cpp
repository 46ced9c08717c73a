#include "passes/mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <set>

#include "calibration/calibration_data.h"
#include "calibration/statistics.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "models/llama_reference.h"
#include "models/sparq_model.h"
#include "passes/calibrated_quantize.h"
#include "passes/float_output_error.h"
#include "quant/quantize_tensor.h"

namespace sparq {

namespace {

constexpr const char* kEmbedName = "model.embed_tokens.weight";
constexpr const char* kHeadName = "lm_head.weight";
// Samples (of the drawn calibration samples, in order) run through the
// whole model for the head's statistics: the head's H is a d x d average
// that settles long before the block statistics need all samples.
constexpr int64_t kHeadSamples = 16;
// The programme's table stays under this many byte units per tensor.
constexpr int64_t kMaxUnits = int64_t{1} << 18;

struct SchemeChoice {
    int bits;
    int64_t group;
};
// Smallest first; the 2-bit schemes keep small groups because their error
// explodes on wide groups (stories260K int2 g128 is unusable).
const std::vector<SchemeChoice> kLinearChoices = {{2, 32}, {2, 64}, {3, 32}, {3, 64}, {3, 128},
                                                  {4, 32}, {4, 64}, {4, 128}, {8, 0}};
// Tables read one row per token (embedding) or feed the logits directly
// (head): no 2-bit, and FP16 as the top.
const std::vector<SchemeChoice> kTableChoices = {{3, 32}, {4, 32}, {4, 64}, {4, 128}, {8, 0}};

// One term of a tensor's output error: sum_r row_weight_r * d_r^T H d_r
// (H the identity when empty, row weights 1 when empty) times scale.
struct ErrorTerm {
    std::vector<float> hessian;
    std::vector<double> row_weights;
    double scale = 1;
};

// The terms summed over rows of d = w - q (q null: d = w, the energy).
double weighted_error(const std::vector<float>& w, const float* q, int64_t rows, int64_t cols,
                      const std::vector<ErrorTerm>& terms) {
    double total = 0;
    for (const ErrorTerm& term : terms)
        total += term.scale * float_output_error(w.data(), q, rows, cols, term.hessian, term.row_weights);
    return total;
}

int64_t stored_bytes_packed(const QuantScheme& scheme, int64_t rows, int64_t cols) {
    ModelTensorEntry entry;
    PackedTensor shape_only;  // planes left empty: only the geometry is read
    shape_only.scheme = scheme;
    shape_only.rows = rows;
    shape_only.cols = cols;
    entry.packed = std::move(shape_only);
    return static_cast<int64_t>(stored_entry_bytes(entry));
}

int64_t stored_bytes_dense(int64_t numel, DType dtype) {
    ModelTensorEntry entry;
    entry.dense.dtype = dtype;
    entry.dense.nbytes = static_cast<size_t>(numel) * dtype_size(dtype);
    return static_cast<int64_t>(stored_entry_bytes(entry));
}

// Measures the KL divergence of the model's next-token distributions from
// the full-precision ones when one tensor alone is replaced, on the first
// kProbeSamples calibration samples cut to kProbeLen tokens, every position
// scored. Output errors of different tensors live in different spaces (a
// q_proj error passes a softmax, a down_proj error enters the residual
// stream, the head's is in logits); one such measurement per tensor turns
// its error curve into predicted KL, which is comparable across tensors.
class KlProbe {
public:
    static constexpr int64_t kProbeSamples = 8;
    static constexpr int64_t kProbeLen = 128;

    KlProbe(const ModelSource& model, const CalibrationSamples& samples) : model_(model) {
        samples_ = std::min(samples.samples, kProbeSamples);
        len_ = std::min(samples.len, kProbeLen);
        for (int64_t s = 0; s < samples_; ++s) tokens_.insert(tokens_.end(), samples.sample(s), samples.sample(s) + len_);
        reference_ = log_probabilities(model.tensors);
    }

    double kl_with(const std::string& name, const Shape& shape, std::vector<float> values) const {
        TensorMap replaced(model_.tensors.source());
        for (const auto& [n, t] : model_.tensors.all()) {
            replaced.add(n, n == name ? make_tensor_from_f32(shape, values, DType::F32) : t);
        }
        const std::vector<float> q = log_probabilities(replaced);
        const size_t vocab = static_cast<size_t>(model_.config.vocab_size);
        double total = 0;
        for (size_t row = 0; row < q.size() / vocab; ++row) {
            const float* p = reference_.data() + row * vocab;
            const float* r = q.data() + row * vocab;
            double kl = 0;
            for (size_t v = 0; v < vocab; ++v) kl += std::exp(static_cast<double>(p[v])) * (static_cast<double>(p[v]) - r[v]);
            total += kl;
        }
        return std::max(0.0, total / static_cast<double>(q.size() / vocab));
    }

private:
    std::vector<float> log_probabilities(const TensorMap& tensors) const {
        const LlamaReference reference(model_.config, tensors);
        const int64_t vocab = model_.config.vocab_size;
        std::vector<float> out(static_cast<size_t>(samples_ * len_ * vocab));
        for (int64_t s = 0; s < samples_; ++s) {
            auto state = reference.new_state(len_);
            float* logits = out.data() + s * len_ * vocab;
            reference.forward(*state, std::span<const int32_t>(tokens_.data() + s * len_, static_cast<size_t>(len_)), logits, true);
            for (int64_t t = 0; t < len_; ++t) {
                float* row = logits + t * vocab;
                const double top = *std::max_element(row, row + vocab);
                double sum = 0;
                for (int64_t v = 0; v < vocab; ++v) sum += std::exp(static_cast<double>(row[v]) - top);
                const double log_sum = top + std::log(sum);
                for (int64_t v = 0; v < vocab; ++v) row[v] = static_cast<float>(static_cast<double>(row[v]) - log_sum);
            }
        }
        return out;
    }

    const ModelSource& model_;
    int64_t samples_ = 0, len_ = 0;
    std::vector<int32_t> tokens_;
    std::vector<float> reference_;
};

// The candidate whose KL the probe measures: a 3-bit one, where errors are
// large enough to measure and the choice between widths is made.
bool is_probe_candidate(const MixedCandidate& c, int64_t cols) {
    return c.action == TensorAction::Quantize && c.scheme.bits == 3 && (c.scheme.group == 64 || cols <= 64 || c.scheme.group == 32);
}

// The candidates of a tensor with their bytes and output errors; with a
// probe, the errors are scaled into predicted KL by one measurement.
MixedTensorCandidates evaluate_candidates(const std::string& name, const Tensor& tensor, bool is_table,
                                          bool symmetric, QuantMethod method, bool weighted_search,
                                          const std::vector<ErrorTerm>& terms, const KlProbe* probe) {
    const int64_t rows = tensor.shape[0], cols = tensor.shape[1];
    const std::vector<float> w = tensor.to_f32();
    MixedTensorCandidates out;
    out.name = name;
    out.energy = weighted_error(w, nullptr, rows, cols, terms);
    // diag(H) of the first term weights the clip search per input column.
    std::vector<float> importance;
    if (weighted_search && !terms.empty() && !terms[0].hessian.empty()) {
        importance.resize(static_cast<size_t>(cols));
        for (int64_t c = 0; c < cols; ++c) {
            importance[static_cast<size_t>(c)] = std::max(0.0f, terms[0].hessian[static_cast<size_t>(c * cols + c)]);
        }
    }
    std::set<std::pair<int, int64_t>> seen;  // (bits, effective group span)
    for (const SchemeChoice& choice : is_table ? kTableChoices : kLinearChoices) {
        QuantScheme scheme;
        scheme.bits = choice.bits;
        scheme.group = choice.group;
        scheme.symmetric = symmetric;
        // A group as wide as the row is the per-channel scheme's bytes and values.
        const int64_t span = scheme.group == 0 ? cols : std::min(scheme.group, cols);
        if (!seen.insert({scheme.bits, span}).second) continue;
        const PackedTensor packed = quantize_tensor(tensor, scheme, method, importance.empty() ? nullptr : &importance, name);
        const std::vector<float> q = dequantize_tensor(packed);
        MixedCandidate c;
        c.scheme = scheme;
        c.bytes = stored_bytes_packed(scheme, rows, cols);
        c.output_error = weighted_error(w, q.data(), rows, cols, terms);
        c.error = c.output_error;
        if (probe && out.probe_kl < 0 && is_probe_candidate(c, cols) && c.output_error > 0) {
            out.probe_kl = probe->kl_with(name, tensor.shape, q);
            out.probe_error = c.output_error;
        }
        out.candidates.push_back(c);
    }
    if (is_table) {
        std::vector<float> q(w.size());
        for (size_t i = 0; i < w.size(); ++i) q[i] = fp16_to_fp32(fp32_to_fp16(w[i]));
        MixedCandidate c;
        c.action = TensorAction::KeepF16;
        c.bytes = stored_bytes_dense(rows * cols, DType::F16);
        c.output_error = weighted_error(w, q.data(), rows, cols, terms);
        c.error = c.output_error;
        out.candidates.push_back(c);
    }
    if (out.probe_kl >= 0) {
        const double gain = out.probe_kl / out.probe_error;
        for (MixedCandidate& c : out.candidates) c.error = gain * c.output_error;
    }
    std::stable_sort(out.candidates.begin(), out.candidates.end(),
                     [](const MixedCandidate& a, const MixedCandidate& b) { return a.bytes < b.bytes; });
    return out;
}

// What the embedding and head errors are weighted with.
struct TableStatistics {
    std::vector<double> token_frequency;  // vocab; empty: uniform
    std::vector<float> head_hessian;      // hidden x hidden; empty: isotropic
};

// Token frequencies of all drawn samples and the mean x x^T of the final
// normed hidden states (what the head multiplies) over the first
// kHeadSamples samples, from the full-precision reference forward.
TableStatistics table_statistics(const ModelSource& model, const CalibrationSamples& samples) {
    const ModelConfig& config = model.config;
    const int64_t d = config.hidden_size, vocab = config.vocab_size, len = samples.len;
    TableStatistics out;
    std::vector<double> counts(static_cast<size_t>(vocab), 0.0);
    for (int32_t id : samples.tokens) {
        if (id < 0 || id >= vocab) fail_in({model.path, "", "calibration"}, "token id ", id, " outside the vocabulary");
        counts[static_cast<size_t>(id)] += 1;
    }
    // Half a count per token so tokens the sample missed still weigh a little.
    const double total = static_cast<double>(samples.tokens.size()) + 0.5 * static_cast<double>(vocab);
    out.token_frequency.resize(counts.size());
    for (size_t i = 0; i < counts.size(); ++i) out.token_frequency[i] = (counts[i] + 0.5) / total;

    const LlamaReference reference(config, model.tensors);
    const LlamaWeights& weights = reference.weights();
    StatisticsAccumulator accumulator(d, true);
    std::vector<float> x(static_cast<size_t>(len * d)), xn(x.size());
    const float embed_scale = static_cast<float>(config.embedding_multiplier());
    const float logit_scale = static_cast<float>(config.logit_multiplier());
    for (int64_t s = 0; s < std::min(samples.samples, kHeadSamples); ++s) {
        const int32_t* tokens = samples.sample(s);
        for (int64_t t = 0; t < len; ++t) weights.embed->row(tokens[t], x.data() + t * d);
        if (embed_scale != 1.0f) {
            for (float& v : x) v *= embed_scale;
        }
        auto state = reference.new_state(len);
        for (size_t l = 0; l < weights.layers.size(); ++l) reference.forward_block(weights.layers[l], l, *state, len, x.data());
        rms_norm(x.data(), weights.final_norm, len, d, config.rms_norm_eps, xn.data());
        if (logit_scale != 1.0f) {
            for (float& v : xn) v *= logit_scale;
        }
        accumulator.add(xn.data(), len);
    }
    ActivationStatistics stats = accumulator.finish();
    out.head_hessian.assign(stats.hessian.begin(), stats.hessian.end());
    return out;
}

std::vector<float> to_float(const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); }

}  // namespace

std::optional<std::vector<size_t>> solve_mixed_budget(const std::vector<MixedTensorCandidates>& tensors,
                                                      int64_t budget_bytes, int64_t unit) {
    int64_t largest_total = 0, smallest_total = 0;
    for (const auto& t : tensors) {
        if (t.candidates.empty()) fail_in({"", t.name, ""}, "no storage candidate for the mixed-precision plan");
        int64_t largest = 0, smallest = std::numeric_limits<int64_t>::max();
        for (const auto& c : t.candidates) {
            if (c.bytes < 0 || !std::isfinite(c.error)) fail_in({"", t.name, ""}, "candidate with bad bytes or error");
            largest = std::max(largest, c.bytes);
            smallest = std::min(smallest, c.bytes);
        }
        largest_total += largest;
        smallest_total += smallest;
    }
    if (smallest_total > budget_bytes) return std::nullopt;
    if (unit <= 0) {
        // Depends on the candidates only (not on the budget), so a larger
        // budget sees the same rounded sizes and can only do better.
        unit = 64;
        while (largest_total / unit > kMaxUnits) unit *= 2;
    }
    auto units_of = [unit](int64_t bytes) { return (bytes + unit - 1) / unit; };  // rounded up: the budget holds
    const int64_t capacity = std::min(budget_bytes, largest_total) / unit;
    const size_t width = static_cast<size_t>(capacity + 1);
    constexpr double kInfeasible = std::numeric_limits<double>::infinity();
    // best[u]: least error of the tensors so far within u units.
    std::vector<double> best(width, 0.0), next(width);
    std::vector<std::vector<uint8_t>> choice(tensors.size(), std::vector<uint8_t>(width, 0));
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& candidates = tensors[i].candidates;
        if (candidates.size() > 255) fail_in({"", tensors[i].name, ""}, "too many candidates");
        for (size_t u = 0; u < width; ++u) {
            double value = kInfeasible;
            uint8_t pick = 0;
            for (size_t c = 0; c < candidates.size(); ++c) {
                const int64_t cost = units_of(candidates[c].bytes);
                if (cost > static_cast<int64_t>(u)) continue;
                const double v = best[u - static_cast<size_t>(cost)] + candidates[c].error;
                // Strictly better only, ties keep the earlier (smaller) candidate.
                if (v < value || (v == value && candidates[c].bytes < candidates[pick].bytes)) {
                    value = v;
                    pick = static_cast<uint8_t>(c);
                }
            }
            next[u] = value;
            choice[i][u] = pick;
        }
        best.swap(next);
    }
    if (!std::isfinite(best[width - 1])) return std::nullopt;  // rounding up made it infeasible
    std::vector<size_t> picks(tensors.size());
    size_t u = width - 1;
    for (size_t i = tensors.size(); i-- > 0;) {
        picks[i] = choice[i][u];
        u -= static_cast<size_t>(units_of(tensors[i].candidates[picks[i]].bytes));
    }
    return picks;
}

MixedPrecisionPlan plan_mixed_precision(const ModelSource& model, const QuantizeOptions& options,
                                        const std::function<void(const std::string&)>& log, bool write_cache) {
    if (!(options.target_bpw > 0) || !std::isfinite(options.target_bpw)) {
        fail_in({"", "", "--target-bpw"}, "must be a positive number, got ", options.target_bpw);
    }
    MixedPrecisionPlan out;
    out.target_bpw = options.target_bpw;
    // The tensors the plan covers and those it keeps as they are (norms,
    // tensors outside --targets / inside --ignore).
    out.plan = plan_quantization(model, options);
    const bool calibrated = is_calibrated_method(options.method);
    // Tables are quantized with plain RTN under calibrated methods (as
    // quantize_model does), with the method itself otherwise.
    const QuantMethod final_method = calibrated ? QuantMethod::Rtn : parse_quant_method(options.method);
    const bool have_text = !options.calib.empty();
    const bool use_cache = !options.calib_cache.empty() && (write_cache || !have_text);
    const bool with_statistics = have_text || use_cache;
    // The KL probe needs calibration text (token sequences to run).
    const bool probe_kl = have_text && options.mixed_sensitivity == "kl";
    out.sensitivity = with_statistics ? (probe_kl ? "hessian+kl" : "hessian") : "weight";
    const bool tied = model.config.tie_word_embeddings || !model.tensors.has(kHeadName);

    std::map<std::string, MixedTensorCandidates> evaluated;
    std::optional<KlProbe> probe;
    auto is_linear_planned = [&](const std::string& name) {
        for (const auto& p : out.plan) {
            if (p.name == name) return p.action == TensorAction::Quantize;
        }
        return false;
    };
    auto evaluate = [&](const std::string& name, bool is_table, const std::vector<ErrorTerm>& terms, QuantMethod method,
                        bool weighted_search) {
        evaluated[name] = evaluate_candidates(name, model.tensors.get(name), is_table, options.symmetric, method,
                                              weighted_search, terms, probe ? &*probe : nullptr);
        if (log) {
            std::string line = "sensitivity " + name + " (relative output error/predicted loss):";
            const auto& t = evaluated[name];
            for (const auto& c : t.candidates) {
                char part[96];
                std::snprintf(part, sizeof part, " %s %.3g/%.3g", c.action == TensorAction::KeepF16 ? "f16" : c.scheme.name().c_str(),
                              t.energy > 0 ? c.output_error / t.energy : c.output_error, c.error);
                line += part;
            }
            log(line);
        }
    };

    double last_mlp_input_trace = 1;  // per dimension, for the head when only a cache is at hand
    CalibrationDataOptions data;
    data.path = options.calib;
    data.samples = options.calib_samples;
    data.len = options.calib_len;
    data.seed = options.seed;
    std::optional<CalibrationSamples> samples;
    if (have_text) samples = draw_calibration_samples(data, *model.tokenizer);
    if (probe_kl) probe.emplace(model, *samples);
    if (with_statistics) {
        StatisticsRequest request;
        if (have_text) request.data = data;
        if (use_cache) request.cache_path = options.calib_cache;
        const StatisticsOutcome outcome = visit_statistics(
            model, request,
            [&](int64_t layer, InputSpace space, const ActivationStatistics& stats) {
                if (space == InputSpace::MlpInput && stats.dim > 0) {
                    double trace = 0;
                    for (int64_t i = 0; i < stats.dim; ++i) trace += stats.hessian[static_cast<size_t>(i * stats.dim + i)];
                    last_mlp_input_trace = trace / static_cast<double>(stats.dim);
                }
                for (const std::string& suffix : input_space_linears(space)) {
                    const std::string name = layer_tensor_name(layer, suffix);
                    if (!model.tensors.has(name) || !is_linear_planned(name)) continue;
                    ErrorTerm term;
                    term.hessian = to_float(stats.hessian);
                    evaluate(name, false, {term}, calibrated ? QuantMethod::Mse : final_method, calibrated);
                }
            },
            log);
        out.warnings = outcome.warnings;
    }

    // Tables: the embedding's rows weighted by token frequency (its error
    // enters the residual stream once per token), the head's by the final
    // hidden states' H; a tied table carries both.
    ErrorTerm embed_term, head_term;
    const double vocab = static_cast<double>(model.config.vocab_size);
    const double embed_scale = model.config.embedding_multiplier();
    embed_term.scale = embed_scale * embed_scale;
    if (have_text) {
        TableStatistics tables = table_statistics(model, *samples);
        embed_term.row_weights = std::move(tables.token_frequency);
        head_term.hessian = std::move(tables.head_hessian);
    } else {
        // Uniform tokens; an isotropic head input of the energy the last
        // block's normed input has (the final norm's input is one MLP later).
        embed_term.scale /= vocab;
        head_term.scale = with_statistics ? last_mlp_input_trace : 1.0;
        if (with_statistics) out.warnings.push_back("no calibration text: embedding and head errors use uniform tokens and an isotropic head input");
    }

    std::vector<MixedTensorCandidates> choices;
    std::vector<size_t> plan_index;
    int64_t fixed_bytes = 0;
    for (size_t i = 0; i < out.plan.size(); ++i) {
        const PlannedTensor& p = out.plan[i];
        out.n_params += shape_numel(p.shape);
        const bool is_table = p.name == kEmbedName || p.name == kHeadName;
        if (is_table) {
            std::vector<ErrorTerm> terms;
            if (p.name == kEmbedName) terms.push_back(embed_term);
            if (p.name == kHeadName || (tied && p.name == kEmbedName)) terms.push_back(head_term);
            evaluate(p.name, true, terms, final_method, false);
        } else if (p.action == TensorAction::Quantize && !evaluated.count(p.name)) {
            // Not reached by the statistics (no calibration, or a --targets
            // tensor outside the blocks): the plain weight error.
            evaluate(p.name, false, {ErrorTerm{}}, final_method, false);
        }
        if (evaluated.count(p.name)) {
            choices.push_back(std::move(evaluated[p.name]));
            plan_index.push_back(i);
        } else {
            const DType dtype = p.action == TensorAction::KeepF16 ? DType::F16 : DType::F32;
            fixed_bytes += stored_bytes_dense(shape_numel(p.shape), dtype);
        }
    }

    // A hair up before the floor so a target computed from a byte count
    // (e.g. the minimum) gives that count back; the loop below keeps it honest.
    out.budget_bytes =
        static_cast<int64_t>(std::floor(options.target_bpw * static_cast<double>(out.n_params) / 8.0 + 1e-6));
    // The file's figure is computed in double: step down past any rounding
    // that would put 8 * bytes / params a hair above the target.
    while (out.budget_bytes > 0 &&
           8.0 * static_cast<double>(out.budget_bytes) / static_cast<double>(out.n_params) > options.target_bpw) {
        --out.budget_bytes;
    }
    int64_t minimum = fixed_bytes;
    for (const auto& t : choices) minimum += t.candidates.front().bytes;
    out.minimum_bpw = out.n_params ? 8.0 * static_cast<double>(minimum) / static_cast<double>(out.n_params) : 0;
    const auto picks = solve_mixed_budget(choices, out.budget_bytes - fixed_bytes);
    if (!picks) {
        char what[160];
        std::snprintf(what, sizeof what, "a budget of %.4f bits per weight is below the smallest plan: %.4f", options.target_bpw,
                      out.minimum_bpw);
        fail_in({model.path, "", "--target-bpw"}, what,
                " bits per weight is the minimum achievable (every tensor at its smallest candidate, int2 g32 for "
                "block linears, int3 g32 for embedding and head, other tensors as they are)");
    }

    out.predicted_error.assign(out.plan.size(), 0.0);
    out.relative_error.assign(out.plan.size(), 0.0);
    out.planned_bytes = fixed_bytes;
    for (size_t k = 0; k < choices.size(); ++k) {
        const MixedCandidate& c = choices[k].candidates[(*picks)[k]];
        PlannedTensor& p = out.plan[plan_index[k]];
        p.action = c.action;
        p.scheme = c.action == TensorAction::Quantize ? c.scheme : QuantScheme{};
        p.estimated_bytes = c.bytes;
        out.planned_bytes += c.bytes;
        out.predicted_error[plan_index[k]] = c.error;
        out.relative_error[plan_index[k]] = choices[k].energy > 0 ? c.output_error / choices[k].energy : 0;
        out.predicted_loss += c.error;
    }
    // Tensors kept as they are count as the file stores them too.
    for (size_t i = 0; i < out.plan.size(); ++i) {
        PlannedTensor& p = out.plan[i];
        if (std::find(plan_index.begin(), plan_index.end(), i) == plan_index.end()) {
            p.estimated_bytes = stored_bytes_dense(shape_numel(p.shape), p.action == TensorAction::KeepF16 ? DType::F16 : DType::F32);
        }
    }
    out.file_bits_per_weight = out.n_params ? 8.0 * static_cast<double>(out.planned_bytes) / static_cast<double>(out.n_params) : 0;
    if (log) {
        char line[200];
        std::snprintf(line, sizeof line, "mixed precision: %.4f bits per weight planned for a budget of %.4f (minimum %.4f)",
                      out.file_bits_per_weight, out.target_bpw, out.minimum_bpw);
        log(line);
    }
    return out;
}

nlohmann::json mixed_plan_to_json(const MixedPrecisionPlan& plan) {
    nlohmann::json tensors = plan_to_json(plan.plan);
    for (size_t i = 0; i < plan.plan.size(); ++i) {
        tensors[i].erase("sparsity");
        tensors[i]["predicted_error"] = plan.predicted_error[i];
        tensors[i]["relative_error"] = plan.relative_error[i];
    }
    return {{"target_bpw", plan.target_bpw},
            {"budget_bytes", plan.budget_bytes},
            {"planned_bytes", plan.planned_bytes},
            {"file_bits_per_weight", plan.file_bits_per_weight},
            {"minimum_bpw", plan.minimum_bpw},
            {"predicted_loss", plan.predicted_loss},
            {"sensitivity", plan.sensitivity},
            {"warnings", plan.warnings},
            {"tensors", tensors}};
}

}  // namespace sparq
