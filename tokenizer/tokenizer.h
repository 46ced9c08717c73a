// Text <-> token ids. Encoders must produce exactly the ids llama.cpp's
// tokenizer produces (which are Hugging Face's fast-tokenizer ids).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocabulary.h"

namespace sparq {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // Encodes the text as one string. Control-token strings such as "<s>"
    // in the text are plain text, never parsed as special tokens.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_bos) const = 0;

    // The bytes a token stands for (SentencePiece: U+2581 -> space, <0xNN>
    // byte tokens -> that byte; control tokens -> empty).
    virtual std::string token_bytes(int32_t id) const = 0;

    // Decodes a sequence; drops the leading space SentencePiece adds.
    virtual std::string decode(const std::vector<int32_t>& ids) const;

    virtual const Vocabulary& vocabulary() const = 0;

    int32_t bos_id() const { return vocabulary().bos_id; }
    int32_t eos_id() const { return vocabulary().eos_id; }
    int64_t vocab_size() const { return static_cast<int64_t>(vocabulary().size()); }

    // The original tokenizer file's bytes and kind ("sentencepiece",
    // "llama2c", "hf-json"), embedded in .sparq files so they run alone.
    virtual const std::string& source_bytes() const = 0;
    virtual std::string source_kind() const = 0;
};

// Loads a tokenizer file: SentencePiece tokenizer.model, llama2.c
// tokenizer.bin (vocab_size from the checkpoint), or (later) tokenizer.json.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t expected_vocab_size);

}  // namespace sparq
