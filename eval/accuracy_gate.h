// The CI accuracy gate (`sparq check`): a compressed model's evaluation
// report against its baseline's, under limits a build sets (perplexity
// increase in percent, mean KL divergence to the reference). Reports are
// the JSON `sparq eval --json` prints, or a `sparq run --json` result whose
// `metrics` object holds the same fields.
//
// The two reports must have been measured alike: where both name them,
// `ctx`, `chunks`, `tokens_scored` and the evaluation text's file name must
// agree, else the comparison means nothing and the gate refuses it (an
// input error, not a failed check). A perplexity that is not finite (null
// in the JSON) fails its check: the model is broken, which is what a gate
// is for.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sparq {

struct EvalMetrics {
    std::string file;          // where it was read (for messages)
    std::optional<double> ppl;  // nullopt: null in the report (not finite)
    std::optional<double> kld_mean;  // nullopt: absent, or null (not finite) when kld_present
    bool kld_present = false;
    std::optional<double> top1_agreement;
    std::optional<std::string> text;  // evaluation text as the report names it
    std::optional<int64_t> ctx, chunks, tokens_scored;
};

// Reads the metrics of one report. Throws sparq::Error naming `file` and the
// field for a report that is not an object, has no `ppl`, or holds a field
// of the wrong type.
EvalMetrics read_eval_metrics(const nlohmann::json& report, const std::string& file);

struct GateLimits {
    std::optional<double> max_ppl_increase_pct;
    std::optional<double> max_kld;
};

struct GateCheck {
    std::string name;                // "ppl_increase_pct", "kld_mean"
    std::optional<double> baseline;  // the baseline's value of the metric behind it (ppl, kld_mean)
    std::optional<double> value;     // the checked quantity; nullopt: not finite
    double limit = 0;
    bool ok = false;
};

struct GateResult {
    std::vector<GateCheck> checks;
    bool ok = true;
};

// One check per limit given. Throws sparq::Error when no limit is given, a
// limit is negative or not finite, the reports were not measured alike, a
// limit needs a field the report lacks (kld_mean needs `--ref` in the
// evaluation), or the baseline's perplexity is not a positive number.
GateResult run_accuracy_gate(const EvalMetrics& report, const EvalMetrics& baseline, const GateLimits& limits);

// The result as JSON (`ok`, `checks`, `failures`) and as a JUnit XML test
// suite (one test case per check) for CI systems that show those.
nlohmann::json gate_result_json(const GateResult& result, const EvalMetrics& report, const EvalMetrics& baseline);
std::string gate_result_junit(const GateResult& result, const EvalMetrics& report, const EvalMetrics& baseline);

// "ppl_increase_pct 2.31 > 1.00 (ppl 16.75 against 16.37)": one line per
// check for people and for failure messages.
std::string describe_check(const GateCheck& check);

}  // namespace sparq
