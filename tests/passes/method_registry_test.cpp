// The method registry (passes/method_registry.h): names unique and found,
// unknown names refused with the list, and an option the chosen method does
// not read refused (naming it and what reads it) in the quantize and
// sparsify options alike, while every option a method reads is accepted.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "core/error.h"
#include "passes/calibrated_quantize.h"
#include "passes/method_registry.h"
#include "passes/quantize_model.h"
#include "passes/sparsify_model.h"

namespace sparq {
namespace {

// The field of the error `f` throws ("" when it throws nothing).
template <typename F>
std::string refused_field(F&& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.context().field;
    }
    return "";
}

TEST(MethodRegistry, NamesAreUniqueAndFound) {
    for (PassKind pass : {PassKind::Quantize, PassKind::Sparsify}) {
        std::set<std::string> names;
        for (const MethodInfo& m : registered_methods(pass)) {
            EXPECT_TRUE(names.insert(m.name).second) << m.name;
            EXPECT_EQ(find_method(pass, m.name), &m);
            EXPECT_FALSE(m.summary.empty()) << m.name;
            EXPECT_NE(method_help(pass).find(m.name + ": "), std::string::npos);
        }
        EXPECT_EQ(find_method(pass, "bogus"), nullptr);
        try {
            require_method(pass, "bogus", "--method");
            FAIL() << "an unknown method was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.context().field, "--method");
            EXPECT_NE(std::string(e.what()).find(method_names(pass)), std::string::npos) << e.what();
        }
    }
    EXPECT_EQ(registered_methods(PassKind::Quantize).front().name, "rtn");  // the default comes first
    EXPECT_EQ(registered_methods(PassKind::Sparsify).front().name, "magnitude");
    for (const MethodInfo& m : registered_methods(PassKind::Quantize)) EXPECT_EQ(is_calibrated_method(m.name), m.calibrated);
}

// Every method-specific quantize option, set away from its default on every
// method: accepted exactly where the method reads it.
TEST(MethodRegistry, QuantizeOptionsBelongToTheirMethods) {
    struct Case {
        const char* flag;
        const char* registry_name;
        void (*set)(QuantizeOptions&);
    };
    const std::vector<Case> cases = {
        {"--damp", "damp", [](QuantizeOptions& o) { o.damp = 0.05; }},
        {"--no-act-order", "no-act-order", [](QuantizeOptions& o) { o.act_order = false; }},
        {"--gptq-params", "gptq-params", [](QuantizeOptions& o) { o.gptq_params = "mse"; }},
        {"--imatrix-score", "imatrix-score", [](QuantizeOptions& o) { o.imatrix_score = "diagonal"; }},
        {"--awq-grid", "awq-grid", [](QuantizeOptions& o) { o.awq_grid = 10; }},
        {"--awq-score", "awq-score", [](QuantizeOptions& o) { o.awq_score = "block"; }},
        {"--smooth-alpha", "smooth-alpha", [](QuantizeOptions& o) { o.smooth_alpha = 0.25; }},
    };
    int accepted = 0, refused = 0;
    for (const MethodInfo& m : registered_methods(PassKind::Quantize)) {
        for (const Case& c : cases) {
            QuantizeOptions o;
            o.method = m.name;
            if (m.calibrated) o.calib = "c.txt";
            c.set(o);
            o.validate();
            const std::string field = refused_field([&] { o.check_options_read(); });
            if (m.reads(c.registry_name)) {
                EXPECT_EQ(field, "") << m.name << " " << c.flag;
                ++accepted;
            } else {
                EXPECT_EQ(field, c.flag) << m.name << " " << c.flag;
                ++refused;
            }
        }
    }
    EXPECT_EQ(accepted, 7);
    EXPECT_GT(refused, 30);
    // SmoothQuant's GPTQ weights read the GPTQ options.
    QuantizeOptions smooth;
    smooth.method = "smoothquant";
    smooth.calib = "c.txt";
    smooth.damp = 0.05;
    EXPECT_EQ(refused_field([&] { smooth.check_options_read(); }), "--damp");
    smooth.smooth_weights = "gptq";
    EXPECT_EQ(refused_field([&] { smooth.check_options_read(); }), "");
}

TEST(MethodRegistry, CalibrationOptionsNeedAReader) {
    QuantizeOptions rtn;
    rtn.calib = "c.txt";
    EXPECT_EQ(refused_field([&] { rtn.check_options_read(); }), "--calib");
    rtn.target_bpw = 4.5;  // mixed precision measures on calibration text
    EXPECT_EQ(refused_field([&] { rtn.check_options_read(); }), "");
    QuantizeOptions cache_only;
    cache_only.method = "gptq";
    cache_only.calib_cache = "c.h5";
    cache_only.calib_len = 256;  // a length means nothing without text to cut
    EXPECT_EQ(refused_field([&] { cache_only.check_options_read(); }), "--calib-len");
    QuantizeOptions seeded;
    seeded.seed = 7;
    EXPECT_EQ(refused_field([&] { seeded.check_options_read(); }), "--seed");
    QuantizeOptions defaults;  // an option at its default changes nothing: accepted
    defaults.damp = QuantizeOptions{}.damp;
    EXPECT_EQ(refused_field([&] { defaults.check_options_read(); }), "");
    // The upstream correction is read by the sequential runs only.
    for (const MethodInfo& m : registered_methods(PassKind::Quantize)) {
        QuantizeOptions corrected;
        corrected.method = m.name;
        if (m.calibrated) corrected.calib = "c.txt";
        corrected.correct_upstream = true;
        const bool sequential = m.name == "gptq" || m.name == "awq" || m.name == "smoothquant";
        EXPECT_EQ(refused_field([&] { corrected.check_options_read(); }), sequential ? "" : "--correct-upstream")
            << m.name;
        if (!sequential) continue;
        corrected.damp = 0.05;  // the correction's ridge reads it, whatever the method
        EXPECT_EQ(refused_field([&] { corrected.check_options_read(); }), "") << m.name;
        corrected.damp = QuantizeOptions{}.damp;
        corrected.calib.clear();
        corrected.calib_cache = "c.h5";
        EXPECT_EQ(refused_field([&] { corrected.check_options_read(); }), "--correct-upstream") << m.name;
    }
    QuantizeOptions sensitivity;
    sensitivity.mixed_sensitivity = "hessian";
    EXPECT_EQ(refused_field([&] { sensitivity.check_options_read(); }), "--mixed-sensitivity");
    // The message names what reads the option.
    try {
        QuantizeOptions o;
        o.damp = 0.1;
        o.check_options_read();
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--method gptq"), std::string::npos) << e.what();
    }
    // JSON (recipes) is checked the same way.
    EXPECT_THROW(parse_quantize_options({{"method", "rtn"}, {"damp", 0.1}}), Error);
}

TEST(MethodRegistry, SparsifyOptionsBelongToTheirReaders) {
    const auto field_of = [](const std::function<void(SparsifyOptions&)>& set) {
        SparsifyOptions o;
        o.sparsity = 0.5;
        set(o);
        o.validate();
        return refused_field([&] { o.check_options_read(); });
    };
    EXPECT_EQ(field_of([](SparsifyOptions& o) { o.block_size = 64; }), "--block-size");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "sparsegpt";
                  o.calib = "c.txt";
                  o.block_size = 64;
              }),
              "");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib = "c.txt";
                  o.damp = 0.05;
              }),
              "--damp");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib = "c.txt";
                  o.damp = 0.05;
                  o.bits = 4;
                  o.quant_method = "gptq";  // joint GPTQ reads the dampening
              }),
              "");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib = "c.txt";
                  o.damp = 0.05;
                  o.refit_iterations = 5;  // so does the refit
              }),
              "");
    EXPECT_EQ(field_of([](SparsifyOptions& o) { o.owl_m = 7; }), "--owl-m");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib = "c.txt";
                  o.owl_lambda = 0.1;
              }),
              "--owl-lambda");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib = "c.txt";
                  o.layer_ratios = "owl";
                  o.owl_m = 7;
                  o.owl_lambda = 0.1;
              }),
              "");
    EXPECT_EQ(field_of([](SparsifyOptions& o) { o.seed = 3; }), "--seed");
    EXPECT_EQ(field_of([](SparsifyOptions& o) {
                  o.method = "wanda";
                  o.calib_cache = "c.h5";
                  o.calib_samples = 64;
              }),
              "--calib-samples");
    // Structured pruning reads --calib, its lengths and its ridge.
    SparsifyOptions structured;
    structured.structured = "mlp=0.25";
    structured.calib = "c.txt";
    structured.calib_len = 256;
    structured.damp = 0.05;
    structured.validate();
    EXPECT_EQ(refused_field([&] { structured.check_options_read(); }), "");
    EXPECT_THROW(parse_sparsify_options({{"sparsity", 0.5}, {"owl_m", 7}}), Error);
}

}  // namespace
}  // namespace sparq
