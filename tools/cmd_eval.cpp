// sparq eval MODEL --text FILE: perplexity as llama-perplexity computes it,
// optionally KL divergence and top-1 agreement against a reference model.
#include <chrono>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/memory.h"
#include "eval/perplexity.h"
#include "tools/command.h"
#include "tokenizer/llama_cpp_escapes.h"
#include "tools/model_loading.h"

namespace sparq::cli {

namespace {

struct EvalArgs {
    CommonOptions common;
    std::string model;
    std::string text;
    std::string tokenizer;
    std::string ref;
    int64_t ctx = 512;
    int64_t chunks = -1;
    bool reference_path = false;
    bool no_escape = false;
};

int run_eval(const EvalArgs& args) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t idle_rss = current_rss_bytes();
    RunnableModel model = open_runnable(args.model, args.tokenizer, args.reference_path);
    RunnableModel ref;
    if (!args.ref.empty()) ref = open_runnable(args.ref, args.tokenizer, true);
    // llama-perplexity rewrites backslash escapes in the text it reads (its
    // --escape default); doing the same keeps token counts and perplexities
    // comparable with llama.cpp's. --no-escape scores the raw bytes.
    const std::string raw_text = read_text_file(args.text);
    const std::string text = args.no_escape ? raw_text : apply_llama_cpp_escapes(raw_text);
    const Tokenizer& tokenizer = *model.source.tokenizer;
    const std::vector<int32_t> tokens = tokenizer.encode(text, tokenizer.vocabulary().add_bos);
    log_line(args.common, "sparq eval: " + std::to_string(tokens.size()) + " tokens in " + args.text);

    PerplexityOptions options;
    options.ctx = args.ctx;
    options.max_chunks = args.chunks;
    options.replace_first_with_bos = tokenizer.vocabulary().add_bos;
    options.bos_id = tokenizer.bos_id();
    options.progress = [&](int64_t done, int64_t total) {
        if (args.common.quiet) return;
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::ostringstream os;
        os << "[" << std::fixed << std::setprecision(1) << s << "s] chunk " << done << "/" << total;
        log_line(args.common, os.str());
    };
    const PerplexityResult r = evaluate_perplexity(*model.model, tokens, options, ref.model.get());

    nlohmann::json j = {
        {"model", args.model},
        {"text", args.text},
        {"ppl", r.ppl},
        {"ppl_stderr", r.ppl_stderr},
        {"chunks", r.chunks},
        {"ctx", r.ctx},
        {"text_tokens", r.text_tokens},
        {"tokens_scored", r.tokens_scored},
        {"seconds", r.seconds},
        {"tokens_per_second", r.tokens_per_second},
        {"peak_rss_bytes", peak_rss_bytes()},
        {"idle_rss_bytes", idle_rss},
        {"path", model.model->path_name()},
    };
    if (r.reference) {
        j["kld_mean"] = r.reference->kld_mean;
        j["kld_p99"] = r.reference->kld_p99;
        j["top1_agreement"] = r.reference->top1_agreement;
        j["ref_ppl"] = r.reference->ref_ppl;
    }
    if (args.common.json) {
        print_json(j);
    } else {
        std::cout << std::fixed << std::setprecision(4) << "PPL = " << r.ppl << " +/- " << std::setprecision(5)
                  << r.ppl_stderr << "  (" << r.chunks << " chunks of " << r.ctx << ", " << r.tokens_scored
                  << " tokens scored, " << std::setprecision(1) << r.tokens_per_second << " tokens/s)\n";
        if (r.reference) {
            std::cout << std::setprecision(6) << "KLD mean " << r.reference->kld_mean << ", p99 " << r.reference->kld_p99
                      << ", top-1 agreement " << r.reference->top1_agreement << ", reference PPL "
                      << std::setprecision(4) << r.reference->ref_ppl << "\n";
        }
    }
    return 0;
}

}  // namespace

void register_eval(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<EvalArgs>();
    EvalArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("eval", "Perplexity (and KL divergence to a reference) on a text");
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("--text", args.text, "Evaluation text, read byte for byte")->required();
    cmd->add_option("--ctx", args.ctx, "Tokens per chunk")->check(CLI::Range(4, 1 << 20));
    cmd->add_option("--chunks", args.chunks, "At most this many chunks")->check(CLI::PositiveNumber);
    cmd->add_option("--ref", args.ref, "Reference model for KL divergence and top-1 agreement");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_flag("--reference-path", args.reference_path, "Force the FP32 reference forward");
    cmd->add_flag("--no-escape", args.no_escape,
                  "Score the raw bytes (by default backslash escapes are processed as llama.cpp does)");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_eval(*shared); });
}

}  // namespace sparq::cli
