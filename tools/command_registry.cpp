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

}  // namespace sparq::cli
