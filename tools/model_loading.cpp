#include "tools/model_loading.h"

#include <filesystem>

#include "models/llama_reference.h"
#include "runtime/packed_model.h"

namespace sparq::cli {

namespace {
bool is_sparq_file(const std::string& path) {
    if (std::filesystem::path(path).extension() == ".sparq") return true;
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char magic[5] = {};
    const size_t got = std::fread(magic, 1, 5, f);
    std::fclose(f);
    return got == 5 && std::string(magic, 5) == "SPARQ";
}
}  // namespace

RunnableModel open_runnable(const std::string& path, const std::string& tokenizer_path, bool reference_path) {
    RunnableModel r;
    if (!reference_path && is_sparq_file(path)) {
        // The packed runtime: weights used in place from the mapping.
        PackedModel packed = load_packed_model(path);
        r.source = std::move(packed.source);
        r.bytes_per_token = packed.bytes_per_token;
        r.packed_file = packed.file;
        r.model = std::move(packed.model);
        return r;
    }
    LoadOptions options;
    options.tokenizer_path = tokenizer_path;
    r.source = load_model(path, options);
    auto model = std::make_unique<LlamaReference>(r.source.config, r.source.tensors);
    r.bytes_per_token = model->weights().bytes_per_token();
    r.model = std::move(model);
    return r;
}

}  // namespace sparq::cli
