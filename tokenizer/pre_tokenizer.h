// The pre-tokenizer of a tokenizer.json: its Split and Digits steps (regexes
// with tokenizers' split behaviors), then ByteLevel's optional prefix space
// and GPT-2 regex, cutting plain text into the words BPE merges within.
// PCRE2 stands in for Oniguruma (see pcre2_regex.h). Kept apart from the BPE
// model: this decides where words begin and end, the model what ids a word
// gets.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/pcre2_regex.h"
#include "tokenizer/tokenizer_json.h"

namespace sparq::bpe {

// Receives the words in text order.
class WordSink {
public:
    virtual void word(std::string_view word) = 0;

protected:
    ~WordSink() = default;
};

class PreTokenizer {
public:
    // Compiles each step's pattern. Throws sparq::Error on a pattern PCRE2
    // cannot compile, or steps that do not end with ByteLevel.
    explicit PreTokenizer(const std::vector<HfPreTokenizerStep>& steps);
    ~PreTokenizer();

    // Whether ByteLevel puts a space before a piece that lacks one.
    bool add_prefix_space() const { return steps_.back().add_prefix_space; }

    // A run of a piece: before the step's behavior, `flag` says it is a
    // match; after, that it is removed.
    struct Part {
        size_t begin;
        size_t end;
        bool flag;
    };
    // Buffers of one encode call, one set per step.
    struct Scratch {
        std::vector<std::vector<std::pair<size_t, size_t>>> matches;
        std::vector<std::vector<Part>> parts;
        std::string prefixed;
    };
    Scratch make_scratch() const;

    // Cuts `piece` (plain text between added tokens, not empty) into words.
    void split(std::string_view piece, Scratch& scratch, WordSink& sink) const { split_from(0, piece, scratch, sink); }

private:
    struct Step {
        bool byte_level = false;
        std::unique_ptr<Pcre2Regex> regex;
        SplitBehavior behavior = SplitBehavior::Isolated;
        bool invert = false;
        bool add_prefix_space = false;
        bool use_regex = true;
    };

    // Runs steps from `step_index` on `piece`.
    void split_from(size_t step_index, std::string_view piece, Scratch& scratch, WordSink& sink) const;
    static void apply_behavior(SplitBehavior behavior, std::vector<Part>& parts);

    std::vector<Step> steps_;
};

}  // namespace sparq::bpe
