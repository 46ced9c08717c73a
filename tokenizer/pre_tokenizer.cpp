#include "tokenizer/pre_tokenizer.h"

#include <algorithm>

#include "core/error.h"

namespace sparq::bpe {

namespace {

// GPT-2's split regex, the one Hugging Face's ByteLevel pre-tokenizer uses.
constexpr std::string_view kByteLevelPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace

PreTokenizer::PreTokenizer(const std::vector<HfPreTokenizerStep>& steps) {
    for (const auto& s : steps) {
        Step step;
        step.byte_level = s.type == HfPreTokenizerStep::Type::ByteLevel;
        if (step.byte_level) {
            step.add_prefix_space = s.add_prefix_space;
            step.use_regex = s.use_regex;
            if (s.use_regex) step.regex = std::make_unique<Pcre2Regex>(kByteLevelPattern);
        } else {
            step.regex = std::make_unique<Pcre2Regex>(s.pattern, s.literal);
            step.behavior = s.behavior;
            step.invert = s.invert;
        }
        steps_.push_back(std::move(step));
    }
    if (steps_.empty() || !steps_.back().byte_level) fail("the pre-tokenizer does not end with ByteLevel");
}

PreTokenizer::~PreTokenizer() = default;

PreTokenizer::Scratch PreTokenizer::make_scratch() const {
    Scratch scratch;
    scratch.matches.resize(steps_.size());
    scratch.parts.resize(steps_.size());
    return scratch;
}

void PreTokenizer::split_from(size_t step_index, std::string_view piece, Scratch& scratch, WordSink& sink) const {
    const Step& step = steps_[step_index];
    auto& matches = scratch.matches[step_index];
    if (step.byte_level) {
        std::string_view text = piece;
        if (step.add_prefix_space && piece.front() != ' ') {
            // clear + push_back: GCC 12 gives assign(" ") a false -Wrestrict here.
            scratch.prefixed.clear();
            scratch.prefixed.push_back(' ');
            scratch.prefixed.append(piece);
            text = scratch.prefixed;
        }
        if (!step.use_regex) {
            sink.word(text);
            return;
        }
        step.regex->find_all(text, matches);
        // Isolated: matches and the text between them are all words.
        size_t previous = 0;
        for (const auto& [begin, end] : matches) {
            if (previous < begin) sink.word(text.substr(previous, begin - previous));
            if (begin < end) sink.word(text.substr(begin, end - begin));
            previous = end;
        }
        if (previous < text.size()) sink.word(text.substr(previous));
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
        if (!p.flag && p.begin < p.end) split_from(step_index + 1, piece.substr(p.begin, p.end - p.begin), scratch, sink);
    }
}

// tokenizers' NormalizedString::split: turns (range, is_match) parts into
// (range, remove) parts for the behavior.
void PreTokenizer::apply_behavior(SplitBehavior behavior, std::vector<Part>& parts) {
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

}  // namespace sparq::bpe
