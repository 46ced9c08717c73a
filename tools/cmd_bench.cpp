// sparq bench MODEL: prefill and decode speed of the runtime (the packed
// runtime for .sparq files), with a streaming-read bandwidth probe measured
// in the same run and the roofline it implies.
#include <chrono>
#include <iomanip>
#include <iostream>
#include <memory>

#include "core/error.h"
#include "core/mapped_file.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "runtime/bandwidth_probe.h"
#include "runtime/kernels/packed_matmul.h"
#include "tools/command.h"
#include "tools/model_loading.h"

namespace sparq::cli {

namespace {

struct BenchArgs {
    CommonOptions common;
    std::string model;
    std::string tokenizer;
    int64_t prompt_tokens = 128;
    int64_t gen_tokens = 64;
    int repeats = 3;
    bool reference_path = false;
    double probe_gib = 1.0;
};

double seconds_since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

int run_bench(const BenchArgs& args) {
    RunnableModel m = open_runnable(args.model, args.tokenizer, args.reference_path);
    const int64_t vocab = m.model->config().vocab_size;
    // Deterministic token ids (speed does not depend on which tokens).
    std::vector<int32_t> prompt(static_cast<size_t>(args.prompt_tokens));
    for (int64_t i = 0; i < args.prompt_tokens; ++i) prompt[i] = static_cast<int32_t>((i * 7919 + 13) % vocab);
    std::vector<float> logits(static_cast<size_t>(vocab));
    double best_prefill = 0, best_decode = 0;
    for (int r = 0; r < args.repeats; ++r) {
        auto state = m.model->new_state(args.prompt_tokens + args.gen_tokens);
        auto t0 = std::chrono::steady_clock::now();
        m.model->forward(*state, prompt, logits.data(), false);
        const double prefill_s = seconds_since(t0);
        int32_t next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        t0 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < args.gen_tokens; ++i) {
            m.model->forward(*state, std::span<const int32_t>(&next, 1), logits.data(), false);
            next = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        }
        const double decode_s = seconds_since(t0);
        best_prefill = std::max(best_prefill, static_cast<double>(args.prompt_tokens) / prefill_s);
        best_decode = std::max(best_decode, static_cast<double>(args.gen_tokens) / decode_s);
        log_line(args.common, "round " + std::to_string(r + 1) + ": prefill " + std::to_string(args.prompt_tokens / prefill_s) +
                                  " tok/s, decode " + std::to_string(args.gen_tokens / decode_s) + " tok/s");
    }
    // After decoding, every weight page is resident: how much of it is mapped
    // in 2 MiB pages (the page cache's state moves decode speed; see
    // core/mapped_file.cpp).
    const double huge_pages =
        m.packed_file ? huge_page_fraction(m.packed_file->data(), m.packed_file->file_size()) : 0.0;
    const double bandwidth = measure_read_bandwidth(static_cast<int64_t>(args.probe_gib * (1 << 30)));
    const double bytes = static_cast<double>(m.bytes_per_token);
    const double roofline = bytes > 0 ? bandwidth / bytes : 0;
    nlohmann::json j = {{"model", args.model},
                        {"prefill_tokens_per_second", best_prefill},
                        {"decode_tokens_per_second", best_decode},
                        {"prompt_tokens", args.prompt_tokens},
                        {"gen_tokens", args.gen_tokens},
                        {"weight_bytes_per_token", m.bytes_per_token},
                        {"measured_bandwidth_gbs", bandwidth / 1e9},
                        {"effective_bandwidth_gbs", best_decode * bytes / 1e9},
                        {"roofline_tokens_per_second", roofline},
                        {"roofline_fraction", roofline > 0 ? best_decode / roofline : 0.0},
                        {"threads", active_threads()},
                        {"kernel", packed_kernel_target()},
                        {"path", m.model->path_name()},
                        {"peak_rss_bytes", peak_rss_bytes()},
                        {"weights_in_huge_pages", huge_pages}};
    if (args.common.json) {
        print_json(j);
    } else {
        std::cout << std::fixed << std::setprecision(1) << "prefill " << best_prefill << " tok/s, decode " << best_decode
                  << " tok/s (" << std::setprecision(3) << best_decode * bytes / 1e9 << " GB/s of weights; probe "
                  << bandwidth / 1e9 << " GB/s; roofline fraction " << (roofline > 0 ? best_decode / roofline : 0.0)
                  << "; weights in 2 MiB pages " << std::setprecision(2) << huge_pages << "), " << active_threads()
                  << " threads, " << m.model->path_name() << "\n";
    }
    return 0;
}

}  // namespace

void register_bench(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<BenchArgs>();
    BenchArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("bench", "Prefill and decode speed against the memory-bandwidth roofline");
    cmd->add_option("MODEL", args.model, "Model (a .sparq file runs on the packed runtime)")->required();
    cmd->add_option("--prompt-tokens", args.prompt_tokens, "Prompt length")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
    cmd->add_option("--gen-tokens", args.gen_tokens, "Tokens to decode")->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
    cmd->add_option("--repeats", args.repeats, "Rounds (the best is reported)")->check(CLI::Range(1, 100));
    cmd->add_option("--probe-gib", args.probe_gib, "Size of the bandwidth probe buffer in GiB")->check(CLI::Range(0.0625, 16.0));
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    cmd->add_flag("--reference-path", args.reference_path, "Run the FP32 reference forward instead");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_bench(*shared); });
}

}  // namespace sparq::cli
