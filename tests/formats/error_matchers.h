// Helpers for tests that feed hostile files to the readers: run the reader,
// demand a sparq::Error, and check that its text names the culprit.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <string>

#include "core/error.h"

namespace sparq::testing {

template <typename Fn>
std::string error_text(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "expected sparq::Error, got another exception: " << e.what();
        return {};
    }
    ADD_FAILURE() << "expected sparq::Error, nothing was thrown";
    return {};
}

#define EXPECT_SPARQ_ERROR(statement, ...)                                                         \
    do {                                                                                           \
        const std::string sparq_error_text_ = ::sparq::testing::error_text([&] { statement; });    \
        for (const std::string& sparq_piece_ : std::initializer_list<std::string>{__VA_ARGS__}) { \
            EXPECT_NE(sparq_error_text_.find(sparq_piece_), std::string::npos)                     \
                << "error text: " << sparq_error_text_ << "\nlacks: " << sparq_piece_;             \
        }                                                                                          \
    } while (0)

inline void write_bytes(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
}

inline std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace sparq::testing
