// The calibrated methods through the quantize pass: every planned block
// linear comes back quantized with its weighted errors reported, GPTQ beats
// RTN on them, the bytes do not depend on the thread count, the cache path
// gives the same result on a hit, a model with dead inputs and too few
// tokens (singular Hessians) still quantizes, and options are checked.
#include <gtest/gtest.h>

#include <cmath>

#include "calibration/calibration_data.h"
#include "core/error.h"
#include "core/parallel.h"
#include "passes/calibrated_quantize.h"
#include "tiny_model.h"

namespace sparq {
namespace {

QuantizeOptions calibrated_options(const std::string& method, const std::string& calib) {
    QuantizeOptions o;
    o.bits = 4;
    o.group = 16;
    o.method = method;
    o.calib = calib;
    o.calib_samples = 4;
    o.calib_len = 48;
    return o;
}

std::string write_text(const std::string& name) {
    const std::string dir = testing::temp_dir(name);
    testing::write_file(dir + "/calib.txt", testing::tiny_text(4000));
    return dir + "/calib.txt";
}

const QuantizedTensorReport& report_of(const QuantizeResult& r, const std::string& name) {
    for (const auto& t : r.reports) {
        if (t.name == name) return t;
    }
    throw Error("no report for " + name);
}

TEST(CalibratedQuantize, GptqAndImatrixQuantizeEveryBlockLinear) {
    const ModelSource model = testing::tiny_model();
    const std::string calib = write_text("cq-methods");
    for (const std::string method : {"gptq", "imatrix"}) {
        const QuantizeResult r = quantize_model(model, calibrated_options(method, calib));
        ASSERT_TRUE(r.calibration.has_value()) << method;
        EXPECT_EQ(r.calibration->samples, 4);
        EXPECT_EQ(r.calibration->sequential, method == "gptq");
        int calibrated = 0;
        double error = 0, error_rtn = 0;
        for (const auto& t : r.reports) {
            if (!is_block_linear(t.name)) {
                EXPECT_FALSE(t.calibration.has_value()) << t.name;
                continue;
            }
            ASSERT_TRUE(t.calibration.has_value()) << method << " " << t.name;
            EXPECT_EQ(t.bits, 4);
            EXPECT_FALSE(t.calibration->fell_back_to_rtn);
            EXPECT_GT(t.calibration->weighted_error_rtn, 0.0);
            EXPECT_TRUE(std::isfinite(t.sqnr_db));
            error += t.calibration->weighted_error;
            error_rtn += t.calibration->weighted_error_rtn;
            ++calibrated;
        }
        EXPECT_EQ(calibrated, 14) << method;
        EXPECT_LT(error, (method == "gptq" ? 0.8 : 1.0) * error_rtn) << method;
        for (const auto& e : r.tensors) {
            if (is_block_linear(e.name)) {
                EXPECT_TRUE(e.packed.has_value()) << e.name;
            }
        }
    }
}

TEST(CalibratedQuantize, SameBytesForAnyThreadCountAndFromTheCache) {
    const ModelSource model = testing::tiny_model();
    const std::string calib = write_text("cq-threads");
    for (const std::string method : {"gptq", "imatrix"}) {
        QuantizeOptions o = calibrated_options(method, calib);
        QuantizeResult one, many;
        {
            ThreadLimit limit(1);
            one = quantize_model(model, o);
        }
        {
            ThreadLimit limit(2);
            many = quantize_model(model, o);
        }
        ASSERT_EQ(one.tensors.size(), many.tensors.size());
        for (size_t i = 0; i < one.tensors.size(); ++i) {
            if (!one.tensors[i].packed) continue;
            EXPECT_EQ(one.tensors[i].packed->codes, many.tensors[i].packed->codes) << method << one.tensors[i].name;
            EXPECT_EQ(one.tensors[i].packed->scales, many.tensors[i].packed->scales) << method;
        }
        // Through a cache: written once, then a hit with the same bytes.
        o.calib_cache = calib + "." + method + ".h5";
        const QuantizeResult written = quantize_model(model, o);
        const QuantizeResult hit = quantize_model(model, o);
        EXPECT_EQ(written.calibration->cache, "written");
        EXPECT_EQ(hit.calibration->cache, "hit");
        EXPECT_FALSE(hit.calibration->sequential);
        for (size_t i = 0; i < hit.tensors.size(); ++i) {
            if (!hit.tensors[i].packed) continue;
            EXPECT_EQ(hit.tensors[i].packed->codes, written.tensors[i].packed->codes) << method;
        }
        // The cache alone (no text) is enough.
        o.calib.clear();
        EXPECT_EQ(quantize_model(model, o).calibration->cache, "hit");
    }
}

TEST(CalibratedQuantize, SingularHessiansStillQuantize) {
    ModelSource model = testing::tiny_model();
    const ModelConfig& c = model.config;
    // Layer 0: four hidden channels zeroed by the norm (q/k/v and gate/up
    // never see them). Layer 1: six MLP rows zero, so down_proj's inputs
    // there are always 0. And 2 x 10 = 20 tokens < 32 and 48 inputs: every
    // Hessian is rank-deficient.
    auto edit = [&](const std::string& name, const std::function<void(std::vector<float>&)>& change) {
        TensorMap edited;
        for (const auto& [n, t] : model.tensors.all()) {
            if (n != name) {
                edited.add(n, t);
                continue;
            }
            std::vector<float> v = t.to_f32();
            change(v);
            edited.add(n, make_f32_tensor(t.shape, std::move(v)));
        }
        model.tensors = std::move(edited);
    };
    edit(layer_tensor_name(0, "input_layernorm.weight"), [](std::vector<float>& v) {
        for (int i : {1, 5, 9, 30}) v[i] = 0;
    });
    edit(layer_tensor_name(0, "post_attention_layernorm.weight"), [](std::vector<float>& v) {
        for (int i : {1, 5, 9, 30}) v[i] = 0;
    });
    for (const char* w : {"mlp.gate_proj.weight", "mlp.up_proj.weight"}) {
        edit(layer_tensor_name(1, w), [&](std::vector<float>& v) {
            for (int r = 0; r < 6; ++r) std::fill(v.begin() + r * c.hidden_size, v.begin() + (r + 1) * c.hidden_size, 0.0f);
        });
    }
    QuantizeOptions o = calibrated_options("gptq", write_text("cq-singular"));
    o.calib_samples = 2;
    o.calib_len = 10;
    const QuantizeResult r = quantize_model(model, o);
    const auto& q = report_of(r, layer_tensor_name(0, "self_attn.q_proj.weight"));
    ASSERT_TRUE(q.calibration.has_value());
    EXPECT_EQ(q.calibration->dead_inputs, 4);
    EXPECT_FALSE(q.calibration->fell_back_to_rtn);
    const auto& down = report_of(r, layer_tensor_name(1, "mlp.down_proj.weight"));
    EXPECT_EQ(down.calibration->dead_inputs, 6);
    for (const auto& t : r.reports) {
        if (t.calibration) {
            EXPECT_LE(t.calibration->weighted_error, t.calibration->weighted_error_rtn * 1.05) << t.name;
        }
    }
}

TEST(CalibratedQuantize, OptionsAreChecked) {
    QuantizeOptions o;
    o.method = "gptq";
    try {
        o.validate();
        FAIL() << "gptq without calibration data was accepted";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().field, "--calib");
    }
    o.calib = "x.txt";
    o.damp = -1;
    EXPECT_THROW(o.validate(), Error);
    o.damp = 0.01;
    o.gptq_params = "best";
    EXPECT_THROW(o.validate(), Error);
    const QuantizeOptions parsed = parse_quantize_options(
        {{"method", "gptq"}, {"calib", "c.txt"}, {"calib_samples", 16}, {"calib_len", 64}, {"seed", 3},
         {"calib_cache", "c.h5"}, {"damp", 0.05}, {"act_order", false}, {"gptq_params", "mse"}});
    EXPECT_EQ(parsed.calib_samples, 16);
    EXPECT_EQ(parsed.seed, 3u);
    EXPECT_FALSE(parsed.act_order);
    EXPECT_EQ(parsed.damp, 0.05);
    EXPECT_EQ(parse_quantize_options({{"method", "imatrix"}, {"calib", "c.txt"}, {"imatrix_score", "diagonal"}})
                  .imatrix_score,
              "diagonal");
    EXPECT_THROW(parse_quantize_options({{"method", "gptq"}, {"calib", "c.txt"}, {"calib_samplez", 3}}), Error);
    EXPECT_EQ(parse_quantize_options({{"method", "gptq"}, {"calib", "c.txt"}, {"calib_samples", "all"}}).calib_samples,
              kAllCalibrationWindows);
    EXPECT_THROW(parse_quantize_options({{"method", "gptq"}, {"calib", "c.txt"}, {"calib_samples", "most"}}), Error);
}

}  // namespace
}  // namespace sparq
