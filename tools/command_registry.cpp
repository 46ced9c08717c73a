#include <iostream>
#include <sstream>

#include "tools/command.h"

namespace sparq::cli {

void register_commands(CLI::App& app) {
    register_inspect(app);
    register_eval(app);
    register_generate(app);
    register_export(app);
    register_synth(app);
    register_quantize(app);
    register_verify(app);
    register_bench(app);
    register_calibrate(app);
    register_sparsify(app);
    register_check(app);
}

int run_in_process(const std::vector<std::string>& args, std::string& captured, bool with_run) {
    CLI::App app{"sparq"};
    app.require_subcommand(1);
    register_commands(app);
    if (with_run) register_run(app);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    std::vector<std::string> argv_strings = {"sparq"};
    argv_strings.insert(argv_strings.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& s : argv_strings) argv.push_back(s.data());
    std::ostringstream out;
    // The invocation is the command's own while it runs (the files it
    // writes record it); both come back however the command ends.
    struct Restore {
        std::string invocation;
        std::streambuf* cout;
        ~Restore() {
            std::cout.rdbuf(cout);
            set_invocation_line(invocation);
        }
    } restore{invocation(), std::cout.rdbuf(out.rdbuf())};
    set_invocation(static_cast<int>(argv.size()), argv.data());
    int code = 0;
    try {
        app.parse(reversed);
    } catch (const CommandExit& e) {
        code = e.code;
    } catch (const CLI::ParseError& e) {
        std::cerr << "sparq: error: " << e.what() << "\n";
        code = 2;
    }
    captured = out.str();
    return code;
}

}  // namespace sparq::cli
