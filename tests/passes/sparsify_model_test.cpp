// sparsify -> write -> load: the file holds what the pass produced, the
// reference path reads back the unpacked, dequantized weights, pruned
// weights are exact zeros where the magnitude mask says, and the packed
// runtime (sparse kernels) matches the reference forward.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "formats/sparq/sparq_file.h"
#include "models/llama_reference.h"
#include "models/sparq_model.h"
#include "passes/sparsify_model.h"
#include "quant/quantize_tensor.h"
#include "runtime/packed_model.h"
#include "sparsity/scores.h"
#include "test_data.h"
#include "tokenizer/tokenizer.h"

namespace sparq {
namespace {

// A llama2.c tokenizer.bin in memory: <unk>, <s>, </s>, then letters.
std::string tiny_tokenizer_bytes(int vocab) {
    std::string out;
    auto put = [&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); };
    const int32_t max_len = 8;
    put(&max_len, 4);
    for (int i = 0; i < vocab; ++i) {
        const std::string piece = i == 0 ? "<unk>" : i == 1 ? "<s>" : i == 2 ? "</s>" : std::string(1, char('a' + (i - 3) % 26)) + (i - 3 >= 26 ? "x" : "");
        const float score = -static_cast<float>(i);
        const int32_t len = static_cast<int32_t>(piece.size());
        put(&score, 4);
        put(&len, 4);
        put(piece.data(), piece.size());
    }
    return out;
}

// Two Llama blocks with random weights; the MLP width (100) ends each row of
// down_proj in a short group at group 32.
ModelSource tiny_model(DType dtype = DType::F32) {
    ModelSource m;
    m.path = "tiny";
    m.format = "synthetic";
    ModelConfig& c = m.config;
    c.hidden_size = 64;
    c.intermediate_size = 100;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 16;
    c.vocab_size = 40;
    m.tensors = TensorMap("tiny");
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 0.2f);
    auto add = [&](const std::string& name, Shape shape, bool ones) {
        std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
        for (float& x : v) x = ones ? 1.0f + 0.1f * normal(rng) : normal(rng);
        if (dtype == DType::F16) {
            for (float& x : v) x = fp16_to_fp32(fp32_to_fp16(x));
            auto storage = std::make_shared<std::vector<uint16_t>>(v.size());
            fp32_to_fp16_row(v.data(), storage->data(), v.size());
            Tensor t{DType::F16, shape, reinterpret_cast<const uint8_t*>(storage->data()), storage->size() * 2, storage};
            m.tensors.add(name, t);
        } else {
            m.tensors.add(name, make_f32_tensor(shape, std::move(v)));
        }
    };
    const int64_t d = c.hidden_size, ff = c.intermediate_size, kv = c.kv_dim();
    add("model.embed_tokens.weight", {c.vocab_size, d}, false);
    add("lm_head.weight", {c.vocab_size, d}, false);
    add("model.norm.weight", {d}, true);
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [&](const std::string& s) { return layer_tensor_name(l, s); };
        add(name("input_layernorm.weight"), {d}, true);
        add(name("post_attention_layernorm.weight"), {d}, true);
        add(name("self_attn.q_proj.weight"), {d, d}, false);
        add(name("self_attn.k_proj.weight"), {kv, d}, false);
        add(name("self_attn.v_proj.weight"), {kv, d}, false);
        add(name("self_attn.o_proj.weight"), {d, d}, false);
        add(name("mlp.gate_proj.weight"), {ff, d}, false);
        add(name("mlp.up_proj.weight"), {ff, d}, false);
        add(name("mlp.down_proj.weight"), {d, ff}, false);
    }
    m.tokenizer = load_tokenizer_from_bytes(tiny_tokenizer_bytes(40), "llama2c", 40, "tiny-tokenizer");
    return m;
}

template <typename Call>
std::string testing_error_of(Call&& call) {
    try {
        call();
    } catch (const Error& e) {
        return e.what();
    }
    return "no error";
}

const SparsifiedTensorReport& report_of(const SparsifyResult& r, const std::string& name) {
    for (const auto& t : r.reports) {
        if (t.quant.name == name) return t;
    }
    throw Error("no report for " + name);
}

const ModelTensorEntry& entry_of(const SparsifyResult& r, const std::string& name) {
    for (const auto& t : r.tensors) {
        if (t.name == name) return t;
    }
    throw Error("no entry for " + name);
}

// What the entry stores, as floats.
std::vector<float> entry_values(const ModelTensorEntry& e) {
    if (e.nm_sparse) return dequantize_tensor(unpack_nm_sparse(e.nm_sparse->view()));
    if (e.bitmask_sparse) return dequantize_tensor(unpack_bitmask_sparse(e.bitmask_sparse->view()));
    if (e.packed) return dequantize_tensor(*e.packed);
    return e.dense.to_f32();
}

// Every weight the magnitude mask prunes is stored as an exact zero, and the
// reported sparsity counts the stored zeros.
void expect_pruned_by_magnitude(const ModelSource& source, const SparsifyResult& r, const SparsityTarget& target) {
    for (const auto& [name, t] : source.tensors.all()) {
        if (!is_block_linear(name) || !report_of(r, name).pruned) continue;
        const std::vector<float> stored = entry_values(entry_of(r, name));
        const PruneMask mask = select_mask(magnitude_scores(t, name).data(), t.shape[0], t.shape[1], target, name);
        int64_t zeros = 0, pruned_nonzero = 0;
        for (size_t i = 0; i < stored.size(); ++i) {
            zeros += stored[i] == 0.0f;
            pruned_nonzero += !mask.keep[i] && stored[i] != 0.0f;
        }
        EXPECT_EQ(pruned_nonzero, 0) << name;
        EXPECT_GE(zeros, mask.pruned_count()) << name;
        EXPECT_DOUBLE_EQ(report_of(r, name).sparsity, static_cast<double>(zeros) / static_cast<double>(stored.size()))
            << name;
    }
}

// Writes the result, checks every checksum, and compares (a) the reference
// loader's tensors with the in-memory entries bit for bit and (b) the packed
// runtime's logits with the reference forward over those tensors.
// Returns the file's path.
std::string round_trip(const ModelSource& source, const SparsifyResult& r, const std::string& dir,
                       const std::string& expected_kernel_prefix) {
    const std::string path = testing::temp_dir(dir) + "/m.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, r.tensors, nlohmann::json::object());
    EXPECT_TRUE(SparqFile::open(path, true)->verify_all().empty());
    const ModelSource back = load_sparq_model(path, true);
    for (const auto& e : r.tensors) {
        const std::vector<float> expected = entry_values(e);
        const std::vector<float> got = back.tensors.get(e.name).to_f32();
        EXPECT_EQ(got.size(), expected.size()) << e.name;
        if (got.size() != expected.size()) continue;
        EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size() * 4)) << e.name;
    }
    const PackedModel packed = load_packed_model(path);
    bool sparse_kernel_ran = false;
    for (const auto& layer : packed.model->weights().layers) {
        for (const Linear* l : {layer.wq.get(), layer.w_up.get(), layer.w_down.get()}) {
            sparse_kernel_ran = sparse_kernel_ran || l->kernel_name().rfind(expected_kernel_prefix, 0) == 0;
        }
    }
    EXPECT_TRUE(sparse_kernel_ran) << "expected a " << expected_kernel_prefix << " layer, e.g. "
                                   << packed.model->weights().layers[0].wq->kernel_name();
    const LlamaReference reference(back.config, back.tensors);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 24; ++i) tokens.push_back(static_cast<int32_t>(1 + (i * 7) % (back.config.vocab_size - 1)));
    const size_t n = tokens.size() * static_cast<size_t>(back.config.vocab_size);
    std::vector<float> want(n), got(n);
    auto s1 = reference.new_state(64);
    auto s2 = packed.model->new_state(64);
    // Prefill of 20 tokens (matmul kernels), then 4 decode steps (matvec).
    reference.forward(*s1, std::span(tokens).first(20), want.data(), true);
    packed.model->forward(*s2, std::span(tokens).first(20), got.data(), true);
    for (size_t t = 20; t < tokens.size(); ++t) {
        const size_t at = t * back.config.vocab_size;
        reference.forward(*s1, std::span(tokens).subspan(t, 1), want.data() + at, false);
        packed.model->forward(*s2, std::span(tokens).subspan(t, 1), got.data() + at, false);
    }
    double scale = 0, worst = 0;
    for (size_t i = 0; i < n; ++i) {
        scale = std::max(scale, std::abs(static_cast<double>(want[i])));
        worst = std::max(worst, std::abs(static_cast<double>(want[i]) - got[i]));
    }
    // Dense layers prefill with int16 activations where the CPU has VNNI
    // (runtime/packed_model.cpp), rounding each activation block to 1/65534
    // of its largest value: the logits move by ~1e-4 of their scale.
    EXPECT_LE(worst, 3e-4 * scale + 1e-5) << "largest logit " << scale;
    return path;
}

TEST(SparsifyModel, TwoFourInt4IsNmSparseAndRunsOnTheSparseKernels) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.pattern = "2:4";
    o.bits = 4;
    o.group = 32;
    const SparsifyResult r = sparsify_model(source, o);
    expect_pruned_by_magnitude(source, r, SparsityTarget::nm(2, 4));
    int64_t params = 0, bytes = 0;
    for (const auto& e : r.tensors) {
        if (!is_block_linear(e.name)) continue;
        ASSERT_TRUE(e.nm_sparse) << e.name;
        EXPECT_TRUE(report_of(r, e.name).pruned) << e.name;
        EXPECT_EQ(report_of(r, e.name).encoding, "nm_sparse");
        const NmSparseTensor& t = *e.nm_sparse;
        params += t.rows * t.cols;
        // 2-bit kept values, 2-bit indices, one FP16 scale per 32 dense columns.
        bytes += t.rows * ((t.cols / 2 * 4 + 7) / 8 + (t.cols / 2 * 2 + 7) / 8 + 2 * ((t.cols + 31) / 32));
    }
    EXPECT_DOUBLE_EQ(r.bits_per_weight, 8.0 * static_cast<double>(bytes) / static_cast<double>(params));
    EXPECT_GE(r.sparsity, 0.5);
    // Embedding and head: int8 per channel, untouched by pruning.
    EXPECT_TRUE(entry_of(r, "model.embed_tokens.weight").packed);
    EXPECT_FALSE(report_of(r, "model.embed_tokens.weight").pruned);
    EXPECT_GT(report_of(r, "model.layers.0.mlp.up_proj.weight").quant.sqnr_db, 3.0);
    round_trip(source, r, "sparsify-nm", "nm_sparse_2:4_int4_g32_sym:");
}

TEST(SparsifyModel, AsymmetricFourEightAlsoRoundTrips) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.pattern = "4:8";
    o.bits = 4;
    o.group = 32;
    o.symmetric = false;
    o.ignore = ".*down_proj.*";  // rows of 100 columns
    const SparsifyResult r = sparsify_model(source, o);
    expect_pruned_by_magnitude(source, r, SparsityTarget::nm(4, 8));
    for (const auto& t : r.reports) {
        if (!is_block_linear(t.quant.name)) continue;
        const bool ignored = t.quant.name.find("down_proj") != std::string::npos;
        EXPECT_EQ(t.pruned, !ignored) << t.quant.name;
        // --ignore leaves a tensor alone in the joint pass, as in quantize.
        EXPECT_EQ(t.encoding, ignored ? "f32" : "nm_sparse") << t.quant.name;
    }
    round_trip(source, r, "sparsify-nm48", "nm_sparse_4:8_int4_g32_asym:");
}

TEST(SparsifyModel, UnstructuredInt8IsBitmaskSparse) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.sparsity = 0.5;
    o.bits = 8;
    const SparsifyResult r = sparsify_model(source, o);
    expect_pruned_by_magnitude(source, r, SparsityTarget::unstructured(0.5));
    for (const auto& e : r.tensors) {
        if (!is_block_linear(e.name)) continue;
        ASSERT_TRUE(e.bitmask_sparse) << e.name;
        // Mask + at most half the int8 values + row offsets + scales, well under 8 bits.
        const BitmaskSparseTensor& t = *e.bitmask_sparse;
        EXPECT_LE(t.values.size(), static_cast<size_t>(t.rows * kept_per_row(t.cols, 0.5)));
    }
    // Per dense weight: 1 mask bit, <= 4 value bits, 64-bit row offsets over
    // rows of 64 or 100 (<= 1 bit), a scale per row; dense int8 is 8.25.
    EXPECT_LT(r.bits_per_weight, 6.3);
    EXPECT_GE(r.sparsity, 0.5);
    round_trip(source, r, "sparsify-bitmask", "bitmask_sparse_int8_ch_sym:");
}

TEST(SparsifyModel, BitmaskThatSavesNothingStaysDenseQuant) {
    // int2 at 30%: 1 mask bit + 1.4 value bits + row offsets > 2 bits dense.
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.sparsity = 0.3;
    o.bits = 2;
    o.group = 32;
    const SparsifyResult r = sparsify_model(source, o);
    const auto& down = entry_of(r, "model.layers.1.mlp.down_proj.weight");
    ASSERT_TRUE(down.packed);
    EXPECT_EQ(report_of(r, down.name).encoding, "quant");
    expect_pruned_by_magnitude(source, r, SparsityTarget::unstructured(0.3));
    round_trip(source, r, "sparsify-dense-quant", "int2_g32_sym:");
}

TEST(SparsifyModel, WithoutBitsPrunedLayersStayInTheSourceDtype) {
    for (const DType dtype : {DType::F32, DType::F16}) {
        const ModelSource source = tiny_model(dtype);
        SparsifyOptions o;
        o.sparsity = 0.6;
        o.ignore = ".*k_proj.*";
        const SparsifyResult r = sparsify_model(source, o);
        for (const auto& e : r.tensors) {
            ASSERT_TRUE(e.is_dense()) << e.name;
            EXPECT_EQ(e.dense.dtype, dtype) << e.name;
            const std::vector<float> original = source.tensors.get(e.name).to_f32();
            const std::vector<float> stored = e.dense.to_f32();
            const bool pruned = is_block_linear(e.name) && e.name.find("k_proj") == std::string::npos;
            EXPECT_EQ(report_of(r, e.name).pruned, pruned) << e.name;
            for (size_t i = 0; i < stored.size(); ++i) {
                // Kept weights are the source's, bit for bit.
                if (stored[i] != 0.0f) {
                    ASSERT_EQ(stored[i], original[i]) << e.name << " " << i;
                }
            }
            if (pruned) {
                EXPECT_NEAR(report_of(r, e.name).sparsity, 0.6, 0.01) << e.name;
            } else {
                EXPECT_EQ(stored, original) << e.name;
            }
        }
        EXPECT_DOUBLE_EQ(r.bits_per_weight, dtype == DType::F32 ? 32.0 : 16.0);
    }
}

TEST(SparsifyModel, PrunedEmbeddingRowsReadBackThroughTheSparseLayers) {
    // Embedding lookups call Linear::row() on the sparse layer.
    for (const bool nm : {true, false}) {
        const ModelSource source = tiny_model();
        SparsifyOptions o;
        if (nm) {
            o.pattern = "2:4";
        } else {
            o.sparsity = 0.5;
        }
        o.bits = 8;
        o.targets = "model\\.embed_tokens\\.weight|.*_proj\\.weight";
        const SparsifyResult r = sparsify_model(source, o);
        const ModelTensorEntry& embed = entry_of(r, "model.embed_tokens.weight");
        EXPECT_TRUE(nm ? embed.nm_sparse.has_value() : embed.bitmask_sparse.has_value());
        EXPECT_TRUE(report_of(r, embed.name).pruned);
        const std::string path = round_trip(source, r, nm ? "sparsify-embed-nm" : "sparsify-embed-bitmask",
                                            nm ? "nm_sparse_2:4_int8_ch_sym:" : "bitmask_sparse_int8_ch_sym:");
        const PackedModel packed = load_packed_model(path);
        const std::vector<float> expected = entry_values(embed);
        std::vector<float> row(64);
        for (int64_t t = 0; t < 40; ++t) {
            packed.model->weights().embed->row(t, row.data());
            EXPECT_EQ(0, std::memcmp(row.data(), expected.data() + t * 64, 64 * 4)) << "row " << t;
        }
    }
}

TEST(SparsifyModel, BytesAreTheSameForAnyThreadCount) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.sparsity = 0.5;
    o.bits = 4;
    o.group = 32;
    SparsifyResult one;
    {
        ThreadLimit limit(1);
        one = sparsify_model(source, o);
    }
    const SparsifyResult many = sparsify_model(source, o);
    ASSERT_EQ(one.tensors.size(), many.tensors.size());
    for (size_t i = 0; i < one.tensors.size(); ++i) {
        EXPECT_EQ(entry_values(one.tensors[i]), entry_values(many.tensors[i])) << one.tensors[i].name;
        EXPECT_EQ(one.reports[i].quant.sqnr_db, many.reports[i].quant.sqnr_db);
    }
}

TEST(SparsifyModel, PlanNamesEncodingsAndRejectsRowsThatDoNotFitThePattern) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.pattern = "2:4";
    o.bits = 4;
    o.group = 32;
    const auto plan = plan_sparsification(source, o);
    const nlohmann::json j = sparse_plan_to_json(plan, o);
    for (const auto& e : j) {
        const bool linear = is_block_linear(e["name"].get<std::string>());
        const std::string expected = linear ? "nm_sparse" : e["shape"].size() == 1 ? "f32" : "quant";
        EXPECT_EQ(e["encoding"], expected) << e["name"];
        EXPECT_DOUBLE_EQ(e["sparsity"].get<double>(), linear ? 0.5 : 0.0);
    }
    // down_proj's rows of 100 columns cannot be cut into runs of 8.
    o.pattern = "4:8";
    try {
        plan_sparsification(source, o);
        FAIL() << "down_proj (100 columns) accepted an 8-column pattern";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("down_proj"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("--ignore"), std::string::npos) << e.what();
    }
    o.ignore = ".*down_proj.*";
    EXPECT_NO_THROW(plan_sparsification(source, o));
}

TEST(SparsifyModel, NanWeightIsAnErrorNamingTheTensor) {
    ModelSource source = tiny_model();
    const std::string victim = "model.layers.1.self_attn.o_proj.weight";
    std::vector<float> values = source.tensors.get(victim).to_f32();
    values[70] = std::numeric_limits<float>::quiet_NaN();
    TensorMap patched("tiny");
    for (const auto& [name, t] : source.tensors.all()) patched.add(name, name == victim ? make_f32_tensor(t.shape, values) : t);
    source.tensors = patched;
    SparsifyOptions o;
    o.pattern = "2:4";
    o.bits = 4;
    o.group = 32;
    try {
        sparsify_model(source, o);
        FAIL() << "NaN was pruned";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("row 1, column 6"), std::string::npos) << e.what();
    }
}

TEST(SparsifyModel, CorruptIndicesAreCaughtOnLoadAndNamed) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.pattern = "2:4";
    o.bits = 8;
    const SparsifyResult r = sparsify_model(source, o);
    const std::string path = testing::temp_dir("sparsify-corrupt") + "/m.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, r.tensors, nlohmann::json::object());
    const std::string victim = "model.layers.0.mlp.gate_proj.weight";
    const uint64_t offset = SparqFile::open(path)->tensor(victim).plane("indices", path).offset + 3;
    {
        // 0xff: four index fields of 3, out of order within their run.
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(offset));
        f.put(static_cast<char>(0xff));
    }
    for (int runtime = 0; runtime < 2; ++runtime) {
        try {
            if (runtime) {
                load_packed_model(path);
            } else {
                load_sparq_model(path);
            }
            FAIL() << "corrupt indices loaded";
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
            EXPECT_NE(std::string(e.what()).find("indices"), std::string::npos) << e.what();
        }
    }
}

TEST(SparsifyModel, RowOffsetsThatDisagreeWithTheMaskAreCaughtOnLoad) {
    const ModelSource source = tiny_model();
    SparsifyOptions o;
    o.sparsity = 0.5;
    o.bits = 8;
    const SparsifyResult r = sparsify_model(source, o);
    const std::string path = testing::temp_dir("sparsify-corrupt-offsets") + "/m.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, r.tensors, nlohmann::json::object());
    const std::string victim = "model.layers.1.self_attn.q_proj.weight";
    // row_offsets[1] (row 0's end) one byte further than row 0's 32 values.
    const uint64_t offset = SparqFile::open(path)->tensor(victim).plane("row_offsets", path).offset + 8;
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekp(static_cast<std::streamoff>(offset));
        f.put(static_cast<char>(33));
    }
    const std::string message = testing_error_of([&] { load_packed_model(path); });
    EXPECT_NE(message.find(victim), std::string::npos) << message;
    EXPECT_NE(message.find("row_offsets"), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << message;
}

TEST(SparsifyModel, Stories260KRoundTrips) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    {
        SparsifyOptions o;
        o.pattern = "2:4";
        o.bits = 4;
        o.group = 32;
        const SparsifyResult r = sparsify_model(source, o);
        expect_pruned_by_magnitude(source, r, SparsityTarget::nm(2, 4));
        round_trip(source, r, "sparsify-stories-nm", "nm_sparse_2:4_int4_g32_sym:");
    }
    {
        SparsifyOptions o;
        o.sparsity = 0.5;
        o.bits = 8;
        const SparsifyResult r = sparsify_model(source, o);
        expect_pruned_by_magnitude(source, r, SparsityTarget::unstructured(0.5));
        round_trip(source, r, "sparsify-stories-bitmask", "bitmask_sparse_int8_ch_sym:");
    }
}

}  // namespace
}  // namespace sparq
