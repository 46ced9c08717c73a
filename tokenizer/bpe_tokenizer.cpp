#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <unordered_set>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {

namespace {

// GPT-2's split regex, the one Hugging Face's ByteLevel pre-tokenizer uses.
constexpr std::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Rust regex's Unicode \w, for added tokens' single_word rule.
constexpr std::string_view kWordCharPattern = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";
// U+2585: SentencePiece's marker for unknown text, used for unk here too.
constexpr std::string_view kUnknownMarker = "\xE2\x96\x85";

// Decodes the code point at `i` of valid UTF-8 and moves `i` past it.
uint32_t next_code_point(std::string_view s, size_t& i) {
    const auto b0 = static_cast<uint8_t>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    const int extra = b0 >= 0xF0 ? 3 : b0 >= 0xE0 ? 2 : 1;
    uint32_t cp = b0 & (0x3F >> extra);
    for (int k = 1; k <= extra && i + k < s.size(); ++k) cp = (cp << 6) | (static_cast<uint8_t>(s[i + k]) & 0x3F);
    i += static_cast<size_t>(extra) + 1;
    return cp;
}

// Start of the code point that ends at `end` (valid UTF-8, end > 0).
size_t previous_code_point_start(std::string_view s, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (static_cast<uint8_t>(s[i]) & 0xC0) == 0x80) --i;
    return i;
}

// Unicode White_Space (Rust's char::is_whitespace and regex \s).
bool is_white_space(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

// Merges as (left id, right id) -> (rank, merged id), in an open-addressing
// table: the lookup is the encoder's inner loop.
class MergeTable {
public:
    struct Entry {
        uint64_t key = kEmpty;
        int32_t rank = 0;
        int32_t merged = 0;
    };

    void reserve(size_t count) {
        size_t capacity = 16;
        while (capacity < count * 2) capacity *= 2;
        slots_.assign(capacity, Entry{});
        mask_ = capacity - 1;
    }

    // A later merge of the same pair replaces the earlier one, as in
    // tokenizers' HashMap collect.
    void insert_or_assign(int32_t left, int32_t right, int32_t rank, int32_t merged) {
        const uint64_t key = make_key(left, right);
        for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == kEmpty || slots_[i].key == key) {
                slots_[i] = {key, rank, merged};
                return;
            }
        }
    }

    const Entry* find(int32_t left, int32_t right) const {
        const uint64_t key = make_key(left, right);
        for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
            if (slots_[i].key == key) return &slots_[i];
            if (slots_[i].key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t{0};
    static uint64_t make_key(int32_t left, int32_t right) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
    }
    size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_; }

    std::vector<Entry> slots_;
    size_t mask_ = 0;
};

struct AddedEntry {
    std::string content;
    int32_t id;
    bool special;
    bool single_word;
    bool lstrip;
    bool rstrip;
};

// Leftmost-longest, non-overlapping matching of added tokens (as the
// daachorse automaton in tokenizers' AddedVocabulary does).
class AddedMatcher {
public:
    struct Match {
        size_t begin;
        size_t end;
        uint32_t entry;
    };

    void add(AddedEntry entry) { entries_.push_back(std::move(entry)); }

    void finish() {
        for (uint32_t i = 0; i < entries_.size(); ++i) {
            by_first_byte_[static_cast<uint8_t>(entries_[i].content[0])].push_back(i);
        }
        for (auto& list : by_first_byte_) {
            std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
                return entries_[a].content.size() > entries_[b].content.size();
            });
        }
    }

    bool empty() const { return entries_.empty(); }
    const AddedEntry& entry(uint32_t i) const { return entries_[i]; }

    void find(std::string_view text, std::vector<Match>& out) const {
        out.clear();
        size_t i = 0;
        while (i < text.size()) {
            const auto& candidates = by_first_byte_[static_cast<uint8_t>(text[i])];
            bool matched = false;
            for (const uint32_t c : candidates) {
                const std::string& content = entries_[c].content;
                if (text.size() - i >= content.size() && text.compare(i, content.size(), content) == 0) {
                    out.push_back({i, i + content.size(), c});
                    i += content.size();
                    matched = true;
                    break;
                }
            }
            if (!matched) ++i;
        }
    }

private:
    std::vector<AddedEntry> entries_;
    std::array<std::vector<uint32_t>, 256> by_first_byte_;
};

struct PreTokenizerStep {
    bool byte_level = false;
    std::unique_ptr<Pcre2Regex> regex;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;
    bool use_regex = true;
};

// A run of the text: plain text (id -1) or an added token's id.
struct Segment {
    size_t begin;
    size_t end;
    int32_t id;
};

struct Part {
    size_t begin;
    size_t end;
    bool flag;  // is a match (before behavior), or is removed (after)
};

struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
    bool removed;
};

struct MergeCandidate {
    int32_t rank;
    int32_t pos;
    int32_t merged;
};

// The queue's top is the lowest rank, then the leftmost position.
struct LaterMerge {
    bool operator()(const MergeCandidate& a, const MergeCandidate& b) const {
        return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
    }
};

}  // namespace

struct BpeTokenizer::Impl {
    std::unordered_map<std::string, int32_t> model_ids;  // model.vocab only (what BPE looks up)
    MergeTable merges;
    std::array<int32_t, 256> byte_ids{};                  // id of each byte's byte-level character, or -1
    std::array<std::vector<int32_t>, 256> fallback_ids;   // byte_fallback "<0xXX>" ids of that character's bytes
    int32_t unk_id = -1;
    bool fuse_unk = false;
    bool ignore_merges = false;

    AddedMatcher raw_added;         // normalized = false: matched on the text as given
    AddedMatcher normalized_added;  // normalized = true: matched after the (identity) normalizer
    std::unique_ptr<Pcre2Regex> word_char;  // for single_word tokens
    std::vector<PreTokenizerStep> steps;

    struct WordHash {
        using is_transparent = void;
        size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
    };
    struct CachedWord {
        uint32_t offset;
        uint32_t count;
    };
    // Words up to this long are cached, up to this many per encode call.
    static constexpr size_t kMaxCachedWordBytes = 64;
    static constexpr size_t kMaxCachedWords = 1 << 17;

    // Scratch buffers of one encode call, one set per pre-tokenizer step,
    // and the ids of the words seen so far in the call (natural text repeats
    // its words: the cache roughly halves the time on a long text).
    struct Scratch {
        std::vector<std::vector<std::pair<size_t, size_t>>> matches;
        std::vector<std::vector<Part>> parts;
        std::vector<Symbol> symbols;
        std::vector<MergeCandidate> queue;
        std::string mapped;
        std::string prefixed;
        std::unordered_map<std::string, CachedWord, WordHash, std::equal_to<>> cache;
        std::vector<int32_t> cached_ids;
    };

    void encode_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const {
        if (word.size() > kMaxCachedWordBytes) {
            merge_word(word, scratch, ids);
            return;
        }
        if (const auto it = scratch.cache.find(word); it != scratch.cache.end()) {
            const auto first = scratch.cached_ids.begin() + it->second.offset;
            ids.insert(ids.end(), first, first + it->second.count);
            return;
        }
        const size_t before = ids.size();
        merge_word(word, scratch, ids);
        if (scratch.cache.size() < kMaxCachedWords) {
            const auto offset = static_cast<uint32_t>(scratch.cached_ids.size());
            scratch.cached_ids.insert(scratch.cached_ids.end(), ids.begin() + static_cast<ptrdiff_t>(before), ids.end());
            scratch.cache.emplace(std::string(word), CachedWord{offset, static_cast<uint32_t>(ids.size() - before)});
        }
    }

    bool is_word_char_before(std::string_view text, size_t end) const {
        if (end == 0) return false;
        return word_char->matches_at_start(text.substr(previous_code_point_start(text, end)));
    }
    bool is_word_char_at(std::string_view text, size_t begin) const {
        if (begin >= text.size()) return false;
        return word_char->matches_at_start(text.substr(begin));
    }

    // tokenizers' AddedVocabulary::find_matches on `sentence`, which starts
    // at `base` in the whole text.
    void split_added(std::string_view sentence, size_t base, const AddedMatcher& matcher, bool parse_special,
                     std::vector<AddedMatcher::Match>& found, std::vector<Segment>& out) const {
        if (sentence.empty()) return;
        if (matcher.empty()) {
            out.push_back({base, base + sentence.size(), -1});
            return;
        }
        matcher.find(sentence, found);
        size_t start_offset = 0;
        for (const auto& m : found) {
            const AddedEntry& token = matcher.entry(m.entry);
            size_t start = m.begin;
            size_t stop = m.end;
            if (token.special && !parse_special) continue;
            if (token.single_word) {
                const bool start_space = start == 0 || !is_word_char_before(sentence, start);
                const bool stop_space = stop == sentence.size() || !is_word_char_at(sentence, stop);
                if (!start_space || !stop_space) continue;
            }
            if (token.lstrip) {
                size_t new_start = start;
                while (new_start > 0) {
                    const size_t prev = previous_code_point_start(sentence, new_start);
                    size_t i = prev;
                    if (!is_white_space(next_code_point(sentence, i))) break;
                    new_start = prev;
                }
                start = std::max(new_start, start_offset);
            }
            if (token.rstrip) {
                while (stop < sentence.size()) {
                    size_t i = stop;
                    if (!is_white_space(next_code_point(sentence, i))) break;
                    stop = i;
                }
            }
            if (start_offset < start) out.push_back({base + start_offset, base + start, -1});
            out.push_back({base + start, base + stop, token.id});
            start_offset = stop;
        }
        if (start_offset < sentence.size()) out.push_back({base + start_offset, base + sentence.size(), -1});
    }

    // One word (raw bytes) through the BPE model.
    void merge_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& ids) const {
        if (ignore_merges) {
            std::string& mapped = scratch.mapped;
            mapped.clear();
            for (char c : word) mapped += byte_level_char(static_cast<uint8_t>(c));
            if (const auto it = model_ids.find(mapped); it != model_ids.end()) {
                ids.push_back(it->second);
                return;
            }
        }

        // The word's byte-level characters as symbols (tokenizers' merge_word).
        std::vector<Symbol>& symbols = scratch.symbols;
        symbols.clear();
        auto add_symbol = [&](int32_t id) {
            const auto index = static_cast<int32_t>(symbols.size());
            if (index > 0) symbols.back().next = index;
            symbols.push_back({id, index - 1, -1, false});
        };
        bool pending_unk = false;
        for (char c : word) {
            const auto byte = static_cast<uint8_t>(c);
            if (byte_ids[byte] >= 0) {
                if (pending_unk) add_symbol(unk_id), pending_unk = false;
                add_symbol(byte_ids[byte]);
                continue;
            }
            if (!fallback_ids[byte].empty()) {
                // tokenizers adds byte-fallback tokens without flushing a pending unk.
                for (const int32_t id : fallback_ids[byte]) add_symbol(id);
                continue;
            }
            if (unk_id >= 0) {
                if (pending_unk && !fuse_unk) add_symbol(unk_id);
                pending_unk = true;
            }
            // No unk token: tokenizers drops the character.
        }
        if (pending_unk) add_symbol(unk_id);
        if (symbols.empty()) return;

        if (symbols.size() > 1) {
            // A binary heap in the reused scratch buffer; its top is the
            // lowest rank, then the leftmost position.
            std::vector<MergeCandidate>& queue = scratch.queue;
            queue.clear();
            const LaterMerge later;
            auto push = [&](const MergeCandidate& c) {
                queue.push_back(c);
                std::push_heap(queue.begin(), queue.end(), later);
            };
            for (size_t i = 0; i + 1 < symbols.size(); ++i) {
                if (const auto* m = merges.find(symbols[i].id, symbols[i + 1].id)) {
                    queue.push_back({m->rank, static_cast<int32_t>(i), m->merged});
                }
            }
            std::make_heap(queue.begin(), queue.end(), later);
            while (!queue.empty()) {
                std::pop_heap(queue.begin(), queue.end(), later);
                const MergeCandidate top = queue.back();
                queue.pop_back();
                Symbol& current = symbols[top.pos];
                if (current.removed || current.next < 0) continue;
                const int32_t next_pos = current.next;
                const Symbol right = symbols[next_pos];
                // A stale entry: the pair at this position changed since.
                const auto* now = merges.find(current.id, right.id);
                if (!now || now->merged != top.merged) continue;

                current.id = top.merged;
                current.next = right.next;
                symbols[next_pos].removed = true;
                if (right.next >= 0) symbols[right.next].prev = top.pos;

                if (current.prev >= 0) {
                    if (const auto* m = merges.find(symbols[current.prev].id, current.id)) {
                        push({m->rank, current.prev, m->merged});
                    }
                }
                if (current.next >= 0) {
                    if (const auto* m = merges.find(current.id, symbols[current.next].id)) {
                        push({m->rank, top.pos, m->merged});
                    }
                }
            }
        }
        for (const Symbol& s : symbols) {
            if (!s.removed) ids.push_back(s.id);
        }
    }

    // Runs pre-tokenizer steps from `step` on `piece`, then BPE on each word.
    void pre_tokenize(size_t step_index, std::string_view piece, Scratch& scratch, std::vector<int32_t>& ids) const {
        const PreTokenizerStep& step = steps[step_index];
        auto& matches = scratch.matches[step_index];
        if (step.byte_level) {
            std::string_view text = piece;
            if (step.add_prefix_space && piece.front() != ' ') {
                scratch.prefixed.assign(" ");
                scratch.prefixed.append(piece);
                text = scratch.prefixed;
            }
            if (!step.use_regex) {
                encode_word(text, scratch, ids);
                return;
            }
            step.regex->find_all(text, matches);
            // Isolated: matches and the text between them are all words.
            size_t previous = 0;
            for (const auto& [begin, end] : matches) {
                if (previous < begin) encode_word(text.substr(previous, begin - previous), scratch, ids);
                if (begin < end) encode_word(text.substr(begin, end - begin), scratch, ids);
                previous = end;
            }
            if (previous < text.size()) encode_word(text.substr(previous), scratch, ids);
            return;
        }

        step.regex->find_all(piece, matches);
        std::vector<Part>& parts = scratch.parts[step_index];
        parts.clear();
        size_t previous = 0;
        for (const auto& [begin, end] : matches) {
            if (previous != begin) parts.push_back({previous, begin, false});
            parts.push_back({begin, end, true});
            previous = end;
        }
        if (previous != piece.size()) parts.push_back({previous, piece.size(), false});
        if (step.invert) {
            for (Part& p : parts) p.flag = !p.flag;
        }
        apply_behavior(step.behavior, parts);
        for (const Part& p : parts) {
            if (!p.flag && p.begin < p.end) pre_tokenize(step_index + 1, piece.substr(p.begin, p.end - p.begin), scratch, ids);
        }
    }

    // tokenizers' NormalizedString::split: turns (range, is_match) parts
    // into (range, remove) parts for the behavior.
    static void apply_behavior(SplitBehavior behavior, std::vector<Part>& parts) {
        switch (behavior) {
            case SplitBehavior::Isolated:
                for (Part& p : parts) p.flag = false;
                return;
            case SplitBehavior::Removed: return;
            case SplitBehavior::Contiguous:
            case SplitBehavior::MergedWithPrevious: {
                std::vector<Part> out;
                out.reserve(parts.size());
                bool previous_match = false;
                for (const Part& p : parts) {
                    const bool extend = behavior == SplitBehavior::Contiguous ? p.flag == previous_match
                                                                              : (p.flag && !previous_match);
                    if (extend && !out.empty()) {
                        out.back().end = p.end;
                    } else {
                        out.push_back({p.begin, p.end, false});
                    }
                    previous_match = p.flag;
                }
                parts = std::move(out);
                return;
            }
            case SplitBehavior::MergedWithNext: {
                std::vector<Part> out;
                out.reserve(parts.size());
                bool previous_match = false;
                for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
                    if (it->flag && !previous_match && !out.empty()) {
                        out.back().begin = it->begin;
                    } else {
                        out.push_back({it->begin, it->end, false});
                    }
                    previous_match = it->flag;
                }
                std::reverse(out.begin(), out.end());
                parts = std::move(out);
                return;
            }
        }
    }
};

size_t find_invalid_utf8(std::string_view text) {
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const uint8_t b = s[i];
        if (b < 0x80) {
            ++i;
            continue;
        }
        size_t length = 0;
        uint8_t low = 0x80, high = 0xBF;  // allowed range of the second byte
        if (b >= 0xC2 && b <= 0xDF) {
            length = 2;
        } else if (b >= 0xE0 && b <= 0xEF) {
            length = 3;
            if (b == 0xE0) low = 0xA0;   // no overlong forms
            if (b == 0xED) high = 0x9F;  // no surrogates
        } else if (b >= 0xF0 && b <= 0xF4) {
            length = 4;
            if (b == 0xF0) low = 0x90;   // no overlong forms
            if (b == 0xF4) high = 0x8F;  // nothing past U+10FFFF
        } else {
            return i;
        }
        if (i + length > n) return i;
        if (s[i + 1] < low || s[i + 1] > high) return i;
        for (size_t k = 2; k < length; ++k) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
        }
        i += length;
    }
    return std::string_view::npos;
}

BpeTokenizer::BpeTokenizer(HfTokenizerJson spec, const HfSpecialTokenConfig& config, std::string source_bytes)
    : source_bytes_(std::move(source_bytes)), impl_(std::make_unique<Impl>()) {
    Impl& impl = *impl_;
    Vocabulary& v = vocabulary_;
    v.model = "gpt2";
    if (spec.vocab.empty()) fail("the vocabulary is empty");

    int64_t size = 0;
    for (const auto& [token, id] : spec.vocab) size = std::max<int64_t>(size, int64_t{id} + 1);
    for (const auto& token : spec.added_tokens) size = std::max<int64_t>(size, int64_t{token.id} + 1);
    if (size > std::numeric_limits<int32_t>::max()) fail("the vocabulary is too large");

    // Ids no token has (rare holes) become unused pieces, as llama.cpp's
    // converter pads them.
    v.pieces.assign(static_cast<size_t>(size), std::string());
    v.kinds.assign(static_cast<size_t>(size), TokenKind::Unused);
    std::vector<bool> has_token(static_cast<size_t>(size), false);
    impl.model_ids.reserve(spec.vocab.size() * 2);
    for (auto& [token, id] : spec.vocab) {
        impl.model_ids.emplace(token, id);
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

    auto find_id = [&](const std::string& token) -> int32_t {
        for (const auto& added : spec.added_tokens) {
            if (added.content == token) return added.id;
        }
        const auto it = impl.model_ids.find(token);
        return it == impl.model_ids.end() ? -1 : it->second;
    };

    // The model.
    impl.fuse_unk = spec.fuse_unk;
    impl.ignore_merges = spec.ignore_merges;
    if (spec.unk_token) {
        const auto it = impl.model_ids.find(*spec.unk_token);
        if (it == impl.model_ids.end()) fail("model.unk_token '", *spec.unk_token, "' is not in the vocabulary");
        impl.unk_id = it->second;
        if (v.kinds[impl.unk_id] == TokenKind::Normal) v.kinds[impl.unk_id] = TokenKind::Unknown;
    }
    v.unk_id = impl.unk_id;

    impl.merges.reserve(spec.merges.size());
    v.merges.reserve(spec.merges.size());
    for (size_t rank = 0; rank < spec.merges.size(); ++rank) {
        const auto& [left, right] = spec.merges[rank];
        const auto a = impl.model_ids.find(left);
        const auto b = impl.model_ids.find(right);
        const auto merged = impl.model_ids.find(left + right);
        if (a == impl.model_ids.end() || b == impl.model_ids.end() || merged == impl.model_ids.end()) {
            fail("merge ", rank, " ('", left, " ", right, "') uses a token not in the vocabulary");
        }
        impl.merges.insert_or_assign(a->second, b->second, static_cast<int32_t>(rank), merged->second);
        v.merges.push_back(left + " " + right);
    }

    for (int byte = 0; byte < 256; ++byte) {
        const std::string& ch = byte_level_char(static_cast<uint8_t>(byte));
        const auto it = impl.model_ids.find(ch);
        impl.byte_ids[byte] = it == impl.model_ids.end() ? -1 : it->second;
        if (impl.byte_ids[byte] < 0 && spec.byte_fallback) {
            // tokenizers looks up "<0xXX>" for each UTF-8 byte of the character.
            std::vector<int32_t> ids;
            for (const char c : ch) {
                char name[8];
                std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<unsigned>(static_cast<uint8_t>(c)));
                const auto found = impl.model_ids.find(name);
                if (found == impl.model_ids.end()) {
                    ids.clear();
                    break;
                }
                ids.push_back(found->second);
            }
            impl.fallback_ids[byte] = std::move(ids);
        }
    }

    // Added tokens.
    bool any_single_word = false;
    for (const auto& token : spec.added_tokens) {
        AddedEntry entry{token.content, token.id, token.special, token.single_word, token.lstrip, token.rstrip};
        any_single_word = any_single_word || token.single_word;
        (token.normalized ? impl.normalized_added : impl.raw_added).add(std::move(entry));
    }
    impl.raw_added.finish();
    impl.normalized_added.finish();
    if (any_single_word) impl.word_char = std::make_unique<Pcre2Regex>(kWordCharPattern);

    // Pre-tokenizer.
    for (const auto& s : spec.pre_tokenizer) {
        PreTokenizerStep step;
        step.byte_level = s.type == HfPreTokenizerStep::Type::ByteLevel;
        if (step.byte_level) {
            step.add_prefix_space = s.add_prefix_space;
            step.use_regex = s.use_regex;
            if (s.use_regex) step.regex = std::make_unique<Pcre2Regex>(kByteLevelPattern);
            v.add_space_prefix = s.add_prefix_space;
        } else {
            step.regex = std::make_unique<Pcre2Regex>(s.pattern, s.literal);
            step.behavior = s.behavior;
            step.invert = s.invert;
        }
        impl.steps.push_back(std::move(step));
    }
    if (impl.steps.empty() || !impl.steps.back().byte_level) fail("the pre-tokenizer does not end with ByteLevel");

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
            const int byte = byte_level_byte(next_code_point(piece, i));
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

    // 1. Added tokens: first those matched on the raw text, then (in the
    // remaining text, which the identity normalizer leaves as it is) those
    // matched on normalized text.
    std::vector<AddedMatcher::Match> found;
    std::vector<Segment> raw_segments;
    impl.split_added(text, 0, impl.raw_added, parse_special, found, raw_segments);
    std::vector<Segment> segments;
    segments.reserve(raw_segments.size());
    for (const Segment& s : raw_segments) {
        if (s.id >= 0) {
            segments.push_back(s);
        } else {
            impl.split_added(text.substr(s.begin, s.end - s.begin), s.begin, impl.normalized_added, parse_special,
                             found, segments);
        }
    }

    // 2-3. Pre-tokenizer and BPE on the text between them.
    Impl::Scratch scratch;
    scratch.matches.resize(impl.steps.size());
    scratch.parts.resize(impl.steps.size());
    for (const Segment& s : segments) {
        if (s.id >= 0) {
            ids.push_back(s.id);
        } else if (s.begin < s.end) {
            impl.pre_tokenize(0, text.substr(s.begin, s.end - s.begin), scratch, ids);
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
