// sparq inspect MODEL: what a model holds (CONTRACT.md fields).
#include <cmath>
#include <iomanip>
#include <iostream>

#include "core/half.h"
#include "models/model_source.h"
#include "tools/command.h"

namespace sparq::cli {

namespace {

struct InspectArgs {
    CommonOptions common;
    std::string model;
    std::string tokenizer;
};

// Fraction of exact zeros among a float tensor's elements.
double zero_fraction(const Tensor& t) {
    const int64_t n = t.numel();
    if (n == 0) return 0;
    int64_t zeros = 0;
    switch (t.dtype) {
        case DType::F32:
            for (int64_t i = 0; i < n; ++i) zeros += t.as<float>()[i] == 0.0f;
            break;
        case DType::F16:
        case DType::BF16:
            for (int64_t i = 0; i < n; ++i) zeros += (t.as<uint16_t>()[i] & 0x7fff) == 0;
            break;
        default:
            return 0;
    }
    return static_cast<double>(zeros) / static_cast<double>(n);
}

int run_inspect(const InspectArgs& args) {
    LoadOptions options;
    options.tokenizer_path = args.tokenizer;
    options.require_tokenizer = false;
    const ModelSource m = load_model(args.model, options);
    nlohmann::json tensors = nlohmann::json::array();
    int64_t n_params = 0, weight_bytes = 0, linear_params = 0, linear_bytes = 0, linear_zeros = 0;
    for (const auto& [name, t] : m.tensors.all()) {
        const int64_t numel = t.numel();
        const double sparsity = zero_fraction(t);
        n_params += numel;
        weight_bytes += static_cast<int64_t>(t.nbytes);
        if (is_block_linear(name)) {
            linear_params += numel;
            linear_bytes += static_cast<int64_t>(t.nbytes);
            linear_zeros += static_cast<int64_t>(std::llround(sparsity * static_cast<double>(numel)));
        }
        tensors.push_back({{"name", name},
                           {"dtype", dtype_name(t.dtype)},
                           {"shape", t.shape},
                           {"bytes", t.nbytes},
                           {"sparsity", sparsity}});
    }
    const auto& c = m.config;
    nlohmann::json j = {
        {"path", m.path},
        {"format", m.format},
        {"arch", c.architecture},
        {"n_params", n_params},
        {"n_layers", c.num_layers},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"n_heads", c.num_heads},
        {"n_kv_heads", c.num_kv_heads},
        {"head_dim", c.head_dim},
        {"vocab_size", c.vocab_size},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"rope_theta", c.rope_theta},
        {"tensors", tensors},
        {"weight_bytes", weight_bytes},
        {"bits_per_weight", linear_params ? 8.0 * static_cast<double>(linear_bytes) / static_cast<double>(linear_params) : 0.0},
        {"file_bits_per_weight", n_params ? 8.0 * static_cast<double>(weight_bytes) / static_cast<double>(n_params) : 0.0},
        {"sparsity", linear_params ? static_cast<double>(linear_zeros) / static_cast<double>(linear_params) : 0.0},
    };
    if (m.tokenizer) j["tokenizer"] = {{"kind", m.tokenizer->source_kind()}, {"vocab_size", m.tokenizer->vocab_size()}};
    if (args.common.json) {
        print_json(j);
        return 0;
    }
    std::cout << m.path << " (" << m.format << ")\n"
              << "  arch " << c.architecture << ", " << n_params << " parameters, " << c.num_layers << " layers, hidden "
              << c.hidden_size << ", mlp " << c.intermediate_size << ", heads " << c.num_heads << " (kv " << c.num_kv_heads
              << "), vocab " << c.vocab_size << (c.tie_word_embeddings ? ", tied embeddings" : "") << "\n"
              << "  weights " << weight_bytes << " bytes, " << std::fixed << std::setprecision(3)
              << j["bits_per_weight"].get<double>() << " bits/weight in block linears, "
              << j["file_bits_per_weight"].get<double>() << " over all parameters, sparsity "
              << j["sparsity"].get<double>() << "\n";
    for (const auto& t : tensors) {
        std::cout << "  " << std::left << std::setw(48) << t["name"].get<std::string>() << " "
                  << std::setw(5) << t["dtype"].get<std::string>() << " " << t["shape"].dump() << "\n";
    }
    return 0;
}

}  // namespace

void register_inspect(CLI::App& app) {
    static InspectArgs args;
    CLI::App* cmd = app.add_subcommand("inspect", "Show a model's configuration, tensors and size");
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [] { return run_inspect(args); });
}

}  // namespace sparq::cli
