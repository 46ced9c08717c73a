// sparq verify FILE.sparq [--against MODEL] [--text FILE]: proves a packed
// file is the model it claims to be. Checksums of every tensor; with
// --against, the compression error of each tensor against the source; with
// --text, the packed runtime against the FP32 reference forward on the same
// dequantized weights (so only the kernels differ), over chunks (prefill
// kernels) and over the text's first tokens fed one at a time (decode
// kernels). Exit 3 when not ok.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <memory>
#include <span>

#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/perplexity.h"
#include "models/llama_reference.h"
#include "models/sparq_model.h"
#include "quant/quantize_tensor.h"
#include "tokenizer/llama_cpp_escapes.h"
#include "tools/command.h"
#include "tools/model_loading.h"

namespace sparq::cli {

namespace {

struct VerifyArgs {
    CommonOptions common;
    std::string file;
    std::string against;
    std::string text;
    int64_t ctx = 256;
    int64_t chunks = 8;
    double max_kld = 1e-3;
    double min_top1 = 0.995;
    int64_t decode_tokens = 64;
};

struct DecodeComparison {
    int64_t tokens = 0;
    double kld_mean = 0;
    double top1_agreement = 0;
};

int64_t argmax(const float* v, int64_t n) { return std::max_element(v, v + n) - v; }

// The first tokens of the text fed one at a time (the decode kernels, which
// `sparq generate` runs; chunks take the prefill kernels), each step's
// logits against the reference forward over the same prefix.
DecodeComparison compare_decode(const CausalLM& packed, const CausalLM& reference, std::vector<int32_t> prefix) {
    DecodeComparison d;
    d.tokens = static_cast<int64_t>(prefix.size());
    if (d.tokens == 0) return d;
    const int64_t vocab = packed.config().vocab_size;
    std::vector<float> expected(static_cast<size_t>(d.tokens * vocab)), step(static_cast<size_t>(vocab));
    const auto ref_state = reference.new_state(d.tokens);
    reference.forward(*ref_state, prefix, expected.data(), true);
    const auto state = packed.new_state(d.tokens);
    double kld = 0;
    int64_t agree = 0;
    for (int64_t i = 0; i < d.tokens; ++i) {
        packed.forward(*state, std::span<const int32_t>(prefix.data() + i, 1), step.data(), false);
        const float* want = expected.data() + i * vocab;
        kld += kl_divergence(want, step.data(), vocab);
        agree += argmax(want, vocab) == argmax(step.data(), vocab);
    }
    d.kld_mean = kld / static_cast<double>(d.tokens);
    d.top1_agreement = static_cast<double>(agree) / static_cast<double>(d.tokens);
    return d;
}

int run_verify(const VerifyArgs& args) {
    nlohmann::json failures = nlohmann::json::array();
    const auto file = SparqFile::open(args.file, false);
    const auto bad = file->verify_all();
    for (const auto& name : bad) failures.push_back("checksum mismatch in tensor '" + name + "'");
    std::optional<ModelSource> source;
    if (!args.against.empty()) {
        LoadOptions options;
        options.require_tokenizer = false;
        source = load_model(args.against, options);
    }
    nlohmann::json tensors = nlohmann::json::array();
    for (const SparqTensor& t : file->tensors()) {
        const bool checksum_ok = std::find(bad.begin(), bad.end(), t.name) == bad.end();
        nlohmann::json e = {{"name", t.name}, {"encoding", t.encoding}, {"checksum_ok", checksum_ok}};
        if (source && checksum_ok) {
            if (!source->tensors.has(t.name)) {
                failures.push_back("tensor '" + t.name + "' is not in " + args.against);
            } else {
                const Tensor& original = source->tensors.get(t.name);
                std::vector<float> stored;
                try {
                    stored = sparq_tensor_values(*file, t).to_f32();
                } catch (const Error& err) {
                    failures.push_back(err.what());
                }
                const std::vector<float> ref = original.to_f32();
                if (stored.size() != ref.size()) {
                    failures.push_back("tensor '" + t.name + "' has " + std::to_string(stored.size()) +
                                       " elements, the source " + std::to_string(ref.size()));
                } else {
                    double max_abs = 0;
                    for (size_t i = 0; i < ref.size(); ++i) max_abs = std::max(max_abs, std::abs(double(ref[i]) - stored[i]));
                    e["sqnr_db"] = finite_or_null(sqnr_db(ref, stored));
                    e["max_abs_error"] = max_abs;
                }
            }
        }
        tensors.push_back(e);
    }
    nlohmann::json j = {{"file", args.file}, {"checksums_ok", bad.empty()}, {"tensors", tensors}};
    if (!args.text.empty()) {
        // The packed runtime against the reference forward over the same
        // dequantized weights.
        RunnableModel packed = open_runnable(args.file, "", false);
        const ModelSource dequantized = load_sparq_model(args.file);
        const LlamaReference reference(dequantized.config, dequantized.tensors);
        const std::string text = apply_llama_cpp_escapes(read_text_file(args.text));
        const Tokenizer& tok = *packed.source.tokenizer;
        const auto tokens = tok.encode(text, tok.vocabulary().add_bos);
        PerplexityOptions o;
        o.ctx = args.ctx;
        o.max_chunks = args.chunks;
        o.bos_id = tok.bos_id();
        o.replace_first_with_bos = tok.vocabulary().add_bos;
        const PerplexityResult r = evaluate_perplexity(*packed.model, tokens, o, &reference);
        j["kld_mean"] = r.reference->kld_mean;
        j["top1_agreement"] = r.reference->top1_agreement;
        j["ppl"] = r.ppl;
        j["reference_ppl"] = r.reference->ref_ppl;
        j["kernel"] = packed.model->path_name();
        if (packed.model->path_name() == "reference") {
            failures.push_back("the packed runtime did not run (only the reference path is available for this file)");
        }
        if (r.reference->kld_mean > args.max_kld) {
            failures.push_back("mean KL divergence " + std::to_string(r.reference->kld_mean) + " exceeds " +
                               std::to_string(args.max_kld));
        }
        if (r.reference->top1_agreement < args.min_top1) {
            failures.push_back("top-1 agreement " + std::to_string(r.reference->top1_agreement) + " is below " +
                               std::to_string(args.min_top1));
        }
        std::vector<int32_t> prefix(tokens.begin(),
                                    tokens.begin() + std::min<int64_t>({args.decode_tokens, args.ctx,
                                                                        static_cast<int64_t>(tokens.size())}));
        if (!prefix.empty() && o.replace_first_with_bos) prefix[0] = o.bos_id;
        const DecodeComparison d = compare_decode(*packed.model, reference, prefix);
        j["decode"] = {{"tokens", d.tokens}, {"kld_mean", d.kld_mean}, {"top1_agreement", d.top1_agreement}};
        if (d.tokens > 0 && d.kld_mean > args.max_kld) {
            failures.push_back("decode (one token at a time): mean KL divergence " + std::to_string(d.kld_mean) +
                               " exceeds " + std::to_string(args.max_kld));
        }
        if (d.tokens > 0 && d.top1_agreement < args.min_top1) {
            failures.push_back("decode (one token at a time): top-1 agreement " + std::to_string(d.top1_agreement) +
                               " is below " + std::to_string(args.min_top1));
        }
    }
    j["failures"] = failures;
    j["ok"] = failures.empty();
    if (args.common.json) {
        print_json(j);
    } else {
        for (const auto& t : tensors) {
            std::cout << std::left << std::setw(48) << t["name"].get<std::string>() << " "
                      << (t["checksum_ok"].get<bool>() ? "checksum ok" : "CHECKSUM MISMATCH");
            if (t.contains("sqnr_db")) std::cout << "  sqnr " << t["sqnr_db"].dump() << " dB";
            std::cout << "\n";
        }
        for (const auto& f : failures) std::cout << "FAIL: " << f.get<std::string>() << "\n";
        std::cout << (failures.empty() ? "ok\n" : "not ok\n");
    }
    return failures.empty() ? 0 : 3;
}

}  // namespace

void register_verify(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<VerifyArgs>();
    VerifyArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("verify", "Check a .sparq file: checksums, error vs source, runtime vs reference");
    cmd->add_option("FILE", args.file, ".sparq file")->required();
    cmd->add_option("--against", args.against, "Source model to compare each tensor with");
    cmd->add_option("--text", args.text, "Text to run the packed runtime against the reference forward on");
    cmd->add_option("--ctx", args.ctx, "Tokens per chunk for --text")->check(CLI::Range(4, 1 << 20));
    cmd->add_option("--chunks", args.chunks, "Chunks of --text to compare")->check(CLI::PositiveNumber);
    cmd->add_option("--max-kld", args.max_kld, "Largest mean KL divergence accepted");
    cmd->add_option("--min-top1", args.min_top1, "Smallest top-1 agreement accepted");
    cmd->add_option("--decode-tokens", args.decode_tokens,
                    "Tokens of --text also fed one at a time (the decode kernels); 0: none")
        ->check(CLI::NonNegativeNumber);
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_verify(*shared); });
}

}  // namespace sparq::cli
