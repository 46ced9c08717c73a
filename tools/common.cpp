#include <unistd.h>

#include <iostream>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "core/parallel.h"
#include "tools/command.h"

namespace sparq::cli {

void add_common_options(CLI::App* command, CommonOptions& options) {
    command->add_option("--threads", options.threads, "Threads to use (default: all cores)")
        ->check(CLI::NonNegativeNumber);
    command->add_flag("--json", options.json, "Print exactly one JSON object on stdout");
    command->add_flag("--quiet", options.quiet, "No progress or log lines on stderr");
}

void add_calib_samples_option(CLI::App* command, int64_t& samples, const std::string& description) {
    command->add_option_function<std::string>(
        "--calib-samples",
        [&samples](const std::string& text) {
            try {
                samples = parse_calibration_samples(text, "--calib-samples");
            } catch (const Error& e) {
                throw CLI::ValidationError(e.what());
            }
        },
        description + " (default 128; all: every window of the text, in order)");
}

int run_command(const CommonOptions& options, const std::function<int()>& body) {
    try {
        ThreadLimit limit(options.threads);
        return body();
    } catch (const CheckFailed& e) {
        std::cerr << "sparq: check failed: " << e.what() << "\n";
        return 3;
    } catch (const Error& e) {
        std::cerr << "sparq: error: " << e.what() << "\n";
        return 1;
    } catch (const std::bad_alloc&) {
        std::cerr << "sparq: error: out of memory\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "sparq: error: " << e.what() << "\n";
        return 1;
    }
}

void set_command_body(CLI::App* command, const CommonOptions& options, std::function<int()> body) {
    command->callback([&options, body = std::move(body)]() {
        const int code = run_command(options, body);
        if (code != 0) throw CommandExit{code};
    });
}

namespace {
std::string& invocation_storage() {
    static std::string line;
    return line;
}
}  // namespace

const std::string& invocation() { return invocation_storage(); }

void set_invocation(int argc, char** argv) {
    std::string line;
    for (int i = 0; i < argc; ++i) {
        if (i) line += ' ';
        line += argv[i];
    }
    invocation_storage() = line;
}

void set_invocation_line(const std::string& line) { invocation_storage() = line; }

void print_json(const nlohmann::json& j) {
    std::cout << j.dump(1) << std::endl;
}

void log_line(const CommonOptions& options, const std::string& line) {
    if (!options.quiet) std::cerr << line << std::endl;
}

}  // namespace sparq::cli
