// sparq export IN -o OUT.gguf [--type f32|f16|q8_0|q4_0|q4_1|q4_k|q6_k]: writes a GGUF file that
// llama.cpp loads (Llama and Mistral as arch "llama", Qwen2 as "qwen2",
// MiniCPM as "minicpm"; see formats/gguf/llama_export.h).
#include <algorithm>
#include <cctype>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "calibration/statistics_source.h"
#include "core/error.h"
#include "formats/gguf/llama_export.h"
#include "models/gguf_encode.h"
#include "models/gguf_gptq.h"
#include "models/model_source.h"
#include "tools/command.h"

namespace sparq::cli {

namespace {

struct ExportArgs {
    CommonOptions common;
    std::string model;
    std::string output;
    std::string type = "f16";
    std::string tokenizer;
    std::string name;
    CalibrationDataOptions calib;  // path empty: no calibration text
    std::string calib_cache;
    std::string method = "fit";
    std::string head_type, embed_type;  // empty: --type
    double damp = 0.01;
    bool act_order = false;
};

// What calibration gives the quantized export: column importance for the
// fitted blocks and, under --method gptq, the block linears already
// quantized by GPTQ onto the block grids.
struct ExportCalibration {
    ColumnImportance importance;
    std::map<std::string, EncodedTensor> gptq;
    std::vector<std::string> gptq_fallbacks;  // "name: why" where H could not be factored
};

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

// llama.cpp quantization types GGUF export will take in later releases.
bool is_llamacpp_quant_type(const std::string& t) {
    static const char* const kTypes[] = {"q8_0",   "q4_0",   "q4_1",   "q5_0",   "q5_1",   "q2_k",    "q3_k",
                                         "q3_k_s", "q3_k_m", "q3_k_l", "q4_k",   "q4_k_s", "q4_k_m",  "q5_k",
                                         "q5_k_s", "q5_k_m", "q6_k",   "iq4_nl", "iq4_xs", "bf16",    "tq1_0",
                                         "tq2_0",  "iq2_xxs", "iq2_xs", "iq2_s", "iq3_xxs", "iq3_s", "iq1_s", "iq1_m"};
    for (const char* k : kTypes) {
        if (t == k) return true;
    }
    return false;
}

// The block type of a quantized --type, or nullopt for f32 / f16.
std::optional<gguf::GgmlType> block_type_of(const std::string& t) {
    if (t == "q8_0") return gguf::GgmlType::Q8_0;
    if (t == "q4_0") return gguf::GgmlType::Q4_0;
    if (t == "q4_1") return gguf::GgmlType::Q4_1;
    if (t == "q4_k") return gguf::GgmlType::Q4_K;
    if (t == "q6_k") return gguf::GgmlType::Q6_K;
    return std::nullopt;
}

// The ggml type a --head-type / --embed-type names (F32: kept float).
gguf::GgmlType tensor_type_of(const std::string& t) {
    if (const std::optional<gguf::GgmlType> b = block_type_of(lower(t))) return *b;
    return lower(t) == "f16" ? gguf::GgmlType::F16 : gguf::GgmlType::F32;
}

std::string check_type(const std::string& value) {
    const std::string t = lower(value);
    if (t == "f32" || t == "f16" || block_type_of(t)) return "";
    const char* const kSupported = "f32, f16, q8_0, q4_0, q4_1, q4_k or q6_k";
    if (is_llamacpp_quant_type(t)) {
        return "GGUF export to " + value + " is not supported: expected " + kSupported +
               " (for the others, export f16 and quantize it with llama.cpp's llama-quantize)";
    }
    return "unknown GGUF type '" + value + "': expected " + kSupported;
}

// How many weights each ggml block type holds, e.g. {"Q4_K": 26, "Q4_1": 2}.
nlohmann::json block_type_counts(const GgufEncoding& encoding) {
    std::map<std::string, int> counts;
    for (const auto& [name, e] : encoding.tensors) ++counts[std::string(gguf::ggml_type_name(e.type))];
    return counts;
}

// Each block linear's importance per input column (the mean square of its
// inputs over the calibration tokens: the cache's full-precision statistics,
// or a statistics pass over --calib) and, under --method gptq, its GPTQ
// blocks from the same statistics' Hessian, one input space at a time.
ExportCalibration calibrate_export(const ExportArgs& args, const ModelSource& model, gguf::GgmlType type,
                                   StatisticsOutcome& outcome) {
    StatisticsRequest request;
    if (!args.calib.path.empty()) request.data = args.calib;
    request.cache_path = args.calib_cache;
    ExportCalibration calibration;
    GptqOptions gptq;
    gptq.damping.fraction = args.damp;
    // Column order by default: each block's grid is fitted to the weights
    // as GPTQ has updated them (small-llama-v2 Q4_K: 16.4985 against
    // 16.5307 with act-order's static grids; docs/results.md).
    gptq.act_order = args.act_order;
    const auto log = [&](const std::string& s) { log_line(args.common, s); };
    outcome = visit_statistics(
        model, request,
        [&](int64_t layer, InputSpace space, const ActivationStatistics& statistics) {
            const std::vector<float> mean_square(statistics.mean_square.begin(), statistics.mean_square.end());
            for (const std::string& suffix : input_space_linears(space)) {
                const std::string name = "model.layers." + std::to_string(layer) + "." + suffix;
                if (!model.tensors.has(name)) continue;
                calibration.importance[name] = mean_square;
                const Tensor& t = model.tensors.get(name);
                const std::optional<gguf::GgmlType> block_type = gguf_block_type_for(type, t.cols());
                if (args.method != "gptq" || !block_type) continue;
                if (statistics.hessian.empty()) {
                    fail_in({args.calib_cache, name, ""}, "the calibration statistics hold no Hessian, which --method gptq needs");
                }
                const std::vector<float> values = t.to_f32();
                GptqResult info;
                if (std::optional<std::vector<uint8_t>> bytes = gptq_quantize_ggml(
                        values.data(), t.rows(), t.cols(), statistics.hessian, *block_type, gptq, name, info)) {
                    calibration.gptq[name] = EncodedTensor{*block_type, std::move(*bytes)};
                } else {
                    calibration.gptq_fallbacks.push_back(name + ": " + info.fallback_reason);
                    log_line(args.common, "warning: " + name + ": GPTQ fell back to fitted blocks (" + info.fallback_reason + ")");
                }
            }
        },
        log);
    return calibration;
}

// Options this run would not read are errors, before anything is loaded.
void check_export_options(const ExportArgs& args, const std::string& t, std::optional<gguf::GgmlType> block_type) {
    const bool quantized = block_type.has_value();
    const bool calibrated = !args.calib.path.empty() || !args.calib_cache.empty();
    const CalibrationDataOptions defaults;
    if (args.calib.path.empty() &&
        (args.calib.samples != defaults.samples || args.calib.len != defaults.len || args.calib.seed != defaults.seed)) {
        fail_in({args.model, "", "--calib-samples"}, "--calib-samples, --calib-len and --seed draw from --calib text, "
                "which this run does not have");
    }
    if (args.method != "gptq" && (args.damp != 0.01 || args.act_order)) {
        fail_in({args.model, "", args.act_order ? "--act-order" : "--damp"}, "is not read by this run (--method ",
                args.method, "); it applies to --method gptq");
    }
    if (!quantized && args.method != "fit") {
        fail_in({args.model, "", "--method"}, "--method ", args.method, " applies to the quantized types, not ", t);
    }
    if (!quantized && calibrated) {
        fail_in({args.model, "", "--calib"}, "calibration is read by the quantized types (q4_1, q4_k, q6_k), not ", t);
    }
    if (quantized && calibrated) check_type_reads_importance(args.model, *block_type);
    if (!quantized && (!args.head_type.empty() || !args.embed_type.empty())) {
        fail_in({args.model, "", args.head_type.empty() ? "--embed-type" : "--head-type"},
                "sets a weight's type within a quantized export (--type q8_0, q4_0, q4_1, q4_k or q6_k), not ", t);
    }
    if (args.method == "gptq" && !calibrated) {
        fail_in({args.model, "", "--method"}, "gptq needs calibration: give --calib FILE or --calib-cache H5");
    }
}

int run_export(const ExportArgs& args) {
    const auto start = std::chrono::steady_clock::now();
    const std::string t = lower(args.type);
    const std::optional<gguf::GgmlType> block_type = block_type_of(t);
    const bool quantized = block_type.has_value();
    check_export_options(args, t, block_type);
    // Quantized exports keep the few weights no block fits in F32, so a
    // .sparq model's values are carried over exactly.
    const GgufExportType type = t == "f32" || quantized ? GgufExportType::F32 : GgufExportType::F16;

    LoadOptions options;
    options.tokenizer_path = args.tokenizer;
    options.require_tokenizer = true;
    log_line(args.common, "loading " + args.model);
    const ModelSource m = load_model(args.model, options);
    if (!m.tokenizer) fail_in({args.model, "", ""}, "GGUF export needs the model's tokenizer (give it with --tokenizer)");

    const std::string arch = llamacpp_arch(m.config);
    // Fails (naming the pre-tokenizer) before anything is written when llama.cpp would split differently.
    const std::string pre = llamacpp_tokenizer_pre(*m.tokenizer);
    if (m.config.sliding_window > 0 && m.config.sliding_window < m.config.max_position_embeddings) {
        // llama.cpp's "llama" and "qwen2" attend to the whole context.
        std::cerr << "warning: llama.cpp ignores the sliding attention window of " << m.config.sliding_window
                  << " tokens: its outputs match this model's only for contexts of at most "
                  << m.config.sliding_window << " tokens" << std::endl;
    }
    log_line(args.common, "writing " + args.output + " (" + t + ", llama.cpp arch " + arch +
                              (pre.empty() ? "" : ", tokenizer.ggml.pre " + pre) + ")");
    GgufEncoding encoding;
    StatisticsOutcome calibration;
    std::vector<std::string> gptq_fallbacks;
    if (quantized) {
        ExportCalibration calibrated;
        if (!args.calib.path.empty() || !args.calib_cache.empty()) {
            calibrated = calibrate_export(args, m, *block_type, calibration);
            log_line(args.common, "importance from calibration for " + std::to_string(calibrated.importance.size()) +
                                      " block linears, GPTQ for " + std::to_string(calibrated.gptq.size()) +
                                      " (statistics: " + calibration.cache + ")");
        }
        TypeOverrides overrides;
        if (!args.embed_type.empty()) overrides["model.embed_tokens.weight"] = tensor_type_of(args.embed_type);
        if (!args.head_type.empty()) {
            if (!m.tensors.has("lm_head.weight")) {
                fail_in({args.model, "lm_head.weight", "--head-type"},
                        "is absent: the model ties its head to the embedding, whose type --embed-type sets");
            }
            overrides["lm_head.weight"] = tensor_type_of(args.head_type);
        }
        encoding = encode_for_gguf(m, *block_type, calibrated.importance, calibrated.gptq, overrides);
        gptq_fallbacks = calibrated.gptq_fallbacks;
        log_line(args.common, std::to_string(encoding.exact.size()) + " weights carried over exactly, " +
                                  std::to_string(encoding.requantized.size()) + " quantized to " + t + ", " +
                                  std::to_string(encoding.kept_float.size()) + " kept F32 (rows not a multiple of 32)");
    }
    const GgufExportSummary s = export_llama_gguf(m.config, m.tensors, m.tokenizer->vocabulary(), args.output, type,
                                                  args.name, pre, encoding.tensors);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

    if (args.common.json) {
        print_json({{"output", s.output},
                    {"type", t},
                    {"bytes", s.bytes},
                    {"tensors", s.tensors},
                    {"format", "gguf"},
                    {"arch", arch},
                    {"source_format", m.format},
                    {"exact", encoding.exact},
                    {"requantized", encoding.requantized},
                    {"kept_f32", encoding.kept_float},
                    {"kept_f16", encoding.kept_f16},
                    {"block_types", block_type_counts(encoding)},
                    {"method", quantized ? args.method : "none"},
                    {"gptq", encoding.given},
                    {"gptq_fallbacks", gptq_fallbacks},
                    {"calibration", calibration.cache == "none" && calibration.tokens == 0
                                        ? nlohmann::json(nullptr)
                                        : nlohmann::json{{"cache", calibration.cache},
                                                         {"samples", calibration.samples},
                                                         {"len", calibration.len},
                                                         {"tokens", calibration.tokens}}},
                    {"seconds", seconds}});
    } else {
        std::ostringstream os;
        os << "wrote " << s.output << ": " << s.tensors << " tensors, " << s.bytes << " bytes, " << t << ", "
           << std::fixed << std::setprecision(2) << seconds << " s";
        std::cout << os.str() << std::endl;
    }
    return 0;
}

}  // namespace

void register_export(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<ExportArgs>();
    ExportArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand(
        "export", "Write a GGUF file that llama.cpp loads (Llama, Mistral, Qwen2, MiniCPM)");
    cmd->add_option("IN", args.model, "Model directory or file")->required();
    cmd->add_option("-o,--output", args.output, "Output .gguf file")->required();
    cmd->add_option("--type", args.type,
                    "Tensor type of the 2-D weights: f32, f16, q8_0, q4_0, q4_1, q4_k or q6_k (norms stay F32). A "
                    ".sparq file's int8 / int4 codes in groups of 32k columns (or per channel) are carried over "
                    "exactly as Q8_0 / Q4_0 (symmetric) or Q4_1 (asymmetric) whatever the type; the other weights "
                    "are quantized to it (q8_0/q4_0 by RTN in groups of 32, q4_1/q4_k/q6_k by fitted blocks; k-quant "
                    "rows that are not a multiple of 256 fall back to q4_1 / q8_0)")
        ->default_val("f16")
        ->check(CLI::Validator(check_type, "f32|f16|q8_0|q4_0|q4_1|q4_k|q6_k", "GGUF type"));
    cmd->add_option("--head-type", args.head_type,
                    "Type of the output head within a quantized export (f32, f16, q8_0, q4_0, q4_1, q4_k, q6_k; "
                    "default --type), as llama-quantize's --output-tensor-type")
        ->check(CLI::Validator(check_type, "f32|f16|q8_0|q4_0|q4_1|q4_k|q6_k", "GGUF type"));
    cmd->add_option("--embed-type", args.embed_type,
                    "Type of the token embedding within a quantized export (as --head-type; llama-quantize's "
                    "--token-embedding-type)")
        ->check(CLI::Validator(check_type, "f32|f16|q8_0|q4_0|q4_1|q4_k|q6_k", "GGUF type"));
    cmd->add_option("--calib", args.calib.path,
                    "Calibration text (or .jsonl): q4_1/q4_k/q6_k blocks weight each column's error by the mean "
                    "square of its inputs, as an importance matrix does");
    cmd->add_option("--method", args.method,
                    "fit: error-fitted blocks (weighted by calibration when given); gptq: GPTQ onto the q4_1/q4_k/q6_k "
                    "block grids from calibration Hessians (block linears; embedding and head fitted)")
        ->check(CLI::IsMember({"fit", "gptq"}));
    cmd->add_option("--damp", args.damp, "GPTQ dampening, x mean diagonal of H (default 0.01)")->check(CLI::Range(0.0, 1.0));
    cmd->add_flag("--act-order", args.act_order,
                  "GPTQ in descending order of the inputs' energy, block grids fitted to the original weights "
                  "(default: column order, grids fitted to the updated weights)");
    add_calib_samples_option(cmd, args.calib.samples, "Samples to draw");
    cmd->add_option("--calib-len", args.calib.len, "Tokens per sample (default 512)");
    cmd->add_option("--seed", args.calib.seed, "Seed drawing the samples (default 0)");
    cmd->add_option("--calib-cache", args.calib_cache,
                    "Calibration cache (sparq calibrate): read when it matches, written when absent");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_option("--name", args.name, "general.name stored in the file (default: the output file's stem)");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_export(*shared); });
}

}  // namespace sparq::cli
