// The regexes of Hugging Face tokenizer.json pre-tokenizers, run with PCRE2.
// Hugging Face's tokenizers run them with Oniguruma; PCRE2 (UTF + UCP, JIT
// when available) has the same Perl leftmost-first semantics, lookahead and
// \p{..} classes. Where the two define a shorthand class differently we
// rewrite it to Oniguruma's meaning (see rewrite_for_pcre2).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sparq {

// Rewrites Oniguruma's Unicode shorthand classes into explicit properties so
// PCRE2 matches the same characters:
//   \s -> \p{White_Space}, \S -> \P{White_Space} (PCRE2's \s also matches
//         U+180E, Oniguruma's is exactly White_Space);
//   \w -> Alphabetic, marks, Nd, Pc and Join_Control (PCRE2's \w is only
//         letters, numbers and '_'); \W -> its complement outside classes
//         (inside a class \W is left as is: it has no class-item spelling).
// Escapes, \Q..\E and POSIX [:name:] items are copied unchanged.
std::string rewrite_for_pcre2(std::string_view pattern);

class Pcre2Regex {
public:
    // Compiles `pattern` (rewritten as above, or matched as plain text when
    // `literal`); throws sparq::Error with PCRE2's message and the offset.
    explicit Pcre2Regex(std::string_view pattern, bool literal = false);
    ~Pcre2Regex();
    Pcre2Regex(const Pcre2Regex&) = delete;
    Pcre2Regex& operator=(const Pcre2Regex&) = delete;

    // The matches in `text` as Hugging Face's tokenizers iterate them
    // (Oniguruma's find_iter): each search starts where the previous match
    // ended; an empty match at the end of the previous match is skipped by
    // moving one character on. `text` must be valid UTF-8 (not rechecked).
    // Replaces the contents of `matches` with [begin, end) byte offsets.
    // Safe to call from several threads at once.
    void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const;

    // Whether the pattern matches at exactly offset 0 of `text`.
    bool matches_at_start(std::string_view text) const;

    const std::string& pattern() const { return pattern_; }

private:
    void* code_ = nullptr;  // pcre2_code_8
    std::string pattern_;
};

}  // namespace sparq
