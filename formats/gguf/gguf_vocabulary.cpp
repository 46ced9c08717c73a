#include "formats/gguf/gguf_vocabulary.h"

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace sparq::gguf {

void set_gguf_vocabulary(GgufWriter& w, const Vocabulary& vocab, int64_t vocab_size, const std::string& tokenizer_pre,
                         const std::string& source) {
    const std::string& src = source;
    const bool bpe = vocab.model == "gpt2";
    if (vocab.model != "llama" && !bpe) {
        fail_in({src, "", "tokenizer.ggml.model"}, "unsupported tokenizer model '", vocab.model,
                "' (expected llama or gpt2)");
    }
    if (bpe && tokenizer_pre.empty()) {
        fail_in({src, "", "tokenizer.ggml.pre"}, "a byte-level BPE (gpt2) vocabulary needs its llama.cpp "
                "pre-tokenizer type (see llamacpp_tokenizer_pre)");
    }
    if (bpe && vocab.merges.empty()) fail_in({src, "", "tokenizer.ggml.merges"}, "a gpt2 vocabulary needs merges");

    // Vocabulary (padded to the model's vocab_size the way llama.cpp's converter pads).
    const size_t n_pieces = vocab.pieces.size();
    if (n_pieces == 0) fail_in({src, "", "tokenizer"}, "the vocabulary is empty");
    if (static_cast<int64_t>(n_pieces) > vocab_size) {
        fail_in({src, "", "vocab_size"}, "the tokenizer has ", n_pieces, " tokens but the model only ", vocab_size);
    }
    if (!vocab.scores.empty() && vocab.scores.size() != n_pieces) {
        fail_in({src, "", "tokenizer.scores"}, vocab.scores.size(), " scores for ", n_pieces, " tokens");
    }
    if (!vocab.kinds.empty() && vocab.kinds.size() != n_pieces) {
        fail_in({src, "", "tokenizer.kinds"}, vocab.kinds.size(), " token kinds for ", n_pieces, " tokens");
    }
    std::vector<std::string> pieces = vocab.pieces;
    std::vector<float> scores = vocab.scores.empty() ? std::vector<float>(n_pieces, 0.0f) : vocab.scores;
    std::vector<int32_t> kinds(n_pieces, static_cast<int32_t>(TokenKind::Normal));
    for (size_t i = 0; i < vocab.kinds.size(); ++i) kinds[i] = static_cast<int32_t>(vocab.kinds[i]);
    for (int64_t i = static_cast<int64_t>(n_pieces); i < vocab_size; ++i) {
        pieces.push_back("[PAD" + std::to_string(i) + "]");
        scores.push_back(-1000.0f);
        kinds.push_back(static_cast<int32_t>(TokenKind::Unused));
    }

    w.set_string("tokenizer.ggml.model", vocab.model);
    if (bpe) w.set_string("tokenizer.ggml.pre", tokenizer_pre);
    w.set("tokenizer.ggml.tokens", Value::string_array(std::move(pieces)));
    if (!bpe) w.set("tokenizer.ggml.scores", Value::array(scores));  // BPE has none (llama.cpp's converter writes none)
    w.set("tokenizer.ggml.token_type", Value::array(kinds));
    if (bpe) w.set("tokenizer.ggml.merges", Value::string_array(vocab.merges));
    auto set_id = [&](const char* key, int32_t id) {
        if (id < 0) return;
        if (id >= vocab_size) fail_in({src, "", key}, "token id ", id, " is outside the vocabulary of ", vocab_size);
        w.set_scalar<uint32_t>(key, static_cast<uint32_t>(id));
    };
    set_id("tokenizer.ggml.bos_token_id", vocab.bos_id);
    set_id("tokenizer.ggml.eos_token_id", vocab.eos_id);
    set_id("tokenizer.ggml.unknown_token_id", vocab.unk_id);
    set_id("tokenizer.ggml.padding_token_id", vocab.pad_id);
    w.set_scalar<bool>("tokenizer.ggml.add_bos_token", vocab.add_bos);
    w.set_scalar<bool>("tokenizer.ggml.add_eos_token", false);
    if (!bpe) w.set_scalar<bool>("tokenizer.ggml.add_space_prefix", vocab.add_space_prefix);
}

namespace {

// A uint32 (or any integer) key as an id; -1 when absent.
int32_t read_id(const GgufFile& f, const char* key, size_t n_pieces) {
    const Value* v = f.find(key);
    if (!v) return -1;
    const std::optional<int64_t> id = v->is_array() ? std::nullopt : v->to_int64();
    if (!id || *id < 0 || *id >= static_cast<int64_t>(n_pieces)) {
        fail_in({f.path(), "", key}, "must be a token id below ", n_pieces, ", got ", v->to_display());
    }
    return static_cast<int32_t>(*id);
}

// Runs `read` on the value of `key`; a type error it throws names the file
// and key.
template <typename Read>
auto keyed(const GgufFile& f, const char* key, const Value& v, Read&& read) -> decltype(read(v)) {
    try {
        return read(v);
    } catch (const Error& e) {
        throw Error(e.message(), {f.path(), "", key});
    }
}

bool read_flag(const GgufFile& f, const char* key, bool fallback) {
    const Value* v = f.find(key);
    if (!v) return fallback;
    return keyed(f, key, *v, [](const Value& x) { return x.get<bool>(); });
}

}  // namespace

Vocabulary read_gguf_vocabulary(const GgufFile& f, std::string* pre) {
    Vocabulary v;
    v.model = f.get_string("tokenizer.ggml.model");
    const bool bpe = v.model == "gpt2";
    if (v.model != "llama" && !bpe) {
        fail_in({f.path(), "", "tokenizer.ggml.model"}, "unsupported tokenizer model '", v.model,
                "' (expected llama or gpt2)");
    }
    const auto strings = [&](const char* key) {
        return keyed(f, key, f.get(key), [](const Value& x) { return x.get_strings(); });
    };
    v.pieces = strings("tokenizer.ggml.tokens");
    const size_t n = v.pieces.size();
    if (n == 0) fail_in({f.path(), "", "tokenizer.ggml.tokens"}, "the vocabulary is empty");
    if (const Value* scores = f.find("tokenizer.ggml.scores")) {
        v.scores = keyed(f, "tokenizer.ggml.scores", *scores, [](const Value& x) { return x.get_array<float>(); });
        if (v.scores.size() != n) fail_in({f.path(), "", "tokenizer.ggml.scores"}, v.scores.size(), " scores for ", n, " tokens");
    } else if (!bpe) {
        fail_in({f.path(), "", "tokenizer.ggml.scores"}, "a SentencePiece (llama) vocabulary needs scores");
    }
    if (const Value* types = f.find("tokenizer.ggml.token_type")) {
        const std::vector<int32_t> raw =
            keyed(f, "tokenizer.ggml.token_type", *types, [](const Value& x) { return x.get_array<int32_t>(); });
        if (raw.size() != n) fail_in({f.path(), "", "tokenizer.ggml.token_type"}, raw.size(), " token types for ", n, " tokens");
        v.kinds.reserve(n);
        for (size_t i = 0; i < n; ++i) {
            if (raw[i] < static_cast<int32_t>(TokenKind::Normal) || raw[i] > static_cast<int32_t>(TokenKind::Byte)) {
                fail_in({f.path(), "", "tokenizer.ggml.token_type"}, "token ", i, " has type ", raw[i], " (expected 1 to 6)");
            }
            v.kinds.push_back(static_cast<TokenKind>(raw[i]));
        }
    }
    if (bpe) {
        v.merges = strings("tokenizer.ggml.merges");
        if (v.merges.empty()) fail_in({f.path(), "", "tokenizer.ggml.merges"}, "a gpt2 vocabulary needs merges");
    }
    if (pre) *pre = f.find("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : std::string();
    v.bos_id = read_id(f, "tokenizer.ggml.bos_token_id", n);
    v.eos_id = read_id(f, "tokenizer.ggml.eos_token_id", n);
    v.unk_id = read_id(f, "tokenizer.ggml.unknown_token_id", n);
    v.pad_id = read_id(f, "tokenizer.ggml.padding_token_id", n);
    v.add_bos = read_flag(f, "tokenizer.ggml.add_bos_token", !bpe);
    v.add_space_prefix = read_flag(f, "tokenizer.ggml.add_space_prefix", !bpe);
    return v;
}

std::string tokenizer_json_for_bpe(const Vocabulary& vocab, const std::string& pre, const std::string& source) {
    using nlohmann::json;
    const json byte_level_regex = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
    const json byte_level_plain = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
    const auto split = [](std::string_view pattern) {
        return json{{"type", "Split"}, {"pattern", {{"Regex", std::string(pattern)}}}, {"behavior", "Isolated"}, {"invert", false}};
    };
    json pre_tokenizer;
    if (pre == "gpt-2") {
        pre_tokenizer = byte_level_regex;
    } else if (pre == "smollm") {
        pre_tokenizer = {{"type", "Sequence"},
                         {"pretokenizers", json::array({{{"type", "Digits"}, {"individual_digits", true}}, byte_level_regex})}};
    } else if (pre == "llama-bpe") {
        pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", json::array({split(kLlama3SplitPattern), byte_level_plain})}};
    } else if (pre == "qwen2") {
        pre_tokenizer = {{"type", "Sequence"}, {"pretokenizers", json::array({split(kQwen2SplitPattern), byte_level_plain})}};
    } else {
        fail_in({source, "", "tokenizer.ggml.pre"}, "llama.cpp's pre-tokenizer '", pre,
                "' is not rebuilt (gpt-2, smollm, llama-bpe and qwen2 are): give the model's tokenizer.json with --tokenizer");
    }
    json model_vocab = json::object();
    json added = json::array();
    for (size_t id = 0; id < vocab.pieces.size(); ++id) {
        const std::string& piece = vocab.pieces[id];
        if (model_vocab.contains(piece)) {
            fail_in({source, "", "tokenizer.ggml.tokens"}, "token ", id, " repeats the piece of token ",
                    model_vocab[piece].get<int64_t>());
        }
        model_vocab[piece] = id;
        const TokenKind kind = id < vocab.kinds.size() ? vocab.kinds[id] : TokenKind::Normal;
        if (kind == TokenKind::Control || kind == TokenKind::UserDefined) {
            added.push_back({{"id", id}, {"content", piece}, {"special", kind == TokenKind::Control},
                             {"single_word", false}, {"lstrip", false}, {"rstrip", false}, {"normalized", false}});
        }
    }
    json merges = json::array();
    for (const std::string& m : vocab.merges) merges.push_back(m);
    const json doc = {{"version", "1.0"},
                      {"added_tokens", added},
                      {"normalizer", nullptr},
                      {"pre_tokenizer", pre_tokenizer},
                      {"post_processor", nullptr},
                      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
                      {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"byte_fallback", false},
                                 {"ignore_merges", pre == "llama-bpe"}, {"vocab", model_vocab}, {"merges", merges}}}};
    try {
        return doc.dump();
    } catch (const json::exception& e) {
        fail_in({source, "", "tokenizer.ggml.tokens"}, "a piece is not valid UTF-8: ", e.what());
    }
}

std::string gguf_vocabulary_bytes(const Vocabulary& vocab, const std::string& tokenizer_pre) {
    GgufWriter w;
    set_gguf_vocabulary(w, vocab, static_cast<int64_t>(vocab.size()), tokenizer_pre, "vocabulary");
    return w.metadata_bytes();
}

}  // namespace sparq::gguf
