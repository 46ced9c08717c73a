// A tokenizer vocabulary as GGUF's tokenizer.ggml.* keys store it (the keys
// llama.cpp reads), written and read back by one pair of functions so the
// two sides cannot drift:
//   tokenizer.ggml.model        "llama" (SentencePiece) or "gpt2" (byte-level BPE)
//   tokenizer.ggml.pre          gpt2 only: llama.cpp's pre-tokenizer name
//   tokenizer.ggml.tokens       pieces, padded to the model's vocab_size with
//                               "[PAD<i>]" (kind Unused, score -1000) as
//                               llama.cpp's converter pads
//   tokenizer.ggml.scores       llama only (float32 per piece)
//   tokenizer.ggml.token_type   int32 per piece (TokenKind numbering)
//   tokenizer.ggml.merges       gpt2 only, "a b" in rank order
//   tokenizer.ggml.{bos,eos,unknown,padding}_token_id   uint32, when the id exists
//   tokenizer.ggml.add_bos_token, add_eos_token (always false), add_space_prefix (llama)
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"
#include "tokenizer/vocabulary.h"

namespace sparq::gguf {

// Split patterns of the tokenizer.json pre-tokenizers llama.cpp has a
// pre-tokenizer type for (as the files state them): "llama-bpe" (Llama 3)
// and "qwen2".
inline constexpr std::string_view kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Sets the keys above on `w` for a model of `vocab_size` tokens. Throws
// sparq::Error naming `source` and the field for a vocabulary llama.cpp
// cannot take (unknown model, gpt2 without merges or pre-tokenizer, more
// pieces than vocab_size, scores or kinds of the wrong count, a special id
// outside the vocabulary).
void set_gguf_vocabulary(GgufWriter& w, const Vocabulary& vocab, int64_t vocab_size, const std::string& tokenizer_pre,
                         const std::string& source);

// The vocabulary those keys hold (padding pieces included: they are the
// model's tokens too). Throws sparq::Error naming the file and key for a
// missing or mistyped key, counts that disagree, or a special id outside
// the vocabulary. `pre` receives tokenizer.ggml.pre ("" when absent).
Vocabulary read_gguf_vocabulary(const GgufFile& file, std::string* pre = nullptr);

// A Hugging Face tokenizer.json equivalent to a byte-level BPE ("gpt2")
// vocabulary read from GGUF, so the BPE tokenizer is built by the one
// tokenizer.json path (and a .sparq file embeds it as kind "hf-json"): the
// pieces as model.vocab (ids = positions), the merges, Control and
// UserDefined pieces as added tokens (special for Control), and the
// pre-tokenizer llama.cpp's `pre` name stands for ("gpt-2": ByteLevel;
// "smollm": Digits, then ByteLevel; "llama-bpe": Llama 3's Split, then
// ByteLevel without its regex, merges ignored; "qwen2": Qwen2's Split, then
// ByteLevel without its regex): the inverse of llamacpp_tokenizer_pre.
// Another `pre` throws sparq::Error naming `source` and
// tokenizer.ggml.pre.
std::string tokenizer_json_for_bpe(const Vocabulary& vocab, const std::string& pre, const std::string& source);

// A GGUF file of the vocabulary keys alone (set_gguf_vocabulary with
// vocab_size = its piece count): how a .sparq file embeds a tokenizer that
// came from a GGUF model (tokenizer kind "gguf").
std::string gguf_vocabulary_bytes(const Vocabulary& vocab, const std::string& tokenizer_pre);

}  // namespace sparq::gguf
