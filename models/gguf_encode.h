// ggml blocks for a quantized GGUF export (`sparq export --type
// q8_0|q4_0|q4_1|q4_k|q6_k`).
//
// A .sparq tensor whose codes a ggml block type holds is carried over block
// for block: symmetric int4 / int8 with groups of 32k columns (or one per
// row) become Q4_0 / Q8_0 value for value (every 32 columns take their
// group's FP16 scale as d and their levels as codes: int4's Q4_0 code is
// the stored code, int8's the level), and asymmetric int4 becomes Q4_1
// with d the scale and m = -d z (the zero point's offset rounded to FP16;
// every other value exact). So a model quantized by sparq (GPTQ, AWQ, ...)
// runs in llama.cpp as sparq computed it, whatever --type asks for: the
// type applies to the weights stored as float or in codes no block holds.
//
// Those are quantized to the requested type: q4_0 / q8_0 by sparq's RTN at
// group 32 (quant/rtn.h: the better of two absmax-fitted scales, which fits
// the Q4_0 grid); q4_1, q4_k and q6_k by the ggml block fitters
// (formats/gguf/ggml_quantize.h). The k-quants need rows of 256k columns;
// shorter rows fall back as llama.cpp's quantizer does to a 32-block type
// (q4_k -> Q4_1, q6_k -> Q8_0), and rows that are not a multiple of 32 stay
// F32.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf/llama_export.h"
#include "models/model_source.h"
#include "quant/layout.h"

namespace sparq {

// The Q4_0 / Q8_0 / Q4_1 blocks holding a packed tensor (Q4_1's offsets to
// FP16 rounding), or nullopt when no ggml block type does (other bit widths,
// int8 asymmetric, groups not a multiple of 32, rows not a multiple of 32).
std::optional<EncodedTensor> ggml_blocks_of(const PackedView& view);

struct GgufEncoding {
    std::map<std::string, EncodedTensor> tensors;  // by Hugging Face name
    std::vector<std::string> exact;        // .sparq codes carried over as they are
    std::vector<std::string> requantized;  // float (or re-gridded) weights quantized to a block type
    std::vector<std::string> given;        // of those, encoded by the caller (GPTQ)
    std::vector<std::string> kept_float;   // rows not a multiple of 32, or asked to stay F32
    std::vector<std::string> kept_f16;     // asked to be F16
};

// Per-tensor types that replace --type for some weights (the embedding and
// head, as llama-quantize's --token-embedding-type / --output-tensor-type):
// a block type, F16, or F32 (kept float). An overridden tensor is encoded
// at its type even when a .sparq code would carry over exactly.
using TypeOverrides = std::map<std::string, gguf::GgmlType>;

// The block type a row of `cols` values takes under `requested` (the
// k-quant fallbacks above), or nullopt for rows that stay F32.
std::optional<gguf::GgmlType> gguf_block_type_for(gguf::GgmlType requested, int64_t cols);

// Per tensor name, one non-negative importance per input column (the mean
// square of the activations the weight multiplies, as an importance matrix
// holds): the fitted block types weight each value's squared error by its
// column's importance. Tensors without an entry are fitted unweighted.
using ColumnImportance = std::map<std::string, std::vector<float>>;

// Throws sparq::Error (naming `model_path` and --calib) unless `type`'s
// quantizer reads column importance (q4_1, q4_k, q6_k): checked before
// calibration statistics are computed for nothing.
void check_type_reads_importance(const std::string& model_path, gguf::GgmlType type);

// Blocks for every 2-D weight of `model` (block linears, embedding, head)
// at `type` (Q8_0, Q4_0, Q4_1, Q4_K or Q6_K). Throws sparq::Error naming
// the tensor when a weight to quantize is not finite, or when `importance`
// is given for q8_0 / q4_0 (their RTN does not read it) or names a tensor
// with another column count.
// `given` holds tensors the caller has already encoded (GPTQ onto the block
// grids, models/gguf_gptq.h): used as they are unless a .sparq tensor maps
// exactly, and checked to be of the block type their rows take.
GgufEncoding encode_for_gguf(const ModelSource& model, gguf::GgmlType type, const ColumnImportance& importance = {},
                             const std::map<std::string, EncodedTensor>& given = {},
                             const TypeOverrides& overrides = {});

}  // namespace sparq
