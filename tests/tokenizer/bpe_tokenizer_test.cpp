// Byte-level BPE from tokenizer.json: GPT-2's 46 conformance vectors (ids
// from Hugging Face's tokenizers via llama.cpp's tests) must match exactly;
// SmolLM2's real tokenizer.json must round-trip every vector string, split
// digits one by one and map each special token to its id; plus edge cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/mapped_file.h"
#include "test_data.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_files.h"

namespace sparq {
namespace {

using nlohmann::json;
using testing::data_path;
using testing::error_message_of;

constexpr const char* kGpt2 = "tokenizers/gpt2/tokenizer.json";
constexpr const char* kSmol = "tokenizers/smollm2/tokenizer.json";

std::string describe(const std::string& text) { return json(text).dump(); }

// Loading parses megabytes of JSON: each tokenizer is loaded once.
std::shared_ptr<Tokenizer> tokenizer_for(const std::string& relative) {
    static std::map<std::string, std::shared_ptr<Tokenizer>> loaded;
    auto& slot = loaded[relative];
    if (!slot) slot = load_tokenizer(data_path(relative), 0);
    return slot;
}

int32_t piece_id(const Tokenizer& tokenizer, const std::string& piece) {
    const auto& pieces = tokenizer.vocabulary().pieces;
    const auto it = std::find(pieces.begin(), pieces.end(), piece);
    return it == pieces.end() ? -1 : static_cast<int32_t>(it - pieces.begin());
}

testing::ConformanceVectors gpt2_vectors() {
    return testing::read_conformance_vectors(data_path("tokenizers/gpt2/vectors.inp"),
                                             data_path("tokenizers/gpt2/vectors.out"));
}

TEST(Gpt2Bpe, AllConformanceVectorsGiveTheExpectedIds) {
    SPARQ_REQUIRE_DATA(kGpt2);
    SPARQ_REQUIRE_DATA("tokenizers/gpt2/vectors.inp");
    const auto tokenizer = tokenizer_for(kGpt2);
    const auto vectors = gpt2_vectors();
    ASSERT_EQ(vectors.strings.size(), 46u);
    ASSERT_EQ(vectors.ids.size(), vectors.strings.size());
    int passed = 0;
    for (size_t i = 0; i < vectors.strings.size(); ++i) {
        const auto ids = tokenizer->encode(vectors.strings[i], false);
        EXPECT_EQ(ids, vectors.ids[i]) << "vector " << i << ": " << describe(vectors.strings[i]);
        EXPECT_EQ(tokenizer->decode(ids), vectors.strings[i]) << "round trip of vector " << i;
        // No special tokens in these strings: parsing them changes nothing.
        EXPECT_EQ(tokenizer->encode_with_special(vectors.strings[i], false), ids) << "vector " << i;
        if (ids == vectors.ids[i]) ++passed;
    }
    std::cout << "gpt2 vectors: " << passed << "/" << vectors.strings.size() << " match\n";
}

TEST(Gpt2Bpe, VocabularyFields) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    const Vocabulary& v = tokenizer->vocabulary();
    EXPECT_EQ(tokenizer->source_kind(), "hf-json");
    EXPECT_EQ(tokenizer->source_bytes(), read_text_file(data_path(kGpt2)));
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(tokenizer->vocab_size(), 50257);
    EXPECT_EQ(v.scores.size(), v.size());
    EXPECT_EQ(v.kinds.size(), v.size());
    ASSERT_EQ(v.merges.size(), 50000u);
    EXPECT_EQ(v.merges[0], "\xC4\xA0 t");  // "Ġ t"
    EXPECT_EQ(v.merges[2], "h e");
    // The one special token is BOS and EOS, as llama.cpp's gpt2 vocabulary has it; GPT-2 adds no BOS.
    EXPECT_EQ(v.bos_id, 50256);
    EXPECT_EQ(v.eos_id, 50256);
    EXPECT_EQ(v.unk_id, -1);
    EXPECT_EQ(v.pad_id, -1);
    EXPECT_FALSE(v.add_bos);
    EXPECT_FALSE(v.add_space_prefix);
    EXPECT_EQ(v.pieces[50256], "<|endoftext|>");
    EXPECT_EQ(v.kinds[50256], TokenKind::Control);
    EXPECT_EQ(std::count(v.kinds.begin(), v.kinds.end(), TokenKind::Normal), 50256);
    EXPECT_EQ(v.pieces[220], "\xC4\xA0");  // "Ġ"

    EXPECT_EQ(tokenizer->token_bytes(220), " ");
    EXPECT_EQ(tokenizer->token_bytes(198), "\n");
    EXPECT_EQ(tokenizer->token_bytes(15496), "Hello");
    EXPECT_EQ(tokenizer->token_bytes(18435), " Hello");
    EXPECT_EQ(tokenizer->token_bytes(50256), "");
    EXPECT_EQ(tokenizer->token_bytes(157), "\xE1");  // a lone byte of a UTF-8 sequence
    EXPECT_THROW(tokenizer->token_bytes(50257), Error);
    EXPECT_THROW(tokenizer->token_bytes(-1), Error);
}

TEST(Gpt2Bpe, EmptyTextAndBos) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    EXPECT_TRUE(tokenizer->encode("", false).empty());
    EXPECT_EQ(tokenizer->encode("", true), std::vector<int32_t>{50256});
    EXPECT_EQ(tokenizer->encode("Hello world", true), (std::vector<int32_t>{50256, 15496, 995}));
    EXPECT_EQ(tokenizer->decode({50256, 15496, 995, 50256}), "Hello world");
    EXPECT_EQ(tokenizer->decode({}), "");
}

TEST(Gpt2Bpe, OnlySpaces) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    for (size_t n : {1u, 2u, 5u, 64u, 1000u}) {
        const std::string text(n, ' ');
        const auto ids = tokenizer->encode(text, false);
        EXPECT_FALSE(ids.empty());
        EXPECT_EQ(tokenizer->decode(ids), text) << n << " spaces";
    }
    // One space per token (GPT-2 has no merged-space tokens in these vectors).
    EXPECT_EQ(tokenizer->encode("   ", false), (std::vector<int32_t>{220, 220, 220}));
    // \s+(?!\S): the last space of a run before a word goes with the word.
    EXPECT_EQ(tokenizer->encode("  Hello", false), (std::vector<int32_t>{220, 18435}));
}

TEST(Gpt2Bpe, LongRunsOfDigits) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    // GPT-2 does not split digits: a run is one \p{N}+ word that the merges
    // cut into digit-only tokens, and it must round-trip at any length.
    for (size_t n : {1u, 9u, 100u, 5000u}) {
        const std::string text(n, '7');
        const auto ids = tokenizer->encode(text, false);
        EXPECT_EQ(tokenizer->decode(ids), text);
        for (int32_t id : ids) {
            const std::string bytes = tokenizer->token_bytes(id);
            EXPECT_TRUE(!bytes.empty() && bytes.find_first_not_of('7') == std::string::npos) << describe(bytes);
        }
    }
    // From the vectors: "3333" is 24840, "33" 2091, "333" 20370.
    EXPECT_EQ(tokenizer->encode("333333333", false), (std::vector<int32_t>{24840, 2091, 20370}));
}

TEST(Gpt2Bpe, Emoji) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    // "🦙" U+1F999 is four bytes F0 9F A6 99: byte-level tokens, no unknowns.
    const std::string llama = "\xF0\x9F\xA6\x99";
    const auto ids = tokenizer->encode(llama, false);
    EXPECT_EQ(tokenizer->decode(ids), llama);
    EXPECT_EQ(tokenizer->encode(" this is " + llama + ".cpp", false),
              (std::vector<int32_t>{428, 318, 12520, 99, 247, 13, 20322}));
    // A family emoji with zero-width joiners and a flag.
    const std::string family = "\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 \xF0\x9F\x87\xAF\xF0\x9F\x87\xB5";
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(family, false)), family);
}

TEST(Gpt2Bpe, InvalidUtf8IsRejectedWithTheByteOffset) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    struct Case {
        std::string text;
        std::string where;
    };
    for (const auto& c : {Case{"ab\xFF" "cd", "byte offset 2 (bytes FF 63 64)"},
                          Case{"caf\xC3", "byte offset 3 (bytes C3)"},             // cut off by the end
                          Case{"x\xC0\xAF", "byte offset 1"},                        // overlong '/'
                          Case{"ok \xED\xA0\x80", "byte offset 3"},                  // a UTF-16 surrogate
                          Case{"\xF4\x90\x80\x80", "byte offset 0"},                 // past U+10FFFF
                          Case{"\xE2\x82" "A", "byte offset 0"},                     // bad continuation
                          Case{"\x80", "byte offset 0"}}) {
        const std::string message = error_message_of([&] { tokenizer->encode(c.text, false); });
        EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
        EXPECT_NE(message.find(c.where), std::string::npos) << message;
        EXPECT_NE(error_message_of([&] { tokenizer->encode_with_special(c.text, true); }), "");
    }
    EXPECT_EQ(find_invalid_utf8("plain \xC3\xA9 \xE2\x82\xAC \xF0\x9F\xA6\x99"), std::string_view::npos);
    EXPECT_EQ(find_invalid_utf8(std::string("nul \0 ok", 8)), std::string_view::npos);
}

TEST(Gpt2Bpe, EndOfTextIsPlainTextUnlessParsed) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    const std::string text = "Hello<|endoftext|>world";
    const auto plain = tokenizer->encode(text, false);
    EXPECT_EQ(std::count(plain.begin(), plain.end(), 50256), 0);
    EXPECT_EQ(tokenizer->decode(plain), text);
    EXPECT_EQ(tokenizer->encode_with_special(text, false), (std::vector<int32_t>{15496, 50256, 6894}));
}

// Encoding is const and used from several threads (PCRE2 match data is per
// thread): the same ids from each.
TEST(Gpt2Bpe, ConcurrentEncodingGivesTheSameIds) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const auto tokenizer = tokenizer_for(kGpt2);
    const auto vectors = gpt2_vectors();
    std::vector<std::thread> threads;
    std::vector<int> failures(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < 20; ++round) {
                for (size_t i = 0; i < vectors.strings.size(); ++i) {
                    if (tokenizer->encode(vectors.strings[i], false) != vectors.ids[i]) ++failures[t];
                }
            }
        });
    }
    for (auto& thread : threads) thread.join();
    for (int f : failures) EXPECT_EQ(f, 0);
}

TEST(Gpt2Bpe, WholeEvaluationTextSpeedAndRoundTrip) {
    SPARQ_REQUIRE_DATA(kGpt2);
    std::string name = "text/wiki.test.raw";
    if (!file_exists(data_path(name))) name = "text/heldout.txt";
    SPARQ_REQUIRE_DATA(name);
    const auto tokenizer = tokenizer_for(kGpt2);
    const std::string text = read_text_file(data_path(name));
    const auto start = std::chrono::steady_clock::now();
    const auto ids = tokenizer->encode(text, false);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "gpt2: " << name << " (" << text.size() << " bytes) -> " << ids.size() << " tokens in "
              << seconds * 1000.0 << " ms (" << text.size() / seconds / 1e6 << " MB/s)\n";
    EXPECT_GT(ids.size(), text.size() / 8);
    EXPECT_LT(ids.size(), text.size() / 2);
    EXPECT_LT(seconds, 10.0);
    EXPECT_TRUE(tokenizer->decode(ids) == text) << "whole-text round trip differs";
}

TEST(SmolLm2Bpe, VocabularyAndConfigSpecialTokens) {
    SPARQ_REQUIRE_DATA(kSmol);
    const auto tokenizer = tokenizer_for(kSmol);
    const Vocabulary& v = tokenizer->vocabulary();
    EXPECT_EQ(v.model, "gpt2");
    EXPECT_EQ(tokenizer->vocab_size(), 49152);
    EXPECT_EQ(v.merges.size(), 48900u);
    // From config.json beside it: bos 1 (<|im_start|>), eos 2 (<|im_end|>), pad 2.
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.pad_id, 2);
    EXPECT_FALSE(v.add_bos);  // no post_processor template
    for (int32_t id = 0; id <= 16; ++id) EXPECT_EQ(v.kinds[id], TokenKind::Control) << id;
    EXPECT_EQ(v.kinds[17], TokenKind::Normal);
    EXPECT_EQ(v.pieces[1], "<|im_start|>");
}

TEST(SmolLm2Bpe, EveryVectorStringRoundTrips) {
    SPARQ_REQUIRE_DATA(kSmol);
    SPARQ_REQUIRE_DATA("tokenizers/gpt2/vectors.inp");
    const auto tokenizer = tokenizer_for(kSmol);
    const auto vectors = gpt2_vectors();
    int round_trips = 0;
    for (size_t i = 0; i < vectors.strings.size(); ++i) {
        const auto ids = tokenizer->encode(vectors.strings[i], false);
        for (int32_t id : ids) ASSERT_GT(id, 16) << "a special token in plain text, vector " << i;
        const std::string decoded = tokenizer->decode(ids);
        EXPECT_EQ(decoded, vectors.strings[i]) << "vector " << i << ": " << describe(vectors.strings[i]);
        if (decoded == vectors.strings[i]) ++round_trips;
    }
    std::cout << "smollm2: " << round_trips << "/" << vectors.strings.size() << " vector strings round-trip\n";
}

TEST(SmolLm2Bpe, DigitsAreSplitOneByOne) {
    SPARQ_REQUIRE_DATA(kSmol);
    const auto tokenizer = tokenizer_for(kSmol);
    std::array<int32_t, 10> digit_ids{};
    for (int d = 0; d < 10; ++d) {
        digit_ids[d] = piece_id(*tokenizer, std::string(1, static_cast<char>('0' + d)));
        ASSERT_GE(digit_ids[d], 0) << d;
    }
    const std::string digits = "31415926535897932384626433832795028841971";
    std::vector<int32_t> expected;
    for (char c : digits) expected.push_back(digit_ids[c - '0']);
    EXPECT_EQ(tokenizer->encode(digits, false), expected);

    // The space before a number stays its own token; no digit merges with anything.
    const auto ids = tokenizer->encode("in 2024, 3.14 and x42", false);
    EXPECT_EQ(tokenizer->decode(ids), "in 2024, 3.14 and x42");
    size_t digit_tokens = 0;
    for (int32_t id : ids) {
        const std::string bytes = tokenizer->token_bytes(id);
        if (bytes.find_first_of("0123456789") != std::string::npos) {
            EXPECT_EQ(bytes.size(), 1u) << describe(bytes);
            ++digit_tokens;
        }
    }
    EXPECT_EQ(digit_tokens, 9u);

    // A long run: one token per digit.
    const std::string run(3000, '9');
    EXPECT_EQ(tokenizer->encode(run, false), std::vector<int32_t>(3000, digit_ids[9]));
    // Other Unicode numbers (\p{N}) are split one by one too: Arabic-Indic digits and superscripts.
    const std::string arabic = "\xD9\xA1\xD9\xA2\xD9\xA3";  // ١٢٣
    EXPECT_EQ(tokenizer->decode(tokenizer->encode(arabic, false)), arabic);
}

TEST(SmolLm2Bpe, EverySpecialTokenMapsToItsId) {
    SPARQ_REQUIRE_DATA(kSmol);
    const auto tokenizer = tokenizer_for(kSmol);
    const json file = json::parse(read_text_file(data_path(kSmol)));
    size_t checked = 0;
    for (const auto& added : file.at("added_tokens")) {
        const auto content = added.at("content").get<std::string>();
        const auto id = added.at("id").get<int32_t>();
        EXPECT_EQ(tokenizer->encode_with_special(content, false), std::vector<int32_t>{id}) << content;
        EXPECT_EQ(tokenizer->vocabulary().pieces[id], content);
        // Inside text, between words.
        const auto ids = tokenizer->encode_with_special("a " + content + " b", false);
        EXPECT_EQ(std::count(ids.begin(), ids.end(), id), 1) << content;
        ++checked;
    }
    EXPECT_EQ(checked, 17u);

    // A chat prompt: the control tokens by id, the text between them as BPE.
    const std::string prompt = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    const auto ids = tokenizer->encode_with_special(prompt, false);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 2);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(ids, [&] {
        std::vector<int32_t> expected{1};
        for (int32_t id : tokenizer->encode("user\nHi", false)) expected.push_back(id);
        expected.push_back(2);
        for (int32_t id : tokenizer->encode("\n", false)) expected.push_back(id);
        expected.push_back(1);
        for (int32_t id : tokenizer->encode("assistant\n", false)) expected.push_back(id);
        return expected;
    }());
}

TEST(SmolLm2Bpe, PlainEncodeDoesNotParseSpecialTokens) {
    SPARQ_REQUIRE_DATA(kSmol);
    const auto tokenizer = tokenizer_for(kSmol);
    const std::string text = "<|im_start|>";
    const auto ids = tokenizer->encode(text, false);
    EXPECT_GT(ids.size(), 1u);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 1), 0);
    EXPECT_EQ(tokenizer->decode(ids), text);
    const auto with_bos = tokenizer->encode("<|im_start|>hi<|endoftext|>", true);
    EXPECT_EQ(with_bos.front(), 1);  // the BOS asked for, and no other special id
    EXPECT_EQ(std::count_if(with_bos.begin(), with_bos.end(), [](int32_t id) { return id <= 16; }), 1);
    // Decoding skips control tokens.
    EXPECT_EQ(tokenizer->decode(tokenizer->encode_with_special("<|im_start|>hi<|im_end|>", false)), "hi");
}

TEST(HfTokenizerJson, LoadedByContentWithoutTheJsonName) {
    SPARQ_REQUIRE_DATA(kGpt2);
    const std::string path = testing::temp_dir("tokenizer-json") + "/tokenizer.data";
    const std::string bytes = read_text_file(data_path(kGpt2));
    testing::write_file_bytes(path, {bytes.begin(), bytes.end()});
    const auto tokenizer = load_tokenizer(path, 50257);
    EXPECT_EQ(tokenizer->source_kind(), "hf-json");
    EXPECT_EQ(tokenizer->encode("Hello world", false), (std::vector<int32_t>{15496, 995}));
}

TEST(HfTokenizerJson, VocabSizeCheck) {
    SPARQ_REQUIRE_DATA(kSmol);
    // A padded embedding table is fine; fewer rows than pieces is not.
    EXPECT_EQ(load_tokenizer(data_path(kSmol), 49152)->vocab_size(), 49152);
    EXPECT_EQ(load_tokenizer(data_path(kSmol), 49216)->vocab_size(), 49152);
    const std::string message = error_message_of([] { load_tokenizer(data_path(kSmol), 4096); });
    EXPECT_NE(message.find("tokenizer has 49152 pieces, more than the model's vocab_size 4096"), std::string::npos)
        << message;
}

TEST(HfTokenizerJson, SentencePieceTokenizerCannotParseSpecialTokens) {
    SPARQ_REQUIRE_DATA("stories260K/hf/tokenizer.model");
    const auto tokenizer = load_tokenizer(data_path("stories260K/hf/tokenizer.model"), 0);
    const std::string message = error_message_of([&] { tokenizer->encode_with_special("<s>", false); });
    EXPECT_NE(message.find("cannot parse special tokens"), std::string::npos) << message;
}

}  // namespace
}  // namespace sparq
