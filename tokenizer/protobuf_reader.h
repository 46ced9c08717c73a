// A minimal reader for the protobuf wire format, enough to read SentencePiece
// model files without linking libprotobuf. Model files come from anywhere, so
// every read is bounds- and overflow-checked and a malformed file gives a
// sparq::Error saying what was wrong, in which message, at which byte offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sparq::protobuf {

enum class WireType : uint8_t {
    Varint = 0,
    Fixed64 = 1,
    LengthDelimited = 2,
    StartGroup = 3,  // deprecated groups: no file we read uses them
    EndGroup = 4,
    Fixed32 = 5,
};

// Reads one message's fields in order:
//
//   Reader r(bytes, "ModelProto");
//   while (r.next()) {
//       if (r.field() == 1) handle(r.sub_message("ModelProto.pieces"));
//       else r.skip();
//   }
//
// Each value reader checks the field's wire type, so a field of the wrong
// type is an error rather than a misread.
class Reader {
public:
    // `message_name` names the message in errors; `base_offset` is where
    // these bytes start in the file, so errors give offsets into the file.
    Reader(std::span<const uint8_t> bytes, std::string message_name, size_t base_offset = 0);

    // Reads the next field's tag; false at the end of the message.
    bool next();

    uint32_t field() const { return field_; }
    WireType wire_type() const { return wire_type_; }

    uint64_t read_varint();
    // protobuf int32: a varint whose low 32 bits are the two's-complement
    // value (negative numbers are written as 10-byte varints).
    int32_t read_int32();
    bool read_bool();
    uint32_t read_fixed32();
    uint64_t read_fixed64();
    float read_float();
    std::span<const uint8_t> read_bytes();
    std::string_view read_string();
    // A length-delimited field read as a nested message.
    Reader read_message(std::string message_name);

    // Skips the current field's value, whatever its (valid) wire type.
    void skip();

    // Offset in the file of the next unread byte.
    size_t file_offset() const { return base_offset_ + position_; }
    const std::string& message_name() const { return message_name_; }

private:
    void expect_wire_type(WireType expected) const;
    uint64_t decode_varint(const char* what);
    std::span<const uint8_t> take(size_t count, const char* what);
    [[noreturn]] void fail_at(size_t offset_in_message, const std::string& message) const;

    std::span<const uint8_t> bytes_;
    std::string message_name_;
    size_t base_offset_ = 0;
    size_t position_ = 0;
    size_t field_start_ = 0;  // where the current field's tag began, for errors
    uint32_t field_ = 0;
    WireType wire_type_ = WireType::Varint;
};

}  // namespace sparq::protobuf
