// sparq generate MODEL --prompt TEXT: prints the continuation.
#include <chrono>
#include <iostream>
#include <memory>

#include "core/error.h"
#include "models/sampling.h"
#include "tools/command.h"
#include "tools/model_loading.h"

namespace sparq::cli {

namespace {

struct GenerateArgs {
    CommonOptions common;
    std::string model;
    std::string prompt;
    std::string tokenizer;
    int64_t tokens = 64;
    double temperature = 0.0;
    double top_p = 1.0;
    uint64_t seed = 0;
    bool reference_path = false;
};

int run_generate(const GenerateArgs& args) {
    RunnableModel m = open_runnable(args.model, args.tokenizer, args.reference_path);
    const Tokenizer& tokenizer = *m.source.tokenizer;
    std::vector<int32_t> prompt = tokenizer.encode(args.prompt, tokenizer.vocabulary().add_bos);
    if (prompt.empty()) fail("the prompt gives no tokens");
    const int64_t capacity = static_cast<int64_t>(prompt.size()) + args.tokens;
    auto state = m.model->new_state(capacity);
    const int64_t vocab = m.model->config().vocab_size;
    std::vector<float> logits(static_cast<size_t>(vocab));
    Rng rng(args.seed);
    const auto start = std::chrono::steady_clock::now();
    m.model->forward(*state, prompt, logits.data(), false);
    const auto prefill_end = std::chrono::steady_clock::now();
    std::vector<int32_t> generated;
    std::string text;
    for (int64_t i = 0; i < args.tokens; ++i) {
        const int32_t next = sample_token(logits.data(), vocab, args.temperature, args.top_p, rng);
        if (next == tokenizer.eos_id()) break;
        generated.push_back(next);
        const std::string piece = tokenizer.token_bytes(next);
        text += piece;
        if (!args.common.json) std::cout << piece << std::flush;
        if (i + 1 < args.tokens) m.model->forward(*state, std::span<const int32_t>(&next, 1), logits.data(), false);
    }
    const auto end = std::chrono::steady_clock::now();
    const double decode_s = std::chrono::duration<double>(end - prefill_end).count();
    if (args.common.json) {
        print_json({{"prompt", args.prompt},
                    {"text", text},
                    {"prompt_tokens", prompt.size()},
                    {"tokens", generated},
                    {"decode_tokens_per_second", decode_s > 0 ? static_cast<double>(generated.size()) / decode_s : 0.0},
                    {"seconds", std::chrono::duration<double>(end - start).count()},
                    {"path", m.model->path_name()}});
    } else {
        std::cout << std::endl;
    }
    return 0;
}

}  // namespace

void register_generate(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<GenerateArgs>();
    GenerateArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("generate", "Continue a prompt");
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("--prompt", args.prompt, "Text to continue")->required();
    cmd->add_option("-n,--tokens", args.tokens, "Tokens to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    cmd->add_option("--temperature", args.temperature, "0 = greedy (deterministic)")->check(CLI::NonNegativeNumber);
    cmd->add_option("--top-p", args.top_p, "Nucleus sampling threshold")->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--seed", args.seed, "Sampling seed");
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_flag("--reference-path", args.reference_path, "Force the FP32 reference forward");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_generate(*shared); });
}

}  // namespace sparq::cli
