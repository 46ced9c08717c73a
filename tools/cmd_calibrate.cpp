// sparq calibrate MODEL --calib FILE [--calib-samples N] [--calib-len L]
// [--seed S] -o calibration.h5: runs the calibration text through the model
// block by block and caches every block's activation statistics (HDF5,
// docs/calibration.md) for `sparq quantize --calib-cache`.
#include <chrono>
#include <iomanip>
#include <iostream>
#include <memory>

#include "calibration/statistics_cache.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "core/memory.h"
#include "tools/command.h"

namespace sparq::cli {

namespace {

struct CalibrateArgs {
    CommonOptions common;
    std::string model;
    std::string output;
    std::string tokenizer;
    CalibrationDataOptions data;
};

int run_calibrate(CalibrateArgs& args) {
    if (args.output.empty()) fail_in({"", "", "-o"}, "an output file (calibration.h5) is required");
    const auto start = std::chrono::steady_clock::now();
    LoadOptions load;
    load.tokenizer_path = args.tokenizer;
    const ModelSource model = load_model(args.model, load);
    StatisticsRequest request;
    request.data = args.data;
    request.cache_path = args.output;
    request.reuse = false;
    const auto log = [&](const std::string& s) { log_line(args.common, s); };
    const StatisticsOutcome outcome =
        visit_statistics(model, request, [](int64_t, InputSpace, const ActivationStatistics&) {}, log);
    const CalibrationKey& key = outcome.key;
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (args.common.json) {
        print_json({{"output", args.output},
                    {"samples", outcome.samples},
                    {"len", outcome.len},
                    {"tokens", outcome.tokens},
                    {"seed", args.data.seed},
                    {"model_checksum", key.model_checksum},
                    {"data_checksum", key.data_checksum},
                    {"block_seconds", outcome.run.block_seconds},
                    {"warnings", outcome.warnings},
                    {"seconds", seconds},
                    {"peak_rss_bytes", peak_rss_bytes()}});
    } else {
        std::cout << "wrote " << args.output << ": " << outcome.samples << " samples x " << outcome.len
                  << " tokens, " << model.config.num_layers << " blocks in " << std::fixed << std::setprecision(2)
                  << seconds << " s\n";
    }
    return 0;
}

}  // namespace

void register_calibrate(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<CalibrateArgs>();
    CalibrateArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("calibrate", "Compute and cache the activation statistics calibrated methods use");
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("--calib", args.data.path, "Calibration text, or JSON lines with a \"text\" field (.jsonl)")
        ->required();
    add_calib_samples_option(cmd, args.data.samples, "Samples to draw");
    cmd->add_option("--calib-len", args.data.len, "Tokens per sample (default 512)");
    cmd->add_option("--seed", args.data.seed, "Seed drawing the samples (default 0)");
    cmd->add_option("-o,--output", args.output, "Output HDF5 file (calibration.h5)");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_calibrate(*shared); });
}

}  // namespace sparq::cli
