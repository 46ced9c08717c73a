#include "eval/accuracy_gate.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace sparq {

namespace {

// A number field: absent -> nullopt; null -> nullopt with `present` set
// (the writer's way of saying "not finite"); anything else but a number is
// an error.
std::optional<double> number_field(const nlohmann::json& j, const char* key, const std::string& file, bool* present) {
    if (present) *present = j.contains(key);
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_number()) fail_in({file, "", key}, "expected a number, got ", j[key].dump());
    return j[key].get<double>();
}

std::optional<int64_t> count_field(const nlohmann::json& j, const char* key, const std::string& file) {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    if (!j[key].is_number_integer()) fail_in({file, "", key}, "expected a whole number, got ", j[key].dump());
    return j[key].get<int64_t>();
}

void require_alike(const std::optional<int64_t>& a, const std::optional<int64_t>& b, const char* key,
                   const EvalMetrics& report, const EvalMetrics& baseline) {
    if (a && b && *a != *b) {
        fail_in({report.file, "", key}, *a, " against ", *b, " in the baseline ", baseline.file,
                ": the reports were not measured alike (same text, ctx and chunks), so they cannot be compared");
    }
}

std::string format_number(const std::optional<double>& v) {
    if (!v) return "not finite";
    char text[64];
    std::snprintf(text, sizeof text, "%.6g", *v);
    return text;
}

std::string xml_escaped(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&apos;"; break;
            default: out += c;
        }
    }
    return out;
}

}  // namespace

EvalMetrics read_eval_metrics(const nlohmann::json& report, const std::string& file) {
    if (!report.is_object()) fail_in({file, "", ""}, "expected a JSON object (sparq eval --json or sparq run --json)");
    // sparq run: the final metrics sit in `metrics`.
    const nlohmann::json& j = report.contains("metrics") && report["metrics"].is_object() ? report["metrics"] : report;
    EvalMetrics m;
    m.file = file;
    bool has_ppl = false;
    m.ppl = number_field(j, "ppl", file, &has_ppl);
    if (!has_ppl) fail_in({file, "", "ppl"}, "missing: expected the report of sparq eval --json (or sparq run --json)");
    m.kld_mean = number_field(j, "kld_mean", file, &m.kld_present);
    m.top1_agreement = number_field(j, "top1_agreement", file, nullptr);
    if (j.contains("text") && !j["text"].is_null()) {
        if (!j["text"].is_string()) fail_in({file, "", "text"}, "expected a file name, got ", j["text"].dump());
        m.text = j["text"].get<std::string>();
    }
    m.ctx = count_field(j, "ctx", file);
    m.chunks = count_field(j, "chunks", file);
    m.tokens_scored = count_field(j, "tokens_scored", file);
    return m;
}

GateResult run_accuracy_gate(const EvalMetrics& report, const EvalMetrics& baseline, const GateLimits& limits) {
    if (!limits.max_ppl_increase_pct && !limits.max_kld) {
        fail_in({"", "", "--max-ppl-increase-pct"}, "no limit given: set --max-ppl-increase-pct and/or --max-kld");
    }
    const auto check_limit = [](const std::optional<double>& limit, const char* flag) {
        if (limit && !(std::isfinite(*limit) && *limit >= 0)) {
            fail_in({"", "", flag}, "must be a finite number >= 0, got ", *limit);
        }
    };
    check_limit(limits.max_ppl_increase_pct, "--max-ppl-increase-pct");
    check_limit(limits.max_kld, "--max-kld");
    require_alike(report.ctx, baseline.ctx, "ctx", report, baseline);
    require_alike(report.chunks, baseline.chunks, "chunks", report, baseline);
    require_alike(report.tokens_scored, baseline.tokens_scored, "tokens_scored", report, baseline);
    if (report.text && baseline.text) {
        const std::string a = std::filesystem::path(*report.text).filename().string();
        const std::string b = std::filesystem::path(*baseline.text).filename().string();
        if (a != b) {
            fail_in({report.file, "", "text"}, "'", a, "' against '", b, "' in the baseline ", baseline.file,
                    ": the reports were not measured on the same text, so they cannot be compared");
        }
    }

    GateResult result;
    if (limits.max_ppl_increase_pct) {
        if (!baseline.ppl || !(*baseline.ppl > 0)) {
            fail_in({baseline.file, "", "ppl"}, "the baseline's perplexity must be a positive number, got ",
                    format_number(baseline.ppl));
        }
        GateCheck c;
        c.name = "ppl_increase_pct";
        c.baseline = baseline.ppl;
        if (report.ppl && std::isfinite(*report.ppl)) c.value = (*report.ppl / *baseline.ppl - 1.0) * 100.0;
        c.limit = *limits.max_ppl_increase_pct;
        c.ok = c.value && *c.value <= c.limit;
        result.checks.push_back(c);
    }
    if (limits.max_kld) {
        if (!report.kld_present) {
            fail_in({report.file, "", "kld_mean"}, "missing: --max-kld needs a report measured against the reference "
                                                   "model (sparq eval --ref MODEL)");
        }
        GateCheck c;
        c.name = "kld_mean";
        c.baseline = baseline.kld_mean;
        c.value = report.kld_mean;
        if (c.value && !std::isfinite(*c.value)) c.value.reset();
        c.limit = *limits.max_kld;
        c.ok = c.value && *c.value <= c.limit;
        result.checks.push_back(c);
    }
    for (const GateCheck& c : result.checks) result.ok = result.ok && c.ok;
    return result;
}

std::string describe_check(const GateCheck& c) {
    std::string line = c.name + " " + format_number(c.value) + (c.ok ? " <= " : " > ") + format_number(c.limit);
    if (!c.value) line = c.name + " not finite (limit " + format_number(c.limit) + ")";
    if (c.name == "ppl_increase_pct") line += " (baseline ppl " + format_number(c.baseline) + ")";
    return line;
}

nlohmann::json gate_result_json(const GateResult& result, const EvalMetrics& report, const EvalMetrics& baseline) {
    const auto value_or_null = [](const std::optional<double>& v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    nlohmann::json checks = nlohmann::json::array(), failures = nlohmann::json::array();
    for (const GateCheck& c : result.checks) {
        checks.push_back({{"name", c.name},
                          {"value", value_or_null(c.value)},
                          {"limit", c.limit},
                          {"baseline", value_or_null(c.baseline)},
                          {"ok", c.ok}});
        if (!c.ok) failures.push_back(describe_check(c));
    }
    return {{"ok", result.ok},
            {"report", report.file},
            {"baseline", baseline.file},
            {"ppl", value_or_null(report.ppl)},
            {"baseline_ppl", value_or_null(baseline.ppl)},
            {"kld_mean", value_or_null(report.kld_mean)},
            {"checks", checks},
            {"failures", failures}};
}

std::string gate_result_junit(const GateResult& result, const EvalMetrics& report, const EvalMetrics& baseline) {
    int failures = 0;
    for (const GateCheck& c : result.checks) failures += c.ok ? 0 : 1;
    std::string xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
    xml += "<testsuite name=\"sparq check\" tests=\"" + std::to_string(result.checks.size()) + "\" failures=\"" +
           std::to_string(failures) + "\">\n";
    xml += "  <properties>\n    <property name=\"report\" value=\"" + xml_escaped(report.file) +
           "\"/>\n    <property name=\"baseline\" value=\"" + xml_escaped(baseline.file) + "\"/>\n  </properties>\n";
    for (const GateCheck& c : result.checks) {
        xml += "  <testcase classname=\"sparq.check\" name=\"" + xml_escaped(c.name) + "\"";
        if (c.ok) {
            xml += "/>\n";
        } else {
            xml += ">\n    <failure message=\"" + xml_escaped(describe_check(c)) + "\"/>\n  </testcase>\n";
        }
    }
    xml += "</testsuite>\n";
    return xml;
}

}  // namespace sparq
