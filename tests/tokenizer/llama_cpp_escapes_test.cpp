#include "tokenizer/llama_cpp_escapes.h"

#include <gtest/gtest.h>

namespace sparq {
namespace {

TEST(LlamaCppEscapes, NamedEscapesBecomeTheirCharacters) {
    EXPECT_EQ(apply_llama_cpp_escapes(R"(a\nb\rc\td\'e\"f\\g)"), "a\nb\rc\td'e\"f\\g");
}

TEST(LlamaCppEscapes, HexEscapesTakeExactlyTwoCharacters) {
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\x41\x7e!)"), "A~!");
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\x4)"), R"(\x4)");   // needs two characters
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\xzz)"), R"(\xzz)");  // not hex: kept
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\x41)"), "A");
}

TEST(LlamaCppEscapes, OtherBackslashesAreKept) {
    EXPECT_EQ(apply_llama_cpp_escapes(R"(C:\path\_x \. end\)"), R"(C:\path\_x \. end\)");
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\\\\)"), R"(\\)");
    EXPECT_EQ(apply_llama_cpp_escapes(R"(\\n)"), R"(\n)");  // the pair is consumed first
    EXPECT_EQ(apply_llama_cpp_escapes(""), "");
}

}  // namespace
}  // namespace sparq
