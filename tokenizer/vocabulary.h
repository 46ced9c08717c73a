// A tokenizer's vocabulary as data: pieces, scores, token kinds and special
// ids. Encoders are built from it, and the GGUF/.sparq writers store it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparq {

// Token kinds, numbered as GGUF's tokenizer.ggml.token_type stores them.
enum class TokenKind : int32_t {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
};

struct Vocabulary {
    std::string model = "llama";  // GGUF tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    std::vector<std::string> pieces;  // as stored in the model file (SentencePiece uses U+2581 for space)
    std::vector<float> scores;
    std::vector<TokenKind> kinds;
    std::vector<std::string> merges;  // byte-level BPE only: "a b" in rank order
    int32_t bos_id = 1;
    int32_t eos_id = 2;
    int32_t unk_id = 0;
    int32_t pad_id = -1;
    bool add_bos = true;
    bool add_space_prefix = true;  // SentencePiece add_dummy_prefix

    size_t size() const { return pieces.size(); }
};

}  // namespace sparq
