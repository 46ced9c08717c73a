#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "formats/sparq/sparq_file.h"
#include "models/sparq_model.h"
#include "passes/quantize_model.h"
#include "quant/quantize_tensor.h"
#include "test_data.h"

namespace sparq {
namespace {

// Quantizes stories260K, writes it, reads it back: the file holds exactly the
// bytes quantized in memory, and the dequantized model equals them.
TEST(SparqModel, QuantizeWriteReadIsBitIdentical) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    QuantizeOptions options;
    options.bits = 4;
    options.group = 32;
    options.symmetric = false;
    const QuantizeResult q = quantize_model(source, options);
    const std::string path = testing::temp_dir("sparq-model") + "/m.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, q.tensors, nlohmann::json::object());

    const auto file = SparqFile::open(path, true);
    EXPECT_TRUE(file->verify_all().empty());
    const ModelSource back = load_sparq_model(path);
    EXPECT_EQ(back.config.hidden_size, source.config.hidden_size);
    EXPECT_EQ(back.tokenizer->encode("Once upon a time", true), source.tokenizer->encode("Once upon a time", true));
    for (const auto& entry : q.tensors) {
        const Tensor& t = back.tensors.get(entry.name);
        if (entry.packed) {
            const std::vector<float> expected = dequantize_tensor(*entry.packed);
            ASSERT_EQ(t.numel(), static_cast<int64_t>(expected.size()));
            EXPECT_EQ(0, std::memcmp(t.data, expected.data(), expected.size() * 4)) << entry.name;
            const SparqTensor& stored = file->tensor(entry.name);
            const PackedView view = packed_view(stored, path);
            EXPECT_EQ(0, std::memcmp(view.codes, entry.packed->codes.data(), entry.packed->codes.size())) << entry.name;
        } else {
            ASSERT_EQ(t.nbytes, entry.dense.nbytes);
            EXPECT_EQ(0, std::memcmp(t.data, entry.dense.data, t.nbytes)) << entry.name;
        }
    }
    // Block linears are int4 g32 asym, the embedding (tied head) int8.
    EXPECT_EQ(file->tensor("model.layers.0.mlp.down_proj.weight").params["bits"], 4);
    EXPECT_EQ(file->tensor("model.embed_tokens.weight").params["bits"], 8);
    EXPECT_EQ(file->tensor("model.norm.weight").encoding, "f32");
}

TEST(SparqModel, FlippedByteIsCaughtAndNamed) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const ModelSource source = load_model(testing::data_path("stories260K/hf"));
    QuantizeOptions options;
    options.bits = 8;
    const QuantizeResult q = quantize_model(source, options);
    const std::string path = testing::temp_dir("sparq-model-corrupt") + "/m.sparq";
    write_sparq_model(path, source.config, *source.tokenizer, q.tensors, nlohmann::json::object());
    const std::string victim = "model.layers.2.self_attn.k_proj.weight";
    const uint64_t offset = SparqFile::open(path)->tensor(victim).plane("codes", path).offset + 5;
    {
        std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
        f.seekg(static_cast<std::streamoff>(offset));
        char c = 0;
        f.read(&c, 1);
        c = static_cast<char>(c ^ 0x10);
        f.seekp(static_cast<std::streamoff>(offset));
        f.write(&c, 1);
    }
    const auto file = SparqFile::open(path, false);
    const auto bad = file->verify_all();
    ASSERT_EQ(bad.size(), 1u);
    EXPECT_EQ(bad[0], victim);
    try {
        load_sparq_model(path, true);
        FAIL() << "a corrupted file loaded with verification on";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
    }
}

TEST(SparqModel, NanInTheSourceIsAnErrorNamingTheTensor) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    ModelSource source = load_model(testing::data_path("stories260K/hf"));
    const std::string victim = "model.layers.1.mlp.up_proj.weight";
    std::vector<float> values = source.tensors.get(victim).to_f32();
    values[77] = std::numeric_limits<float>::quiet_NaN();
    TensorMap patched(source.tensors.source());
    for (const auto& [name, t] : source.tensors.all()) {
        patched.add(name, name == victim ? make_f32_tensor(t.shape, values) : t);
    }
    source.tensors = patched;
    QuantizeOptions options;
    try {
        quantize_model(source, options);
        FAIL() << "NaN was quantized";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(victim), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace sparq
