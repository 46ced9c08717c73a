// Reading a llama.cpp GGUF model as a MODEL argument (CONTRACT.md): the
// inverse of formats/gguf/llama_export.h. Whatever llama.cpp's converter
// wrote comes out as sparq reads any model: Hugging Face tensor names and
// layout (q/k rows permuted back to the rotate-half order where llama.cpp's
// RoPE uses interleaved pairs), a config from the {arch}.* keys, and the
// tokenizer from tokenizer.ggml.* (SentencePiece vocabularies as they are;
// byte-level BPE ones through an equivalent tokenizer.json, for the
// pre-tokenizers llama.cpp names gpt-2, smollm, llama-bpe and qwen2; others
// need --tokenizer tokenizer.json).
//
//   general.architecture  ->  architecture    q/k rows
//   "llama"                   LlamaForCausalLM   permuted back
//   "qwen2"                   Qwen2ForCausalLM   as stored (q/k/v biases)
//
// Tensors: F32, F16 and BF16 as stored (zero-copy unless permuted); Q8_0,
// Q4_0 and Q4_1 dequantized to F32 (formats/gguf/ggml_blocks.h), so a
// llama.cpp-quantized file can be evaluated or re-compressed; other types,
// extra tensors, RoPE scaling and other architectures are errors naming the
// tensor or key.
#pragma once

#include <memory>
#include <string>

#include "models/model_source.h"

namespace sparq {

ModelSource load_gguf_model(const std::string& path, const LoadOptions& options = {});

// A tokenizer a .sparq file embeds with kind "gguf" (a GGUF file of the
// tokenizer.ggml.* keys alone, written when the model came from GGUF).
std::shared_ptr<Tokenizer> tokenizer_from_gguf_bytes(const std::string& bytes, int64_t expected_vocab_size,
                                                     const std::string& source);

}  // namespace sparq
