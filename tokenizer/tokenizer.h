// Text <-> token ids. Encoders must produce exactly the ids llama.cpp's
// tokenizer produces (which are Hugging Face's fast-tokenizer ids).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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

    // Encodes with special tokens in the text parsed into their ids (for
    // chat prompts). Hugging Face tokenizer.json tokenizers support it; the
    // default throws sparq::Error.
    virtual std::vector<int32_t> encode_with_special(std::string_view text, bool add_bos) const;

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
// tokenizer.bin, or Hugging Face tokenizer.json (byte-level BPE; a .json name
// or text starting with '{'). `expected_vocab_size` is the model's
// vocab_size: it may exceed the tokenizer's piece count (padded embedding
// tables), but a tokenizer with more pieces, or a special id at or past it,
// is an error. 0 means no check.
std::shared_ptr<Tokenizer> load_tokenizer(const std::string& path, int64_t expected_vocab_size);

// The same from a file's bytes and its kind (Tokenizer::source_kind()), as a
// .sparq file embeds them; `source` names the container in errors.
// `special` restores what a tokenizer.json took from the files beside it
// (tokenizer_config.json, config.json): the effective BOS/EOS and add_bos.
struct SpecialTokenSettings {
    std::optional<int32_t> bos_id, eos_id;
    std::optional<bool> add_bos;
};
std::shared_ptr<Tokenizer> load_tokenizer_from_bytes(const std::string& bytes, const std::string& kind,
                                                     int64_t expected_vocab_size, const std::string& source,
                                                     const SpecialTokenSettings& special = {});

}  // namespace sparq
