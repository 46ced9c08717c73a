// Structured pruning on a tiny in-memory model: channels / heads that are
// exactly zero leave the FP32 output unchanged when removed, the pruned
// config and shapes stay valid under GQA, the written file loads back, and
// bad specs are clear errors.
#include <gtest/gtest.h>

#include <cmath>

#include "calibration/tiny_model.h"
#include "core/error.h"
#include "models/llama_reference.h"
#include "models/sparq_model.h"
#include "passes/sparsify_model.h"
#include "passes/structured_prune.h"
#include "tokenizer/tokenizer.h"

namespace sparq {
namespace {

ModelConfig wide_config() {
    ModelConfig c = testing::tiny_config();
    c.intermediate_size = 64;  // room for a multiple of 32 below it
    return c;
}

std::vector<float> logits_of(const ModelConfig& config, const TensorMap& tensors, const std::vector<int32_t>& tokens) {
    const LlamaReference reference(config, tensors);
    auto state = reference.new_state(static_cast<int64_t>(tokens.size()));
    std::vector<float> out(tokens.size() * static_cast<size_t>(config.vocab_size));
    reference.forward(*state, tokens, out.data(), true);
    return out;
}

// Sets columns `cols` of a [rows, all_cols] F32 tensor to zero.
void zero_columns(TensorMap& tensors, const std::string& name, const std::vector<int64_t>& cols) {
    const Tensor& t = tensors.get(name);
    std::vector<float> v = t.to_f32();
    for (int64_t r = 0; r < t.shape[0]; ++r) {
        for (int64_t c : cols) v[static_cast<size_t>(r * t.shape[1] + c)] = 0.0f;
    }
    TensorMap copy(tensors.source());
    for (const auto& [n, x] : tensors.all()) copy.add(n, n == name ? make_f32_tensor(t.shape, v) : x);
    tensors = std::move(copy);
}

// A model whose MLP channels 32..63 and heads 1 and 3 (one per KV group)
// contribute nothing: their down_proj / o_proj columns are zero.
ModelSource model_with_dead_parts() {
    ModelSource m = testing::tiny_model(3, wide_config());
    std::vector<int64_t> dead_channels, dead_head_cols;
    for (int64_t c = 32; c < 64; ++c) dead_channels.push_back(c);
    for (int64_t h : {1, 3}) {
        for (int64_t d = 0; d < m.config.head_dim; ++d) dead_head_cols.push_back(h * m.config.head_dim + d);
    }
    for (int64_t l = 0; l < m.config.num_layers; ++l) {
        zero_columns(m.tensors, layer_tensor_name(l, "mlp.down_proj.weight"), dead_channels);
        zero_columns(m.tensors, layer_tensor_name(l, "self_attn.o_proj.weight"), dead_head_cols);
    }
    return m;
}

void expect_same_logits(const std::vector<float>& a, const std::vector<float>& b) {
    ASSERT_EQ(a.size(), b.size());
    // Removing zero terms can only reorder float sums: equal up to rounding.
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-5 * (1 + std::abs(a[i]))) << i;
}

TEST(StructuredPrune, RemovingZeroChannelsAndHeadsKeepsTheOutput) {
    const ModelSource m = model_with_dead_parts();
    const std::vector<int32_t> tokens = m.tokenizer->encode("the cat sat on the mat", true);
    const std::vector<float> before = logits_of(m.config, m.tensors, tokens);
    StructuredOptions o;
    o.spec = parse_structured_spec("mlp=0.5,heads=0.5");
    const StructuredResult r = prune_structured(m, o);
    EXPECT_EQ(r.model.config.intermediate_size, 32);
    EXPECT_EQ(r.model.config.num_heads, 2);
    EXPECT_EQ(r.model.config.num_kv_heads, 2);
    for (const auto& l : r.layers) {
        EXPECT_EQ(l.kept_heads, (std::vector<int64_t>{0, 2}));
        ASSERT_EQ(l.kept_channels.size(), 32u);
        EXPECT_EQ(l.kept_channels.back(), 31);
    }
    expect_same_logits(before, logits_of(r.model.config, r.model.tensors, tokens));
}

TEST(StructuredPrune, CalibratedRunKeepsTheOutputOfZeroParts) {
    const ModelSource m = model_with_dead_parts();
    const std::string calib = testing::temp_dir("structured") + "/calib.txt";
    testing::write_file(calib, testing::tiny_text(4000));
    StructuredOptions o;
    o.spec = parse_structured_spec("mlp=0.5,heads=0.5");
    o.calib = calib;
    o.calib_samples = 8;
    o.calib_len = 64;
    const StructuredResult r = prune_structured(m, o);
    EXPECT_TRUE(r.calibrated);
    const std::vector<int32_t> tokens = m.tokenizer->encode("a mat ran away", true);
    expect_same_logits(logits_of(m.config, m.tensors, tokens), logits_of(r.model.config, r.model.tensors, tokens));
    for (const auto& l : r.layers) {
        // Nothing lost, so nothing to refit: the refit (damped) is not taken.
        EXPECT_FALSE(l.mlp_reconstructed);
        EXPECT_NEAR(l.mlp_error_pruned, 0.0, 1e-9);
    }
}

// With a statistics cache the blocks are scored on the full-precision
// model's statistics: zero parts still leave the output as it was, and
// block 0 (which sees the same inputs either way) keeps what the sequential
// run keeps. After the cut, a calibrated second stage needs --calib text.
TEST(StructuredPrune, CacheRunScoresOnFullPrecisionStatistics) {
    const ModelSource m = model_with_dead_parts();
    const std::string dir = testing::temp_dir("structured-cache");
    testing::write_file(dir + "/calib.txt", testing::tiny_text(4000));
    StructuredOptions o;
    o.spec = parse_structured_spec("mlp=0.5,heads=0.5");
    o.calib = dir + "/calib.txt";
    o.calib_samples = 8;
    o.calib_len = 64;
    const StructuredResult sequential = prune_structured(m, o);
    o.calib_cache = dir + "/stats.h5";  // absent: computed from the text and written
    const StructuredResult written = prune_structured(m, o);
    o.calib.clear();                    // the cache alone
    const StructuredResult cached = prune_structured(m, o);
    EXPECT_TRUE(cached.calibrated);
    ASSERT_EQ(cached.layers.size(), sequential.layers.size());
    EXPECT_EQ(cached.layers[0].kept_channels, sequential.layers[0].kept_channels);
    EXPECT_EQ(cached.layers[0].kept_heads, sequential.layers[0].kept_heads);
    for (size_t l = 0; l < cached.layers.size(); ++l) {
        EXPECT_EQ(cached.layers[l].kept_channels, written.layers[l].kept_channels) << l;
        EXPECT_NEAR(cached.layers[l].mlp_error_pruned, 0.0, 1e-9) << l;
    }
    const std::vector<int32_t> tokens = m.tokenizer->encode("a mat ran away", true);
    expect_same_logits(logits_of(m.config, m.tensors, tokens), logits_of(cached.model.config, cached.model.tensors, tokens));

    SparsifyOptions s;
    s.structured = "mlp=0.5";
    s.sparsity = 0.5;
    s.method = "wanda";
    s.calib_cache = dir + "/stats.h5";
    try {
        s.validate();
        FAIL() << "a cache of the unpruned model was accepted for the pruned model's Wanda scores";
    } catch (const Error& e) {
        EXPECT_EQ(e.context().field, "--calib");
    }
    s.calib = dir + "/calib.txt";
    EXPECT_NO_THROW(s.validate());
}

TEST(StructuredPrune, ReconstructionLowersTheLayerError) {
    const ModelSource m = testing::tiny_model(4, wide_config());
    const std::string calib = testing::temp_dir("structured-refit") + "/calib.txt";
    testing::write_file(calib, testing::tiny_text(4000));
    StructuredOptions o;
    o.spec = parse_structured_spec("mlp=0.5,heads=0.5");
    o.calib = calib;
    o.calib_samples = 8;
    o.calib_len = 64;
    const StructuredResult r = prune_structured(m, o);
    for (const auto& l : r.layers) {
        EXPECT_TRUE(l.mlp_reconstructed);
        EXPECT_LT(l.mlp_error_reconstructed, l.mlp_error_pruned);
        EXPECT_TRUE(l.attn_reconstructed);
        EXPECT_LT(l.attn_error_reconstructed, l.attn_error_pruned);
    }
}

TEST(StructuredPrune, ShapesAndConfigValidUnderGqaAndWholeGroups) {
    for (const auto& [heads, kv, spec, want_heads, want_kv] :
         std::vector<std::tuple<int64_t, int64_t, std::string, int64_t, int64_t>>{
             {4, 2, "heads=0.5", 2, 2},    // one query head from each of 2 groups
             {4, 4, "heads=0.5", 2, 2},    // no GQA: whole heads with their k/v
             {8, 4, "heads=0.25", 4, 4},   // groups of 2: one query head each
             {8, 4, "heads=0.2", 6, 3}}) {  // 0.4 of a head per group rounds to 0: one whole group
        ModelConfig c = wide_config();
        c.num_heads = heads;
        c.num_kv_heads = kv;
        c.head_dim = c.hidden_size / heads;
        const ModelSource m = testing::tiny_model(5, c);
        StructuredOptions o;
        o.spec = parse_structured_spec(spec);
        const StructuredResult r = prune_structured(m, o);
        const ModelConfig& p = r.model.config;
        EXPECT_EQ(p.num_heads, want_heads) << spec;
        EXPECT_EQ(p.num_kv_heads, want_kv) << spec;
        EXPECT_EQ(p.head_dim, c.head_dim);
        EXPECT_NO_THROW(p.validate("pruned"));
        const auto shape = [&](const std::string& s) { return r.model.tensors.get(layer_tensor_name(0, s)).shape; };
        EXPECT_EQ(shape("self_attn.q_proj.weight"), (Shape{p.q_dim(), c.hidden_size}));
        EXPECT_EQ(shape("self_attn.k_proj.weight"), (Shape{p.kv_dim(), c.hidden_size}));
        EXPECT_EQ(shape("self_attn.v_proj.weight"), (Shape{p.kv_dim(), c.hidden_size}));
        EXPECT_EQ(shape("self_attn.o_proj.weight"), (Shape{c.hidden_size, p.q_dim()}));
        EXPECT_EQ(shape("mlp.gate_proj.weight"), (Shape{64, c.hidden_size}));
        const std::vector<float> logits = logits_of(p, r.model.tensors, {1, 5, 9});
        for (float v : logits) ASSERT_TRUE(std::isfinite(v));
    }
}

// The shape-only plan (--dry-run) agrees with the pruning on every tensor's
// shape, dtype and bytes, and on the config, without reading any data.
TEST(StructuredPrune, ShapeOnlyPlanMatchesThePruning) {
    for (const auto& [heads, kv, spec] : std::vector<std::tuple<int64_t, int64_t, std::string>>{
             {4, 2, "heads=0.5"}, {8, 4, "mlp=0.5,heads=0.2"}, {4, 4, "mlp=0.25"}}) {
        ModelConfig c = wide_config();
        c.num_heads = heads;
        c.num_kv_heads = kv;
        c.head_dim = c.hidden_size / heads;
        const ModelSource m = testing::tiny_model(8, c);
        StructuredOptions o;
        o.spec = parse_structured_spec(spec);
        const StructuredResult r = prune_structured(m, o);
        const ModelSource shapes = structured_shapes(m, o.spec);
        EXPECT_EQ(shapes.config.intermediate_size, r.model.config.intermediate_size) << spec;
        EXPECT_EQ(shapes.config.num_heads, r.model.config.num_heads) << spec;
        EXPECT_EQ(shapes.config.num_kv_heads, r.model.config.num_kv_heads) << spec;
        ASSERT_EQ(shapes.tensors.names(), r.model.tensors.names()) << spec;
        for (const auto& [name, t] : r.model.tensors.all()) {
            const Tensor& planned = shapes.tensors.get(name);
            EXPECT_EQ(planned.shape, t.shape) << spec << " " << name;
            EXPECT_EQ(planned.dtype, t.dtype) << spec << " " << name;
            EXPECT_EQ(planned.nbytes, t.nbytes) << spec << " " << name;
        }
    }
    StructuredSpec none;
    EXPECT_THROW(structured_shapes(testing::tiny_model(8, wide_config()), none), Error);
}

TEST(StructuredPrune, BadSpecsAreClearErrors) {
    const ModelSource m = testing::tiny_model(6, wide_config());
    StructuredOptions o;
    o.spec.heads = 0.8;  // 4 heads in 2 groups: both heads of each group
    EXPECT_THROW(prune_structured(m, o), Error);
    SparsifyOptions s;
    s.structured = "mlp=1.5";
    EXPECT_THROW(s.validate(), Error);
    s.structured = "mlp=0.25";
    EXPECT_NO_THROW(s.validate());
    s.method = "wanda";  // nothing unstructured to score
    EXPECT_THROW(s.validate(), Error);
    EXPECT_THROW(parse_sparsify_options(nlohmann::json{{"structured", "mlp=0.5"}, {"structured_bogus", 1}}), Error);
    EXPECT_NO_THROW(parse_sparsify_options(nlohmann::json{{"structured", "mlp=0.5"}, {"structured_reconstruct", false}}));
}

// A llama2.c tokenizer.bin of `vocab` distinct pieces, so the file can store
// a tokenizer (the test byte tokenizer has no file form).
std::string llama2c_tokenizer_bytes(int vocab) {
    std::string out;
    auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
    const int32_t max_len = 8;
    put(&max_len, 4);
    for (int i = 0; i < vocab; ++i) {
        const std::string piece = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : "t" + std::to_string(i);
        const float score = -static_cast<float>(i);
        const auto len = static_cast<int32_t>(piece.size());
        put(&score, 4);
        put(&len, 4);
        put(piece.data(), piece.size());
    }
    return out;
}

// Through the sparsify pass with joint int4: the output file holds the
// pruned config and loads into a runnable model.
TEST(StructuredPrune, SparsifyWritesALoadableSmallerModel) {
    const ModelSource m = testing::tiny_model(7, wide_config());
    SparsifyOptions s;
    s.structured = "mlp=0.5,heads=0.5";
    s.bits = 4;
    s.group = 32;
    const SparsifyResult r = sparsify_model(m, s);
    ASSERT_TRUE(r.structured);
    EXPECT_EQ(r.structured->mlp_weight_bytes_after * 2, r.structured->mlp_weight_bytes_before);
    const std::string path = testing::temp_dir("structured-write") + "/pruned.sparq";
    const auto tokenizer = load_tokenizer_from_bytes(llama2c_tokenizer_bytes(static_cast<int>(m.config.vocab_size)),
                                                     "llama2c", static_cast<int>(m.config.vocab_size), "tiny");
    write_sparq_model(path, r.structured->model.config, *tokenizer, r.tensors, nlohmann::json::object());
    const ModelSource back = load_sparq_model(path, true);
    EXPECT_EQ(back.config.intermediate_size, 32);
    EXPECT_EQ(back.config.num_heads, 2);
    EXPECT_EQ(back.config.head_dim, m.config.head_dim);
    for (float v : logits_of(back.config, back.tensors, {1, 5, 9})) ASSERT_TRUE(std::isfinite(v));
}

}  // namespace
}  // namespace sparq
