#include "tokenizer/llama2c_tokenizer.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/error.h"
#include "test_data.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_files.h"

namespace sparq {
namespace {

using testing::error_message_of;

// Writes a tokenizer.bin the way llama2.c's exporter does.
struct Llama2cFile {
    std::vector<uint8_t> bytes;

    explicit Llama2cFile(int32_t max_token_length) { int32(max_token_length); }
    Llama2cFile& int32(int32_t value) {
        const auto* p = reinterpret_cast<const uint8_t*>(&value);
        bytes.insert(bytes.end(), p, p + 4);
        return *this;
    }
    Llama2cFile& record(float score, std::string_view text) {
        const auto* p = reinterpret_cast<const uint8_t*>(&score);
        bytes.insert(bytes.end(), p, p + 4);
        int32(static_cast<int32_t>(text.size()));
        bytes.insert(bytes.end(), text.begin(), text.end());
        return *this;
    }
    static Llama2cFile typical() {
        Llama2cFile f(7);
        f.record(0, "<unk>").record(0, "\n<s>\n").record(0, "\n</s>\n").record(0, "<0x0A>").record(0, "<0x20>");
        f.record(-1, " t").record(-2, "he").record(-3, " the").record(-4, "e").record(-5, "h").record(-6, "t");
        f.record(-7, " ");
        return f;
    }
};

TEST(Llama2cTokenizer, ConvertsSpacesSpecialsAndByteKinds) {
    const Llama2cFile f = Llama2cFile::typical();
    const Vocabulary v = parse_llama2c_tokenizer(f.bytes, "tokenizer.bin");
    ASSERT_EQ(v.size(), 12u);
    EXPECT_EQ(v.pieces[0], "<unk>");
    EXPECT_EQ(v.pieces[1], "<s>");
    EXPECT_EQ(v.pieces[2], "</s>");
    EXPECT_EQ(v.pieces[5], "\xE2\x96\x81t");
    EXPECT_EQ(v.pieces[7], "\xE2\x96\x81the");
    EXPECT_EQ(v.pieces[11], "\xE2\x96\x81");
    EXPECT_EQ(v.kinds[0], TokenKind::Unknown);
    EXPECT_EQ(v.kinds[1], TokenKind::Control);
    EXPECT_EQ(v.kinds[2], TokenKind::Control);
    EXPECT_EQ(v.kinds[3], TokenKind::Byte);
    EXPECT_EQ(v.kinds[4], TokenKind::Byte);
    EXPECT_EQ(v.kinds[5], TokenKind::Normal);
    EXPECT_FLOAT_EQ(v.scores[7], -3.0f);
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_TRUE(v.add_space_prefix);
    EXPECT_EQ(v.model, "llama");
}

TEST(Llama2cTokenizer, SyntheticVocabularyEncodesByScore) {
    const auto dir = testing::temp_dir("llama2c-synthetic");
    const std::string path = dir + "/tokenizer.bin";
    testing::write_file_bytes(path, Llama2cFile::typical().bytes);
    const auto tokenizer = load_tokenizer(path, 12);
    EXPECT_EQ(tokenizer->source_kind(), "llama2c");
    // "▁the": "▁t" (-1) beats "he" (-2), then "▁the" (-3) joins them.
    EXPECT_EQ(tokenizer->encode("the", false), (std::vector<int32_t>{7}));
    // "x" is no piece: byte fallback finds no <0x78> and no "x" piece -> unk.
    EXPECT_EQ(tokenizer->encode("the x", false), (std::vector<int32_t>{7, 11, 0}));
    // A newline has a byte piece.
    EXPECT_EQ(tokenizer->encode("\n", true), (std::vector<int32_t>{1, 11, 3}));
    EXPECT_EQ(tokenizer->decode({1, 7, 11, 3, 2}), "the \n");
}

TEST(Llama2cTokenizer, TruncatedHeader) {
    const std::vector<uint8_t> bytes = {7, 0};
    const std::string message = error_message_of([&] { parse_llama2c_tokenizer(bytes, "tok.bin"); });
    EXPECT_NE(message.find("tok.bin: the header (max_token_length) is truncated"), std::string::npos) << message;
}

TEST(Llama2cTokenizer, TruncationAtEveryByteIsACleanError) {
    const Llama2cFile f = Llama2cFile::typical();
    for (size_t size = 0; size < f.bytes.size(); ++size) {
        const std::vector<uint8_t> prefix(f.bytes.begin(), f.bytes.begin() + static_cast<std::ptrdiff_t>(size));
        try {
            const Vocabulary v = parse_llama2c_tokenizer(prefix, "tok.bin");
            // Cut exactly between records: a valid, shorter vocabulary.
            EXPECT_LT(v.size(), 12u) << "size " << size;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("tok.bin"), std::string::npos) << e.what();
        }
    }
}

TEST(Llama2cTokenizer, TruncatedRecordNamesTheRecord) {
    Llama2cFile f = Llama2cFile::typical();
    f.bytes.resize(f.bytes.size() - 1);  // the last record's text loses a byte
    const std::string message = error_message_of([&] { parse_llama2c_tokenizer(f.bytes, "tok.bin"); });
    EXPECT_NE(message.find("record 11 has length 1 but only 0 bytes remain"), std::string::npos) << message;
}

TEST(Llama2cTokenizer, NegativeLength) {
    Llama2cFile f(7);
    f.record(0, "<unk>").record(0, "<s>");
    f.bytes.insert(f.bytes.end(), {0, 0, 0, 0});
    f.int32(-5);
    const std::string message = error_message_of([&] { parse_llama2c_tokenizer(f.bytes, "tok.bin"); });
    EXPECT_NE(message.find("record 2 has negative length -5"), std::string::npos) << message;
}

TEST(Llama2cTokenizer, AbsurdLength) {
    Llama2cFile f(7);
    f.record(0, "<unk>");
    f.bytes.insert(f.bytes.end(), {0, 0, 0, 0});
    f.int32(0x7FFFFFFF);
    f.bytes.insert(f.bytes.end(), {'a', 'b'});
    const std::string message = error_message_of([&] { parse_llama2c_tokenizer(f.bytes, "tok.bin"); });
    EXPECT_NE(message.find("record 1 has length 2147483647 but only 2 bytes remain"), std::string::npos) << message;
}

TEST(Llama2cTokenizer, NanScoreAndEmptyPiece) {
    Llama2cFile nan_score(7);
    nan_score.record(0, "<unk>").record(std::numeric_limits<float>::quiet_NaN(), "<s>");
    EXPECT_NE(error_message_of([&] { parse_llama2c_tokenizer(nan_score.bytes, "t"); }).find("record 1 has a NaN score"),
              std::string::npos);

    Llama2cFile empty(7);
    empty.record(0, "<unk>").record(0, "\n<s>\n").record(0, "\n\n");
    EXPECT_NE(error_message_of([&] { parse_llama2c_tokenizer(empty.bytes, "t"); }).find("record 2 has an empty piece"),
              std::string::npos);
}

TEST(Llama2cTokenizer, TooFewRecords) {
    Llama2cFile f(7);
    f.record(0, "<unk>");
    EXPECT_NE(error_message_of([&] { parse_llama2c_tokenizer(f.bytes, "t"); }).find("has 1 tokens"), std::string::npos);
}

TEST(Llama2cTokenizer, DuplicatePiecesAreRefused) {
    Llama2cFile f(7);
    f.record(0, "<unk>").record(0, "\n<s>\n").record(0, "\n</s>\n").record(0, "ab").record(0, "ab");
    const auto dir = testing::temp_dir("llama2c-duplicate");
    const std::string path = dir + "/tokenizer.bin";
    testing::write_file_bytes(path, f.bytes);
    const std::string message = error_message_of([&] { load_tokenizer(path, 0); });
    EXPECT_NE(message.find("piece 'ab' appears twice (ids 3 and 4)"), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
}

// The checkpoint's vocab_size may be larger than the file's record count (a
// padded embedding table), never smaller.
TEST(Llama2cTokenizer, VocabSizeMismatchWithTheCheckpoint) {
    SPARQ_REQUIRE_DATA("stories260K/tok512.bin");
    const std::string path = testing::data_path("stories260K/tok512.bin");
    const std::string message = error_message_of([&] { load_tokenizer(path, 500); });
    EXPECT_NE(message.find("tokenizer has 512 pieces, more than the model's vocab_size 500"), std::string::npos)
        << message;
    EXPECT_EQ(load_tokenizer(path, 0)->vocab_size(), 512);
    EXPECT_EQ(load_tokenizer(path, 32000)->vocab_size(), 512);
}

}  // namespace
}  // namespace sparq
