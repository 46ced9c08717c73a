// UTF-8 code point helpers for the byte-level BPE tokenizer's pieces (added
// tokens' lstrip/rstrip/single_word rules, decoding byte-level pieces, and
// the check that refuses invalid text). Kept apart so each piece of the
// tokenizer can use them without reaching into another's file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace sparq {

// Offset of the first byte that is not part of valid UTF-8 (RFC 3629: no
// overlong forms, surrogates or code points past U+10FFFF), or npos.
size_t find_invalid_utf8(std::string_view text);

namespace utf8 {

// Decodes the code point at `i` of valid UTF-8 and moves `i` past it.
uint32_t next_code_point(std::string_view s, size_t& i);

// Start of the code point that ends at `end` (valid UTF-8, end > 0).
size_t previous_code_point_start(std::string_view s, size_t end);

// Unicode White_Space (Rust's char::is_whitespace and regex \s).
bool is_white_space(uint32_t cp);

}  // namespace utf8
}  // namespace sparq
