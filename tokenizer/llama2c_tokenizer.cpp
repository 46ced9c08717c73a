#include "tokenizer/llama2c_tokenizer.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <string_view>

#include "core/error.h"

namespace sparq {

namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";
constexpr int32_t kUnkId = 0;
constexpr int32_t kBosId = 1;
constexpr int32_t kEosId = 2;
constexpr size_t kFirstOrdinaryId = 3;

class RecordCursor {
public:
    RecordCursor(std::span<const uint8_t> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

    bool at_end() const { return position_ == bytes_.size(); }
    size_t remaining() const { return bytes_.size() - position_; }
    size_t position() const { return position_; }

    template <typename T>
    T read(const std::string& what) {
        static_assert(std::endian::native == std::endian::little, "tokenizer.bin is little-endian");
        T value;
        std::memcpy(&value, take(sizeof(T), what).data(), sizeof(T));
        return value;
    }

    std::span<const uint8_t> take(size_t count, const std::string& what) {
        if (count > remaining()) {
            fail_in({file_, "", ""}, what, " is truncated: needs ", count, " bytes at offset ", position_,
                    " but the file has ", remaining(), " left");
        }
        auto out = bytes_.subspan(position_, count);
        position_ += count;
        return out;
    }

private:
    std::span<const uint8_t> bytes_;
    const std::string& file_;
    size_t position_ = 0;
};

bool is_byte_piece(std::string_view piece) {
    auto is_upper_hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
    return piece.size() == 6 && piece.substr(0, 3) == "<0x" && is_upper_hex(piece[3]) && is_upper_hex(piece[4]) &&
           piece[5] == '>';
}

std::string spaces_to_markers(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (char c : text) {
        if (c == ' ') {
            out += kSpaceMarker;
        } else {
            out += c;
        }
    }
    return out;
}

// "\n<s>\n" -> "<s>": llama2.c pads BOS/EOS with newlines for printing.
std::string_view strip_newlines(std::string_view text) {
    while (!text.empty() && text.front() == '\n') text.remove_prefix(1);
    while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
    return text;
}

}  // namespace

Vocabulary parse_llama2c_tokenizer(std::span<const uint8_t> bytes, const std::string& file) {
    RecordCursor cursor(bytes, file);
    // The header only sizes llama2.c's buffers; we do not need it.
    cursor.read<int32_t>("the header (max_token_length)");

    Vocabulary vocab;
    vocab.model = "llama";
    while (!cursor.at_end()) {
        const size_t index = vocab.pieces.size();
        const std::string record = "record " + std::to_string(index);
        const auto score = cursor.read<float>(record + " (score)");
        const size_t length_offset = cursor.position();
        const auto length = cursor.read<int32_t>(record + " (length)");
        if (length < 0) {
            fail_in({file, "", ""}, record, " has negative length ", length, " (at offset ", length_offset, ")");
        }
        if (static_cast<size_t>(length) > cursor.remaining()) {
            fail_in({file, "", ""}, record, " has length ", length, " but only ", cursor.remaining(),
                    " bytes remain in the file (at offset ", length_offset, ")");
        }
        if (std::isnan(score)) fail_in({file, "", ""}, record, " has a NaN score");
        const auto text_bytes = cursor.take(static_cast<size_t>(length), record + " (text)");
        std::string_view text(reinterpret_cast<const char*>(text_bytes.data()), text_bytes.size());
        if (index == kBosId || index == kEosId) text = strip_newlines(text);

        std::string piece = spaces_to_markers(text);
        if (piece.empty()) fail_in({file, "", ""}, record, " has an empty piece");
        TokenKind kind = TokenKind::Normal;
        if (index == kUnkId) {
            kind = TokenKind::Unknown;
        } else if (index == kBosId || index == kEosId) {
            kind = TokenKind::Control;
        } else if (is_byte_piece(piece)) {
            kind = TokenKind::Byte;
        }
        vocab.pieces.push_back(std::move(piece));
        vocab.scores.push_back(score);
        vocab.kinds.push_back(kind);
    }
    if (vocab.size() < kFirstOrdinaryId) {
        fail_in({file, "", ""}, "has ", vocab.size(), " tokens; a llama2.c tokenizer starts with <unk>, <s>, </s>");
    }
    vocab.unk_id = kUnkId;
    vocab.bos_id = kBosId;
    vocab.eos_id = kEosId;
    vocab.pad_id = -1;
    vocab.add_bos = true;
    vocab.add_space_prefix = true;
    return vocab;
}

}  // namespace sparq
