#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <queue>
#include <utility>

#include "core/error.h"

namespace sparq {

namespace {

// U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's stand-in for a space.
constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
// U+2585 LOWER FIVE EIGHTHS BLOCK: SentencePiece's marker for unknown text.
constexpr std::string_view kUnknownMarker = "\xE2\x96\x85";

std::string escape_spaces(std::string_view text, bool add_space_prefix) {
    std::string out;
    out.reserve(text.size() + text.size() / 2 + kSpaceMarker.size());
    if (add_space_prefix) out += kSpaceMarker;
    for (char c : text) {
        if (c == ' ') {
            out += kSpaceMarker;
        } else {
            out += c;
        }
    }
    return out;
}

std::string unescape_spaces(std::string_view piece) {
    std::string out;
    out.reserve(piece.size());
    size_t i = 0;
    while (i < piece.size()) {
        if (piece.substr(i, kSpaceMarker.size()) == kSpaceMarker) {
            out += ' ';
            i += kSpaceMarker.size();
        } else {
            out += piece[i++];
        }
    }
    return out;
}

// Character length from the lead byte's high nibble, exactly as llama.cpp
// splits text: continuation bytes count as one-byte characters and F8..FF as
// four-byte leads. Matching this (not strict UTF-8) keeps ids identical on
// malformed input.
size_t utf8_char_length(uint8_t lead) {
    static constexpr uint8_t kLengthByHighNibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLengthByHighNibble[lead >> 4];
}

std::string byte_piece_text(uint8_t byte) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    return std::string{'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
}

int hex_digit_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

// The byte a "<0xXX>" piece stands for, or -1 if the text is not that form.
int parse_byte_piece(std::string_view piece) {
    if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
    const int high = hex_digit_value(piece[3]);
    const int low = hex_digit_value(piece[4]);
    if (high < 0 || low < 0) return -1;
    return high * 16 + low;
}

// One run of text in the merge loop: a slice of the escaped text, linked to
// its neighbours. A symbol merged into its left neighbour gets length 0.
struct Symbol {
    uint32_t begin;
    uint32_t length;
    int32_t prev;
    int32_t next;
};

// A possible merge of symbols left and right into a piece of that score.
// `length` records both sides' combined length when it was found, so a
// candidate made stale by another merge is recognised and skipped.
struct MergeCandidate {
    float score;
    int32_t left;
    int32_t right;
    uint32_t length;
};

// The queue's top is the best candidate: highest score, then the leftmost.
struct LowerPriority {
    bool operator()(const MergeCandidate& a, const MergeCandidate& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

SpmTokenizer::SpmTokenizer(Vocabulary vocabulary, std::string source_bytes, std::string source_kind)
    : vocabulary_(std::move(vocabulary)),
      source_bytes_(std::move(source_bytes)),
      source_kind_(std::move(source_kind)) {
    const Vocabulary& v = vocabulary_;
    if (v.pieces.empty()) fail("the tokenizer has no pieces");
    if (v.scores.size() != v.size() || v.kinds.size() != v.size()) {
        fail("the vocabulary has ", v.size(), " pieces but ", v.scores.size(), " scores and ", v.kinds.size(),
             " token kinds");
    }
    if (v.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) fail("the vocabulary is too large");

    piece_ids_.reserve(v.size());
    for (size_t id = 0; id < v.size(); ++id) {
        if (std::isnan(v.scores[id])) fail("piece ", id, " ('", v.pieces[id], "') has a NaN score");
        const auto [it, inserted] = piece_ids_.emplace(v.pieces[id], static_cast<int32_t>(id));
        if (!inserted) fail("piece '", v.pieces[id], "' appears twice (ids ", it->second, " and ", id, ")");
        longest_piece_bytes_ = std::max(longest_piece_bytes_, v.pieces[id].size());
    }

    const auto n = static_cast<int64_t>(v.size());
    if (v.unk_id < 0 || v.unk_id >= n) fail("unk id ", v.unk_id, " is outside the vocabulary of ", n, " pieces");
    for (const auto& [name, id] : {std::pair{"bos", v.bos_id}, {"eos", v.eos_id}, {"pad", v.pad_id}}) {
        if (id < -1 || id >= n) fail(name, " id ", id, " is outside the vocabulary of ", n, " pieces");
    }

    for (int byte = 0; byte < 256; ++byte) {
        int32_t id = find_piece(byte_piece_text(static_cast<uint8_t>(byte)));
        if (id < 0) id = find_piece(std::string(1, static_cast<char>(byte)));
        byte_fallback_ids_[static_cast<size_t>(byte)] = id >= 0 ? id : v.unk_id;
    }
}

int32_t SpmTokenizer::find_piece(std::string_view text) const {
    const auto it = piece_ids_.find(text);
    return it == piece_ids_.end() ? -1 : it->second;
}

void SpmTokenizer::check_id(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= vocabulary_.size()) {
        fail("token id ", id, " is outside the vocabulary of ", vocabulary_.size(), " pieces");
    }
}

std::vector<int32_t> SpmTokenizer::encode(std::string_view text, bool add_bos) const {
    std::vector<int32_t> ids;
    if (add_bos && vocabulary_.bos_id >= 0) ids.push_back(vocabulary_.bos_id);
    // llama.cpp gives no tokens for empty text, not even the space prefix.
    if (text.empty()) return ids;

    const std::string escaped = escape_spaces(text, vocabulary_.add_space_prefix);
    // Symbols link to each other with int32 indices (half the memory of
    // 64-bit ones on large texts); no real single text comes near this.
    if (escaped.size() >= static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        fail("text of ", text.size(), " bytes is too long to tokenize as one string");
    }

    std::vector<Symbol> symbols;
    symbols.reserve(escaped.size());
    for (size_t offset = 0; offset < escaped.size();) {
        const size_t length =
            std::min(utf8_char_length(static_cast<uint8_t>(escaped[offset])), escaped.size() - offset);
        const auto index = static_cast<int32_t>(symbols.size());
        const int32_t next = offset + length == escaped.size() ? -1 : index + 1;
        symbols.push_back({static_cast<uint32_t>(offset), static_cast<uint32_t>(length), index - 1, next});
        offset += length;
    }

    std::vector<MergeCandidate> storage;
    storage.reserve(symbols.size());
    std::priority_queue<MergeCandidate, std::vector<MergeCandidate>, LowerPriority> candidates(LowerPriority{},
                                                                                               std::move(storage));
    const std::string_view all(escaped);
    auto add_candidate = [&](int32_t left, int32_t right) {
        if (left < 0 || right < 0) return;
        const uint32_t length = symbols[left].length + symbols[right].length;
        if (length > longest_piece_bytes_) return;
        const int32_t id = find_piece(all.substr(symbols[left].begin, length));
        if (id < 0) return;
        candidates.push({vocabulary_.scores[id], left, right, length});
    };

    for (size_t i = 1; i < symbols.size(); ++i) add_candidate(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

    while (!candidates.empty()) {
        const MergeCandidate best = candidates.top();
        candidates.pop();
        Symbol& left = symbols[best.left];
        Symbol& right = symbols[best.right];
        // Lengths only grow, and a symbol merged away has length 0, so an
        // unchanged sum means both sides are as they were when found.
        if (left.length == 0 || right.length == 0 || left.length + right.length != best.length) continue;

        left.length += right.length;
        right.length = 0;
        left.next = right.next;
        if (right.next >= 0) symbols[right.next].prev = best.left;

        add_candidate(left.prev, best.left);
        add_candidate(best.left, left.next);
    }

    // Every merge formed a piece, so a symbol that is not a piece is a single
    // character never merged: it falls back to byte pieces.
    for (int32_t i = 0; i != -1; i = symbols[i].next) {
        const std::string_view symbol_text = all.substr(symbols[i].begin, symbols[i].length);
        const int32_t id = find_piece(symbol_text);
        if (id >= 0) {
            ids.push_back(id);
            continue;
        }
        for (char byte : symbol_text) ids.push_back(byte_fallback_ids_[static_cast<uint8_t>(byte)]);
    }
    return ids;
}

std::string SpmTokenizer::token_bytes(int32_t id) const {
    check_id(id);
    const std::string& piece = vocabulary_.pieces[id];
    switch (vocabulary_.kinds[id]) {
        case TokenKind::Normal:
        case TokenKind::UserDefined: return unescape_spaces(piece);
        case TokenKind::Byte: {
            const int byte = parse_byte_piece(piece);
            // A BYTE piece not of the "<0xXX>" form is unusual: keep its text.
            return byte >= 0 ? std::string(1, static_cast<char>(byte)) : unescape_spaces(piece);
        }
        case TokenKind::Unknown: return std::string(kUnknownMarker);
        case TokenKind::Control:
        case TokenKind::Unused: return {};
    }
    return {};
}

std::string SpmTokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    bool first_token = true;
    for (const int32_t id : ids) {
        check_id(id);
        if (id == vocabulary_.bos_id || id == vocabulary_.eos_id) continue;
        std::string bytes = token_bytes(id);
        // The encoder's space prefix turned into the first token's leading
        // U+2581; only then is the leading space ours to drop.
        if (first_token && vocabulary_.add_space_prefix && vocabulary_.pieces[id].starts_with(kSpaceMarker) &&
            !bytes.empty() && bytes[0] == ' ') {
            bytes.erase(0, 1);
        }
        first_token = false;
        out += bytes;
    }
    return out;
}

}  // namespace sparq
