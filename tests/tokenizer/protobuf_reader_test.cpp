#include "tokenizer/protobuf_reader.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/error.h"
#include "tokenizer_test_files.h"

namespace sparq::protobuf {
namespace {

using sparq::testing::error_message_of;

// Builds wire-format bytes by hand so each test states exactly what is read.
struct Writer {
    std::vector<uint8_t> bytes;

    Writer& varint(uint64_t value) {
        while (value >= 0x80) {
            bytes.push_back(static_cast<uint8_t>(value | 0x80));
            value >>= 7;
        }
        bytes.push_back(static_cast<uint8_t>(value));
        return *this;
    }
    Writer& tag(uint32_t field, WireType type) { return varint((uint64_t{field} << 3) | static_cast<uint8_t>(type)); }
    Writer& raw(std::initializer_list<uint8_t> raw_bytes) {
        bytes.insert(bytes.end(), raw_bytes);
        return *this;
    }
    Writer& fixed32(uint32_t value) {
        for (int i = 0; i < 4; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
        return *this;
    }
    Writer& string(std::string_view text) {
        varint(text.size());
        bytes.insert(bytes.end(), text.begin(), text.end());
        return *this;
    }
};

TEST(ProtobufReader, ReadsEveryWireTypeInOrder) {
    float pi = 3.25f;
    uint32_t pi_bits = 0;
    std::memcpy(&pi_bits, &pi, 4);
    Writer w;
    w.tag(1, WireType::Varint).varint(300);
    w.tag(2, WireType::Fixed32).fixed32(pi_bits);
    w.tag(3, WireType::Fixed64).raw({1, 2, 3, 4, 5, 6, 7, 8});
    w.tag(4, WireType::LengthDelimited).string("hello");
    w.tag(536870911, WireType::Varint).varint(1);  // the largest field number

    Reader r(w.bytes, "Test");
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.field(), 1u);
    EXPECT_EQ(r.read_varint(), 300u);
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.field(), 2u);
    EXPECT_EQ(r.read_float(), 3.25f);
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.read_fixed64(), 0x0807060504030201ull);
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.read_string(), "hello");
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.field(), 536870911u);
    EXPECT_TRUE(r.read_bool());
    EXPECT_FALSE(r.next());
}

TEST(ProtobufReader, NegativeInt32IsATenByteVarint) {
    Writer w;
    w.tag(43, WireType::Varint).varint(static_cast<uint64_t>(int64_t{-1}));
    w.tag(44, WireType::Varint).varint(static_cast<uint64_t>(int64_t{-123456}));
    ASSERT_EQ(w.bytes.size(), 2u + 10u + 2u + 10u);
    Reader r(w.bytes, "Test");
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.read_int32(), -1);
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.read_int32(), -123456);
}

TEST(ProtobufReader, SkipsUnknownFieldsOfEveryType) {
    Writer w;
    w.tag(7, WireType::Varint).varint(uint64_t{1} << 63);
    w.tag(8, WireType::Fixed64).raw({0, 0, 0, 0, 0, 0, 0, 0});
    w.tag(9, WireType::Fixed32).fixed32(0);
    w.tag(10, WireType::LengthDelimited).string("skip me");
    w.tag(1, WireType::Varint).varint(42);
    Reader r(w.bytes, "Test");
    for (int i = 0; i < 4; ++i) {
        ASSERT_TRUE(r.next());
        r.skip();
    }
    ASSERT_TRUE(r.next());
    EXPECT_EQ(r.read_varint(), 42u);
    EXPECT_FALSE(r.next());
}

TEST(ProtobufReader, NestedMessageReportsItsNameAndFileOffset) {
    Writer inner;
    inner.tag(1, WireType::LengthDelimited).varint(50);  // claims 50 bytes, has none
    Writer outer;
    outer.tag(2, WireType::Varint).varint(5);
    outer.tag(1, WireType::LengthDelimited).varint(inner.bytes.size());
    outer.bytes.insert(outer.bytes.end(), inner.bytes.begin(), inner.bytes.end());

    Reader r(outer.bytes, "Outer");
    ASSERT_TRUE(r.next());
    r.skip();
    ASSERT_TRUE(r.next());
    Reader nested = r.read_message("Outer.inner[0]");
    ASSERT_TRUE(nested.next());
    const std::string message = error_message_of([&] { nested.read_string(); });
    EXPECT_NE(message.find("field 'Outer.inner[0]'"), std::string::npos) << message;
    EXPECT_NE(message.find("length 50 but only 0 bytes remain"), std::string::npos) << message;
    EXPECT_NE(message.find("at byte offset 4"), std::string::npos) << message;  // the inner tag's file offset
}

TEST(ProtobufReader, TruncatedVarintIsAnError) {
    const std::vector<uint8_t> bytes = {0x08, 0x80, 0x80};
    Reader r(bytes, "Test");
    ASSERT_TRUE(r.next());
    const std::string message = error_message_of([&] { r.read_varint(); });
    EXPECT_NE(message.find("truncated varint value"), std::string::npos) << message;
}

TEST(ProtobufReader, TruncatedTagIsAnError) {
    const std::vector<uint8_t> bytes = {0x80};
    Reader r(bytes, "Test");
    EXPECT_NE(error_message_of([&] { r.next(); }).find("truncated field tag"), std::string::npos);
}

TEST(ProtobufReader, VarintOverflowIsAnError) {
    // Ten bytes whose last carries more than bit 63.
    Writer w;
    w.tag(1, WireType::Varint).raw({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02});
    Reader r(w.bytes, "Test");
    ASSERT_TRUE(r.next());
    EXPECT_NE(error_message_of([&] { r.read_varint(); }).find("overflows 64 bits"), std::string::npos);

    // Eleven bytes.
    Writer longer;
    longer.tag(1, WireType::Varint).raw({0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00});
    Reader r2(longer.bytes, "Test");
    ASSERT_TRUE(r2.next());
    EXPECT_FALSE(error_message_of([&] { r2.read_varint(); }).empty());
}

TEST(ProtobufReader, WrongWireTypeIsAnError) {
    Writer w;
    w.tag(2, WireType::Varint).varint(7);
    Reader r(w.bytes, "Piece");
    ASSERT_TRUE(r.next());
    const std::string message = error_message_of([&] { r.read_float(); });
    EXPECT_NE(message.find("field 2 has wire type 0 (varint), expected 5 (32-bit)"), std::string::npos) << message;
}

TEST(ProtobufReader, InvalidAndGroupWireTypesAreErrors) {
    for (uint8_t wire : {3, 4, 6, 7}) {
        const std::vector<uint8_t> bytes = {static_cast<uint8_t>((1 << 3) | wire), 0};
        Reader r(bytes, "Test");
        const std::string message = error_message_of([&] { r.next(); });
        EXPECT_NE(message.find("wire type " + std::to_string(wire)), std::string::npos) << message;
    }
}

TEST(ProtobufReader, FieldNumberZeroIsAnError) {
    const std::vector<uint8_t> bytes = {0x00, 0x00};
    Reader r(bytes, "Test");
    EXPECT_NE(error_message_of([&] { r.next(); }).find("invalid field number 0"), std::string::npos);
}

TEST(ProtobufReader, HugeLengthDoesNotWrapAround) {
    // A length near 2^64 must not overflow the bounds check.
    Writer w;
    w.tag(1, WireType::LengthDelimited).varint(~uint64_t{0} - 1).raw({'a', 'b'});
    Reader r(w.bytes, "Test");
    ASSERT_TRUE(r.next());
    EXPECT_NE(error_message_of([&] { r.read_bytes(); }).find("bytes remain"), std::string::npos);
}

TEST(ProtobufReader, TruncatedFixedWidthValuesAreErrors) {
    Writer w32;
    w32.tag(1, WireType::Fixed32).raw({1, 2});
    Reader r32(w32.bytes, "Test");
    ASSERT_TRUE(r32.next());
    EXPECT_NE(error_message_of([&] { r32.read_fixed32(); }).find("needs 4 bytes but only 2 remain"), std::string::npos);

    Writer w64;
    w64.tag(1, WireType::Fixed64).raw({1, 2, 3});
    Reader r64(w64.bytes, "Test");
    ASSERT_TRUE(r64.next());
    EXPECT_NE(error_message_of([&] { r64.skip(); }).find("needs 8 bytes but only 3 remain"), std::string::npos);
}

}  // namespace
}  // namespace sparq::protobuf
