// llama.cpp's command-line tools (llama-tokenize, llama-perplexity, ...)
// rewrite backslash escapes in their input text before tokenizing it, on by
// default (--escape), including text read with -f. So llama.cpp's reference
// figures for a text file are for the file with escapes applied: in
// heldout.txt five "\\" pairs become single backslashes, which is why
// llama.cpp counts 5 fewer tokens than the raw bytes give. Apply this to a
// text when a result must match those figures token for token.
#pragma once

#include <string>
#include <string_view>

namespace sparq {

// Rewrites \n \r \t \' \" \\ to the character they name and \xHH to that
// byte (HH read as C's strtol reads two characters in base 16); any other
// backslash, and a backslash ending the text, is kept as it is.
std::string apply_llama_cpp_escapes(std::string_view text);

}  // namespace sparq
