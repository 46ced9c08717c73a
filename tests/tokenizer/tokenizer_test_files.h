// Small file helpers shared by the tokenizer tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq::testing {

inline std::vector<uint8_t> read_file_bytes(const std::string& path) {
    const std::string text = read_text_file(path);
    return {text.begin(), text.end()};
}

inline void write_file_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out) fail_in({path, "", ""}, "cannot write test file");
}

inline std::vector<int32_t> parse_id_line(const std::string& line) {
    std::istringstream in(line);
    std::vector<int32_t> ids;
    int32_t id = 0;
    while (in >> id) ids.push_back(id);
    return ids;
}

// The message of the sparq::Error `call` throws, or "" if it throws none
// (any other exception escapes and fails the test).
template <typename Call>
std::string error_message_of(Call&& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.what();
    }
    return {};
}

}  // namespace sparq::testing

namespace sparq::testing {

// A conformance vector set as llama.cpp's tokenizer tests write it:
// vectors.inp holds each string followed by "\n__ggml_vocab_test__\n" (the
// separator's leading newline is not part of the string); vectors.out holds
// one line of ids per string, an empty line for the empty string.
struct ConformanceVectors {
    std::vector<std::string> strings;
    std::vector<std::vector<int32_t>> ids;
};

inline ConformanceVectors read_conformance_vectors(const std::string& inp_path, const std::string& out_path) {
    ConformanceVectors v;
    std::string inputs = read_text_file(inp_path);
    const std::string separator = "\n__ggml_vocab_test__\n";
    for (size_t at; (at = inputs.find(separator)) != std::string::npos;) {
        v.strings.push_back(inputs.substr(0, at));
        inputs.erase(0, at + separator.size());
    }
    if (!inputs.empty()) fail_in({inp_path, "", ""}, "text after the last separator");
    const std::string outputs = read_text_file(out_path);
    for (size_t begin = 0; begin < outputs.size();) {
        size_t end = outputs.find('\n', begin);
        if (end == std::string::npos) end = outputs.size();
        v.ids.push_back(parse_id_line(outputs.substr(begin, end - begin)));
        begin = end + 1;
    }
    return v;
}

}  // namespace sparq::testing
