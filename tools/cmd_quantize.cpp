// sparq quantize MODEL -o OUT.sparq --bits B [--group G] [--sym|--asym] [--method M]
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/memory.h"
#include "passes/mixed_precision.h"
#include "passes/method_registry.h"
#include "passes/quantize_model.h"
#include "tools/command.h"
#include "tools/smooth_search.h"

namespace sparq::cli {

namespace {

struct QuantizeArgs {
    CommonOptions common;
    std::string model;
    std::string output;
    std::string tokenizer;
    QuantizeOptions options;
    bool asym = false;
    bool sym = false;
    bool dry_run = false;
    bool no_act_order = false;
    bool smooth_search = false;
    double target_bpw = 0;
    CLI::App* command = nullptr;
};

int run_quantize(QuantizeArgs& args) {
    if (args.command->count("--target-bpw") > 0) {
        // The budget chooses bits and groups per tensor, embedding and head included.
        for (const char* flag : {"--bits", "--group", "--embed-bits", "--head-bits"}) {
            if (args.command->count(flag) > 0) fail_in({"", "", flag}, "is chosen per tensor by --target-bpw; give one or the other");
        }
        if (!(args.target_bpw > 0)) fail_in({"", "", "--target-bpw"}, "must be a positive number, got ", args.target_bpw);
        args.options.target_bpw = args.target_bpw;
    }
    if (args.asym && args.sym) fail_in({"", "", "--asym"}, "give either --sym or --asym");
    if (args.command->count("--bits") == 0 && args.target_bpw <= 0) {
        fail_in({"", "", "--bits"}, "give --bits B or --target-bpw X");
    }
    args.options.symmetric = !args.asym;
    args.options.act_order = !args.no_act_order;
    args.options.validate();
    args.options.check_options_read();
    const auto start = std::chrono::steady_clock::now();
    LoadOptions load;
    load.tokenizer_path = args.tokenizer;
    const ModelSource model = load_model(args.model, load);
    if (args.dry_run && args.options.target_bpw > 0) {
        // Plans without writing anything (a calibration cache is only read).
        const MixedPrecisionPlan plan = plan_mixed_precision(
            model, args.options, [&](const std::string& s) { log_line(args.common, s); }, false);
        nlohmann::json j = {{"dry_run", true},
                            {"plan", mixed_plan_to_json(plan)},
                            {"estimated_weight_bytes", plan.planned_bytes},
                            {"estimated_file_bits_per_weight", plan.file_bits_per_weight}};
        if (args.common.json) {
            print_json(j);
        } else {
            std::cout << std::left << std::setw(44) << "tensor" << " " << std::setw(14) << "scheme" << " bits group "
                      << std::setw(10) << "bytes" << " predicted error (relative)\n";
            for (const auto& p : j["plan"]["tensors"]) {
                std::cout << std::left << std::setw(44) << p["name"].get<std::string>() << " " << std::setw(14)
                          << p["scheme"].get<std::string>() << " " << std::setw(4) << p["bits"] << " " << std::setw(5)
                          << (p.contains("group") ? std::to_string(p["group"].get<int64_t>()) : std::string("-")) << " " << std::setw(10)
                          << p["estimated_bytes"] << " " << p["predicted_error"].get<double>() << " ("
                          << p["relative_error"].get<double>() << ")\n";
            }
            std::cout << "planned " << plan.planned_bytes << " bytes of weights: " << plan.file_bits_per_weight
                      << " bits per weight for a budget of " << plan.target_bpw << " (minimum " << plan.minimum_bpw
                      << ")\n";
        }
        return 0;
    }
    if (args.dry_run) {
        const auto plan = plan_quantization(model, args.options);
        int64_t bytes = 0, params = 0;
        for (const auto& p : plan) {
            bytes += p.estimated_bytes;
            params += shape_numel(p.shape);
        }
        nlohmann::json j = {{"dry_run", true},
                            {"plan", plan_to_json(plan)},
                            {"estimated_weight_bytes", bytes},
                            {"estimated_file_bits_per_weight", params ? 8.0 * bytes / params : 0.0}};
        if (args.common.json) {
            print_json(j);
        } else {
            for (const auto& p : j["plan"]) {
                std::cout << std::left << std::setw(48) << p["name"].get<std::string>() << " " << std::setw(14)
                          << p["scheme"].get<std::string>() << " " << p["estimated_bytes"] << " bytes\n";
            }
            std::cout << "estimated " << bytes << " bytes of weights\n";
        }
        return 0;
    }
    if (args.output.empty()) fail_in({"", "", "-o"}, "an output file is required");
    std::optional<SmoothSearchResult> smooth_search;
    if (args.smooth_search) {
        if (args.command->count("--smooth-alpha") > 0) {
            fail_in({"", "", "--smooth-alpha"}, "is chosen by --smooth-search; give one or the other");
        }
        smooth_search = search_smooth_alpha(model, args.options, args.tokenizer, args.output + ".smooth-candidate",
                                            [&](const std::string& s) { log_line(args.common, s); });
        args.options.smooth_alpha = smooth_search->best.alpha;
    }
    // Each tensor is written as soon as it is quantized and then freed.
    SparqModelWriter writer(args.output, model.config, *model.tokenizer);
    const QuantizeResult r = quantize_model(
        model, args.options, [&](const std::string& s) { log_line(args.common, s); },
        [&](ModelTensorEntry&& entry) { writer.add(entry); });
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : r.reports) {
        nlohmann::json e = {{"name", t.name}, {"bits", t.bits}, {"group", t.group}, {"symmetric", t.symmetric},
                            {"sqnr_db", finite_or_null(t.sqnr_db)}};
        if (t.calibration) {
            e["weighted_error_rtn"] = finite_or_null(t.calibration->weighted_error_rtn);
            e["weighted_error"] = finite_or_null(t.calibration->weighted_error);
            if (t.calibration->scale_alpha) e["alpha"] = *t.calibration->scale_alpha;
            if (args.options.method == "gptq") {
                e["damp"] = t.calibration->damp;
                e["dead_inputs"] = t.calibration->dead_inputs;
                e["fallback"] = t.calibration->fell_back_to_rtn ? nlohmann::json(t.calibration->fallback_reason)
                                                                : nlohmann::json(nullptr);
            }
        }
        tensors.push_back(e);
    }
    nlohmann::json calibration = nullptr;
    if (r.calibration) {
        const CalibrationSummary& c = *r.calibration;
        calibration = {{"samples", c.samples},       {"len", c.len},
                       {"tokens", c.tokens},         {"seed", args.options.seed},
                       {"sequential", c.sequential}, {"cache", c.cache},
                       {"seconds", c.seconds},       {"block_seconds", c.block_seconds},
                       {"warnings", c.warnings},     {"correct_upstream", args.options.correct_upstream},
                       {"corrected_linears", c.corrected_linears}};
        if (!args.options.calib.empty()) calibration["data"] = args.options.calib;
        if (!args.options.calib_cache.empty()) calibration["cache_path"] = args.options.calib_cache;
    }
    // The file records how it was calibrated, but no timings: the same
    // command gives the same bytes.
    nlohmann::json calibration_record = calibration;
    if (calibration_record.is_object()) {
        calibration_record.erase("seconds");
        calibration_record.erase("block_seconds");
        calibration_record.erase("cache");
    }
    nlohmann::json metadata = {
        {"command", invocation()},
        {"source", {{"path", model.path}, {"format", model.format}}},
        {"quantization",
         {{"method", args.options.method},
          {"scheme", args.options.linear_scheme().name()},
          {"embed_bits", args.options.embed_bits},
          {"head_bits", args.options.head_bits},
          {"act_bits", args.options.activation_bits()},
          {"calibration", calibration_record},
          {"bits_per_weight", r.bits_per_weight},
          {"file_bits_per_weight", r.file_bits_per_weight}}},
    };
    // The channel-scaling settings (the command line has them too, but a
    // recipe or a script should not have to parse it).
    if (args.options.method == "smoothquant") {
        metadata["quantization"]["smooth"] = {{"alpha", args.options.smooth_alpha},
                                              {"weights", args.options.smooth_weights}};
    } else if (args.options.method == "awq") {
        metadata["quantization"]["awq"] = {{"grid", args.options.awq_grid}, {"score", args.options.awq_score}};
    }
    nlohmann::json smooth_report = nullptr;
    if (smooth_search) {
        smooth_report = {{"alpha", smooth_search->best.alpha},
                         {"unsmoothed_calibration_ppl", smooth_search->unsmoothed_calibration_ppl},
                         {"candidates", nlohmann::json::array()}};
        for (const SmoothCandidate& c : smooth_search->candidates) {
            smooth_report["candidates"].push_back({{"alpha", c.alpha}, {"calibration_ppl", c.calibration_ppl}});
        }
        metadata["quantization"]["smooth_search"] = smooth_report;
    }
    if (!r.mixed_plan.is_null()) {
        metadata["quantization"]["scheme"] = "mixed";
        metadata["quantization"]["target_bpw"] = args.options.target_bpw;
        metadata["quantization"]["plan"] = r.mixed_plan;
        metadata["quantization"].erase("embed_bits");
        metadata["quantization"].erase("head_bits");
    }
    writer.commit(metadata);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j = {{"output", args.output},
                        {"bits_per_weight", r.bits_per_weight},
                        {"file_bits_per_weight", r.file_bits_per_weight},
                        {"weight_bytes", r.weight_bytes},
                        {"source_weight_bytes", r.source_weight_bytes},
                        {"file_bytes", std::filesystem::file_size(args.output)},
                        {"seconds", seconds},
                        {"peak_rss_bytes", peak_rss_bytes()},
                        {"method", args.options.method},
                        {"scheme", args.options.linear_scheme().name()},
                        {"tensors", tensors}};
    if (r.calibration) j["calibration"] = calibration;
    if (smooth_search) j["smooth_search"] = smooth_report;
    if (!r.mixed_plan.is_null()) {
        j["scheme"] = "mixed";
        j["target_bpw"] = args.options.target_bpw;
        j["plan"] = r.mixed_plan;
    }
    if (args.common.json) {
        print_json(j);
    } else {
        std::cout << "wrote " << args.output << ": " << std::fixed << std::setprecision(3) << r.bits_per_weight
                  << " bits/weight in block linears, " << r.file_bits_per_weight << " over all parameters, "
                  << r.weight_bytes << " bytes (from " << r.source_weight_bytes << ") in " << std::setprecision(2)
                  << seconds << " s\n";
    }
    return 0;
}

}  // namespace

void register_quantize(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<QuantizeArgs>();
    QuantizeArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("quantize", "Quantize a model's weights into a packed .sparq file");
    args.command = cmd;
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("-o,--output", args.output, "Output .sparq file");
    cmd->add_option("--bits", args.options.bits, "Bits per weight: 8, 4, 3 or 2");
    cmd->add_option("--target-bpw", args.target_bpw, "File size budget in bits per parameter (mixed precision)");
    cmd->add_option("--mixed-sensitivity", args.options.mixed_sensitivity,
                    "Mixed precision loss per tensor: kl (output error scaled by a measured KL; default, needs --calib) "
                    "or hessian (output error alone)");
    cmd->add_option("--group", args.options.group, "Group size along the input dimension (0 = per output channel)");
    cmd->add_flag("--sym", args.sym, "Symmetric codes (default)");
    cmd->add_flag("--asym", args.asym, "Asymmetric codes with a zero point");
    cmd->add_option("--method", args.options.method, method_help(PassKind::Quantize));
    cmd->add_option("--act-bits", args.options.act_bits,
                    "8: the runtime runs the quantized block linears with int8 activations (any method)");
    cmd->add_option("--smooth-alpha", args.options.smooth_alpha, "SmoothQuant migration strength in [0, 1] (default 0.5)");
    cmd->add_option("--smooth-weights", args.options.smooth_weights,
                    "SmoothQuant weight quantizer on the smoothed basis: rtn (default, the paper's) or gptq (with "
                    "--damp, --gptq-params and act order as for --method gptq)");
    cmd->add_flag("--smooth-search", args.smooth_search,
                  "SmoothQuant: choose the alpha on calibration windows (7 candidates quantized and scored by "
                  "perplexity; the evaluation text is never read)");
    cmd->add_option("--awq-grid", args.options.awq_grid, "AWQ: alpha searched on k / N for k = 0..N (default N = 20)");
    cmd->add_option("--awq-score", args.options.awq_score,
                    "AWQ: score the alphas after the clip search on the linears' outputs (clip, default) or on the "
                    "attention heads' and MLP's outputs (block, as llm-awq), or after plain RTN (rtn, llm-awq's)");
    cmd->add_option("--calib", args.options.calib, "Calibration text, or JSON lines with a \"text\" field (.jsonl)");
    add_calib_samples_option(cmd, args.options.calib_samples, "Calibration samples");
    cmd->add_option("--calib-len", args.options.calib_len, "Tokens per calibration sample (default 512)");
    cmd->add_option("--seed", args.options.seed, "Seed drawing the calibration samples (default 0)");
    cmd->add_option("--calib-cache", args.options.calib_cache,
                    "Calibration statistics (HDF5, from sparq calibrate): used when it matches, else recomputed");
    cmd->add_option("--damp", args.options.damp, "GPTQ dampening, x the mean Hessian diagonal (default 0.01)");
    cmd->add_flag("--no-act-order", args.no_act_order, "GPTQ: quantize columns in order instead of by activation energy");
    cmd->add_flag("--correct-upstream", args.options.correct_upstream,
                  "gptq, awq, smoothquant: each linear targets the full-precision model's outputs instead of its own "
                  "on the already-quantized inputs, correcting the earlier layers' errors (GPTAQ-style; not with "
                  "--calib-cache; costs one more copy of the calibration hidden states)");
    cmd->add_option("--gptq-params", args.options.gptq_params,
                    "GPTQ group scales: rtn, mse, weighted (clip search weighted by activation energy; default), "
                    "hessian (scored by the group's Hessian block)");
    cmd->add_option("--imatrix-score", args.options.imatrix_score,
                    "imatrix clip search score: block (the group's Hessian block; default) or diagonal (llama.cpp's)");
    cmd->add_option("--targets", args.options.targets, "Regex on whole tensor names to quantize (default: block linears)");
    cmd->add_option("--ignore", args.options.ignore, "Regex on whole tensor names to leave alone (wins over --targets)");
    cmd->add_option("--embed-bits", args.options.embed_bits, "Token embedding bits (16 keeps FP16)");
    cmd->add_option("--head-bits", args.options.head_bits, "Output head bits (16 keeps FP16)");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_flag("--dry-run", args.dry_run, "Print the plan and write nothing");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_quantize(*shared); });
}

}  // namespace sparq::cli
