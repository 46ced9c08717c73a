// BpeTokenizer puts its three steps together (added tokens, pre-tokenizer,
// BPE model: added_tokens.h, pre_tokenizer.h, bpe_model.h) and builds what
// the Tokenizer interface hands out: the vocabulary with its special ids,
// and each token's bytes.
#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/mapped_file.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/pre_tokenizer.h"

namespace sparq {

namespace {

// U+2585: SentencePiece's marker for unknown text, used for unk here too.
constexpr std::string_view kUnknownMarker = "\xE2\x96\x85";

// Feeds the pre-tokenizer's words to the model.
class WordEncoder final : public bpe::WordSink {
public:
    WordEncoder(const bpe::BpeModel& model, std::vector<int32_t>& ids) : model_(model), ids_(ids) {}
    void word(std::string_view word) override { model_.encode_word(word, scratch_, ids_); }

private:
    const bpe::BpeModel& model_;
    std::vector<int32_t>& ids_;
    bpe::BpeModel::Scratch scratch_;
};

}  // namespace

struct BpeTokenizer::Impl {
    // Built in this order, so errors come in it: model, added tokens, pre-tokenizer.
    explicit Impl(const HfTokenizerJson& spec)
        : model(spec), added(spec.added_tokens), pre_tokenizer(spec.pre_tokenizer) {}

    bpe::BpeModel model;
    bpe::AddedTokenSplitter added;
    bpe::PreTokenizer pre_tokenizer;
};

BpeTokenizer::BpeTokenizer(HfTokenizerJson spec, const HfSpecialTokenConfig& config, std::string source_bytes)
    : source_bytes_(std::move(source_bytes)) {
    Vocabulary& v = vocabulary_;
    v.model = "gpt2";
    if (spec.vocab.empty()) fail("the vocabulary is empty");

    int64_t size = 0;
    for (const auto& [token, id] : spec.vocab) size = std::max<int64_t>(size, int64_t{id} + 1);
    for (const auto& token : spec.added_tokens) size = std::max<int64_t>(size, int64_t{token.id} + 1);
    if (size > std::numeric_limits<int32_t>::max()) fail("the vocabulary is too large");

    impl_ = std::make_unique<Impl>(spec);
    const bpe::BpeModel& model = impl_->model;

    // Ids no token has (rare holes) become unused pieces, as llama.cpp's
    // converter pads them.
    v.pieces.assign(static_cast<size_t>(size), std::string());
    v.kinds.assign(static_cast<size_t>(size), TokenKind::Unused);
    std::vector<bool> has_token(static_cast<size_t>(size), false);
    for (auto& [token, id] : spec.vocab) {
        v.pieces[id] = token;
        v.kinds[id] = TokenKind::Normal;
        has_token[id] = true;
    }
    for (const auto& token : spec.added_tokens) {
        v.pieces[token.id] = token.content;
        v.kinds[token.id] = token.special ? TokenKind::Control : TokenKind::UserDefined;
        has_token[token.id] = true;
    }
    for (size_t id = 0; id < has_token.size(); ++id) {
        if (!has_token[id]) v.pieces[id] = "[PAD" + std::to_string(id) + "]";
    }
    v.scores.assign(v.pieces.size(), 0.0f);
    v.unk_id = model.unk_id();
    if (v.unk_id >= 0 && v.kinds[v.unk_id] == TokenKind::Normal) v.kinds[v.unk_id] = TokenKind::Unknown;
    v.merges.reserve(spec.merges.size());
    for (const auto& [left, right] : spec.merges) v.merges.push_back(left + " " + right);
    v.add_space_prefix = impl_->pre_tokenizer.add_prefix_space();

    auto find_id = [&](const std::string& token) -> int32_t {
        for (const auto& added : spec.added_tokens) {
            if (added.content == token) return added.id;
        }
        return model.id_of(token);
    };

    // Special ids.
    const auto n = static_cast<int64_t>(v.size());
    auto from_text = [&](const std::optional<std::string>& token, const char* what) -> std::optional<int32_t> {
        if (!token) return std::nullopt;
        const int32_t id = find_id(*token);
        if (id < 0) fail("tokenizer_config.json's ", what, " '", *token, "' is not a token of this tokenizer");
        return id;
    };
    auto from_config = [&](std::optional<int32_t> id, const char* what) -> std::optional<int32_t> {
        if (id && *id >= n) {
            fail("config.json's ", what, " ", *id, " is outside the tokenizer's vocabulary of ", n, " tokens");
        }
        return id;
    };
    auto by_name = [&](std::initializer_list<const char*> names) -> int32_t {
        std::vector<int32_t> specials;
        for (const auto& added : spec.added_tokens) {
            if (added.special) specials.push_back(added.id);
        }
        if (specials.size() == 1) return specials[0];
        for (const char* name : names) {
            if (const int32_t id = find_id(name); id >= 0) return id;
        }
        return -1;
    };

    if (auto id = from_text(config.bos_token, "bos_token")) {
        v.bos_id = *id;
    } else if (auto cid = from_config(config.bos_id, "bos_token_id")) {
        v.bos_id = *cid;
    } else if (!spec.template_prefix.empty()) {
        v.bos_id = spec.template_prefix.front();
    } else {
        v.bos_id = by_name({"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>", "<|endoftext|>"});
    }
    if (auto id = from_text(config.eos_token, "eos_token")) {
        v.eos_id = *id;
    } else if (auto cid = from_config(config.eos_id, "eos_token_id")) {
        v.eos_id = *cid;
    } else if (!spec.template_suffix.empty()) {
        v.eos_id = spec.template_suffix.back();
    } else {
        v.eos_id = by_name({"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>", "<|im_end|>"});
    }
    if (auto id = from_text(config.pad_token, "pad_token")) {
        v.pad_id = *id;
    } else if (auto cid = from_config(config.pad_id, "pad_token_id")) {
        v.pad_id = *cid;
    } else {
        v.pad_id = -1;
    }
    v.add_bos = config.add_bos.value_or(!spec.template_prefix.empty());
    for (const auto& [name, id] : {std::pair{"bos", v.bos_id}, {"eos", v.eos_id}, {"pad", v.pad_id}}) {
        if (id < -1 || id >= n) fail(name, " id ", id, " is outside the vocabulary of ", n, " tokens");
    }
    if (v.add_bos && v.bos_id < 0) fail("the tokenizer adds BOS but has no BOS token");

    // What each token decodes to.
    token_bytes_.resize(v.size());
    for (size_t id = 0; id < v.size(); ++id) {
        const TokenKind kind = v.kinds[id];
        if (kind == TokenKind::Control || kind == TokenKind::Unused) continue;
        if (kind == TokenKind::Unknown) {
            token_bytes_[id] = std::string(kUnknownMarker);
            continue;
        }
        const std::string& piece = v.pieces[id];
        std::string bytes;
        bool all_byte_level = true;
        for (size_t i = 0; i < piece.size();) {
            const int byte = byte_level_byte(utf8::next_code_point(piece, i));
            if (byte < 0) {
                all_byte_level = false;
                break;
            }
            bytes += static_cast<char>(byte);
        }
        token_bytes_[id] = all_byte_level ? std::move(bytes) : piece;
    }
}

BpeTokenizer::~BpeTokenizer() = default;

std::vector<int32_t> BpeTokenizer::encode(std::string_view text, bool add_bos) const {
    return encode_impl(text, add_bos, false);
}

std::vector<int32_t> BpeTokenizer::encode_with_special(std::string_view text, bool add_bos) const {
    return encode_impl(text, add_bos, true);
}

std::vector<int32_t> BpeTokenizer::encode_impl(std::string_view text, bool add_bos, bool parse_special) const {
    const Impl& impl = *impl_;
    if (const size_t bad = find_invalid_utf8(text); bad != std::string_view::npos) {
        const size_t shown = std::min<size_t>(4, text.size() - bad);
        std::string bytes;
        for (size_t i = 0; i < shown; ++i) {
            char hex[4];
            std::snprintf(hex, sizeof(hex), "%s%02X", i ? " " : "", static_cast<unsigned>(static_cast<uint8_t>(text[bad + i])));
            bytes += hex;
        }
        fail("the text is not valid UTF-8: invalid byte sequence at byte offset ", bad, " (bytes ", bytes,
             "); a tokenizer.json tokenizer encodes UTF-8 text only");
    }

    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 2);
    if (add_bos && vocabulary_.bos_id >= 0) ids.push_back(vocabulary_.bos_id);
    if (text.empty()) return ids;

    // 1. Added tokens.
    std::vector<bpe::Segment> segments;
    impl.added.split(text, parse_special, segments);

    // 2-3. Pre-tokenizer and BPE on the text between them.
    bpe::PreTokenizer::Scratch scratch = impl.pre_tokenizer.make_scratch();
    WordEncoder encoder(impl.model, ids);
    for (const bpe::Segment& s : segments) {
        if (s.id >= 0) {
            ids.push_back(s.id);
        } else if (s.begin < s.end) {
            impl.pre_tokenizer.split(text.substr(s.begin, s.end - s.begin), scratch, encoder);
        }
    }
    return ids;
}

std::string BpeTokenizer::token_bytes(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= token_bytes_.size()) {
        fail("token id ", id, " is outside the vocabulary of ", token_bytes_.size(), " tokens");
    }
    return token_bytes_[static_cast<size_t>(id)];
}

std::shared_ptr<BpeTokenizer> make_hf_tokenizer(std::string bytes, const std::string& name,
                                                const HfSpecialTokenConfig& config) {
    HfTokenizerJson spec = parse_tokenizer_json(bytes, name);
    try {
        return std::make_shared<BpeTokenizer>(std::move(spec), config, std::move(bytes));
    } catch (const Error& e) {
        throw e.with_file(name);
    }
}

std::shared_ptr<BpeTokenizer> load_hf_tokenizer_json(const std::string& path) {
    std::string bytes = read_text_file(path);
    const std::string directory = std::filesystem::path(path).parent_path().string();
    const HfSpecialTokenConfig config = read_hf_special_token_config(directory);
    return make_hf_tokenizer(std::move(bytes), path, config);
}

}  // namespace sparq
