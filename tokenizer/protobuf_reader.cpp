#include "tokenizer/protobuf_reader.h"

#include <bit>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace sparq::protobuf {

namespace {

// protobuf field numbers are 29 bits; 0 is reserved.
constexpr uint64_t kMaxFieldNumber = (uint64_t{1} << 29) - 1;
// A 64-bit varint takes at most 10 bytes (7 bits each).
constexpr int kMaxVarintBytes = 10;

const char* wire_type_name(WireType type) {
    switch (type) {
        case WireType::Varint: return "varint";
        case WireType::Fixed64: return "64-bit";
        case WireType::LengthDelimited: return "length-delimited";
        case WireType::StartGroup: return "start-group";
        case WireType::EndGroup: return "end-group";
        case WireType::Fixed32: return "32-bit";
    }
    return "unknown";
}

template <typename T>
T load_little_endian(const uint8_t* p) {
    static_assert(std::endian::native == std::endian::little, "protobuf fixed-width values are little-endian");
    T value;
    std::memcpy(&value, p, sizeof(T));
    return value;
}

}  // namespace

Reader::Reader(std::span<const uint8_t> bytes, std::string message_name, size_t base_offset)
    : bytes_(bytes), message_name_(std::move(message_name)), base_offset_(base_offset) {}

void Reader::fail_at(size_t offset_in_message, const std::string& message) const {
    fail_in({"", "", message_name_}, message, " (at byte offset ", base_offset_ + offset_in_message, ")");
}

uint64_t Reader::decode_varint(const char* what) {
    const size_t start = position_;
    uint64_t value = 0;
    for (int i = 0; i < kMaxVarintBytes; ++i) {
        if (position_ >= bytes_.size()) fail_at(start, detail::concat("truncated ", what));
        const uint8_t byte = bytes_[position_++];
        // The 10th byte holds only bit 63; anything more does not fit.
        if (i == kMaxVarintBytes - 1 && byte > 1) fail_at(start, detail::concat(what, " overflows 64 bits"));
        value |= static_cast<uint64_t>(byte & 0x7F) << (7 * i);
        if ((byte & 0x80) == 0) return value;
    }
    fail_at(start, detail::concat(what, " is longer than 10 bytes"));
}

std::span<const uint8_t> Reader::take(size_t count, const char* what) {
    const size_t left = bytes_.size() - position_;
    if (count > left) {
        fail_at(position_, detail::concat(what, " of field ", field_, " needs ", count, " bytes but only ", left,
                                          " remain in the message"));
    }
    auto out = bytes_.subspan(position_, count);
    position_ += count;
    return out;
}

bool Reader::next() {
    if (position_ >= bytes_.size()) return false;
    field_start_ = position_;
    const uint64_t tag = decode_varint("field tag");
    const uint64_t field = tag >> 3;
    const auto wire = static_cast<uint8_t>(tag & 7);
    if (field == 0 || field > kMaxFieldNumber) {
        fail_at(field_start_, detail::concat("invalid field number ", field, " (file is not a valid protobuf message)"));
    }
    if (wire == 6 || wire == 7) {
        fail_at(field_start_, detail::concat("field ", field, " has invalid wire type ", int{wire}));
    }
    field_ = static_cast<uint32_t>(field);
    wire_type_ = static_cast<WireType>(wire);
    if (wire_type_ == WireType::StartGroup || wire_type_ == WireType::EndGroup) {
        fail_at(field_start_, detail::concat("field ", field, " uses the deprecated group wire type ", int{wire},
                                             ", which this reader does not support"));
    }
    return true;
}

void Reader::expect_wire_type(WireType expected) const {
    if (wire_type_ != expected) {
        fail_at(field_start_, detail::concat("field ", field_, " has wire type ", static_cast<int>(wire_type_), " (",
                                             wire_type_name(wire_type_), "), expected ", static_cast<int>(expected),
                                             " (", wire_type_name(expected), ")"));
    }
}

uint64_t Reader::read_varint() {
    expect_wire_type(WireType::Varint);
    return decode_varint("varint value");
}

int32_t Reader::read_int32() {
    return static_cast<int32_t>(static_cast<uint32_t>(read_varint()));
}

bool Reader::read_bool() { return read_varint() != 0; }

uint32_t Reader::read_fixed32() {
    expect_wire_type(WireType::Fixed32);
    return load_little_endian<uint32_t>(take(4, "32-bit value").data());
}

uint64_t Reader::read_fixed64() {
    expect_wire_type(WireType::Fixed64);
    return load_little_endian<uint64_t>(take(8, "64-bit value").data());
}

float Reader::read_float() { return std::bit_cast<float>(read_fixed32()); }

std::span<const uint8_t> Reader::read_bytes() {
    expect_wire_type(WireType::LengthDelimited);
    const uint64_t length = decode_varint("length");
    const size_t left = bytes_.size() - position_;
    if (length > left) {
        fail_at(field_start_, detail::concat("field ", field_, " has length ", length, " but only ", left,
                                             " bytes remain in the message"));
    }
    return take(static_cast<size_t>(length), "value");
}

std::string_view Reader::read_string() {
    const auto bytes = read_bytes();
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

Reader Reader::read_message(std::string message_name) {
    const auto bytes = read_bytes();
    const size_t start = base_offset_ + static_cast<size_t>(bytes.data() - bytes_.data());
    return Reader(bytes, std::move(message_name), start);
}

void Reader::skip() {
    switch (wire_type_) {
        case WireType::Varint: decode_varint("varint value"); return;
        case WireType::Fixed64: take(8, "64-bit value"); return;
        case WireType::Fixed32: take(4, "32-bit value"); return;
        case WireType::LengthDelimited: read_bytes(); return;
        case WireType::StartGroup:
        case WireType::EndGroup: break;  // next() already refused these
    }
    fail_at(field_start_, detail::concat("cannot skip field ", field_, " of wire type ", static_cast<int>(wire_type_)));
}

}  // namespace sparq::protobuf
