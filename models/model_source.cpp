#include "models/model_source.h"

#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/llama2c.h"
#include "formats/safetensors.h"

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

ModelSource load_hf_directory(const std::string& dir, const LoadOptions& options) {
    ModelSource m;
    m.path = dir;
    const std::string config_path = dir + "/config.json";
    if (!file_exists(config_path)) fail_in({dir, "", ""}, "not a Hugging Face model directory: config.json is missing");
    m.config = load_hf_config(config_path);
    if (file_exists(dir + "/model.safetensors")) {
        m.format = "hf-safetensors";
        m.tensors = read_safetensors(dir + "/model.safetensors");
    } else if (file_exists(dir + "/model.safetensors.index.json")) {
        fail_in({dir, "", ""}, "sharded safetensors (model.safetensors.index.json) are not supported yet");
    } else if (file_exists(dir + "/pytorch_model.bin")) {
        fail_in({dir, "", ""}, "PyTorch checkpoints (pytorch_model.bin) are not supported yet");
    } else {
        fail_in({dir, "", ""}, "no weights found (expected model.safetensors)");
    }
    m.tokenizer = open_tokenizer(options.tokenizer_path, {dir + "/tokenizer.model"}, m.config, options, dir);
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

ModelSource load_model(const std::string& path, const LoadOptions& options) {
    if (is_directory(path)) return load_hf_directory(path, options);
    if (!file_exists(path)) fail_in({path, "", ""}, "no such file or directory");
    const std::string ext = fs::path(path).extension().string();
    if (ext == ".safetensors") {
        const std::string dir = fs::path(path).parent_path().string();
        ModelSource m = load_hf_directory(dir.empty() ? "." : dir, options);
        m.tensors = read_safetensors(path);
        return m;
    }
    if (ext == ".sparq") fail_in({path, "", ""}, ".sparq files are not supported yet");
    if (ext == ".gguf" || starts_with_bytes(path, "GGUF", 4)) {
        fail_in({path, "", ""}, "reading GGUF files is not supported yet");
    }
    if (starts_with_bytes(path, "PK\x03\x04", 4)) {
        fail_in({path, "", ""}, "PyTorch zip checkpoints are not supported yet");
    }
    if (ext == ".bin") return load_llama2c(path, options);
    fail_in({path, "", ""}, "unrecognized model file (expected a Hugging Face directory, a llama2.c .bin, "
                            "a .safetensors file beside its config.json)");
}

}  // namespace sparq
