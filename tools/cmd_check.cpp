// sparq check --report REPORT.json --baseline BASELINE.json
//   [--max-ppl-increase-pct X] [--max-kld X] [--junit FILE] [--json]
// The CI accuracy gate (eval/accuracy_gate.h): exit 0 when every limit
// holds, 3 with a table of what regressed when one is broken, 1 when the
// reports cannot be read or compared.
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "eval/accuracy_gate.h"
#include "tools/command.h"

namespace sparq::cli {

namespace {

struct CheckArgs {
    CommonOptions common;
    std::string report;
    std::string baseline;
    double max_ppl_increase_pct = 0;
    double max_kld = 0;
    std::string junit;
    CLI::Option* ppl_option = nullptr;
    CLI::Option* kld_option = nullptr;
};

EvalMetrics read_report(const std::string& path) {
    const std::string text = read_text_file(path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
        fail_in({path, "", ""}, "not valid JSON: ", e.what());
    }
    return read_eval_metrics(j, path);
}

void print_table(const GateResult& result) {
    std::cout << std::left << std::setw(18) << "check" << std::setw(14) << "baseline" << std::setw(14) << "value"
              << std::setw(12) << "limit" << "status\n";
    for (const GateCheck& c : result.checks) {
        std::ostringstream baseline, value;
        if (c.baseline) baseline << std::setprecision(6) << *c.baseline; else baseline << "-";
        if (c.value) value << std::setprecision(6) << *c.value; else value << "not finite";
        std::cout << std::setw(18) << c.name << std::setw(14) << baseline.str() << std::setw(14) << value.str()
                  << std::setw(12) << c.limit << (c.ok ? "ok" : "REGRESSED") << "\n";
    }
}

int run_check(const CheckArgs& args) {
    const EvalMetrics report = read_report(args.report);
    const EvalMetrics baseline = read_report(args.baseline);
    GateLimits limits;
    if (args.ppl_option->count() > 0) limits.max_ppl_increase_pct = args.max_ppl_increase_pct;
    if (args.kld_option->count() > 0) limits.max_kld = args.max_kld;
    const GateResult result = run_accuracy_gate(report, baseline, limits);
    if (!args.junit.empty()) write_file_atomic(args.junit, gate_result_junit(result, report, baseline));
    if (args.common.json) {
        print_json(gate_result_json(result, report, baseline));
    } else {
        print_table(result);
    }
    if (!result.ok) {
        std::string what;
        for (const GateCheck& c : result.checks) {
            if (!c.ok) what += (what.empty() ? "" : "; ") + describe_check(c);
        }
        throw CheckFailed(args.report + ": " + what);
    }
    return 0;
}

}  // namespace

void register_check(CLI::App& app) {
    // Owned by the callback, so each app registered gets its own.
    auto shared = std::make_shared<CheckArgs>();
    CheckArgs& args = *shared;
    CLI::App* cmd = app.add_subcommand("check", "CI accuracy gate: an evaluation report against its baseline's");
    cmd->add_option("--report", args.report, "Report of the compressed model (sparq eval --json or sparq run --json)")
        ->required();
    cmd->add_option("--baseline", args.baseline, "Report of the baseline model, measured alike")->required();
    auto* limits = cmd->add_option_group("limits", "At least one limit");
    args.ppl_option = limits->add_option("--max-ppl-increase-pct", args.max_ppl_increase_pct,
                                         "Largest perplexity increase over the baseline, in percent");
    args.kld_option = limits->add_option("--max-kld", args.max_kld,
                                         "Largest mean KL divergence to the reference (the report's kld_mean)");
    limits->require_option(1, 0);
    cmd->add_option("--junit", args.junit, "Also write the checks as a JUnit XML test suite to FILE");
    add_common_options(cmd, args.common);
    set_command_body(cmd, args.common, [shared] { return run_check(*shared); });
}

}  // namespace sparq::cli
