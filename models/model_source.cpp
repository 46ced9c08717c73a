#include "models/model_source.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"
#include "models/gguf_model.h"
#include "models/sparq_model.h"
#include "formats/sharded_safetensors.h"
#ifdef SPARQ_HAVE_TORCH
#include "formats/pytorch/pytorch_reader.h"
#endif

namespace sparq {

namespace fs = std::filesystem;

std::string layer_tensor_name(int64_t layer, const std::string& suffix) {
    return "model.layers." + std::to_string(layer) + "." + suffix;
}

bool is_block_linear(const std::string& name) {
    static const char* const suffixes[] = {
        ".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
        ".self_attn.o_proj.weight", ".mlp.gate_proj.weight",    ".mlp.up_proj.weight",
        ".mlp.down_proj.weight"};
    if (name.rfind("model.layers.", 0) != 0) return false;
    for (const char* suffix : suffixes) {
        const size_t n = std::strlen(suffix);
        if (name.size() > n && name.compare(name.size() - n, n, suffix) == 0) return true;
    }
    return false;
}

namespace {

bool starts_with_bytes(const std::string& path, const char* magic, size_t n) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char buf[8] = {};
    const size_t got = std::fread(buf, 1, n, f);
    std::fclose(f);
    return got == n && std::memcmp(buf, magic, n) == 0;
}

std::string first_existing(const std::vector<std::string>& candidates) {
    for (const auto& c : candidates)
        if (file_exists(c)) return c;
    return "";
}

std::shared_ptr<Tokenizer> open_tokenizer(const std::string& explicit_path, const std::vector<std::string>& beside,
                                          const ModelConfig& config, const LoadOptions& options,
                                          const std::string& model_path) {
    std::string path = explicit_path.empty() ? first_existing(beside) : explicit_path;
    if (path.empty()) {
        if (!options.require_tokenizer) return nullptr;
        std::string tried;
        for (const auto& c : beside) tried += "\n  " + c;
        fail_in({model_path, "", ""}, "no tokenizer found (give one with --tokenizer); looked for:", tried);
    }
    return load_tokenizer(path, config.vocab_size);
}

// PyTorch checkpoints need LibTorch (the sparq_pytorch library).
TensorMap read_torch_weights(const std::string& path, bool sharded) {
#ifdef SPARQ_HAVE_TORCH
    return sharded ? read_pytorch_sharded(path) : read_pytorch_checkpoint(path);
#else
    (void)sharded;
    fail_in({path, "", ""}, "cannot read a PyTorch checkpoint: sparq was built without LibTorch "
                            "(SPARQ_WITH_TORCH=OFF); convert the model to safetensors");
#endif
}

// Weights are read from `weights` when given (a file named on the command
// line), else from the first of the usual Hugging Face files in `dir`.
ModelSource load_hf_directory(const std::string& dir, const LoadOptions& options, const std::string& weights = "") {
    ModelSource m;
    m.path = dir;
    const std::string config_path = dir + "/config.json";
    if (!file_exists(config_path)) fail_in({dir, "", ""}, "not a Hugging Face model directory: config.json is missing");
    m.config = load_hf_config(config_path);
    auto ends_with = [&](const char* suffix) {
        const size_t n = std::strlen(suffix);
        return weights.size() >= n && weights.compare(weights.size() - n, n, suffix) == 0;
    };
    if (!weights.empty()) {
        m.path = weights;
        if (ends_with(".safetensors")) {
            m.format = "hf-safetensors";
            m.tensors = read_safetensors(weights);
        } else if (ends_with(".safetensors.index.json")) {
            m.format = "hf-safetensors-sharded";
            m.tensors = read_sharded_safetensors(weights);
        } else if (ends_with(".bin.index.json")) {
            m.format = "hf-pytorch-sharded";
            m.tensors = read_torch_weights(weights, true);
        } else {
            m.format = "hf-pytorch";
            m.tensors = read_torch_weights(weights, false);
        }
    } else if (file_exists(dir + "/model.safetensors")) {
        m.format = "hf-safetensors";
        m.tensors = read_safetensors(dir + "/model.safetensors");
    } else if (file_exists(dir + "/model.safetensors.index.json")) {
        m.format = "hf-safetensors-sharded";
        m.tensors = read_sharded_safetensors(dir + "/model.safetensors.index.json");
    } else if (file_exists(dir + "/pytorch_model.bin.index.json")) {
        m.format = "hf-pytorch-sharded";
        m.tensors = read_torch_weights(dir + "/pytorch_model.bin.index.json", true);
    } else if (file_exists(dir + "/pytorch_model.bin")) {
        m.format = "hf-pytorch";
        m.tensors = read_torch_weights(dir + "/pytorch_model.bin", false);
    } else {
        fail_in({dir, "", ""}, "no weights found (expected model.safetensors, model.safetensors.index.json, "
                               "pytorch_model.bin.index.json or pytorch_model.bin)");
    }
    m.tokenizer = open_tokenizer(options.tokenizer_path, {dir + "/tokenizer.model", dir + "/tokenizer.json"}, m.config, options, dir);
    return m;
}

ModelSource load_llama2c(const std::string& path, const LoadOptions& options) {
    Llama2cCheckpoint checkpoint = read_llama2c(path);
    ModelSource m;
    m.path = path;
    m.format = "llama2c";
    m.config = checkpoint.config;
    m.tensors = std::move(checkpoint.tensors);
    const std::string dir = fs::path(path).parent_path().string();
    const std::string prefix = dir.empty() ? "" : dir + "/";
    const std::string vocab = std::to_string(m.config.vocab_size);
    m.tokenizer = open_tokenizer(options.tokenizer_path,
                                 {prefix + "tokenizer.bin", prefix + "tok" + vocab + ".bin",
                                  prefix + "tokenizer.model", prefix + "tok" + vocab + ".model"},
                                 m.config, options, path);
    return m;
}

}  // namespace

int64_t stored_tensor_bytes(const ModelSource& model, const std::string& name) {
    if (const auto it = model.stored_bytes.find(name); it != model.stored_bytes.end()) return it->second;
    return static_cast<int64_t>(model.tensors.get(name).nbytes);
}

ModelSource load_model(const std::string& path, const LoadOptions& options) {
    if (is_directory(path)) return load_hf_directory(path, options);
    if (!file_exists(path)) fail_in({path, "", ""}, "no such file or directory");
    const std::string ext = fs::path(path).extension().string();
    const std::string name = fs::path(path).filename().string();
    auto name_ends_with = [&](const std::string& suffix) {
        return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    // Hugging Face weights named directly: read with the config.json beside them.
    const bool torch_zip = (ext == ".bin" && starts_with_bytes(path, "PK\x03\x04", 4)) || ext == ".pt" || ext == ".pth";
    if (ext == ".safetensors" || name_ends_with(".safetensors.index.json") || name_ends_with(".bin.index.json") ||
        torch_zip) {
        const std::string dir = fs::path(path).parent_path().string();
        return load_hf_directory(dir.empty() ? "." : dir, options, path);
    }
    if (ext == ".sparq" || starts_with_bytes(path, "SPARQ", 5)) return load_sparq_model(path);
    if (ext == ".gguf" || starts_with_bytes(path, "GGUF", 4)) return load_gguf_model(path, options);
    if (starts_with_bytes(path, "PK\x03\x04", 4)) {
        const std::string dir = fs::path(path).parent_path().string();
        return load_hf_directory(dir.empty() ? "." : dir, options, path);  // a zip: a PyTorch checkpoint
    }
    if (ext == ".bin") return load_llama2c(path, options);
    fail_in({path, "", ""}, "unrecognized model file (expected a Hugging Face directory, a llama2.c .bin, "
                            "a .safetensors, .pt/.pth or pytorch_model.bin file, or a shard index, beside its "
                            "config.json)");
}

}  // namespace sparq
