// Locates the shared real data for tests. Tests that need a file call
// SPARQ_REQUIRE_DATA: under CI=true a missing file fails the test; elsewhere
// it is skipped with the reason.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "core/mapped_file.h"

namespace sparq::testing {

// $SPARQ_DATA, or ../shared/data next to the project root.
std::string data_dir();
std::string data_path(const std::string& relative);
bool running_in_ci();
// A fresh empty directory for a test's outputs, in the system temporary
// directory; removed when the test process exits.
std::string temp_dir(const std::string& name);

}  // namespace sparq::testing

#define SPARQ_REQUIRE_DATA(relative)                                                     \
    do {                                                                                  \
        const std::string sparq_required_path_ = ::sparq::testing::data_path(relative);  \
        if (!::sparq::file_exists(sparq_required_path_) &&                              \
            !::sparq::is_directory(sparq_required_path_)) {                              \
            if (::sparq::testing::running_in_ci()) {                                    \
                FAIL() << "missing test data " << sparq_required_path_                 \
                       << " (set SPARQ_DATA to the shared data folder)";                \
            }                                                                             \
            GTEST_SKIP() << "test data not found: " << sparq_required_path_             \
                         << " (set SPARQ_DATA to the shared data folder)";              \
        }                                                                                 \
    } while (0)
