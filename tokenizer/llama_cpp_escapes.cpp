#include "tokenizer/llama_cpp_escapes.h"

#include <cstdlib>

namespace sparq {

std::string apply_llama_cpp_escapes(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\' || i + 1 >= text.size()) {
            out += text[i];
            continue;
        }
        const char escaped = text[++i];
        switch (escaped) {
            case 'n': out += '\n'; continue;
            case 'r': out += '\r'; continue;
            case 't': out += '\t'; continue;
            case '\'': out += '\''; continue;
            case '"': out += '"'; continue;
            case '\\': out += '\\'; continue;
            case 'x':
                if (i + 2 < text.size()) {
                    // strtol, not a strict hex check: llama.cpp accepts what
                    // strtol accepts in those two characters (" 7", "+7").
                    const char digits[3] = {text[i + 1], text[i + 2], '\0'};
                    char* end = nullptr;
                    const long value = std::strtol(digits, &end, 16);
                    if (end == digits + 2) {
                        out += static_cast<char>(value);
                        i += 2;
                        continue;
                    }
                }
                break;
            default: break;
        }
        out += '\\';
        out += escaped;
    }
    return out;
}

}  // namespace sparq
