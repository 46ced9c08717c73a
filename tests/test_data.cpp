#include "test_data.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>

#include "core/mapped_file.h"

namespace sparq::testing {

std::string data_dir() {
    if (const char* env = std::getenv("SPARQ_DATA"); env && *env) return env;
    return std::string(SPARQ_SOURCE_DIR) + "/../shared/data";
}

std::string data_path(const std::string& relative) { return data_dir() + "/" + relative; }

bool running_in_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

namespace {

// The directories temp_dir made in this process, removed when it exits
// (ctest runs every test in its own process: without this each run left
// some 700 directories in /tmp).
struct TempDirectories {
    std::vector<std::filesystem::path> made;
    ~TempDirectories() {
        for (const auto& dir : made) {
            std::error_code ignored;
            std::filesystem::remove_all(dir, ignored);
        }
    }
};

TempDirectories& temp_directories() {
    static TempDirectories directories;
    return directories;
}

}  // namespace

std::string temp_dir(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("sparq-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::vector<fs::path>& made = temp_directories().made;
    if (std::find(made.begin(), made.end(), dir) == made.end()) made.push_back(dir);
    return dir.string();
}

}  // namespace sparq::testing
