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
