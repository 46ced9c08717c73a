// sparq synth --config CONFIG.json -o DIR --tokenizer FILE: a deterministic
// random-weight model of any Llama-family shape.
#include <iostream>
#include <memory>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/memory.h"
#include "models/synth.h"
#include "tools/command.h"

namespace sparq::cli {

namespace {

struct SynthArgs {
    CommonOptions common;
    std::string config;
    std::string output;
    std::string tokenizer;
    uint64_t seed = 0;
    std::string dtype = "f32";
    int64_t shard_size = 0;
    bool peaked = false;
};

int run_synth(const SynthArgs& args) {
    const ModelConfig config = load_hf_config(args.config);
    SynthOptions options;
    options.seed = args.seed;
    options.dtype = args.dtype == "f16" ? DType::F16 : args.dtype == "bf16" ? DType::BF16 : DType::F32;
    options.shard_size = args.shard_size;
    options.tokenizer_path = args.tokenizer;
    options.peaked = args.peaked;
    options.log = [&](const std::string& s) { log_line(args.common, s); };
    const SynthReport r = synthesize_model(config, options, args.output);
    if (args.common.json) {
        print_json({{"output", args.output},
                    {"n_params", r.n_params},
                    {"bytes", r.bytes},
                    {"shards", r.shards},
                    {"dtype", args.dtype},
                    {"seed", args.seed},
                    {"final_norm_scale", r.final_norm_scale},
                    {"mean_entropy", r.mean_entropy},
                    {"peak_rss_bytes", peak_rss_bytes()}});
    } else {
        std::cout << "wrote " << args.output << ": " << r.n_params << " parameters, " << r.bytes << " bytes in "
                  << r.shards << " file(s)\n";
    }
    return 0;
}

}  // namespace

void register_synth(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<SynthArgs>();
    SynthArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("synth", "Write a deterministic random-weight model of a given shape");
    cmd->add_option("--config", args.config, "config.json giving the shape and architecture")->required();
    cmd->add_option("-o,--output", args.output, "Output directory")->required();
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer to copy in (tokenizer.model or tokenizer.json)")->required();
    cmd->add_option("--seed", args.seed, "Seed");
    cmd->add_option("--dtype", args.dtype, "Weight dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}));
    cmd->add_option("--shard-size", args.shard_size, "Bytes per shard (sharded with an index)")->check(CLI::NonNegativeNumber);
    cmd->add_flag("--peaked", args.peaked, "Scale the final norm until next-token distributions are peaked");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_synth(*shared); });
}

}  // namespace sparq::cli
