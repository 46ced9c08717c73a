// Opening a MODEL argument as something that runs (CausalLM), shared by the
// commands that evaluate or generate.
#pragma once

#include <memory>
#include <string>

#include "formats/sparq/sparq_file.h"
#include "models/causal_lm.h"
#include "models/model_source.h"

namespace sparq::cli {

struct RunnableModel {
    ModelSource source;
    std::unique_ptr<CausalLM> model;
    int64_t bytes_per_token = 0;  // weight bytes read per decoded token
    std::shared_ptr<SparqFile> packed_file;  // the mapped .sparq file (packed runtime only)
};

// A .sparq file runs on the packed runtime unless reference_path asks for
// the dequantizing FP32 reference forward; every other format runs on the
// reference forward.
RunnableModel open_runnable(const std::string& path, const std::string& tokenizer_path, bool reference_path);

}  // namespace sparq::cli
