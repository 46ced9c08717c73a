// Each sparq subcommand lives in its own tools/cmd_<name>.cpp and registers
// itself on the CLI11 app through one function declared here.
#pragma once

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sparq::cli {

// Options every subcommand shares (CONTRACT.md "Conventions").
struct CommonOptions {
    int threads = 0;  // 0 = all cores
    bool json = false;
    bool quiet = false;
};

// Adds --threads, --json, --quiet to a subcommand.
void add_common_options(CLI::App* command, CommonOptions& options);

// Adds --calib-samples: a positive count or `all` (every window of the
// calibration text, calibration/calibration_data.h), stored in `samples`.
void add_calib_samples_option(CLI::App* command, int64_t& samples, const std::string& description);

// Runs a command body with the thread limit applied, turning sparq::Error
// into "sparq: error: ..." and exit 1, CheckFailed into exit 3.
int run_command(const CommonOptions& options, const std::function<int()>& body);

// A number for JSON, or null when it is not finite (an exact
// reconstruction has infinite SQNR; JSON has no infinity).
inline nlohmann::json finite_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Prints exactly one JSON object on stdout.
void print_json(const nlohmann::json& j);

// Progress and log lines go to stderr unless --quiet.
void log_line(const CommonOptions& options, const std::string& line);

// Thrown by a command's callback to end the program with a given code.
struct CommandExit {
    int code;
};

// Registers `body` as the subcommand's callback, run through run_command;
// a non-zero result ends the program with that code.
void set_command_body(CLI::App* command, const CommonOptions& options, std::function<int()> body);

void register_inspect(CLI::App& app);
void register_eval(CLI::App& app);
void register_generate(CLI::App& app);
void register_export(CLI::App& app);
void register_synth(CLI::App& app);
void register_quantize(CLI::App& app);
void register_verify(CLI::App& app);
void register_bench(CLI::App& app);
void register_calibrate(CLI::App& app);
void register_sparsify(CLI::App& app);
void register_check(CLI::App& app);
void register_run(CLI::App& app);
// Every command above but run (which drives the others: tools/recipe.h).
void register_commands(CLI::App& app);

// Runs `sparq <args>` in this process through those commands (and run,
// when `with_run`), with the invocation set to that line while it runs:
// returns the exit code (2 for a usage error) and, in `captured`, what it
// printed on stdout.
int run_in_process(const std::vector<std::string>& args, std::string& captured, bool with_run);

// The command line this process was started with (recorded in outputs).
const std::string& invocation();
void set_invocation(int argc, char** argv);
void set_invocation_line(const std::string& line);

}  // namespace sparq::cli
