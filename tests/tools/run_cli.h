// `sparq <args>` in the test process (tools/command.h run_in_process): its
// exit code (CONTRACT.md: 0, 1 error, 2 usage, 3 a failed check) and, when
// asked, what it printed on stdout.
#pragma once

#include <string>
#include <vector>

#include "tools/command.h"

namespace sparq::cli::testing_support {

inline int run_cli(const std::vector<std::string>& args, std::string* out = nullptr) {
    std::string captured;
    const int code = run_in_process(args, captured, true);
    if (out) *out = captured;
    return code;
}

}  // namespace sparq::cli::testing_support
