#include "passes/quantize_model.h"

#include <chrono>
#include <cmath>
#include <map>
#include <set>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "passes/calibrated_quantize.h"
#include "passes/method_registry.h"
#include "passes/mixed_precision.h"
#include "passes/tensor_selection.h"
#include "quant/bits.h"

namespace sparq {

QuantScheme QuantizeOptions::linear_scheme() const {
    QuantScheme s;
    s.bits = bits;
    s.group = group >= 0 ? group : (bits >= 8 ? 0 : 128);
    s.symmetric = symmetric;
    return s;
}

std::optional<QuantScheme> QuantizeOptions::table_scheme(int table_bits) const {
    if (table_bits >= 16) return std::nullopt;
    QuantScheme s;
    s.bits = table_bits;
    s.symmetric = true;
    const QuantScheme linear = linear_scheme();
    s.group = table_bits >= 8 ? 0 : (linear.group > 0 ? linear.group : 32);
    return s;
}

void QuantizeOptions::validate() const {
    auto check_bits = [](int b, const char* flag, bool allow16) {
        if (b != 8 && b != 4 && b != 3 && b != 2 && !(allow16 && b == 16)) {
            fail_in({"", "", flag}, "must be 8, 4, 3 or 2", allow16 ? " (or 16 to keep FP16)" : "", ", got ", b);
        }
    };
    check_bits(bits, "--bits", false);
    check_bits(embed_bits, "--embed-bits", true);
    check_bits(head_bits, "--head-bits", true);
    validate_quant_scheme(linear_scheme());
    if (target_bpw != 0 && !(target_bpw > 0 && std::isfinite(target_bpw))) {
        fail_in({"", "", "--target-bpw"}, "must be a positive number of bits per weight, got ", target_bpw);
    }
    if (mixed_sensitivity != "kl" && mixed_sensitivity != "hessian") {
        fail_in({"", "", "--mixed-sensitivity"}, "must be kl or hessian, got '", mixed_sensitivity, "'");
    }
    if (act_bits != 0 && act_bits != 8) fail_in({"", "", "--act-bits"}, "must be 8 (int8 activations), got ", act_bits);
    if (smooth_weights != "rtn" && smooth_weights != "gptq") {
        fail_in({"", "", "--smooth-weights"}, "must be rtn or gptq, got '", smooth_weights, "'");
    }
    if (smooth_weights != "rtn" && method != "smoothquant") {
        fail_in({"", "", "--smooth-weights"}, "applies to --method smoothquant, not '", method, "'");
    }
    if (require_method(PassKind::Quantize, method, "--method").calibrated) {
        if (awq_grid < 1 || awq_grid > 1000) fail_in({"", "", "--awq-grid"}, "must be 1 to 1000 intervals, got ", awq_grid);
        if (awq_score != "clip" && awq_score != "rtn" && awq_score != "block") {
            fail_in({"", "", "--awq-score"}, "must be clip, block or rtn, got '", awq_score, "'");
        }
        if (!(smooth_alpha >= 0 && smooth_alpha <= 1)) {
            fail_in({"", "", "--smooth-alpha"}, "must be in [0, 1], got ", smooth_alpha);
        }
        if (calib.empty() && calib_cache.empty()) {
            fail_in({"", "", "--calib"}, "method '", method, "' needs calibration data: --calib FILE or --calib-cache FILE");
        }
        if (calib_samples < 1) fail_in({"", "", "--calib-samples"}, "must be at least 1, got ", calib_samples);
        if (calib_len < 2) fail_in({"", "", "--calib-len"}, "must be at least 2, got ", calib_len);
        if (!(damp > 0) || !std::isfinite(damp)) fail_in({"", "", "--damp"}, "must be a positive number, got ", damp);
        if (gptq_params != "rtn" && gptq_params != "mse" && gptq_params != "weighted" && gptq_params != "hessian") {
            fail_in({"", "", "--gptq-params"}, "must be rtn, mse, weighted or hessian, got '", gptq_params, "'");
        }
        if (imatrix_score != "block" && imatrix_score != "diagonal") {
            fail_in({"", "", "--imatrix-score"}, "must be block or diagonal, got '", imatrix_score, "'");
        }
    }
}

void QuantizeOptions::check_options_read() const {
    const QuantizeOptions d;
    const MethodInfo& m = require_method(PassKind::Quantize, method, "--method");
    // Mixed precision measures its sensitivities on calibration text too.
    const bool reads_calibration = m.calibrated || target_bpw > 0;
    const bool reads_text = reads_calibration && !calib.empty();
    const bool gptq_weights = method == "gptq" || (method == "smoothquant" && smooth_weights == "gptq");
    const bool sequential = sequential_calibration();
    std::string calibrated_methods;
    for (const MethodInfo& x : registered_methods(PassKind::Quantize)) {
        if (x.calibrated) calibrated_methods += (calibrated_methods.empty() ? "--method " : ", ") + x.name;
    }
    const std::string calibration_readers = calibrated_methods + " or --target-bpw";
    const std::string text_readers = "--calib FILE with " + calibration_readers;
    const std::string gptq_readers = "--method gptq and --method smoothquant --smooth-weights gptq";
    refuse_unread_options(
        {{"--calib", !calib.empty(), reads_calibration, calibration_readers},
         {"--calib-cache", !calib_cache.empty(), reads_calibration, calibration_readers},
         {"--calib-samples", calib_samples != d.calib_samples, reads_text, text_readers},
         {"--calib-len", calib_len != d.calib_len, reads_text, text_readers},
         {"--seed", seed != d.seed, reads_text, text_readers},
         // The upstream correction's ridge is --damp x mean diag(H) too.
         {"--damp", damp != d.damp, gptq_weights || (correct_upstream && sequential),
          gptq_readers + ", or --correct-upstream"},
         {"--correct-upstream", correct_upstream != d.correct_upstream, sequential,
          "--method gptq, awq or smoothquant without --calib-cache (the sequential runner)"},
         {"--no-act-order", act_order != d.act_order, gptq_weights, gptq_readers},
         {"--gptq-params", gptq_params != d.gptq_params, gptq_weights, gptq_readers},
         {"--imatrix-score", imatrix_score != d.imatrix_score, m.reads("imatrix-score"),
          methods_reading(PassKind::Quantize, "imatrix-score")},
         {"--awq-grid", awq_grid != d.awq_grid, m.reads("awq-grid"), methods_reading(PassKind::Quantize, "awq-grid")},
         {"--awq-score", awq_score != d.awq_score, m.reads("awq-score"), methods_reading(PassKind::Quantize, "awq-score")},
         {"--smooth-alpha", smooth_alpha != d.smooth_alpha, m.reads("smooth-alpha"),
          methods_reading(PassKind::Quantize, "smooth-alpha")},
         {"--mixed-sensitivity", mixed_sensitivity != d.mixed_sensitivity, target_bpw > 0, "--target-bpw"}},
        "--method " + method + (target_bpw > 0 ? " --target-bpw" : ""));
}

QuantizeOptions parse_quantize_options(const nlohmann::json& j) {
    static const std::set<std::string> known = {"bits", "group", "symmetric", "method", "targets",
                                                "ignore", "embed_bits", "head_bits", "calib", "calib_samples",
                                                "calib_len", "seed", "calib_cache", "damp", "act_order", "gptq_params", "correct_upstream",
                                                "imatrix_score", "target_bpw", "mixed_sensitivity",
                                                "awq_grid", "awq_score", "smooth_alpha", "smooth_weights", "act_bits"};
    if (!j.is_object()) fail_in({"", "", "quantize"}, "options must be an object");
    for (const auto& [key, value] : j.items()) {
        if (!known.count(key)) fail_in({"", "", key}, "unknown option of the quantize pass");
    }
    QuantizeOptions o;
    try {
        if (j.contains("bits")) o.bits = j["bits"].get<int>();
        if (j.contains("group")) o.group = j["group"].get<int64_t>();
        if (j.contains("symmetric")) o.symmetric = j["symmetric"].get<bool>();
        if (j.contains("method")) o.method = j["method"].get<std::string>();
        if (j.contains("targets")) o.targets = j["targets"].get<std::string>();
        if (j.contains("ignore")) o.ignore = j["ignore"].get<std::string>();
        if (j.contains("embed_bits")) o.embed_bits = j["embed_bits"].get<int>();
        if (j.contains("head_bits")) o.head_bits = j["head_bits"].get<int>();
        if (j.contains("calib")) o.calib = j["calib"].get<std::string>();
        if (j.contains("calib_samples")) o.calib_samples = calibration_samples_from_json(j["calib_samples"], "calib_samples");
        if (j.contains("calib_len")) o.calib_len = j["calib_len"].get<int64_t>();
        if (j.contains("seed")) o.seed = j["seed"].get<uint64_t>();
        if (j.contains("calib_cache")) o.calib_cache = j["calib_cache"].get<std::string>();
        if (j.contains("damp")) o.damp = j["damp"].get<double>();
        if (j.contains("act_order")) o.act_order = j["act_order"].get<bool>();
        if (j.contains("correct_upstream")) o.correct_upstream = j["correct_upstream"].get<bool>();
        if (j.contains("gptq_params")) o.gptq_params = j["gptq_params"].get<std::string>();
        if (j.contains("imatrix_score")) o.imatrix_score = j["imatrix_score"].get<std::string>();
        if (j.contains("target_bpw")) o.target_bpw = j["target_bpw"].get<double>();
        if (j.contains("mixed_sensitivity")) o.mixed_sensitivity = j["mixed_sensitivity"].get<std::string>();
        if (j.contains("awq_grid")) o.awq_grid = j["awq_grid"].get<int>();
        if (j.contains("awq_score")) o.awq_score = j["awq_score"].get<std::string>();
        if (j.contains("smooth_alpha")) o.smooth_alpha = j["smooth_alpha"].get<double>();
        if (j.contains("smooth_weights")) o.smooth_weights = j["smooth_weights"].get<std::string>();
        if (j.contains("act_bits")) o.act_bits = j["act_bits"].get<int>();
    } catch (const nlohmann::json::exception& e) {
        fail_in({"", "", "quantize"}, "an option has the wrong type: ", e.what());
    }
    o.validate();
    o.check_options_read();
    return o;
}

std::vector<PlannedTensor> plan_quantization(const ModelSource& model, const QuantizeOptions& options) {
    options.validate();
    const TensorSelection selection(options.targets, options.ignore);
    std::vector<PlannedTensor> plan;
    for (const auto& [name, t] : model.tensors.all()) {
        PlannedTensor p;
        p.name = name;
        p.shape = t.shape;
        std::optional<QuantScheme> scheme;
        const bool is_table = name == "model.embed_tokens.weight" || name == "lm_head.weight";
        if (is_table) {
            const int b = name == "lm_head.weight" ? options.head_bits : options.embed_bits;
            scheme = options.table_scheme(b);
            if (!scheme) p.action = TensorAction::KeepF16;
        } else if (t.shape.size() == 2 && selection.selected(name)) {
            scheme = options.linear_scheme();
        }
        if (scheme) {
            p.action = TensorAction::Quantize;
            p.scheme = *scheme;
            p.estimated_bytes = static_cast<int64_t>(packed_geometry(p.scheme, t.shape[0], t.shape[1]).total_bytes);
        } else {
            p.estimated_bytes = t.numel() * (p.action == TensorAction::KeepF16 ? 2 : 4);
        }
        plan.push_back(std::move(p));
    }
    return plan;
}

nlohmann::json plan_to_json(const std::vector<PlannedTensor>& plan) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : plan) {
        nlohmann::json e = {{"name", p.name}, {"shape", p.shape}, {"estimated_bytes", p.estimated_bytes}};
        if (p.action == TensorAction::Quantize) {
            e["scheme"] = p.scheme.name();
            e["bits"] = p.scheme.bits;
            e["group"] = p.scheme.group;
        } else {
            e["scheme"] = p.action == TensorAction::KeepF16 ? "f16" : "f32";
            e["bits"] = p.action == TensorAction::KeepF16 ? 16 : 32;
        }
        e["sparsity"] = 0.0;
        out.push_back(e);
    }
    return out;
}

namespace {

Tensor to_dtype(const Tensor& t, DType dtype) {
    if (t.dtype == dtype) return t;
    return make_tensor_from_f32(t.shape, t.to_f32(), dtype);
}

}  // namespace

QuantizeResult quantize_model(const ModelSource& model, const QuantizeOptions& options,
                              const std::function<void(const std::string&)>& log,
                              const std::function<void(ModelTensorEntry&&)>& sink) {
    // Mixed precision chooses each tensor's scheme first (passes/mixed_precision.h).
    std::optional<MixedPrecisionPlan> mixed;
    if (options.target_bpw > 0) mixed = plan_mixed_precision(model, options, log);
    const auto plan = mixed ? mixed->plan : plan_quantization(model, options);
    // Calibrated methods quantize the planned block linears first, one
    // block at a time; the loop below then takes their results.
    const bool calibrated = is_calibrated_method(options.method);
    const QuantMethod method = calibrated ? QuantMethod::Rtn : parse_quant_method(options.method);
    QuantizeResult result;
    int64_t linear_params = 0, linear_bytes = 0;
    size_t done = 0;
    const auto start = std::chrono::steady_clock::now();
    CalibratedQuantization calibrated_tensors;
    // One planned tensor into its entry and report, then to the sink (or
    // the result). `calibrated` holds a calibrated method's result.
    const auto emit = [&](const PlannedTensor& p, CalibratedTensor* from_calibration) {
        const Tensor& source = model.tensors.get(p.name);
        result.n_params += source.numel();
        result.source_weight_bytes += stored_tensor_bytes(model, p.name);
        ModelTensorEntry entry;
        entry.name = p.name;
        QuantizedTensorReport report;
        report.name = p.name;
        if (p.action == TensorAction::Quantize) {
            PackedTensor packed;
            if (from_calibration) {
                packed = std::move(from_calibration->packed);
                report.sqnr_db = from_calibration->sqnr_db;
                report.calibration = from_calibration->report;
            } else {
                QuantizationError error;
                packed = quantize_tensor(source, p.scheme, method, nullptr, p.name, {}, &error);
                report.sqnr_db = error.sqnr_db();
            }
            report.bits = p.scheme.bits;
            report.group = p.scheme.group;
            report.symmetric = p.scheme.symmetric;
            // Only the block linears run as products in the runtime with quantized activations.
            if (options.activation_bits() == 8 && is_block_linear(p.name)) entry.act_bits = 8;
            if (is_block_linear(p.name)) {
                linear_params += source.numel();
                linear_bytes += static_cast<int64_t>(packed_geometry(p.scheme, packed.rows, packed.cols).total_bytes);
            }
            entry.packed = std::move(packed);
        } else {
            const DType dtype = p.action == TensorAction::KeepF16 ? DType::F16 : DType::F32;
            if (auto folded = calibrated_tensors.rescaled.find(p.name); folded != calibrated_tensors.rescaled.end()) {
                // A norm, bias or unplanned linear a channel-scaling fold changed.
                entry.dense = make_tensor_from_f32(source.shape, std::move(folded->second), dtype);
            } else {
                entry.dense = to_dtype(source, dtype);
            }
            report.bits = p.action == TensorAction::KeepF16 ? 16 : 32;
            report.sqnr_db = INFINITY;
            if (is_block_linear(p.name)) {
                linear_params += source.numel();
                linear_bytes += static_cast<int64_t>(entry.dense.nbytes);
            }
        }
        result.weight_bytes += static_cast<int64_t>(stored_entry_bytes(entry));
        if (sink) {
            sink(std::move(entry));
        } else {
            result.tensors.push_back(std::move(entry));
        }
        result.reports.push_back(report);
        ++done;
        if (log && (p.action == TensorAction::Quantize)) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            char line[256];
            std::snprintf(line, sizeof line, "[%.1fs] %zu/%zu %s %s sqnr %.2f dB", s, done, plan.size(), p.name.c_str(),
                          p.scheme.name().c_str(), report.sqnr_db);
            log(line);
        }
    };
    // A calibrated method with a sink streams its tensors in the order it
    // finishes them (block by block); everything else follows in plan order.
    std::set<std::string> emitted;
    if (calibrated) {
        std::map<std::string, const PlannedTensor*> by_name;
        for (const auto& p : plan) by_name[p.name] = &p;
        CalibratedSink stream;
        if (sink) {
            stream = [&](const std::string& name, CalibratedTensor&& t) {
                emit(*by_name.at(name), &t);
                emitted.insert(name);
            };
        }
        calibrated_tensors = quantize_calibrated(model, options, plan, log, stream);
        result.calibration = calibrated_tensors.summary;
    }
    for (const auto& p : plan) {
        if (emitted.count(p.name)) continue;
        auto found = calibrated_tensors.tensors.find(p.name);
        emit(p, p.action == TensorAction::Quantize && found != calibrated_tensors.tensors.end() ? &found->second
                                                                                                 : nullptr);
    }
    result.bits_per_weight = linear_params ? 8.0 * static_cast<double>(linear_bytes) / static_cast<double>(linear_params) : 0;
    result.file_bits_per_weight = result.n_params ? 8.0 * static_cast<double>(result.weight_bytes) / static_cast<double>(result.n_params) : 0;
    if (mixed) {
        // The plan counted bytes the way the writer does; a mismatch is a bug, never a file over budget.
        if (result.weight_bytes != mixed->planned_bytes || result.file_bits_per_weight > options.target_bpw) {
            fail_in({model.path, "", "--target-bpw"}, "internal: planned ", mixed->planned_bytes, " bytes, stored ",
                    result.weight_bytes, " (", result.file_bits_per_weight, " bits per weight)");
        }
        result.mixed_plan = mixed_plan_to_json(*mixed);
    }
    return result;
}

}  // namespace sparq
