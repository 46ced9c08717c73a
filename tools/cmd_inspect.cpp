// sparq inspect MODEL: what a model holds (CONTRACT.md fields).
#include <cmath>
#include <iomanip>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "core/half.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/llama_export.h"
#include "formats/sparq/sparq_file.h"
#include "models/model_source.h"
#include "models/sparq_model.h"
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

// How a .sparq file stores a tensor: its encoding, a label naming the
// scheme ("int4_g32_sym", "nm_sparse_2:4_int4_g32_sym", ...) and the bytes of
// its planes. The loader hands out dequantized floats; inspect reports what
// is stored.
struct StoredForm {
    std::string encoding;
    std::string label;
    int64_t bytes = 0;
};

std::map<std::string, StoredForm> sparq_stored_forms(const std::string& path) {
    std::map<std::string, StoredForm> out;
    const auto file = SparqFile::open(path, false);
    for (const SparqTensor& t : file->tensors()) {
        StoredForm f{t.encoding, t.encoding, static_cast<int64_t>(t.stored_bytes())};
        if (t.encoding == "quant" || t.encoding == "nm_sparse" || t.encoding == "bitmask_sparse") {
            const std::string scheme = tensor_quant_scheme(t, path).name();
            if (t.encoding == "quant") {
                f.label = scheme;
            } else if (t.encoding == "bitmask_sparse") {
                f.label = "bitmask_sparse_" + scheme;
            } else {
                const NmSparseView v = nm_sparse_view(t, path);
                f.label = "nm_sparse_" + std::to_string(v.scheme.n) + ":" + std::to_string(v.scheme.m) + "_" + scheme;
            }
        }
        out[t.name] = f;
    }
    return out;
}

// How a GGUF file stores each tensor: its ggml type ("Q4_K", "F16", ...)
// and bytes (the loader dequantizes the quantized ones to F32).
std::map<std::string, StoredForm> gguf_stored_forms(const std::string& path) {
    std::map<std::string, StoredForm> out;
    const gguf::GgufFile file = gguf::GgufFile::open(path);
    for (const gguf::TensorInfo& t : file.tensors()) {
        const std::optional<std::string> hf = hf_name_for_gguf(t.name);
        if (!hf) continue;
        const std::string type(gguf::ggml_type_name(t.type));
        out[*hf] = StoredForm{type, type, static_cast<int64_t>(t.nbytes)};
    }
    return out;
}

int run_inspect(const InspectArgs& args) {
    LoadOptions options;
    options.tokenizer_path = args.tokenizer;
    options.require_tokenizer = false;
    const ModelSource m = load_model(args.model, options);
    std::map<std::string, StoredForm> stored;
    if (m.format == "sparq") stored = sparq_stored_forms(m.path);
    if (m.format == "gguf") stored = gguf_stored_forms(m.path);
    nlohmann::json tensors = nlohmann::json::array();
    int64_t n_params = 0, weight_bytes = 0, linear_params = 0, linear_bytes = 0, linear_zeros = 0;
    for (const auto& [name, t] : m.tensors.all()) {
        const int64_t numel = t.numel();
        // Pruned weights are exact zeros in every encoding, so counting the
        // zeros of the (dequantized) values is the sparsity of any file.
        const double sparsity = zero_fraction(t);
        const auto form = stored.find(name);
        const int64_t bytes = form != stored.end() ? form->second.bytes : static_cast<int64_t>(t.nbytes);
        n_params += numel;
        weight_bytes += bytes;
        if (is_block_linear(name)) {
            linear_params += numel;
            linear_bytes += bytes;
            linear_zeros += static_cast<int64_t>(std::llround(sparsity * static_cast<double>(numel)));
        }
        nlohmann::json e = {{"name", name},
                            {"dtype", form != stored.end() ? form->second.label : std::string(dtype_name(t.dtype))},
                            {"shape", t.shape},
                            {"bytes", bytes},
                            {"sparsity", sparsity}};
        if (form != stored.end()) e["encoding"] = form->second.encoding;
        tensors.push_back(e);
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
    // How a .sparq file was made (command, source, quantization and
    // sparsity settings), as its writer recorded it.
    if (m.format == "sparq") j["metadata"] = SparqFile::open(m.path, false)->metadata();
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
    if (j.contains("metadata") && j["metadata"].contains("command") && j["metadata"]["command"].is_string()) {
        std::cout << "  made by: " << j["metadata"]["command"].get<std::string>() << "\n";
    }
    for (const auto& t : tensors) {
        std::cout << "  " << std::left << std::setw(48) << t["name"].get<std::string>() << " "
                  << std::setw(5) << t["dtype"].get<std::string>() << " " << t["shape"].dump() << "\n";
    }
    return 0;
}

}  // namespace

void register_inspect(CLI::App& app) {
    // Owned by the command's callback: each app registered gets its own.
    auto shared = std::make_shared<InspectArgs>();
    InspectArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("inspect", "Show a model's configuration, tensors and size");
    cmd->add_option("MODEL", args.model, "Model directory or file")->required();
    cmd->add_option("--tokenizer", args.tokenizer, "Tokenizer file (llama2.c checkpoints)");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_inspect(*shared); });
}

}  // namespace sparq::cli
