#include <malloc.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "tools/command.h"

int main(int argc, char** argv) {
    // The forward allocates MB-sized activation buffers per layer; glibc
    // would serve each with a fresh mmap and fault its pages in again (a
    // quarter of prefill time). Keep such blocks on the heap and reuse them.
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    CLI::App app{"sparq: compress, measure and run large language models"};
    app.require_subcommand(1);
    sparq::cli::register_commands(app);
    sparq::cli::register_run(app);
    sparq::cli::set_invocation(argc, argv);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        // Usage errors exit 2 (CONTRACT.md).
        app.exit(e);
        return e.get_exit_code() == 0 ? 0 : 2;
    } catch (const sparq::cli::CommandExit& e) {
        return e.code;
    }
    return 0;
}
