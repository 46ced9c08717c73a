#include "tokenizer/pcre2_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>

#include "core/error.h"

namespace sparq {

namespace {

constexpr std::string_view kWordItems = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}";

std::string pcre2_message(int code) {
    PCRE2_UCHAR buffer[256];
    const int n = pcre2_get_error_message(code, buffer, sizeof(buffer));
    if (n < 0) return "PCRE2 error " + std::to_string(code);
    return std::string(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

// Per-thread match data (one ovector pair: only the whole match is read) and
// a JIT stack larger than PCRE2's 32 KiB default, for long runs of text.
struct ThreadMatchState {
    pcre2_match_data* data = nullptr;
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* jit_stack = nullptr;

    ThreadMatchState() {
        data = pcre2_match_data_create(1, nullptr);
        context = pcre2_match_context_create(nullptr);
        jit_stack = pcre2_jit_stack_create(64 * 1024, 16 * 1024 * 1024, nullptr);
        if (context && jit_stack) pcre2_jit_stack_assign(context, nullptr, jit_stack);
        if (!data || !context) fail("out of memory creating PCRE2 match data");
    }
    ~ThreadMatchState() {
        pcre2_match_data_free(data);
        pcre2_match_context_free(context);
        pcre2_jit_stack_free(jit_stack);
    }
};

ThreadMatchState& thread_match_state() {
    thread_local ThreadMatchState state;
    return state;
}

size_t utf8_length_at(std::string_view text, size_t offset) {
    if (offset >= text.size()) return 1;
    const auto lead = static_cast<uint8_t>(text[offset]);
    if (lead < 0x80) return 1;
    if (lead >= 0xF0) return 4;
    if (lead >= 0xE0) return 3;
    if (lead >= 0xC0) return 2;
    return 1;
}

}  // namespace

std::string rewrite_for_pcre2(std::string_view pattern) {
    std::string out;
    out.reserve(pattern.size() + 32);
    bool in_class = false;
    size_t i = 0;
    while (i < pattern.size()) {
        const char c = pattern[i];
        if (c == '\\' && i + 1 < pattern.size()) {
            const char e = pattern[i + 1];
            if (e == 'Q') {  // \Q...\E: literal text, copied as it is
                const size_t end = pattern.find("\\E", i + 2);
                const size_t stop = end == std::string_view::npos ? pattern.size() : end + 2;
                out.append(pattern.substr(i, stop - i));
                i = stop;
                continue;
            }
            if (e == 's') {
                out += "\\p{White_Space}";
            } else if (e == 'S') {
                out += "\\P{White_Space}";
            } else if (e == 'w') {
                if (in_class) {
                    out += kWordItems;
                } else {
                    out += '[';
                    out += kWordItems;
                    out += ']';
                }
            } else if (e == 'W' && !in_class) {
                out += "[^";
                out += kWordItems;
                out += ']';
            } else {
                out += c;
                out += e;
            }
            i += 2;
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < pattern.size() && pattern[i + 1] == ':') {  // POSIX [:name:]
                const size_t end = pattern.find(":]", i + 2);
                if (end != std::string_view::npos) {
                    out.append(pattern.substr(i, end + 2 - i));
                    i = end + 2;
                    continue;
                }
            }
            if (c == ']') in_class = false;
            out += c;
            ++i;
            continue;
        }
        if (c == '[') {
            in_class = true;
            out += c;
            ++i;
            if (i < pattern.size() && pattern[i] == '^') out += pattern[i++];
            // A ']' right after the opening is a literal member.
            if (i < pattern.size() && pattern[i] == ']') out += pattern[i++];
            continue;
        }
        out += c;
        ++i;
    }
    return out;
}

Pcre2Regex::Pcre2Regex(std::string_view pattern, bool literal) : pattern_(pattern) {
    const std::string compiled = literal ? std::string(pattern) : rewrite_for_pcre2(pattern);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    // PCRE2_LITERAL allows no UCP (which only changes classes, of which plain text has none).
    const uint32_t options = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP);
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(compiled.data()), compiled.size(), options,
                                     &error_code, &error_offset, nullptr);
    if (!code) {
        fail("cannot compile the regex '", std::string(pattern), "'", literal ? "" : " (as PCRE2: '" + compiled + "')",
             ": ", pcre2_message(error_code), " at offset ", error_offset);
    }
    // Without JIT (not built in, or no executable memory) PCRE2 interprets.
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
    code_ = code;
}

Pcre2Regex::~Pcre2Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Pcre2Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const {
    matches.clear();
    ThreadMatchState& state = thread_match_state();
    auto* code = static_cast<pcre2_code*>(code_);
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t search_from = 0;
    bool have_last_end = false;
    size_t last_end = 0;
    while (search_from <= text.size()) {
        const int rc = pcre2_match(code, subject, text.size(), search_from, PCRE2_NO_UTF_CHECK, state.data,
                                   state.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) fail("regex '", pattern_, "' failed on a text of ", text.size(), " bytes: ", pcre2_message(rc));
        const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state.data);
        const size_t begin = ovector[0];
        const size_t end = ovector[1];
        if (begin == end && have_last_end && last_end == end) {
            search_from += utf8_length_at(text, search_from);
            continue;
        }
        search_from = end;
        last_end = end;
        have_last_end = true;
        matches.emplace_back(begin, end);
    }
}

bool Pcre2Regex::matches_at_start(std::string_view text) const {
    ThreadMatchState& state = thread_match_state();
    const int rc = pcre2_match(static_cast<pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(text.data()),
                               text.size(), 0, PCRE2_NO_UTF_CHECK | PCRE2_ANCHORED, state.data, state.context);
    if (rc == PCRE2_ERROR_NOMATCH) return false;
    if (rc < 0) fail("regex '", pattern_, "' failed: ", pcre2_message(rc));
    return true;
}

}  // namespace sparq
