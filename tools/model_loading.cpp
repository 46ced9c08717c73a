#include "tools/model_loading.h"

#include "models/llama_reference.h"

namespace sparq::cli {

RunnableModel open_runnable(const std::string& path, const std::string& tokenizer_path, bool reference_path) {
    RunnableModel r;
    LoadOptions options;
    options.tokenizer_path = tokenizer_path;
    r.source = load_model(path, options);
    r.model = std::make_unique<LlamaReference>(r.source.config, r.source.tensors);
    return r;
}

}  // namespace sparq::cli
