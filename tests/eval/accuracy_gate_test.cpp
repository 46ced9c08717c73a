// The CI accuracy gate's comparison (eval/accuracy_gate.h): limits that
// hold pass, broken ones fail with the numbers, non-finite perplexity
// fails, and reports that cannot be compared are refused as input errors.
#include <gtest/gtest.h>

#include "core/error.h"
#include "eval/accuracy_gate.h"

namespace sparq {
namespace {

nlohmann::json eval_report(double ppl, double kld) {
    return {{"ppl", ppl}, {"kld_mean", kld}, {"ctx", 256}, {"chunks", 60}, {"tokens_scored", 15300},
            {"text", "/data/text/valid.txt"}, {"top1_agreement", 0.97}};
}

GateLimits limits(std::optional<double> ppl_pct, std::optional<double> kld) {
    GateLimits l;
    l.max_ppl_increase_pct = ppl_pct;
    l.max_kld = kld;
    return l;
}

TEST(AccuracyGate, LimitsThatHoldPassAndBrokenOnesFailWithTheirNumbers) {
    const EvalMetrics baseline = read_eval_metrics(eval_report(10.0, 0.0), "base.json");
    const EvalMetrics report = read_eval_metrics(eval_report(10.2, 0.004), "q.json");
    const GateResult pass = run_accuracy_gate(report, baseline, limits(2.5, 0.01));
    ASSERT_EQ(pass.checks.size(), 2u);
    EXPECT_TRUE(pass.ok);
    EXPECT_NEAR(*pass.checks[0].value, 2.0, 1e-9);
    EXPECT_EQ(*pass.checks[0].baseline, 10.0);
    EXPECT_EQ(*pass.checks[1].value, 0.004);

    const GateResult fail = run_accuracy_gate(report, baseline, limits(1.5, 0.01));
    EXPECT_FALSE(fail.ok);
    EXPECT_FALSE(fail.checks[0].ok);
    EXPECT_TRUE(fail.checks[1].ok);
    EXPECT_NE(describe_check(fail.checks[0]).find("> 1.5"), std::string::npos) << describe_check(fail.checks[0]);
    const nlohmann::json j = gate_result_json(fail, report, baseline);
    EXPECT_FALSE(j["ok"].get<bool>());
    ASSERT_EQ(j["failures"].size(), 1u);
    EXPECT_NEAR(j["checks"][0]["value"].get<double>(), 2.0, 1e-9);

    // Exactly at the limit passes; only the KL limit given: one check.
    EXPECT_TRUE(run_accuracy_gate(report, baseline, limits(2.0 + 1e-9, std::nullopt)).ok);
    const GateResult kld_only = run_accuracy_gate(report, baseline, limits(std::nullopt, 0.001));
    ASSERT_EQ(kld_only.checks.size(), 1u);
    EXPECT_EQ(kld_only.checks[0].name, "kld_mean");
    EXPECT_FALSE(kld_only.ok);
}

TEST(AccuracyGate, NonFinitePerplexityFailsTheCheck) {
    const EvalMetrics baseline = read_eval_metrics(eval_report(10.0, 0.0), "base.json");
    nlohmann::json broken = eval_report(10.0, 0.0);
    broken["ppl"] = nullptr;  // what sparq eval writes for an infinite perplexity
    broken["kld_mean"] = nullptr;
    const EvalMetrics report = read_eval_metrics(broken, "q.json");
    const GateResult r = run_accuracy_gate(report, baseline, limits(100.0, 100.0));
    EXPECT_FALSE(r.ok);
    for (const GateCheck& c : r.checks) {
        EXPECT_FALSE(c.ok) << c.name;
        EXPECT_FALSE(c.value.has_value()) << c.name;
    }
    EXPECT_TRUE(gate_result_json(r, report, baseline)["checks"][0]["value"].is_null());
}

TEST(AccuracyGate, RunReportsAreReadFromTheirMetrics) {
    const nlohmann::json run = {{"stages", nlohmann::json::array()}, {"metrics", eval_report(11.0, 0.02)}};
    const EvalMetrics m = read_eval_metrics(run, "run.json");
    EXPECT_EQ(*m.ppl, 11.0);
    EXPECT_EQ(*m.kld_mean, 0.02);
    EXPECT_EQ(*m.chunks, 60);
}

TEST(AccuracyGate, ReportsThatCannotBeComparedAreInputErrors) {
    const EvalMetrics baseline = read_eval_metrics(eval_report(10.0, 0.0), "base.json");
    auto refused = [&](nlohmann::json report, const GateLimits& l, const std::string& field) {
        try {
            run_accuracy_gate(read_eval_metrics(report, "q.json"), baseline, l);
            ADD_FAILURE() << "accepted; expected an error on " << field;
        } catch (const Error& e) {
            EXPECT_EQ(e.context().field, field) << e.what();
        }
    };
    nlohmann::json other_ctx = eval_report(10.1, 0.0);
    other_ctx["ctx"] = 512;
    refused(other_ctx, limits(1.0, std::nullopt), "ctx");
    nlohmann::json other_text = eval_report(10.1, 0.0);
    other_text["text"] = "/elsewhere/heldout.txt";
    refused(other_text, limits(1.0, std::nullopt), "text");
    nlohmann::json no_kld = eval_report(10.1, 0.0);
    no_kld.erase("kld_mean");
    refused(no_kld, limits(std::nullopt, 0.01), "kld_mean");
    refused(eval_report(10.1, 0.0), limits(std::nullopt, std::nullopt), "--max-ppl-increase-pct");
    refused(eval_report(10.1, 0.0), limits(-1.0, std::nullopt), "--max-ppl-increase-pct");
    refused(eval_report(10.1, 0.0), limits(std::nullopt, NAN), "--max-kld");
    // Same file name under another directory is the same text.
    nlohmann::json moved = eval_report(10.1, 0.0);
    moved["text"] = "valid.txt";
    EXPECT_TRUE(run_accuracy_gate(read_eval_metrics(moved, "q.json"), baseline, limits(5.0, std::nullopt)).ok);
    // A baseline without a usable perplexity.
    nlohmann::json zero = eval_report(0.0, 0.0);
    try {
        run_accuracy_gate(read_eval_metrics(eval_report(1.0, 0.0), "q.json"), read_eval_metrics(zero, "base.json"),
                          limits(1.0, std::nullopt));
        ADD_FAILURE() << "a zero baseline perplexity was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().file, "base.json");
    }
}

TEST(AccuracyGate, MalformedReportsNameTheFileAndField) {
    auto field_of = [](const nlohmann::json& j) {
        try {
            read_eval_metrics(j, "r.json");
        } catch (const Error& e) {
            EXPECT_EQ(e.context().file, "r.json");
            return e.context().field;
        }
        return std::string("accepted");
    };
    EXPECT_EQ(field_of(nlohmann::json::array()), "");
    EXPECT_EQ(field_of({{"kld_mean", 0.1}}), "ppl");
    EXPECT_EQ(field_of({{"ppl", "12"}}), "ppl");
    EXPECT_EQ(field_of({{"ppl", 12.0}, {"chunks", 1.5}}), "chunks");
    EXPECT_EQ(field_of({{"ppl", 12.0}, {"text", 3}}), "text");
}

TEST(AccuracyGate, JunitHasOneCasePerCheckAndEscapesText) {
    const EvalMetrics baseline = read_eval_metrics(eval_report(10.0, 0.0), "base<&>.json");
    const EvalMetrics report = read_eval_metrics(eval_report(12.0, 0.004), "q\".json");
    const GateResult r = run_accuracy_gate(report, baseline, limits(1.0, 0.01));
    const std::string xml = gate_result_junit(r, report, baseline);
    EXPECT_NE(xml.find("tests=\"2\" failures=\"1\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("base&lt;&amp;&gt;.json"), std::string::npos) << xml;
    EXPECT_NE(xml.find("q&quot;.json"), std::string::npos) << xml;
    EXPECT_EQ(xml.find("base<&>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<testcase classname=\"sparq.check\" name=\"kld_mean\"/>"), std::string::npos) << xml;
    EXPECT_NE(xml.find("<failure message=\"ppl_increase_pct 20 &gt; 1"), std::string::npos) << xml;
}

}  // namespace
}  // namespace sparq
