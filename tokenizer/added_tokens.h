// Added tokens of a tokenizer.json, split out of the text before it is
// pre-tokenized, as tokenizers' AddedVocabulary does: leftmost-longest
// matching with each token's single_word/lstrip/rstrip rules, first the
// tokens matched on the raw text, then those matched on normalized text.
// A step of its own because it decides, before any BPE, which runs of the
// text are tokens already and which are plain text for the model.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/pcre2_regex.h"
#include "tokenizer/tokenizer_json.h"

namespace sparq::bpe {

// A run of the text: plain text (id -1) or an added token's id.
struct Segment {
    size_t begin;
    size_t end;
    int32_t id;
};

class AddedTokenSplitter {
public:
    explicit AddedTokenSplitter(const std::vector<HfAddedToken>& tokens);
    ~AddedTokenSplitter();

    // Appends `text` cut into segments. Special tokens are matched only
    // with `parse_special`; without it their text stays plain text.
    void split(std::string_view text, bool parse_special, std::vector<Segment>& segments) const;

private:
    struct Entry {
        std::string content;
        int32_t id;
        bool special;
        bool single_word;
        bool lstrip;
        bool rstrip;
    };

    // Leftmost-longest, non-overlapping matching of added tokens (as the
    // daachorse automaton in tokenizers' AddedVocabulary does).
    class Matcher {
    public:
        struct Match {
            size_t begin;
            size_t end;
            uint32_t entry;
        };
        void add(Entry entry) { entries_.push_back(std::move(entry)); }
        void finish();
        bool empty() const { return entries_.empty(); }
        const Entry& entry(uint32_t i) const { return entries_[i]; }
        void find(std::string_view text, std::vector<Match>& out) const;

    private:
        std::vector<Entry> entries_;
        std::array<std::vector<uint32_t>, 256> by_first_byte_;
    };

    void split_with(std::string_view sentence, size_t base, const Matcher& matcher, bool parse_special,
                    std::vector<Matcher::Match>& found, std::vector<Segment>& out) const;
    bool is_word_char_before(std::string_view text, size_t end) const;
    bool is_word_char_at(std::string_view text, size_t begin) const;

    Matcher raw_;         // normalized = false: matched on the text as given
    Matcher normalized_;  // normalized = true: matched after the (identity) normalizer
    std::unique_ptr<Pcre2Regex> word_char_;  // for single_word tokens
};

}  // namespace sparq::bpe
