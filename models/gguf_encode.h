// ggml blocks for a quantized GGUF export (`sparq export --type q4_0|q8_0`).
// A .sparq tensor stored as symmetric int4 or int8 codes whose groups are
// whole multiples of 32 columns (or one per row) maps to Q4_0 / Q8_0 block
// for block, value for value: every 32 columns take their group's FP16
// scale as d and their levels as codes (int4: Q4_0 code = level + 8 = the
// stored code; int8: the level). So a model quantized by sparq (GPTQ, AWQ,
// ...) runs in llama.cpp exactly as sparq computed it. Every other 2-D
// weight is quantized to the requested type by sparq's RTN at group 32
// (quant/rtn.h: the better of two absmax-fitted scales, which fits the
// Q4_0 grid), and rows whose length is not a multiple of 32 stay float.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf/llama_export.h"
#include "models/model_source.h"
#include "quant/layout.h"

namespace sparq {

// The Q4_0 (int4) or Q8_0 (int8) blocks holding a packed tensor exactly, or
// nullopt when no ggml block type does (asymmetric, other bit widths, groups
// not a multiple of 32, rows not a multiple of 32).
std::optional<EncodedTensor> ggml_blocks_of(const PackedView& view);

struct GgufEncoding {
    std::map<std::string, EncodedTensor> tensors;  // by Hugging Face name
    std::vector<std::string> exact;        // .sparq codes carried over as they are
    std::vector<std::string> requantized;  // float (or re-gridded) weights quantized by RTN
    std::vector<std::string> kept_float;   // rows not a multiple of 32
};

// Blocks for every 2-D weight of `model` (block linears, embedding, head)
// at `type` (Q4_0 or Q8_0). A .sparq model's packed tensors that map
// exactly keep their own type (an int8 tensor stays Q8_0 under --type q4_0,
// an int4 one Q4_0 under q8_0: re-gridding would only lose).
GgufEncoding encode_for_gguf(const ModelSource& model, gguf::GgmlType type);

}  // namespace sparq
