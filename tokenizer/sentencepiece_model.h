// Reads SentencePiece's tokenizer.model (a serialized ModelProto) into a
// sparq::Vocabulary, with our own protobuf reader: libsentencepiece is not
// linked, and its normalizer must not be used for encoding anyway (llama.cpp
// does not collapse whitespace; SentencePiece's normalizer does).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "tokenizer/vocabulary.h"

namespace sparq {

// TrainerSpec.model_type values.
enum class SentencePieceModelType : int32_t { Unigram = 1, Bpe = 2, Word = 3, Char = 4 };

struct SentencePieceModel {
    Vocabulary vocabulary;  // model "llama"; add_space_prefix = add_dummy_prefix
    SentencePieceModelType model_type = SentencePieceModelType::Unigram;
    bool byte_fallback = false;
    // Kept for information only: llama.cpp ignores it, and so do we.
    bool remove_extra_whitespaces = true;
};

// Parses ModelProto bytes. `file` names the file in errors. Throws
// sparq::Error on malformed input: truncation, bad wire types, unknown piece
// types, empty pieces, special ids outside the vocabulary. (Duplicate pieces
// and NaN scores are refused by SpmTokenizer, which checks every source.)
SentencePieceModel parse_sentencepiece_model(std::span<const uint8_t> bytes, const std::string& file);

// True if the bytes start the way a ModelProto written by SentencePiece
// does: field 1 (pieces), length-delimited, with a non-zero length.
bool looks_like_sentencepiece_model(std::span<const uint8_t> bytes);

}  // namespace sparq
