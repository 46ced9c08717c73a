// SentencePiece-vocabulary tokenizer that gives exactly llama.cpp's ids for a
// "llama" (SPM) vocabulary. llama.cpp does not run SentencePiece's own
// algorithm: it escapes spaces, splits the text into UTF-8 characters and
// greedily merges the adjacent pair whose concatenation is the best-scoring
// piece, falling back to <0xXX> byte pieces for characters not in the
// vocabulary. We reproduce that, quirks included (no whitespace collapsing,
// every piece type may be formed by a merge).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "tokenizer/vocabulary.h"

namespace sparq {

class SpmTokenizer : public Tokenizer {
public:
    // Checks the vocabulary (equal-length arrays, no duplicate pieces, no
    // NaN scores, special ids inside it) and throws sparq::Error if not.
    // `source_bytes`/`source_kind` are the file it came from.
    SpmTokenizer(Vocabulary vocabulary, std::string source_bytes, std::string source_kind);

    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override;

    // NORMAL and USER_DEFINED pieces give their text with U+2581 turned back
    // into spaces; BYTE pieces "<0xXX>" give that byte; CONTROL and UNUSED
    // give nothing; UNKNOWN gives U+2585 "▅", SentencePiece's marker for
    // unknown text, so a lost character stays visible in decoded output.
    std::string token_bytes(int32_t id) const override;

    // Concatenates token_bytes, skipping BOS and EOS, and drops the space
    // the encoder prefixed (add_space_prefix) from the first token.
    std::string decode(const std::vector<int32_t>& ids) const override;

    const Vocabulary& vocabulary() const override { return vocabulary_; }
    const std::string& source_bytes() const override { return source_bytes_; }
    std::string source_kind() const override { return source_kind_; }

private:
    struct PieceHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };

    // Id of the piece with exactly this text, or -1.
    int32_t find_piece(std::string_view text) const;
    void check_id(int32_t id) const;

    Vocabulary vocabulary_;
    std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> piece_ids_;
    // What each byte becomes when its character has no piece: "<0xXX>", else
    // the one-byte piece, else unk.
    std::array<int32_t, 256> byte_fallback_ids_{};
    size_t longest_piece_bytes_ = 0;  // merges longer than this cannot be pieces
    std::string source_bytes_;
    std::string source_kind_;
};

}  // namespace sparq
