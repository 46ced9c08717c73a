// Damaged or hostile tokenizer files must give a sparq::Error naming the
// problem, never a crash or a silently wrong vocabulary.
#include <gtest/gtest.h>

#include <random>

#include "core/error.h"
#include "test_data.h"
#include "tokenizer/sentencepiece_model.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_files.h"

namespace sparq {
namespace {

using testing::error_message_of;

constexpr const char* kModelFile = "stories260K/hf/tokenizer.model";

std::vector<uint8_t> stories_model_bytes() { return testing::read_file_bytes(testing::data_path(kModelFile)); }

std::string load_error(const std::vector<uint8_t>& bytes, const std::string& name) {
    const std::string path = testing::temp_dir("tokenizer-hostile") + "/" + name;
    testing::write_file_bytes(path, bytes);
    return error_message_of([&] { load_tokenizer(path, 0); });
}

// Piece 0 is "<unk>": 0A 0E | 0A 05 '<unk>' 15 <score:4> 18 02.
TEST(HostileSentencePiece, ExpectedLayoutOfTheFirstPiece) {
    SPARQ_REQUIRE_DATA(kModelFile);
    const auto bytes = stories_model_bytes();
    ASSERT_GE(bytes.size(), 15u);
    EXPECT_EQ(bytes[0], 0x0A);
    EXPECT_EQ(bytes[1], 14);
    EXPECT_EQ(bytes[2], 0x0A);
    EXPECT_EQ(bytes[3], 5);
    EXPECT_EQ(std::string(bytes.begin() + 4, bytes.begin() + 9), "<unk>");
    EXPECT_EQ(bytes[9], 0x15);
    EXPECT_EQ(bytes[14], 0x18);
    EXPECT_EQ(bytes[15], 2);
}

TEST(HostileSentencePiece, TruncationAtEveryByteNeverCrashes) {
    SPARQ_REQUIRE_DATA(kModelFile);
    const auto bytes = stories_model_bytes();
    size_t errors = 0;
    for (size_t size = 0; size < bytes.size(); ++size) {
        const std::span<const uint8_t> prefix(bytes.data(), size);
        try {
            // A cut between two top-level fields is a valid model: fewer
            // pieces, or all 512 without the trailer's specs.
            const auto model = parse_sentencepiece_model(prefix, "cut.model");
            EXPECT_LE(model.vocabulary.size(), 512u);
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find("cut.model"), std::string::npos) << e.what();
            ++errors;
        }
    }
    EXPECT_GT(errors, bytes.size() / 2);
}

TEST(HostileSentencePiece, TruncatedInsideAPieceNamesThePiece) {
    SPARQ_REQUIRE_DATA(kModelFile);
    auto bytes = stories_model_bytes();
    bytes.resize(20);  // piece 1 (0A 0C ...) starts at 16 and needs 12 bytes
    const std::string message = load_error(bytes, "truncated.model");
    EXPECT_NE(message.find("truncated.model: field 'ModelProto.pieces[1]': field 1 has length 12 but only 2 bytes remain"),
              std::string::npos)
        << message;
}

TEST(HostileSentencePiece, PieceTextLengthPastTheEndOfThePiece) {
    SPARQ_REQUIRE_DATA(kModelFile);
    auto bytes = stories_model_bytes();
    bytes[3] = 100;  // "<unk>" claims 100 bytes inside a 14-byte piece message
    const std::string message = load_error(bytes, "long-piece.model");
    EXPECT_NE(message.find("field 'ModelProto.pieces[0]': field 1 has length 100 but only 12 bytes remain"),
              std::string::npos)
        << message;
}

TEST(HostileSentencePiece, BadWireTypeForTheScore) {
    SPARQ_REQUIRE_DATA(kModelFile);
    auto bytes = stories_model_bytes();
    bytes[9] = 0x12;  // score (field 2) as length-delimited instead of 32-bit
    const std::string message = load_error(bytes, "wire.model");
    EXPECT_NE(message.find("field 2 has wire type 2 (length-delimited), expected 5 (32-bit)"), std::string::npos)
        << message;
    EXPECT_NE(message.find("ModelProto.pieces[0]"), std::string::npos) << message;
}

TEST(HostileSentencePiece, InvalidWireType) {
    SPARQ_REQUIRE_DATA(kModelFile);
    auto bytes = stories_model_bytes();
    bytes[14] = 0x0F;  // the first piece's type tag (0x18) becomes field 1, wire type 7
    const std::string message = load_error(bytes, "wire7.model");
    EXPECT_NE(message.find("field 'ModelProto.pieces[0]': field 1 has invalid wire type 7 (at byte offset 14)"),
              std::string::npos)
        << message;
}

TEST(HostileSentencePiece, UnknownPieceType) {
    SPARQ_REQUIRE_DATA(kModelFile);
    auto bytes = stories_model_bytes();
    bytes[15] = 9;
    const std::string message = load_error(bytes, "type.model");
    EXPECT_NE(message.find("piece 0 ('<unk>') has unknown type 9"), std::string::npos) << message;
}

TEST(HostileSentencePiece, SpecialIdOutsideTheVocabulary) {
    // pieces: one "a"; TrainerSpec: bos_id 7.
    const std::vector<uint8_t> bytes = {0x0A, 0x03, 0x0A, 0x01, 'a', 0x12, 0x03, 0xC8, 0x02, 0x07};
    const std::string message = error_message_of([&] { parse_sentencepiece_model(bytes, "ids.model"); });
    EXPECT_NE(message.find("bos_id 7 is outside the vocabulary of 1 pieces"), std::string::npos) << message;
}

TEST(HostileSentencePiece, EmptyPieceAndNoPieces) {
    const std::vector<uint8_t> empty_piece = {0x0A, 0x02, 0x0A, 0x00};
    EXPECT_NE(error_message_of([&] { parse_sentencepiece_model(empty_piece, "e.model"); }).find("piece 0 has no text"),
              std::string::npos);
    const std::vector<uint8_t> no_pieces = {0x12, 0x00};
    EXPECT_NE(error_message_of([&] { parse_sentencepiece_model(no_pieces, "e.model"); }).find("has no pieces"),
              std::string::npos);
}

TEST(HostileSentencePiece, RandomByteDamageNeverCrashes) {
    SPARQ_REQUIRE_DATA(kModelFile);
    const auto original = stories_model_bytes();
    std::mt19937 random(1234);
    int loaded = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        auto bytes = original;
        const int flips = 1 + static_cast<int>(random() % 4);
        for (int i = 0; i < flips; ++i) bytes[random() % bytes.size()] = static_cast<uint8_t>(random());
        try {
            auto model = parse_sentencepiece_model(bytes, "damaged.model");
            SpmTokenizer tokenizer(std::move(model.vocabulary), "", "sentencepiece");
            // Whatever survived must still tokenize and decode safely.
            const auto ids = tokenizer.encode("Once upon a time, 3 cats \xF0\x9F\x99\x82 ran.", true);
            for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), tokenizer.vocabulary().size());
            tokenizer.decode(ids);
            ++loaded;
        } catch (const Error&) {
        }
    }
    // Most flips land in piece text or scores, which stay loadable.
    EXPECT_GT(loaded, 100);
}

TEST(HostileTokenizerFiles, EmptyAndMissingFiles) {
    EXPECT_NE(load_error({}, "empty.model").find("the tokenizer file is empty"), std::string::npos);
    EXPECT_NE(error_message_of([] { load_tokenizer("/nonexistent/tokenizer.json", 0); }).find("cannot open"),
              std::string::npos);
    EXPECT_NE(error_message_of([] { load_tokenizer("/nonexistent/tokenizer.model", 0); }).find("cannot open"),
              std::string::npos);
}

TEST(HostileTokenizerFiles, TextFileIsReadAsLlama2cAndSaysSo) {
    const std::string text = "this is not a tokenizer";
    const std::string message = load_error({text.begin(), text.end()}, "notes.txt");
    EXPECT_NE(message.find("notes.txt: record 0"), std::string::npos) << message;
    EXPECT_NE(message.find("read as a llama2.c tokenizer.bin"), std::string::npos) << message;
}

// A model's vocab_size may exceed the tokenizer's piece count (padded
// embedding tables); a tokenizer with more pieces than it is an error.
TEST(HostileTokenizerFiles, SentencePieceWithMorePiecesThanVocabSize) {
    SPARQ_REQUIRE_DATA(kModelFile);
    const std::string message = error_message_of([] { load_tokenizer(testing::data_path(kModelFile), 256); });
    EXPECT_NE(message.find("tokenizer has 512 pieces, more than the model's vocab_size 256"), std::string::npos)
        << message;
    EXPECT_NE(message.find(kModelFile), std::string::npos) << message;
}

TEST(HostileTokenizerFiles, PaddedVocabSizeIsAccepted) {
    SPARQ_REQUIRE_DATA(kModelFile);
    EXPECT_EQ(load_tokenizer(testing::data_path(kModelFile), 32000)->vocab_size(), 512);
    EXPECT_EQ(load_tokenizer(testing::data_path(kModelFile), 512)->vocab_size(), 512);
    EXPECT_EQ(load_tokenizer(testing::data_path(kModelFile), 0)->vocab_size(), 512);
}

TEST(HostileTokenizerFiles, HandBuiltVocabularyIsChecked) {
    Vocabulary v;
    v.pieces = {"<unk>", "a"};
    v.scores = {0.0f};
    v.kinds = {TokenKind::Unknown, TokenKind::Normal};
    EXPECT_NE(error_message_of([&] { SpmTokenizer(v, "", "test"); }).find("2 pieces but 1 scores"), std::string::npos);
    v.scores = {0.0f, 0.0f};
    v.bos_id = 5;
    EXPECT_NE(error_message_of([&] { SpmTokenizer(v, "", "test"); }).find("bos id 5"), std::string::npos);
}

}  // namespace
}  // namespace sparq
