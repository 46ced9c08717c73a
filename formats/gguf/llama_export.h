// Export of a Llama-family model (Hugging Face names and layout) to a GGUF
// file that llama.cpp loads: llama.cpp's metadata keys and tensor names, the
// tokenizer vocabulary, and (for the architectures whose RoPE llama.cpp runs
// on interleaved pairs) q/k rows permuted back from Hugging Face's
// rotate-half order.
//
//   Hugging Face            llama.cpp arch  q/k rows     extra
//   LlamaForCausalLM        "llama"         permuted     optional q/k/v/o biases (attention_bias)
//   MistralForCausalLM      "llama"         permuted     llama.cpp ignores sliding_window
//   Qwen2ForCausalLM        "qwen2"         as they are  q/k/v biases (NEOX RoPE rotates halves, as HF)
//   MiniCPMForCausalLM      "minicpm"       permuted     minicpm.embedding_scale = scale_emb,
//                                                        minicpm.residual_scale = scale_depth / sqrt(num_layers),
//                                                        minicpm.logit_scale = hidden_size / dim_model_base
//                                                        (llama.cpp divides the logits by it)
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "formats/gguf/gguf_types.h"
#include "formats/tensor_map.h"
#include "models/config.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/vocabulary.h"

namespace sparq {

enum class GgufExportType { F32, F16 };

// A 2-D weight already encoded as ggml blocks (formats/gguf/ggml_blocks.h)
// or F16 values, rows in Hugging Face order (the exporter permutes q/k rows as it does for
// float tensors): rows x (cols / block values x block bytes) bytes.
struct EncodedTensor {
    gguf::GgmlType type = gguf::GgmlType::Q8_0;
    std::vector<uint8_t> bytes;
};

struct GgufExportSummary {
    std::string output;
    uint64_t bytes = 0;
    size_t tensors = 0;
};

// Writes `out_path` atomically. Norm weights and biases are always F32; 2-D
// weights are F32 or F16 as `type` says. Input tensors may be F32, F16 or
// BF16. `model_name` (general.name) defaults to the output file's stem.
// `tokenizer_pre` is tokenizer.ggml.pre, required for a byte-level BPE
// vocabulary (model "gpt2": see llamacpp_tokenizer_pre) and not written for
// SentencePiece ones. Throws sparq::Error naming the tensor or field at fault.
// `encoded` (by Hugging Face name) replaces those tensors' float values with
// their blocks (or F16 rows); general.file_type then names the most common
// block type.
GgufExportSummary export_llama_gguf(const ModelConfig& config, const TensorMap& tensors, const Vocabulary& vocab,
                                    const std::string& out_path, GgufExportType type,
                                    const std::string& model_name = "", const std::string& tokenizer_pre = "",
                                    const std::map<std::string, EncodedTensor>& encoded = {});

// The llama.cpp architecture a config exports to ("llama", "qwen2",
// "minicpm"); throws sparq::Error for one llama.cpp would run differently.
std::string llamacpp_arch(const ModelConfig& config);

// Whether llama.cpp's architecture for `config` rotates interleaved pairs
// (LLAMA_ROPE_TYPE_NORM: q/k rows permuted on export) rather than halves
// (LLAMA_ROPE_TYPE_NEOX, Hugging Face's order: rows kept).
bool llamacpp_rope_is_interleaved(const ModelConfig& config);

// tokenizer.ggml.pre for a tokenizer.json's pre-tokenizer: the name llama.cpp
// maps to the same split regexes ("gpt-2": ByteLevel alone; "smollm": Digits
// (individual) then ByteLevel; "llama-bpe": Llama 3's Split then ByteLevel
// without its regex, merges ignored; "qwen2": Qwen2's Split then ByteLevel
// without its regex). Anything else throws sparq::Error saying what it is.
std::string llamacpp_tokenizer_pre(const HfTokenizerJson& spec);
// The same for a loaded tokenizer: "" for SentencePiece and llama2.c ones,
// the above for a tokenizer.json one (its source bytes parsed again).
std::string llamacpp_tokenizer_pre(const Tokenizer& tokenizer);

// llama.cpp tensor name of a Hugging Face Llama tensor name
// ("model.layers.3.mlp.down_proj.weight" -> "blk.3.ffn_down.weight",
// "model.layers.0.self_attn.q_proj.bias" -> "blk.0.attn_q.bias"), and back.
std::optional<std::string> gguf_name_for_hf(const std::string& hf_name);
std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name);

// The q/k row permutation: the Hugging Face row that GGUF row `row` comes
// from. For head h, a in {0,1}, b < head_size/2:
//   GGUF row h*head_size + 2*b + a  <-  HF row h*head_size + a*(head_size/2) + b.
inline int64_t hf_row_for_gguf_row(int64_t row, int64_t head_size) {
    const int64_t h = row / head_size;
    const int64_t r = row % head_size;
    const int64_t a = r % 2;
    const int64_t b = r / 2;
    return h * head_size + a * (head_size / 2) + b;
}

}  // namespace sparq
