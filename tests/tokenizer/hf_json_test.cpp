// tokenizer.json features on small hand-built files (split behaviors, added
// token rules, ignore_merges, unk, templates), the PCRE2 stand-in for
// Oniguruma, and hostile files that must give a clear sparq::Error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "test_data.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pcre2_regex.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer_test_files.h"

namespace sparq {
namespace {

using nlohmann::json;
using testing::error_message_of;
using Ids = std::vector<int32_t>;

// A byte-level tokenizer.json: ids 0..255 are the bytes' byte-level
// characters, `extra` tokens follow from 256.
json mini_tokenizer(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                    const json& pre_tokenizer) {
    json vocab = json::object();
    for (int b = 0; b < 256; ++b) vocab[byte_level_char(static_cast<uint8_t>(b))] = b;
    for (size_t i = 0; i < extra.size(); ++i) vocab[extra[i]] = 256 + i;
    return {{"version", "1.0"},
            {"added_tokens", json::array()},
            {"normalizer", nullptr},
            {"pre_tokenizer", pre_tokenizer},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
              {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
              {"vocab", vocab}, {"merges", merges}}}};
}

json byte_level(bool add_prefix_space, bool use_regex) {
    return {{"type", "ByteLevel"}, {"add_prefix_space", add_prefix_space}, {"trim_offsets", true},
            {"use_regex", use_regex}};
}

json split_then_byte_level(const json& pattern, const std::string& behavior, bool invert = false) {
    return {{"type", "Sequence"},
            {"pretokenizers",
             {{{"type", "Split"}, {"pattern", pattern}, {"behavior", behavior}, {"invert", invert}},
              byte_level(false, false)}}};
}

std::shared_ptr<BpeTokenizer> make(const json& j, const HfSpecialTokenConfig& config = {}) {
    return make_hf_tokenizer(j.dump(), "mini.json", config);
}

std::string make_error(const json& j) {
    return error_message_of([&] { make(j); });
}

std::string make_error(const std::string& text) {
    return error_message_of([&] { make_hf_tokenizer(text, "mini.json"); });
}

constexpr int32_t a = 'a', b = 'b', sp = ' ';

TEST(HfJsonSplit, EachBehaviorAsTokenizersDefinesIt) {
    const std::vector<std::string> extra = {"ab", "aa"};
    const std::vector<std::string> merges = {"a b", "a a"};
    const json on_b = {{"String", "b"}};
    const json on_a = {{"String", "a"}};
    auto encode = [&](const json& pattern, const std::string& behavior, const std::string& text, bool invert = false) {
        return make(mini_tokenizer(extra, merges, split_then_byte_level(pattern, behavior, invert)))->encode(text, false);
    };
    // Without a split "abab" merges into "ab" "ab".
    EXPECT_EQ(make(mini_tokenizer(extra, merges, byte_level(false, false)))->encode("abab", false), (Ids{256, 256}));
    EXPECT_EQ(encode(on_b, "Isolated", "abab"), (Ids{a, b, a, b}));
    EXPECT_EQ(encode(on_b, "Removed", "abab"), (Ids{a, a}));
    EXPECT_EQ(encode(on_b, "MergedWithPrevious", "abab"), (Ids{256, 256}));
    EXPECT_EQ(encode(on_a, "MergedWithNext", "abab"), (Ids{256, 256}));
    EXPECT_EQ(encode(on_b, "MergedWithNext", "abab"), (Ids{a, b, a, b}));  // "a" "ba" "b"
    EXPECT_EQ(encode(on_a, "Isolated", "aab"), (Ids{a, a, b}));
    EXPECT_EQ(encode(on_a, "Contiguous", "aab"), (Ids{257, b}));
    EXPECT_EQ(encode(on_b, "Removed", "abab", true), (Ids{b, b}));  // invert: the non-matches are removed
    EXPECT_EQ(encode({{"Regex", "b+"}}, "Removed", "abbab"), (Ids{a, a}));
    // A String pattern is plain text, not a regex.
    EXPECT_EQ(encode({{"String", "a+"}}, "Removed", "aa+b"), (Ids{a, b}));
}

TEST(HfJsonByteLevel, PrefixSpaceGoesBeforeEachPieceWithoutOne) {
    const json added = {{"id", 256}, {"content", "<x>"}, {"single_word", false}, {"lstrip", false},
                        {"rstrip", false},  {"normalized", false}, {"special", false}};
    json j = mini_tokenizer({"<x>"}, {}, byte_level(true, true));
    j["added_tokens"] = json::array({added});
    const auto tokenizer = make(j);
    EXPECT_EQ(tokenizer->vocabulary().add_space_prefix, true);
    EXPECT_EQ(tokenizer->encode("hi", false), (Ids{sp, 'h', 'i'}));
    EXPECT_EQ(tokenizer->encode(" hi", false), (Ids{sp, 'h', 'i'}));
    // A non-special added token is split out even by plain encode(); each
    // side gets its own prefix space.
    EXPECT_EQ(tokenizer->encode("a<x>b", false), (Ids{sp, a, 256, sp, b}));
    EXPECT_EQ(tokenizer->vocabulary().kinds[256], TokenKind::UserDefined);
    EXPECT_EQ(tokenizer->token_bytes(256), "<x>");
}

TEST(HfJsonAddedTokens, LstripRstripAndSingleWord) {
    json j = mini_tokenizer({"<x>", "tok"}, {}, byte_level(false, true));
    j["added_tokens"] = json::array(
        {{{"id", 256}, {"content", "<x>"}, {"lstrip", true}, {"rstrip", true}, {"special", true}, {"normalized", false}},
         {{"id", 257}, {"content", "tok"}, {"single_word", true}, {"special", false}, {"normalized", true}}});
    const auto tokenizer = make(j);
    // The spaces around <x> are taken into the token.
    EXPECT_EQ(tokenizer->encode_with_special("a  <x>  b", false), (Ids{a, 256, b}));
    // Plain encode() leaves the special token as text.
    EXPECT_EQ(tokenizer->encode("a <x> b", false), (Ids{a, sp, '<', 'x', '>', sp, b}));
    // single_word: only where no word character touches it.
    EXPECT_EQ(tokenizer->encode("a tok b", false), (Ids{a, sp, 257, sp, b}));
    EXPECT_EQ(tokenizer->encode("tok", false), (Ids{257}));
    EXPECT_EQ(tokenizer->encode("atok", false), (Ids{a, 't', 'o', 'k'}));
    EXPECT_EQ(tokenizer->encode("tok_", false), (Ids{'t', 'o', 'k', '_'}));  // '_' is a word character
    EXPECT_EQ(tokenizer->encode("tok!", false), (Ids{257, '!'}));
    EXPECT_EQ(tokenizer->encode("\xC3\xA9tok", false), (Ids{0xC3, 0xA9, 't', 'o', 'k'}));  // é is a letter
}

TEST(HfJsonAddedTokens, LongestMatchWinsAtTheSamePlace) {
    json j = mini_tokenizer({"<a>", "<a><b>"}, {}, byte_level(false, true));
    j["added_tokens"] = json::array(
        {{{"id", 256}, {"content", "<a>"}, {"special", true}, {"normalized", false}},
         {{"id", 257}, {"content", "<a><b>"}, {"special", true}, {"normalized", false}}});
    const auto tokenizer = make(j);
    EXPECT_EQ(tokenizer->encode_with_special("<a><b><a>", false), (Ids{257, 256}));
}

TEST(HfJsonModel, IgnoreMergesTakesWholeWordsFromTheVocabulary) {
    json j = mini_tokenizer({"ab", "abc"}, {"a b"}, byte_level(false, true));
    EXPECT_EQ(make(j)->encode("abc", false), (Ids{256, 'c'}));
    j["model"]["ignore_merges"] = true;
    EXPECT_EQ(make(j)->encode("abc", false), (Ids{257}));
    EXPECT_EQ(make(j)->encode("abcd", false), (Ids{256, 'c', 'd'}));
}

TEST(HfJsonModel, MergesByRankThenLeftmost) {
    // "abc": "b c" has the better rank, so "a" + "bc" even though "a b" is leftmost.
    json j = mini_tokenizer({"ab", "bc"}, {"b c", "a b"}, byte_level(false, true));
    EXPECT_EQ(make(j)->encode("abc", false), (Ids{a, 257}));
    // Equal pairs: leftmost first ("aaa" -> "aa" "a").
    j = mini_tokenizer({"aa"}, {"a a"}, byte_level(false, true));
    EXPECT_EQ(make(j)->encode("aaa", false), (Ids{256, a}));
    // The [a, b] pair form of merges gives the same.
    j = mini_tokenizer({"ab", "bc"}, {}, byte_level(false, true));
    j["model"]["merges"] = json::array({json::array({"b", "c"}), json::array({"a", "b"})});
    EXPECT_EQ(make(j)->encode("abc", false), (Ids{a, 257}));
}

TEST(HfJsonModel, UnknownCharactersWithAndWithoutUnkToken) {
    json j = mini_tokenizer({"<unk>"}, {}, byte_level(false, false));
    j["model"]["vocab"].erase("y");
    j["model"]["vocab"].erase("z");
    EXPECT_EQ(make(j)->encode("ayzb", false), (Ids{a, b}));  // no unk token: dropped, as tokenizers does
    j["model"]["unk_token"] = "<unk>";
    EXPECT_EQ(make(j)->encode("ayzb", false), (Ids{a, 256, 256, b}));
    EXPECT_EQ(make(j)->vocabulary().unk_id, 256);
    j["model"]["fuse_unk"] = true;
    EXPECT_EQ(make(j)->encode("ayzb", false), (Ids{a, 256, b}));
    EXPECT_EQ(make(j)->decode({a, 256, b}), "a\xE2\x96\x85" "b");
    // The vocabulary keeps the missing ids as unused pieces.
    EXPECT_EQ(make(j)->vocabulary().kinds['y'], TokenKind::Unused);
}

TEST(HfJsonSpecialTokens, TemplateAndConfigs) {
    json j = mini_tokenizer({"<s>", "</s>"}, {}, byte_level(false, true));
    j["added_tokens"] = json::array({{{"id", 256}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                     {{"id", 257}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
    j["post_processor"] = {
        {"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair", json::array()},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}}}}};
    auto tokenizer = make(j);
    EXPECT_TRUE(tokenizer->vocabulary().add_bos);
    EXPECT_EQ(tokenizer->bos_id(), 256);
    EXPECT_EQ(tokenizer->eos_id(), 257);  // by name
    EXPECT_EQ(tokenizer->encode("ab", true), (Ids{256, a, b}));

    HfSpecialTokenConfig config;
    config.add_bos = false;
    config.eos_token = "<s>";
    config.bos_id = 257;
    tokenizer = make(j, config);
    EXPECT_FALSE(tokenizer->vocabulary().add_bos);
    EXPECT_EQ(tokenizer->bos_id(), 257);
    EXPECT_EQ(tokenizer->eos_id(), 256);

    config = {};
    config.bos_token = "<nope>";
    EXPECT_NE(error_message_of([&] { make(j, config); }).find("bos_token '<nope>' is not a token"), std::string::npos);
    config = {};
    config.eos_id = 9999;
    EXPECT_NE(error_message_of([&] { make(j, config); }).find("eos_token_id 9999 is outside"), std::string::npos);

    // Roberta style: cls first, sep last.
    j["post_processor"] = {{"type", "RobertaProcessing"}, {"cls", {"<s>", 256}}, {"sep", {"</s>", 257}}};
    tokenizer = make(j);
    EXPECT_TRUE(tokenizer->vocabulary().add_bos);
    EXPECT_EQ(tokenizer->bos_id(), 256);
    EXPECT_EQ(tokenizer->eos_id(), 257);
}

TEST(HfJsonSpecialTokens, SiblingConfigFilesAreRead) {
    const std::string dir = testing::temp_dir("tokenizer-json-config");
    json j = mini_tokenizer({"<s>", "</s>"}, {}, byte_level(false, true));
    j["added_tokens"] = json::array({{{"id", 256}, {"content", "<s>"}, {"special", true}, {"normalized", false}},
                                     {{"id", 257}, {"content", "</s>"}, {"special", true}, {"normalized", false}}});
    const std::string text = j.dump();
    testing::write_file_bytes(dir + "/tokenizer.json", {text.begin(), text.end()});
    const std::string tc = R"({"bos_token": {"content": "</s>", "special": true}, "add_bos_token": true})";
    testing::write_file_bytes(dir + "/tokenizer_config.json", {tc.begin(), tc.end()});
    const std::string mc = R"({"bos_token_id": 256, "eos_token_id": [256, 257], "pad_token_id": null})";
    testing::write_file_bytes(dir + "/config.json", {mc.begin(), mc.end()});
    const auto tokenizer = load_tokenizer(dir + "/tokenizer.json", 0);
    EXPECT_EQ(tokenizer->bos_id(), 257);  // tokenizer_config.json's text wins over config.json's id
    EXPECT_EQ(tokenizer->eos_id(), 256);  // the first of a list
    EXPECT_EQ(tokenizer->vocabulary().pad_id, -1);
    EXPECT_TRUE(tokenizer->vocabulary().add_bos);
    EXPECT_EQ(tokenizer->encode("a", true), (Ids{257, a}));

    const std::string bad = "{ not json";
    testing::write_file_bytes(dir + "/config.json", {bad.begin(), bad.end()});
    const std::string message = error_message_of([&] { load_tokenizer(dir + "/tokenizer.json", 0); });
    EXPECT_NE(message.find(dir + "/config.json: not valid JSON"), std::string::npos) << message;
}

TEST(HostileTokenizerJson, NotJson) {
    for (const std::string text : {"", "{", "{ this is not json", "[1, 2]", "\"text\"", "{\"model\": 5}"}) {
        const std::string message = make_error(text);
        EXPECT_NE(message.find("mini.json"), std::string::npos) << message;
        EXPECT_TRUE(message.find("not a valid tokenizer.json") != std::string::npos ||
                    message.find("not a tokenizer.json") != std::string::npos ||
                    message.find("field 'model'") != std::string::npos)
            << message;
    }
    // Through load_tokenizer: by name, and by content.
    const std::string dir = testing::temp_dir("tokenizer-json-hostile");
    const std::string broken = "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, ";
    testing::write_file_bytes(dir + "/tokenizer.json", {broken.begin(), broken.end()});
    std::string message = error_message_of([&] { load_tokenizer(dir + "/tokenizer.json", 0); });
    EXPECT_NE(message.find(dir + "/tokenizer.json: not a valid tokenizer.json"), std::string::npos) << message;
    testing::write_file_bytes(dir + "/tok.bin", {broken.begin(), broken.end()});
    message = error_message_of([&] { load_tokenizer(dir + "/tok.bin", 0); });
    EXPECT_NE(message.find("tok.bin: not a valid tokenizer.json"), std::string::npos) << message;
}

TEST(HostileTokenizerJson, UnsupportedModelTypeIsNamed) {
    json j = mini_tokenizer({}, {}, byte_level(false, true));
    j["model"]["type"] = "WordPiece";
    std::string message = make_error(j);
    EXPECT_NE(message.find("unsupported tokenizer model type 'WordPiece'"), std::string::npos) << message;
    j["model"]["type"] = "Unigram";
    message = make_error(j);
    EXPECT_NE(message.find("'Unigram'"), std::string::npos) << message;
}

TEST(HostileTokenizerJson, MergesReferencingUnknownTokens) {
    std::string message = make_error(mini_tokenizer({}, {"a zz"}, byte_level(false, true)));
    EXPECT_NE(message.find("field 'model.merges[0]'"), std::string::npos) << message;
    EXPECT_NE(message.find("'zz' is not in the vocabulary"), std::string::npos) << message;
    message = make_error(mini_tokenizer({"ab"}, {"a b", "a c"}, byte_level(false, true)));
    EXPECT_NE(message.find("model.merges[1]"), std::string::npos) << message;
    EXPECT_NE(message.find("the result 'ac' is not in the vocabulary"), std::string::npos) << message;
    message = make_error(mini_tokenizer({}, {"abc"}, byte_level(false, true)));
    EXPECT_NE(message.find("'abc' is not two tokens separated by one space"), std::string::npos) << message;
    json j = mini_tokenizer({}, {}, byte_level(false, true));
    j["model"]["merges"] = json::array({json::array({"a"})});
    message = make_error(j);
    EXPECT_NE(message.find("expected \"a b\" or [\"a\", \"b\"]"), std::string::npos) << message;
}

TEST(HostileTokenizerJson, VocabIdsOutOfRangeOrDuplicated) {
    auto with_id = [](const json& id) {
        json j = mini_tokenizer({}, {}, byte_level(false, true));
        j["model"]["vocab"]["extra"] = id;
        return make_error(j);
    };
    EXPECT_NE(with_id(-1).find("token id -1 is negative"), std::string::npos) << with_id(-1);
    EXPECT_NE(with_id(4294967296ll).find("token id 4294967296 is out of range"), std::string::npos);
    EXPECT_NE(with_id(1000000).find("id 1000000 is out of range for a vocabulary of 257 tokens"), std::string::npos)
        << with_id(1000000);
    EXPECT_NE(with_id("7").find("expected a token id"), std::string::npos);
    EXPECT_NE(with_id(1.5).find("expected a token id"), std::string::npos);
    const std::string duplicated = with_id(97);
    EXPECT_NE(duplicated.find("id 97 is given to two tokens, 'a' and 'extra'"), std::string::npos) << duplicated;

    json j = mini_tokenizer({}, {}, byte_level(false, true));
    j["model"]["vocab"] = json::object();
    EXPECT_NE(make_error(j).find("the vocabulary is empty"), std::string::npos);
    j["model"].erase("vocab");
    EXPECT_NE(make_error(j).find("missing \"vocab\""), std::string::npos);
}

TEST(HostileTokenizerJson, AddedTokenIdsMustBeTheOnesTokenizersAssigns) {
    json j = mini_tokenizer({"<s>"}, {}, byte_level(false, true));
    j["added_tokens"] = json::array({{{"id", 300}, {"content", "<s>"}, {"special", true}}});
    std::string message = make_error(j);
    EXPECT_NE(message.find("added token '<s>' has id 300 in the file, but Hugging Face's tokenizers give it id 256"),
              std::string::npos)
        << message;
    // Not in model.vocab: the next id after the vocabulary.
    j["added_tokens"] = json::array({{{"id", 257}, {"content", "<new>"}, {"special", true}}});
    const auto tokenizer = make(j);
    EXPECT_EQ(tokenizer->vocab_size(), 258);
    EXPECT_EQ(tokenizer->encode_with_special("<new>", false), (Ids{257}));
    j["added_tokens"] = json::array({{{"id", 258}, {"content", "<new>"}, {"special", true}}});
    EXPECT_NE(make_error(j).find("give it id 257"), std::string::npos);
    j["added_tokens"] = json::array({{{"id", 257}, {"content", "<new>"}}, {{"id", 257}, {"content", "<new>"}}});
    EXPECT_NE(make_error(j).find("added token '<new>' appears twice"), std::string::npos);
    j["added_tokens"] = json::array({{{"id", -3}, {"content", "<new>"}}});
    EXPECT_NE(make_error(j).find("field 'added_tokens[0].id'"), std::string::npos);
}

TEST(HostileTokenizerJson, UnsupportedPipelineParts) {
    json j = mini_tokenizer({}, {}, byte_level(false, true));
    j["normalizer"] = {{"type", "NFC"}};
    EXPECT_NE(make_error(j).find("unsupported normalizer 'NFC'"), std::string::npos) << make_error(j);
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "Lowercase"}}}}};
    EXPECT_NE(make_error(j).find("unsupported normalizer 'Lowercase'"), std::string::npos);
    j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
    EXPECT_EQ(make_error(j), "");

    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "_"}};
    EXPECT_NE(make_error(j).find("unsupported pre-tokenizer 'Metaspace'"), std::string::npos);
    j["pre_tokenizer"] = nullptr;
    EXPECT_NE(make_error(j).find("no pre-tokenizer"), std::string::npos);
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", {byte_level(false, true), {{"type", "Digits"}}}}};
    EXPECT_NE(make_error(j).find("ByteLevel must be the last pre-tokenizer step"), std::string::npos);
    j["pre_tokenizer"] = {{"type", "Digits"}, {"individual_digits", true}};
    EXPECT_NE(make_error(j).find("no ByteLevel pre-tokenizer"), std::string::npos);
    j["pre_tokenizer"] = split_then_byte_level({{"Regex", "(unclosed"}}, "Isolated");
    EXPECT_NE(make_error(j).find("cannot compile the regex '(unclosed'"), std::string::npos) << make_error(j);
    j["pre_tokenizer"] = split_then_byte_level({{"Regex", "a"}}, "Sideways");
    EXPECT_NE(make_error(j).find("unknown split behavior 'Sideways'"), std::string::npos);

    j["pre_tokenizer"] = byte_level(false, true);
    j["decoder"] = {{"type", "WordPiece"}};
    EXPECT_NE(make_error(j).find("unsupported decoder 'WordPiece'"), std::string::npos);
    j["decoder"] = nullptr;
    j["model"]["dropout"] = 0.1;
    EXPECT_NE(make_error(j).find("dropout 0.1 is not supported"), std::string::npos);
    j["model"]["dropout"] = nullptr;
    j["model"]["continuing_subword_prefix"] = "##";
    EXPECT_NE(make_error(j).find("continuing_subword_prefix ('##') is not supported"), std::string::npos);
}

// Damage at random places of a small valid file: loading either works or
// throws sparq::Error, and what loads encodes and decodes safely.
TEST(HostileTokenizerJson, RandomDamageNeverCrashes) {
    json j = mini_tokenizer({"ab", "abc", "<s>"}, {"a b", "ab c"}, split_then_byte_level({{"Regex", "\\p{N}"}}, "Isolated"));
    j["added_tokens"] = json::array({{{"id", 258}, {"content", "<s>"}, {"special", true}, {"lstrip", true}}});
    const std::string original = j.dump();
    std::mt19937 random(99);
    int loaded = 0;
    for (int trial = 0; trial < 1500; ++trial) {
        std::string text = original;
        const int flips = 1 + static_cast<int>(random() % 3);
        for (int i = 0; i < flips; ++i) text[random() % text.size()] = static_cast<char>(random());
        if (trial % 5 == 0) text.resize(random() % text.size());
        try {
            const auto tokenizer = make_hf_tokenizer(text, "damaged.json");
            const auto ids = tokenizer->encode_with_special("abc <s> 12 x\xC3\xA9", true);
            for (int32_t id : ids) ASSERT_LT(static_cast<size_t>(id), tokenizer->vocabulary().size());
            tokenizer->decode(ids);
            ++loaded;
        } catch (const Error&) {
        }
    }
    EXPECT_GT(loaded, 10);
}

TEST(Pcre2Regex, RewritesOnigurumaShorthandClasses) {
    EXPECT_EQ(rewrite_for_pcre2(R"(\s+(?!\S))"), R"(\p{White_Space}+(?!\P{White_Space}))");
    EXPECT_EQ(rewrite_for_pcre2(R"([^\s\p{L}\p{N}]+)"), R"([^\p{White_Space}\p{L}\p{N}]+)");
    EXPECT_EQ(rewrite_for_pcre2(R"(\w+)"), R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+)");
    EXPECT_EQ(rewrite_for_pcre2(R"([\w-])"), R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}-])");
    EXPECT_EQ(rewrite_for_pcre2(R"(\W)"), R"([^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])");
    // Escaped backslashes, \Q..\E, POSIX items and a leading ']' in a class are left alone.
    EXPECT_EQ(rewrite_for_pcre2(R"(\\s)"), R"(\\s)");
    EXPECT_EQ(rewrite_for_pcre2(R"(\Q\s\E\s)"), R"(\Q\s\E\p{White_Space})");
    EXPECT_EQ(rewrite_for_pcre2(R"([[:alpha:]\s])"), R"([[:alpha:]\p{White_Space}])");
    EXPECT_EQ(rewrite_for_pcre2(R"([]\s]\s)"), R"([]\p{White_Space}]\p{White_Space})");
    EXPECT_EQ(rewrite_for_pcre2(R"(\p{L}\d\x{20})"), R"(\p{L}\d\x{20})");
}

TEST(Pcre2Regex, WhiteSpaceIsOnigurumas) {
    const Pcre2Regex space(R"(\s)");
    std::vector<std::pair<size_t, size_t>> m;
    space.find_all("a\xE1\xA0\x8E" "b", m);  // U+180E MONGOLIAN VOWEL SEPARATOR: not White_Space
    EXPECT_TRUE(m.empty());
    space.find_all("a\xC2\x85" "b\xE3\x80\x80", m);  // U+0085 NEL and U+3000 are
    EXPECT_EQ(m.size(), 2u);
}

TEST(Pcre2Regex, FindAllSkipsAnEmptyMatchRightAfterAMatch) {
    const Pcre2Regex star("a*");
    std::vector<std::pair<size_t, size_t>> m;
    star.find_all("baab", m);
    // Oniguruma's find_iter: (0,0), (1,3), then no empty match at 3, (4,4).
    EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {1, 3}, {4, 4}}));
    const Pcre2Regex empty("");
    empty.find_all("\xC3\xA9x", m);  // steps over whole characters
    EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{0, 0}, {2, 2}, {3, 3}}));
    const Pcre2Regex literal("a+", true);
    literal.find_all("aa+a+", m);
    EXPECT_EQ(m, (std::vector<std::pair<size_t, size_t>>{{1, 3}, {3, 5}}));
}

TEST(Pcre2Regex, Gpt2PatternWords) {
    const Pcre2Regex gpt2(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)");
    const std::string text = "I'll  pay 42\xE2\x82\xAC  now!\n\n";
    std::vector<std::pair<size_t, size_t>> m;
    gpt2.find_all(text, m);
    std::vector<std::string> words;
    for (const auto& [begin, end] : m) words.push_back(text.substr(begin, end - begin));
    EXPECT_EQ(words, (std::vector<std::string>{"I", "'ll", " ", " pay", " 42", "\xE2\x82\xAC", " ", " now", "!", "\n\n"}));
}

// Llama 3's Split pattern (case-insensitive group, \p{N}{1,3}, [\r\n] in
// classes, lookahead) compiles and splits as Oniguruma would.
TEST(Pcre2Regex, Llama3SplitPattern) {
    const Pcre2Regex llama3(
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)");
    const std::string text = "HE'LL pay 1234567 now!!\r\n\n  x";
    std::vector<std::pair<size_t, size_t>> m;
    llama3.find_all(text, m);
    std::vector<std::string> words;
    for (const auto& [begin, end] : m) words.push_back(text.substr(begin, end - begin));
    EXPECT_EQ(words, (std::vector<std::string>{"HE", "'LL", " pay", " ", "123", "456", "7", " now", "!!\r\n\n", " ",
                                               " x"}));
}

}  // namespace
}  // namespace sparq
