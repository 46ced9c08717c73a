// sparq sparsify MODEL -o OUT.sparq (--sparsity S | --pattern N:M) [--method magnitude|wanda|sparsegpt]
//   [--layer-ratios uniform|owl] [--calib FILE --calib-samples N --calib-len L --seed S --calib-cache H5]
//   [--bits B --group G --sym|--asym --quant-method rtn|mse|gptq] [--targets R] [--ignore R] [--dry-run]
//   [--structured mlp=F,heads=F [--no-reconstruct]]
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <optional>

#include "core/error.h"
#include "core/memory.h"
#include "passes/method_registry.h"
#include "passes/sparsify_model.h"
#include "tools/command.h"
#include "tools/owl_search.h"

namespace sparq::cli {

namespace {

struct SparsifyArgs {
    CommonOptions common;
    std::string model;
    std::string output;
    std::string tokenizer;
    SparsifyOptions options;
    double sparsity = 0;
    bool asym = false;
    bool sym = false;
    bool dry_run = false;
    bool no_reconstruct = false;
    bool owl_search = false;
    CLI::App* command = nullptr;
};

// What structured pruning cut, for the file's metadata and the JSON report.
nlohmann::json structured_report(const SparsifyOptions& o, const StructuredResult& s) {
    nlohmann::json layers = nlohmann::json::array();
    for (const auto& l : s.layers) {
        layers.push_back({{"kept_heads", l.kept_heads},
                          {"kept_kv_heads", l.kept_kv_heads},
                          {"mlp_error_pruned", finite_or_null(l.mlp_error_pruned)},
                          {"mlp_error_reconstructed", finite_or_null(l.mlp_error_reconstructed)},
                          {"mlp_reconstructed", l.mlp_reconstructed},
                          {"attn_error_pruned", finite_or_null(l.attn_error_pruned)},
                          {"attn_error_reconstructed", finite_or_null(l.attn_error_reconstructed)},
                          {"attn_reconstructed", l.attn_reconstructed}});
    }
    return {{"spec", o.structured},
            {"reconstruct", o.structured_reconstruct && s.calibrated},
            {"importance", s.calibrated ? "calibration" : "weights"},
            {"intermediate_size", {s.intermediate_before, s.intermediate_after}},
            {"num_attention_heads", s.model.config.num_heads},
            {"num_key_value_heads", s.model.config.num_kv_heads},
            {"head_removal", s.heads.whole_groups ? "whole_kv_groups" : "per_kv_group"},
            {"mlp_weight_bytes", {s.mlp_weight_bytes_before, s.mlp_weight_bytes_after}},
            {"attn_weight_bytes", {s.attn_weight_bytes_before, s.attn_weight_bytes_after}},
            {"layers", layers}};
}

nlohmann::json sparsity_metadata(const SparsifyOptions& o, const SparsityTarget& target) {
    nlohmann::json j = {{"method", o.method},
                        {"layer_ratios", o.layer_ratios},
                        {"target", target.name()},
                        {"kind", target.kind == SparsityTarget::Kind::NM ? "n:m" : "unstructured"},
                        {"nominal_sparsity", target.nominal_sparsity()}};
    if (!o.targets.empty()) j["targets"] = o.targets;
    if (!o.ignore.empty()) j["ignore"] = o.ignore;
    return j;
}

// With --structured the plan is made on the pruned shapes (kept counts
// follow from the spec and the config alone; which channels go needs the
// run).
int print_dry_run(const SparsifyArgs& args, const ModelSource& source) {
    std::optional<ModelSource> pruned;
    nlohmann::json structured;
    if (!args.options.structured.empty()) {
        pruned = structured_shapes(source, parse_structured_spec(args.options.structured, "--structured"));
        structured = {{"intermediate_size", {source.config.intermediate_size, pruned->config.intermediate_size}},
                      {"num_heads", {source.config.num_heads, pruned->config.num_heads}},
                      {"num_kv_heads", {source.config.num_kv_heads, pruned->config.num_kv_heads}}};
    }
    const ModelSource& model = pruned ? *pruned : source;
    const auto plan = plan_sparsification(model, args.options);
    int64_t bytes = 0, params = 0;
    for (const auto& p : plan) {
        bytes += p.tensor.estimated_bytes;
        params += shape_numel(p.tensor.shape);
    }
    nlohmann::json j = {{"dry_run", true},
                        {"plan", sparse_plan_to_json(plan, args.options)},
                        {"estimated_weight_bytes", bytes},
                        {"estimated_file_bits_per_weight", params ? 8.0 * bytes / params : 0.0}};
    if (pruned) j["structured"] = structured;  // [before, after] of each config field
    if (args.common.json) {
        print_json(j);
        return 0;
    }
    for (const auto& p : j["plan"]) {
        std::cout << std::left << std::setw(48) << p["name"].get<std::string>() << " " << std::setw(14)
                  << p["scheme"].get<std::string>() << " " << std::setw(15) << p["encoding"].get<std::string>()
                  << " sparsity " << std::setw(6) << p["sparsity"].get<double>() << " " << p["estimated_bytes"]
                  << " bytes\n";
    }
    if (pruned) {
        std::cout << "structured: intermediate " << source.config.intermediate_size << " -> "
                  << pruned->config.intermediate_size << ", heads " << source.config.num_heads << "/"
                  << source.config.num_kv_heads << " kv -> " << pruned->config.num_heads << "/"
                  << pruned->config.num_kv_heads << "\n";
    }
    std::cout << "estimated " << bytes << " bytes of weights\n";
    return 0;
}

int run_sparsify(SparsifyArgs& args) {
    if (args.asym && args.sym) fail_in({"", "", "--asym"}, "give either --sym or --asym");
    if (args.command->count("--sparsity")) args.options.sparsity = args.sparsity;
    args.options.symmetric = !args.asym;
    args.options.structured_reconstruct = !args.no_reconstruct;
    args.options.validate();
    args.options.check_options_read();
    const SparsityTarget target = args.options.target();
    const auto start = std::chrono::steady_clock::now();
    LoadOptions load;
    load.tokenizer_path = args.tokenizer;
    const ModelSource model = load_model(args.model, load);
    if (args.dry_run) return print_dry_run(args, model);
    if (args.output.empty()) fail_in({"", "", "-o"}, "an output file is required");
    std::optional<OwlSearchResult> owl_search;
    if (args.owl_search) {
        for (const char* flag : {"--owl-m", "--owl-lambda"}) {
            if (args.command->count(flag) > 0) fail_in({"", "", flag}, "is chosen by --owl-search; give one or the other");
        }
        owl_search = search_owl_hyperparameters(model, args.options, args.tokenizer, args.output + ".owl-candidate",
                                                [&](const std::string& s) { log_line(args.common, s); });
        args.options.owl_m = owl_search->best.m;
        args.options.owl_lambda = owl_search->best.lambda;
    }
    const SparsifyResult r =
        sparsify_model(model, args.options, [&](const std::string& s) { log_line(args.common, s); });
    nlohmann::json tensors = nlohmann::json::array();
    for (const auto& t : r.reports) {
        tensors.push_back({{"name", t.quant.name},
                           {"encoding", t.encoding},
                           {"bits", t.quant.bits},
                           {"group", t.quant.group},
                           {"symmetric", t.quant.symmetric},
                           {"pruned", t.pruned},
                           {"sparsity", t.sparsity},
                           {"sqnr_db", finite_or_null(t.quant.sqnr_db)}});
        if (t.calibration) {
            // "before": magnitude pruning (+ RTN when quantizing) at the same target.
            tensors.back()["weighted_error_magnitude"] = finite_or_null(t.calibration->weighted_error_rtn);
            tensors.back()["weighted_error"] = finite_or_null(t.calibration->weighted_error);
            tensors.back()["damp"] = t.calibration->damp;
            tensors.back()["dead_inputs"] = t.calibration->dead_inputs;
            tensors.back()["fallback"] = t.calibration->fell_back_to_rtn
                                             ? nlohmann::json(t.calibration->fallback_reason)
                                             : nlohmann::json(nullptr);
        }
    }
    nlohmann::json sparsity = sparsity_metadata(args.options, target);
    sparsity["sparsity"] = r.sparsity;
    nlohmann::json calibration = nullptr;
    if (r.calibration) {
        const CalibrationSummary& c = *r.calibration;
        calibration = {{"samples", c.samples}, {"len", c.len},       {"tokens", c.tokens},
                       {"seed", args.options.seed}, {"sequential", c.sequential}, {"cache", c.cache},
                       {"seconds", c.seconds}, {"block_seconds", c.block_seconds}, {"warnings", c.warnings},
                       {"correct_upstream", args.options.correct_upstream},
                       {"corrected_linears", c.corrected_linears}};
        if (!args.options.calib.empty()) calibration["data"] = args.options.calib;
        if (!args.options.calib_cache.empty()) calibration["cache_path"] = args.options.calib_cache;
        // The file records the plan and how it was calibrated, no timings.
        nlohmann::json record = calibration;
        record.erase("seconds");
        record.erase("block_seconds");
        record.erase("cache");
        sparsity["calibration"] = record;
        if (args.options.method == "sparsegpt" || args.options.quant_method == "gptq") {
            sparsity["damp"] = args.options.damp;
            sparsity["block_size"] = args.options.block_size;
        }
        if (args.options.refit_iterations > 0) sparsity["refit_iterations"] = args.options.refit_iterations;
    }
    if (!r.layer_sparsity.empty()) sparsity["layer_sparsity"] = r.layer_sparsity;
    if (!r.outlier_ratios.empty()) {
        sparsity["owl"] = {{"m", args.options.owl_m}, {"lambda", args.options.owl_lambda},
                           {"outlier_ratios", r.outlier_ratios}};
        if (owl_search) {
            nlohmann::json candidates = nlohmann::json::array();
            for (const OwlCandidate& c : owl_search->candidates) {
                candidates.push_back({{"m", c.m}, {"lambda", c.lambda}, {"calibration_ppl", c.calibration_ppl}});
            }
            sparsity["owl"]["search"] = candidates;
        }
    }
    nlohmann::json metadata = {{"command", invocation()},
                               {"source", {{"path", model.path}, {"format", model.format}}},
                               {"sparsity", sparsity}};
    const std::string scheme =
        args.options.quantizes() ? args.options.quantize_options().linear_scheme().name() : std::string("dense");
    if (args.options.quantizes()) {
        metadata["quantization"] = {{"method", args.options.quant_method},
                                    {"scheme", scheme},
                                    {"embed_bits", args.options.embed_bits},
                                    {"head_bits", args.options.head_bits},
                                    {"bits_per_weight", r.bits_per_weight},
                                    {"file_bits_per_weight", r.file_bits_per_weight}};
    }
    if (r.structured) metadata["structured"] = structured_report(args.options, *r.structured);
    write_sparq_model(args.output, r.structured ? r.structured->model.config : model.config, *model.tokenizer,
                      r.tensors, metadata);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json j = {{"output", args.output},
                        {"bits_per_weight", r.bits_per_weight},
                        {"file_bits_per_weight", r.file_bits_per_weight},
                        {"sparsity", r.sparsity},
                        {"weight_bytes", r.weight_bytes},
                        {"source_weight_bytes", r.source_weight_bytes},
                        {"file_bytes", std::filesystem::file_size(args.output)},
                        {"seconds", seconds},
                        {"peak_rss_bytes", peak_rss_bytes()},
                        {"method", args.options.method},
                        {"target", target.name()},
                        {"scheme", scheme},
                        {"tensors", tensors}};
    if (args.options.quantizes()) j["quant_method"] = args.options.quant_method;
    if (r.calibration) j["calibration"] = calibration;
    if (r.structured) j["structured"] = metadata["structured"];
    if (!r.layer_sparsity.empty()) j["layer_sparsity"] = r.layer_sparsity;
    if (!r.outlier_ratios.empty()) {
        j["outlier_ratios"] = r.outlier_ratios;
        j["owl"] = sparsity["owl"];
    }
    if (args.common.json) {
        print_json(j);
    } else {
        std::cout << "wrote " << args.output << ": sparsity " << std::fixed << std::setprecision(3) << r.sparsity
                  << " (" << target.name() << "), " << r.bits_per_weight << " bits/weight in block linears, "
                  << r.file_bits_per_weight << " over all parameters, " << r.weight_bytes << " bytes (from "
                  << r.source_weight_bytes << ") in " << std::setprecision(2) << seconds << " s\n";
    }
    return 0;
}

}  // namespace

void register_sparsify(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<SparsifyArgs>();
    SparsifyArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("sparsify", "Prune a model's weights (optionally with quantization) into a .sparq file");
    args.command = cmd;
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("-o,--output", args.output, "Output .sparq file");
    cmd->add_option("--sparsity", args.sparsity, "Fraction of each row's weights to prune (unstructured), in [0, 1)");
    cmd->add_option("--pattern", args.options.pattern, "N:M structured sparsity, e.g. 2:4");
    cmd->add_option("--method", args.options.method, method_help(PassKind::Sparsify));
    cmd->add_option("--layer-ratios", args.options.layer_ratios,
                    "uniform (default) or owl (blocks with more activation outliers keep more; needs --calib)");
    cmd->add_option("--owl-m", args.options.owl_m, "OWL outlier multiple M (default 5, the paper's)");
    cmd->add_option("--owl-lambda", args.options.owl_lambda, "OWL sparsity spread lambda (default 0.08, the paper's)");
    cmd->add_flag("--owl-search", args.owl_search,
                  "Choose OWL's M and lambda on the calibration text (a 4 x 3 grid, each candidate pruned and scored by "
                  "perplexity on calibration windows; 12 pruning runs)");
    cmd->add_option("--calib", args.options.calib, "Calibration text, or JSON lines with a \"text\" field (.jsonl)");
    add_calib_samples_option(cmd, args.options.calib_samples, "Calibration samples");
    cmd->add_option("--calib-len", args.options.calib_len, "Tokens per calibration sample (default 512)");
    cmd->add_option("--seed", args.options.seed, "Seed drawing the calibration samples (default 0)");
    cmd->add_option("--calib-cache", args.options.calib_cache,
                    "Calibration statistics (HDF5, from sparq calibrate): used when it matches, else recomputed");
    cmd->add_option("--damp", args.options.damp, "SparseGPT/GPTQ dampening, x the mean Hessian diagonal (default 0.01)");
    cmd->add_option("--block-size", args.options.block_size,
                    "SparseGPT columns per block: mask choice and lazy updates (default 128)");
    cmd->add_option("--refit", args.options.refit_iterations,
                    "Refit the kept weights to the mask on calibration data: conjugate-gradient steps (default 0 = off)");
    cmd->add_flag("--correct-upstream", args.options.correct_upstream,
                  "Each linear targets the full-precision model's outputs instead of its own on the already-pruned "
                  "inputs, correcting the earlier layers' errors (GPTAQ-style; any pruning method, with --calib, "
                  "not --calib-cache; costs one more copy of the calibration hidden states)");
    cmd->add_option("--bits", args.options.bits, "Quantize the kept weights too: 8, 4, 3 or 2");
    cmd->add_option("--group", args.options.group, "Group size in dense columns (0 = per output channel); needs --bits");
    cmd->add_flag("--sym", args.sym, "Symmetric codes (default)");
    cmd->add_flag("--asym", args.asym, "Asymmetric codes with a zero point");
    cmd->add_option("--quant-method", args.options.quant_method, "Quantizer for --bits: rtn (default), mse, or gptq (in the pruning pass, keeping the mask; needs --calib)");
    cmd->add_option("--embed-bits", args.options.embed_bits, "Token embedding bits with --bits (16 keeps FP16)");
    cmd->add_option("--head-bits", args.options.head_bits, "Output head bits with --bits (16 keeps FP16)");
    cmd->add_option("--targets", args.options.targets, "Regex on whole tensor names to prune (default: block linears)");
    cmd->add_option("--ignore", args.options.ignore, "Regex on whole tensor names to leave alone (wins over --targets)");
    cmd->add_option("--structured", args.options.structured,
                    "Remove MLP channels / attention heads: mlp=F,heads=F (fractions; with --calib, scored on "
                    "calibration activations and the next layer refit by least squares)");
    cmd->add_flag("--no-reconstruct", args.no_reconstruct, "With --structured: skip the least-squares refit");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_flag("--dry-run", args.dry_run, "Print the plan and write nothing");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_sparsify(*shared); });
}

}  // namespace sparq::cli
