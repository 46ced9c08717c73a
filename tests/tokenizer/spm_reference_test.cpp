// Ids must equal llama.cpp's on the shared reference data: the sample
// strings and text prefixes in each model's reference/tokens.json, the 46
// llama-spm conformance vectors, and whole evaluation texts.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "test_data.h"
#include "tokenizer/llama_cpp_escapes.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_files.h"

namespace sparq {
namespace {

using nlohmann::json;
using testing::data_path;

constexpr const char* kModels[] = {"stories260K", "small-llama", "small-llama-v2"};

std::string describe(const std::string& text) { return json(text).dump(); }

void expect_reference_cases(const Tokenizer& tokenizer, const json& reference, const std::string& label) {
    const auto& cases = reference.at("cases");
    ASSERT_GE(cases.size(), 10u) << label;
    const int32_t bos = reference.at("bos_id").get<int32_t>();
    EXPECT_EQ(tokenizer.bos_id(), bos) << label;
    for (const auto& c : cases) {
        const auto text = c.at("text").get<std::string>();
        const auto expected = c.at("ids_without_bos").get<std::vector<int32_t>>();
        EXPECT_EQ(tokenizer.encode(text, false), expected) << label << " text " << describe(text);

        std::vector<int32_t> with_bos{bos};
        with_bos.insert(with_bos.end(), expected.begin(), expected.end());
        EXPECT_EQ(tokenizer.encode(text, true), with_bos) << label << " text " << describe(text);
        EXPECT_EQ(tokenizer.decode(with_bos), text) << label << " round trip " << describe(text);
    }
}

TEST(SpmReference, TokensJsonCasesMatchLlamaCpp) {
    for (const std::string model : kModels) {
        SCOPED_TRACE(model);
        SPARQ_REQUIRE_DATA(model + "/reference/tokens.json");
        SPARQ_REQUIRE_DATA(model + "/hf/tokenizer.model");
        const json reference = json::parse(read_text_file(data_path(model + "/reference/tokens.json")));
        const auto tokenizer = load_tokenizer(data_path(model + "/hf/tokenizer.model"), 0);
        EXPECT_EQ(tokenizer->source_kind(), "sentencepiece");
        expect_reference_cases(*tokenizer, reference, model);
    }
}

TEST(SpmReference, Llama2cTokenizerBinGivesTheSameIds) {
    SPARQ_REQUIRE_DATA("stories260K/tok512.bin");
    SPARQ_REQUIRE_DATA("stories260K/reference/tokens.json");
    const json reference = json::parse(read_text_file(data_path("stories260K/reference/tokens.json")));
    const auto tokenizer = load_tokenizer(data_path("stories260K/tok512.bin"), 512);
    EXPECT_EQ(tokenizer->source_kind(), "llama2c");
    EXPECT_EQ(tokenizer->vocab_size(), 512);
    expect_reference_cases(*tokenizer, reference, "stories260K tok512.bin");
}

// The .bin is an export of the same SentencePiece model: the vocabularies
// must agree piece for piece, score for score, kind for kind.
TEST(SpmReference, Llama2cVocabularyEqualsTheSentencePieceOne) {
    SPARQ_REQUIRE_DATA("stories260K/tok512.bin");
    SPARQ_REQUIRE_DATA("stories260K/tok512.model");
    const auto from_bin = load_tokenizer(data_path("stories260K/tok512.bin"), 512);
    const auto from_model = load_tokenizer(data_path("stories260K/tok512.model"), 512);
    const Vocabulary& a = from_bin->vocabulary();
    const Vocabulary& b = from_model->vocabulary();
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(a.pieces, b.pieces);
    EXPECT_EQ(a.scores, b.scores);
    EXPECT_EQ(a.kinds, b.kinds);
    EXPECT_EQ(a.bos_id, b.bos_id);
    EXPECT_EQ(a.eos_id, b.eos_id);
    EXPECT_EQ(a.unk_id, b.unk_id);
    EXPECT_EQ(a.add_space_prefix, b.add_space_prefix);
}

// vectors.inp holds each string followed by "\n__ggml_vocab_test__\n" (the
// separator's leading newline is not part of the string); vectors.out holds
// one line of ids per string, an empty line for the empty string.
TEST(SpmReference, LlamaSpmConformanceVectors) {
    SPARQ_REQUIRE_DATA("tokenizers/llama-spm/tokenizer.model");
    SPARQ_REQUIRE_DATA("tokenizers/llama-spm/vectors.inp");
    SPARQ_REQUIRE_DATA("tokenizers/llama-spm/vectors.out");
    const auto tokenizer = load_tokenizer(data_path("tokenizers/llama-spm/tokenizer.model"), 32000);

    std::string inputs = read_text_file(data_path("tokenizers/llama-spm/vectors.inp"));
    const std::string separator = "\n__ggml_vocab_test__\n";
    std::vector<std::string> strings;
    for (size_t at; (at = inputs.find(separator)) != std::string::npos;) {
        strings.push_back(inputs.substr(0, at));
        inputs.erase(0, at + separator.size());
    }
    EXPECT_TRUE(inputs.empty()) << "text after the last separator";

    const std::string outputs = read_text_file(data_path("tokenizers/llama-spm/vectors.out"));
    std::vector<std::vector<int32_t>> expected;
    for (size_t begin = 0; begin < outputs.size();) {
        size_t end = outputs.find('\n', begin);
        if (end == std::string::npos) end = outputs.size();
        expected.push_back(testing::parse_id_line(outputs.substr(begin, end - begin)));
        begin = end + 1;
    }

    ASSERT_EQ(strings.size(), 46u);
    ASSERT_EQ(expected.size(), strings.size());
    int passed = 0;
    for (size_t i = 0; i < strings.size(); ++i) {
        const auto ids = tokenizer->encode(strings[i], false);
        EXPECT_EQ(ids, expected[i]) << "vector " << i << ": " << describe(strings[i]);
        EXPECT_EQ(tokenizer->decode(ids), strings[i]) << "round trip of vector " << i;
        if (ids == expected[i]) ++passed;
    }
    std::cout << "llama-spm vectors: " << passed << "/" << strings.size() << " match\n";
}

// The whole evaluation text, tokenized as one string with BOS first. The
// reference counts come from llama.cpp's tools, which apply backslash escapes
// to their input (see llama_cpp_escapes.h): heldout.txt's five "\\" pairs
// make its raw bytes give 5 tokens more than llama.cpp reports.
TEST(SpmReference, WholeEvaluationTextsMatchLlamaCppTokenCounts) {
    for (const std::string model : kModels) {
        SCOPED_TRACE(model);
        SPARQ_REQUIRE_DATA(model + "/reference/llamacpp.json");
        SPARQ_REQUIRE_DATA(model + "/hf/tokenizer.model");
        const json reference = json::parse(read_text_file(data_path(model + "/reference/llamacpp.json")));
        const auto text_name = reference.at("text").get<std::string>();
        const auto expected_count = reference.at("text_tokens_with_bos").get<size_t>();
        SPARQ_REQUIRE_DATA(text_name);
        const std::string raw_text = read_text_file(data_path(text_name));
        const std::string text = apply_llama_cpp_escapes(raw_text);
        const auto tokenizer = load_tokenizer(data_path(model + "/hf/tokenizer.model"), 0);

        const auto start = std::chrono::steady_clock::now();
        const auto ids = tokenizer->encode(text, true);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const auto raw_ids = tokenizer->encode(raw_text, true);
        std::cout << model << ": " << text_name << " (" << raw_text.size() << " bytes) -> " << ids.size()
                  << " tokens in " << seconds * 1000.0 << " ms (raw bytes, no escapes: " << raw_ids.size()
                  << " tokens)\n";

        EXPECT_EQ(ids.size(), expected_count);
        ASSERT_FALSE(ids.empty());
        EXPECT_EQ(ids.front(), tokenizer->bos_id());
        // The merge loop is O(n log n); a quadratic one would take minutes here.
        EXPECT_LT(seconds, 10.0);
        EXPECT_TRUE(tokenizer->decode(ids) == text) << "whole-text round trip differs";
        EXPECT_TRUE(tokenizer->decode(raw_ids) == raw_text) << "raw whole-text round trip differs";
        if (model != "stories260K") {
            EXPECT_EQ(raw_ids.size(), expected_count + 5) << "heldout.txt has five \\\\ pairs";
        }
    }
}

TEST(SpmReference, EvaluationTextPrefixMatchesWithTok512Bin) {
    SPARQ_REQUIRE_DATA("stories260K/tok512.bin");
    SPARQ_REQUIRE_DATA("stories260K/hf/tokenizer.model");
    SPARQ_REQUIRE_DATA("text/tinystories-valid-snippet.txt");
    const std::string text = read_text_file(data_path("text/tinystories-valid-snippet.txt"));
    const auto from_bin = load_tokenizer(data_path("stories260K/tok512.bin"), 512);
    const auto from_model = load_tokenizer(data_path("stories260K/hf/tokenizer.model"), 512);
    const auto ids = from_bin->encode(text, true);
    EXPECT_EQ(ids.size(), 15555u);
    EXPECT_EQ(ids, from_model->encode(text, true));
}

TEST(SpmReference, VocabularyFieldsOfTheSharedModels) {
    struct Expected {
        std::string file;
        int64_t size;
    };
    for (const auto& e : {Expected{"stories260K/hf/tokenizer.model", 512}, Expected{"small-llama/hf/tokenizer.model", 4096},
                          Expected{"small-llama-v2/hf/tokenizer.model", 2048},
                          Expected{"tokenizers/llama-spm/tokenizer.model", 32000}}) {
        SCOPED_TRACE(e.file);
        SPARQ_REQUIRE_DATA(e.file);
        const auto tokenizer = load_tokenizer(data_path(e.file), e.size);
        const Vocabulary& v = tokenizer->vocabulary();
        EXPECT_EQ(tokenizer->vocab_size(), e.size);
        EXPECT_EQ(v.model, "llama");
        EXPECT_EQ(v.unk_id, 0);
        EXPECT_EQ(v.bos_id, 1);
        EXPECT_EQ(v.eos_id, 2);
        EXPECT_EQ(v.pad_id, -1);
        EXPECT_TRUE(v.add_space_prefix);
        EXPECT_EQ(v.pieces[0], "<unk>");
        EXPECT_EQ(v.kinds[0], TokenKind::Unknown);
        EXPECT_EQ(v.kinds[1], TokenKind::Control);
        EXPECT_EQ(v.kinds[2], TokenKind::Control);
        EXPECT_EQ(std::count(v.kinds.begin(), v.kinds.end(), TokenKind::Byte), 256);
        EXPECT_EQ(v.pieces[3 + 0x41], "<0x41>");
        EXPECT_EQ(tokenizer->source_bytes(), read_text_file(data_path(e.file)));

        EXPECT_EQ(tokenizer->token_bytes(3 + 0x41), "A");
        EXPECT_EQ(tokenizer->token_bytes(3 + 0x0A), "\n");
        EXPECT_EQ(tokenizer->token_bytes(1), "");
        EXPECT_EQ(tokenizer->token_bytes(2), "");
        EXPECT_EQ(tokenizer->token_bytes(0), "\xE2\x96\x85");
        EXPECT_THROW(tokenizer->token_bytes(static_cast<int32_t>(e.size)), Error);
        EXPECT_THROW(tokenizer->token_bytes(-1), Error);
    }
}

TEST(SpmReference, DecodeDropsOnlyThePrefixSpaceAndSkipsBosEos) {
    SPARQ_REQUIRE_DATA("tokenizers/llama-spm/tokenizer.model");
    const auto tokenizer = load_tokenizer(data_path("tokenizers/llama-spm/tokenizer.model"), 32000);
    // From vectors.out: " Hello world" -> 29871 15043 3186 ("▁", "▁Hello", "▁world").
    EXPECT_EQ(tokenizer->token_bytes(15043), " Hello");
    EXPECT_EQ(tokenizer->decode({1, 15043, 3186, 2}), "Hello world");
    EXPECT_EQ(tokenizer->decode({1, 29871, 15043, 3186}), " Hello world");
    EXPECT_EQ(tokenizer->decode({3186, 15043}), "world Hello");
    EXPECT_EQ(tokenizer->decode({}), "");
    EXPECT_EQ(tokenizer->encode("", true), std::vector<int32_t>{1});
    EXPECT_TRUE(tokenizer->encode("", false).empty());
}

// Control-token text is plain text to the encoder (llama.cpp's default,
// parse_special off): "<s>" must not become BOS.
TEST(SpmReference, ControlTokenTextIsNotParsed) {
    SPARQ_REQUIRE_DATA("tokenizers/llama-spm/tokenizer.model");
    const auto tokenizer = load_tokenizer(data_path("tokenizers/llama-spm/tokenizer.model"), 32000);
    const auto ids = tokenizer->encode("<s> hi </s>", false);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 0);
    EXPECT_EQ(tokenizer->decode(ids), "<s> hi </s>");
}

// Bytes that are not valid UTF-8 still round-trip through byte pieces.
TEST(SpmReference, InvalidUtf8FallsBackToBytePieces) {
    SPARQ_REQUIRE_DATA("stories260K/hf/tokenizer.model");
    const auto tokenizer = load_tokenizer(data_path("stories260K/hf/tokenizer.model"), 512);
    const std::string text = std::string("a\xC3") + "b\x80\xFF\xF0\x9F" + std::string(1, '\0') + "z\xE2";
    const auto ids = tokenizer->encode(text, false);
    EXPECT_EQ(tokenizer->decode(ids), text);
    const auto byte_id = [](uint8_t b) { return 3 + static_cast<int32_t>(b); };
    EXPECT_NE(std::find(ids.begin(), ids.end(), byte_id(0xFF)), ids.end());
    EXPECT_NE(std::find(ids.begin(), ids.end(), byte_id(0x00)), ids.end());
    EXPECT_EQ(ids.back(), byte_id(0xE2));  // a lead byte cut off by the end of the text
}

}  // namespace
}  // namespace sparq
