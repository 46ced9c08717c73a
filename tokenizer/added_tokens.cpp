#include "tokenizer/added_tokens.h"

#include <algorithm>

#include "tokenizer/utf8_text.h"

namespace sparq::bpe {

namespace {

// Rust regex's Unicode \w, for added tokens' single_word rule.
constexpr std::string_view kWordCharPattern = R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}])";

}  // namespace

void AddedTokenSplitter::Matcher::finish() {
    for (uint32_t i = 0; i < entries_.size(); ++i) {
        by_first_byte_[static_cast<uint8_t>(entries_[i].content[0])].push_back(i);
    }
    for (auto& list : by_first_byte_) {
        std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
            return entries_[a].content.size() > entries_[b].content.size();
        });
    }
}

void AddedTokenSplitter::Matcher::find(std::string_view text, std::vector<Match>& out) const {
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

AddedTokenSplitter::AddedTokenSplitter(const std::vector<HfAddedToken>& tokens) {
    bool any_single_word = false;
    for (const auto& token : tokens) {
        Entry entry{token.content, token.id, token.special, token.single_word, token.lstrip, token.rstrip};
        any_single_word = any_single_word || token.single_word;
        (token.normalized ? normalized_ : raw_).add(std::move(entry));
    }
    raw_.finish();
    normalized_.finish();
    if (any_single_word) word_char_ = std::make_unique<Pcre2Regex>(kWordCharPattern);
}

AddedTokenSplitter::~AddedTokenSplitter() = default;

void AddedTokenSplitter::split(std::string_view text, bool parse_special, std::vector<Segment>& segments) const {
    // The remaining text between raw matches is what the identity
    // normalizer leaves as it is, so normalized tokens are matched in it.
    std::vector<Matcher::Match> found;
    std::vector<Segment> raw_segments;
    split_with(text, 0, raw_, parse_special, found, raw_segments);
    segments.reserve(segments.size() + raw_segments.size());
    for (const Segment& s : raw_segments) {
        if (s.id >= 0) {
            segments.push_back(s);
        } else {
            split_with(text.substr(s.begin, s.end - s.begin), s.begin, normalized_, parse_special, found, segments);
        }
    }
}

bool AddedTokenSplitter::is_word_char_before(std::string_view text, size_t end) const {
    if (end == 0) return false;
    return word_char_->matches_at_start(text.substr(utf8::previous_code_point_start(text, end)));
}

bool AddedTokenSplitter::is_word_char_at(std::string_view text, size_t begin) const {
    if (begin >= text.size()) return false;
    return word_char_->matches_at_start(text.substr(begin));
}

// tokenizers' AddedVocabulary::find_matches on `sentence`, which starts at
// `base` in the whole text.
void AddedTokenSplitter::split_with(std::string_view sentence, size_t base, const Matcher& matcher,
                                    bool parse_special, std::vector<Matcher::Match>& found,
                                    std::vector<Segment>& out) const {
    if (sentence.empty()) return;
    if (matcher.empty()) {
        out.push_back({base, base + sentence.size(), -1});
        return;
    }
    matcher.find(sentence, found);
    size_t start_offset = 0;
    for (const auto& m : found) {
        const Entry& token = matcher.entry(m.entry);
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
                const size_t prev = utf8::previous_code_point_start(sentence, new_start);
                size_t i = prev;
                if (!utf8::is_white_space(utf8::next_code_point(sentence, i))) break;
                new_start = prev;
            }
            start = std::max(new_start, start_offset);
        }
        if (token.rstrip) {
            while (stop < sentence.size()) {
                size_t i = stop;
                if (!utf8::is_white_space(utf8::next_code_point(sentence, i))) break;
                stop = i;
            }
        }
        if (start_offset < start) out.push_back({base + start_offset, base + start, -1});
        out.push_back({base + start, base + stop, token.id});
        start_offset = stop;
    }
    if (start_offset < sentence.size()) out.push_back({base + start_offset, base + sentence.size(), -1});
}

}  // namespace sparq::bpe
