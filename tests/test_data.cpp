#include "test_data.h"

#include <cstdlib>
#include <filesystem>

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

std::string temp_dir(const std::string& name) {
    namespace fs = std::filesystem;
    const fs::path dir = fs::temp_directory_path() / ("sparq-test-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
    return dir.string();
}

}  // namespace sparq::testing
