#include "tokenizer/tokenizer_json.h"

#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {

namespace {

using nlohmann::json;

// Ids are int32 everywhere in sparq.
constexpr int64_t kMaxId = std::numeric_limits<int32_t>::max() - 1;

struct ByteLevelTables {
    std::array<std::string, 256> chars;
    std::unordered_map<uint32_t, uint8_t> bytes;

    static std::string utf8(uint32_t cp) {
        std::string out;
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
        return out;
    }

    // GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for
    // themselves, the other 68 map to U+0100.. in byte order.
    ByteLevelTables() {
        uint32_t next = 256;
        for (uint32_t b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? b : next++;
            chars[b] = utf8(cp);
            bytes[cp] = static_cast<uint8_t>(b);
        }
    }
};

const ByteLevelTables& byte_level_tables() {
    static const ByteLevelTables tables;
    return tables;
}

class Reader {
public:
    explicit Reader(std::string file) : file_(std::move(file)) {}

    template <typename... Args>
    [[noreturn]] void fail_at(const std::string& field, Args&&... args) const {
        fail_in({file_, "", field}, std::forward<Args>(args)...);
    }

    const json& member(const json& object, const char* key, const std::string& where) const {
        const auto it = object.find(key);
        if (it == object.end()) fail_at(where, "missing \"", key, "\"");
        return *it;
    }

    bool flag(const json& object, const char* key, const std::string& where, bool fallback) const {
        const auto it = object.find(key);
        if (it == object.end() || it->is_null()) return fallback;
        if (!it->is_boolean()) fail_at(where + "." + key, "expected true or false, got ", it->type_name());
        return it->get<bool>();
    }

    std::string text(const json& value, const std::string& where) const {
        if (!value.is_string()) fail_at(where, "expected a string, got ", value.type_name());
        return value.get<std::string>();
    }

    // A non-negative id that fits int32.
    int32_t id(const json& value, const std::string& where) const {
        if (value.is_number_unsigned()) {
            const auto v = value.get<uint64_t>();
            if (v > static_cast<uint64_t>(kMaxId)) fail_at(where, "token id ", v, " is out of range");
            return static_cast<int32_t>(v);
        }
        if (value.is_number_integer()) {
            const auto v = value.get<int64_t>();
            if (v < 0) fail_at(where, "token id ", v, " is negative");
            if (v > kMaxId) fail_at(where, "token id ", v, " is out of range");
            return static_cast<int32_t>(v);
        }
        fail_at(where, "expected a token id (a non-negative integer), got ", value.dump());
    }

private:
    std::string file_;
};

std::string type_of(const Reader& r, const json& object, const std::string& where) {
    if (!object.is_object()) r.fail_at(where, "expected an object, got ", object.type_name());
    const auto it = object.find("type");
    if (it == object.end() || !it->is_string()) r.fail_at(where, "has no \"type\"");
    return it->get<std::string>();
}

void read_model(const Reader& r, const json& model, HfTokenizerJson& out) {
    if (!model.is_object()) r.fail_at("model", "expected an object, got ", model.type_name());
    std::string type;
    if (const auto it = model.find("type"); it != model.end() && it->is_string()) {
        type = it->get<std::string>();
    } else if (model.contains("merges")) {
        type = "BPE";  // files from before "type" was written
    } else {
        r.fail_at("model.type", "missing: cannot tell the model type");
    }
    if (type != "BPE") {
        r.fail_at("model.type", "unsupported tokenizer model type '", type,
                  "': only BPE tokenizer.json files (byte-level BPE) are supported");
    }

    if (const auto it = model.find("dropout"); it != model.end() && !it->is_null()) {
        if (!it->is_number() || it->get<double>() != 0.0) {
            r.fail_at("model.dropout", "BPE dropout ", it->dump(), " is not supported (it makes encoding random)");
        }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
        if (const auto it = model.find(key); it != model.end() && !it->is_null()) {
            if (!it->is_string()) r.fail_at(std::string("model.") + key, "expected a string, got ", it->type_name());
            if (!it->get<std::string>().empty()) {
                r.fail_at(std::string("model.") + key, "a non-empty ", key, " ('", it->get<std::string>(),
                          "') is not supported: byte-level BPE has none");
            }
        }
    }
    if (const auto it = model.find("unk_token"); it != model.end() && !it->is_null()) {
        out.unk_token = r.text(*it, "model.unk_token");
    }
    out.byte_fallback = r.flag(model, "byte_fallback", "model", false);
    out.fuse_unk = r.flag(model, "fuse_unk", "model", false);
    out.ignore_merges = r.flag(model, "ignore_merges", "model", false);

    const json& vocab = r.member(model, "vocab", "model");
    if (!vocab.is_object()) r.fail_at("model.vocab", "expected an object of token -> id, got ", vocab.type_name());
    if (vocab.empty()) r.fail_at("model.vocab", "the vocabulary is empty");
    out.vocab.reserve(vocab.size());
    std::unordered_map<int32_t, const std::string*> by_id;
    by_id.reserve(vocab.size());
    int64_t max_id = -1;
    for (const auto& [token, value] : vocab.items()) {
        const int32_t id = r.id(value, "model.vocab[\"" + token + "\"]");
        out.vocab.emplace_back(token, id);
        max_id = std::max<int64_t>(max_id, id);
    }
    for (const auto& [token, id] : out.vocab) {
        const auto [it, inserted] = by_id.emplace(id, &token);
        if (!inserted) {
            r.fail_at("model.vocab", "id ", id, " is given to two tokens, '", *it->second, "' and '", token, "'");
        }
    }
    // Ids may leave a few holes (filled with unused pieces), not a
    // vocabulary mostly made of them.
    const auto count = static_cast<int64_t>(out.vocab.size());
    if (max_id + 1 > 2 * count + 1024) {
        r.fail_at("model.vocab", "id ", max_id, " is out of range for a vocabulary of ", count, " tokens");
    }

    const json& merges = r.member(model, "merges", "model");
    if (!merges.is_array()) r.fail_at("model.merges", "expected an array, got ", merges.type_name());
    std::unordered_set<std::string_view> known;
    known.reserve(out.vocab.size());
    for (const auto& entry : out.vocab) known.insert(entry.first);
    out.merges.reserve(merges.size());
    for (const auto& merge : merges) {
        const std::string where = "model.merges[" + std::to_string(out.merges.size()) + "]";
        std::string left, right;
        if (merge.is_string()) {
            const std::string line = merge.get<std::string>();
            if (line.starts_with("#version")) continue;  // a merges.txt header, skipped as tokenizers does
            const size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos) {
                r.fail_at(where, "'", line, "' is not two tokens separated by one space");
            }
            left = line.substr(0, space);
            right = line.substr(space + 1);
        } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
            left = merge[0].get<std::string>();
            right = merge[1].get<std::string>();
        } else {
            r.fail_at(where, "expected \"a b\" or [\"a\", \"b\"], got ", merge.dump());
        }
        for (const std::string* side : {&left, &right}) {
            if (!known.contains(*side)) r.fail_at(where, "merge of '", left, "' and '", right, "': '", *side,
                                                  "' is not in the vocabulary");
        }
        if (!known.contains(left + right)) {
            r.fail_at(where, "merge of '", left, "' and '", right, "': the result '", left + right,
                      "' is not in the vocabulary");
        }
        out.merges.emplace_back(std::move(left), std::move(right));
    }
}

// Hugging Face's tokenizers give an added token the id its content has in
// the model's vocabulary, else the next free id after the vocabulary; the
// file's "id" is only compared. We assign ids the same way and refuse a file
// whose ids disagree, rather than choose one of the two silently.
void read_added_tokens(const Reader& r, const json& root, HfTokenizerJson& out) {
    const auto it = root.find("added_tokens");
    if (it == root.end() || it->is_null()) return;
    if (!it->is_array()) r.fail_at("added_tokens", "expected an array, got ", it->type_name());
    std::unordered_map<std::string_view, int32_t> model_ids;
    model_ids.reserve(out.vocab.size());
    for (const auto& [token, id] : out.vocab) model_ids.emplace(token, id);
    int64_t next_id = static_cast<int64_t>(out.vocab.size());
    std::unordered_set<std::string> seen;
    size_t index = 0;
    for (const auto& entry : *it) {
        const std::string where = "added_tokens[" + std::to_string(index++) + "]";
        if (!entry.is_object()) r.fail_at(where, "expected an object, got ", entry.type_name());
        HfAddedToken token;
        token.id = r.id(r.member(entry, "id", where), where + ".id");
        token.content = r.text(r.member(entry, "content", where), where + ".content");
        token.special = r.flag(entry, "special", where, false);
        token.single_word = r.flag(entry, "single_word", where, false);
        token.lstrip = r.flag(entry, "lstrip", where, false);
        token.rstrip = r.flag(entry, "rstrip", where, false);
        token.normalized = r.flag(entry, "normalized", where, !token.special);
        if (token.content.empty()) continue;  // tokenizers ignores these
        if (!seen.insert(token.content).second) {
            r.fail_at(where, "added token '", token.content, "' appears twice");
        }
        int64_t expected = 0;
        if (const auto found = model_ids.find(token.content); found != model_ids.end()) {
            expected = found->second;
        } else {
            expected = next_id++;
        }
        if (expected != token.id) {
            r.fail_at(where + ".id", "added token '", token.content, "' has id ", token.id,
                      " in the file, but Hugging Face's tokenizers give it id ", expected,
                      " (its id in model.vocab, else the next id after the vocabulary)");
        }
        out.added_tokens.push_back(std::move(token));
    }
}

void read_normalizer(const Reader& r, const json& normalizer, const std::string& where) {
    if (normalizer.is_null()) return;
    const std::string type = type_of(r, normalizer, where);
    if (type == "Sequence") {
        const json& list = r.member(normalizer, "normalizers", where);
        if (!list.is_array()) r.fail_at(where + ".normalizers", "expected an array");
        for (size_t i = 0; i < list.size(); ++i) read_normalizer(r, list[i], where + ".normalizers[" + std::to_string(i) + "]");
        return;
    }
    r.fail_at(where, "unsupported normalizer '", type,
              "': sparq applies no normalizers, so encoding would differ from Hugging Face's");
}

SplitBehavior read_behavior(const Reader& r, const json& value, const std::string& where) {
    const std::string name = r.text(value, where);
    if (name == "Removed") return SplitBehavior::Removed;
    if (name == "Isolated") return SplitBehavior::Isolated;
    if (name == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
    if (name == "MergedWithNext") return SplitBehavior::MergedWithNext;
    if (name == "Contiguous") return SplitBehavior::Contiguous;
    r.fail_at(where, "unknown split behavior '", name, "'");
}

void read_pre_tokenizer(const Reader& r, const json& step, const std::string& where,
                        std::vector<HfPreTokenizerStep>& out) {
    const std::string type = type_of(r, step, where);
    if (type == "Sequence") {
        const json& list = r.member(step, "pretokenizers", where);
        if (!list.is_array()) r.fail_at(where + ".pretokenizers", "expected an array");
        for (size_t i = 0; i < list.size(); ++i) {
            read_pre_tokenizer(r, list[i], where + ".pretokenizers[" + std::to_string(i) + "]", out);
        }
        return;
    }
    HfPreTokenizerStep s;
    if (type == "ByteLevel") {
        s.type = HfPreTokenizerStep::Type::ByteLevel;
        s.add_prefix_space = r.flag(step, "add_prefix_space", where, true);
        s.use_regex = r.flag(step, "use_regex", where, true);
    } else if (type == "Digits") {
        s.pattern = r.flag(step, "individual_digits", where, false) ? "\\p{N}" : "\\p{N}+";
    } else if (type == "Split") {
        const json& pattern = r.member(step, "pattern", where);
        if (pattern.is_object() && pattern.contains("Regex")) {
            s.pattern = r.text(pattern["Regex"], where + ".pattern.Regex");
        } else if (pattern.is_object() && pattern.contains("String")) {
            s.pattern = r.text(pattern["String"], where + ".pattern.String");
            s.literal = true;
        } else {
            r.fail_at(where + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}, got ", pattern.dump());
        }
        s.behavior = read_behavior(r, r.member(step, "behavior", where), where + ".behavior");
        s.invert = r.flag(step, "invert", where, false);
    } else {
        r.fail_at(where, "unsupported pre-tokenizer '", type,
                  "': only Split, Digits and ByteLevel (byte-level BPE) are supported");
    }
    out.push_back(std::move(s));
}

void read_decoder(const Reader& r, const json& decoder, const std::string& where) {
    if (decoder.is_null()) return;
    const std::string type = type_of(r, decoder, where);
    if (type == "ByteLevel") return;
    if (type == "Sequence") {
        const json& list = r.member(decoder, "decoders", where);
        if (!list.is_array()) r.fail_at(where + ".decoders", "expected an array");
        for (size_t i = 0; i < list.size(); ++i) read_decoder(r, list[i], where + ".decoders[" + std::to_string(i) + "]");
        return;
    }
    r.fail_at(where, "unsupported decoder '", type, "': only the ByteLevel decoder is supported");
}

int32_t special_pair_id(const Reader& r, const json& pair, const std::string& where) {
    if (!pair.is_array() || pair.size() != 2) r.fail_at(where, "expected [token, id], got ", pair.dump());
    return r.id(pair[1], where + "[1]");
}

void read_post_processor(const Reader& r, const json& processor, const std::string& where, HfTokenizerJson& out) {
    if (processor.is_null()) return;
    const std::string type = type_of(r, processor, where);
    if (type == "ByteLevel") return;  // offsets only
    if (type == "Sequence") {
        const json& list = r.member(processor, "processors", where);
        if (!list.is_array()) r.fail_at(where + ".processors", "expected an array");
        for (size_t i = 0; i < list.size(); ++i) {
            read_post_processor(r, list[i], where + ".processors[" + std::to_string(i) + "]", out);
        }
        return;
    }
    if (type == "RobertaProcessing" || type == "BertProcessing") {
        out.template_prefix = {special_pair_id(r, r.member(processor, "cls", where), where + ".cls")};
        out.template_suffix = {special_pair_id(r, r.member(processor, "sep", where), where + ".sep")};
        return;
    }
    if (type != "TemplateProcessing") {
        r.fail_at(where, "unsupported post_processor '", type, "'");
    }
    const json& single = r.member(processor, "single", where);
    const json& specials = r.member(processor, "special_tokens", where);
    if (!single.is_array()) r.fail_at(where + ".single", "expected an array");
    if (!specials.is_object()) r.fail_at(where + ".special_tokens", "expected an object");
    out.template_prefix.clear();
    out.template_suffix.clear();
    bool seen_sequence = false;
    for (size_t i = 0; i < single.size(); ++i) {
        const std::string item_where = where + ".single[" + std::to_string(i) + "]";
        const json& item = single[i];
        if (item.is_object() && item.contains("Sequence")) {
            if (seen_sequence) r.fail_at(item_where, "a single-sequence template with two sequences");
            seen_sequence = true;
            continue;
        }
        if (!item.is_object() || !item.contains("SpecialToken")) {
            r.fail_at(item_where, "expected {\"Sequence\": ...} or {\"SpecialToken\": ...}, got ", item.dump());
        }
        const std::string name = r.text(r.member(item["SpecialToken"], "id", item_where), item_where + ".id");
        const auto found = specials.find(name);
        if (found == specials.end()) r.fail_at(item_where, "special token '", name, "' is not in special_tokens");
        const json& ids = r.member(*found, "ids", where + ".special_tokens." + name);
        if (!ids.is_array()) r.fail_at(where + ".special_tokens." + name + ".ids", "expected an array");
        for (const auto& id : ids) {
            (seen_sequence ? out.template_suffix : out.template_prefix)
                .push_back(r.id(id, where + ".special_tokens." + name + ".ids"));
        }
    }
    if (!seen_sequence) r.fail_at(where + ".single", "the template has no sequence");
}

}  // namespace

const std::string& byte_level_char(uint8_t byte) { return byte_level_tables().chars[byte]; }

int byte_level_byte(uint32_t code_point) {
    const auto& bytes = byte_level_tables().bytes;
    const auto it = bytes.find(code_point);
    return it == bytes.end() ? -1 : it->second;
}

HfTokenizerJson parse_tokenizer_json(std::string_view text, const std::string& file) {
    const Reader r(file);
    json root;
    try {
        root = json::parse(text.begin(), text.end());
    } catch (const json::parse_error& e) {
        fail_in({file, "", ""}, "not a valid tokenizer.json: ", e.what());
    }
    if (!root.is_object()) fail_in({file, "", ""}, "not a tokenizer.json: the top level is not a JSON object");

    HfTokenizerJson out;
    read_model(r, r.member(root, "model", ""), out);
    read_added_tokens(r, root, out);
    if (const auto it = root.find("normalizer"); it != root.end()) read_normalizer(r, *it, "normalizer");

    const auto pre = root.find("pre_tokenizer");
    if (pre == root.end() || pre->is_null()) {
        fail_in({file, "", "pre_tokenizer"}, "no pre-tokenizer: only byte-level BPE (a ByteLevel pre-tokenizer) is "
                                            "supported");
    }
    read_pre_tokenizer(r, *pre, "pre_tokenizer", out.pre_tokenizer);
    for (size_t i = 0; i < out.pre_tokenizer.size(); ++i) {
        const bool byte_level = out.pre_tokenizer[i].type == HfPreTokenizerStep::Type::ByteLevel;
        if (byte_level && i + 1 != out.pre_tokenizer.size()) {
            fail_in({file, "", "pre_tokenizer"}, "ByteLevel must be the last pre-tokenizer step");
        }
        if (!byte_level && i + 1 == out.pre_tokenizer.size()) {
            fail_in({file, "", "pre_tokenizer"},
                    "no ByteLevel pre-tokenizer: only byte-level BPE tokenizer.json files are supported");
        }
    }

    if (const auto it = root.find("post_processor"); it != root.end()) {
        read_post_processor(r, *it, "post_processor", out);
    }
    if (const auto it = root.find("decoder"); it != root.end()) read_decoder(r, *it, "decoder");
    return out;
}

HfSpecialTokenConfig read_hf_special_token_config(const std::string& directory) {
    HfSpecialTokenConfig config;
    const std::string base = directory.empty() ? std::string(".") : directory;
    auto read = [](const std::string& path) -> std::optional<json> {
        if (!file_exists(path)) return std::nullopt;
        try {
            json j = json::parse(read_text_file(path));
            if (!j.is_object()) fail_in({path, "", ""}, "expected a JSON object");
            return j;
        } catch (const json::parse_error& e) {
            fail_in({path, "", ""}, "not valid JSON: ", e.what());
        }
    };
    // A token given as text, or as an AddedToken object {"content": ...}.
    auto token_text = [](const json& j, const char* key) -> std::optional<std::string> {
        const auto it = j.find(key);
        if (it == j.end()) return std::nullopt;
        if (it->is_string()) return it->get<std::string>();
        if (it->is_object()) {
            const auto content = it->find("content");
            if (content != it->end() && content->is_string()) return content->get<std::string>();
        }
        return std::nullopt;
    };
    auto token_id = [](const json& j, const char* key) -> std::optional<int32_t> {
        const auto it = j.find(key);
        if (it == j.end()) return std::nullopt;
        const json* value = &*it;
        if (value->is_array()) {
            if (value->empty()) return std::nullopt;
            value = &(*value)[0];
        }
        if (!value->is_number_integer()) return std::nullopt;
        const auto id = value->get<int64_t>();
        if (id < 0 || id > kMaxId) return std::nullopt;
        return static_cast<int32_t>(id);
    };

    if (const auto tc = read(base + "/tokenizer_config.json")) {
        config.bos_token = token_text(*tc, "bos_token");
        config.eos_token = token_text(*tc, "eos_token");
        config.pad_token = token_text(*tc, "pad_token");
        if (const auto it = tc->find("add_bos_token"); it != tc->end() && it->is_boolean()) {
            config.add_bos = it->get<bool>();
        }
    }
    if (const auto mc = read(base + "/config.json")) {
        config.bos_id = token_id(*mc, "bos_token_id");
        config.eos_id = token_id(*mc, "eos_token_id");
        config.pad_id = token_id(*mc, "pad_token_id");
    }
    return config;
}

}  // namespace sparq
