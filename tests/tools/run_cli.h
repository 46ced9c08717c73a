// `sparq <args>` in the test process, through the same CLI11 commands the
// executable registers: its exit code (CONTRACT.md: 0, 1 error, 2 usage,
// 3 a failed check) and, when asked, what it printed on stdout.
#pragma once

#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "tools/command.h"

namespace sparq::cli::testing_support {

inline int run_cli(const std::vector<std::string>& args, std::string* out = nullptr) {
    CLI::App app;
    app.require_subcommand(1);
    register_commands(app);
    register_run(app);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    std::ostringstream captured;
    std::streambuf* const old = std::cout.rdbuf(captured.rdbuf());
    int code = 0;
    try {
        app.parse(reversed);
    } catch (const CommandExit& e) {
        code = e.code;
    } catch (const CLI::ParseError&) {
        code = 2;
    }
    std::cout.rdbuf(old);
    if (out) *out = captured.str();
    return code;
}

}  // namespace sparq::cli::testing_support
