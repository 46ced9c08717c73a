#include <gtest/gtest.h>

#include <climits>
#include <cstring>

#include "core/mapped_file.h"
#include "error_matchers.h"
#include "formats/llama2c.h"
#include "formats/rope_permutation.h"
#include "formats/safetensors.h"
#include "test_data.h"

namespace sparq {
namespace {

using testing::write_bytes;

constexpr const char* kStoriesBin = "stories260K/stories260K.bin";
constexpr size_t kStoriesBytes = 1056540;

std::string i32_le(int32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(static_cast<uint32_t>(v) >> (8 * i));
    return s;
}

void patch_i32(std::string& bytes, size_t offset, int32_t v) { bytes.replace(offset, 4, i32_le(v)); }

std::string tensor_bytes(const Tensor& t) { return std::string(reinterpret_cast<const char*>(t.data), t.nbytes); }

// q/k back in llama2.c's interleaved order, as they sit in the file.
std::string interleaved_bytes(const Tensor& t, int64_t heads, int64_t head_size) {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    permute_rows_halves_to_interleaved(t.as<float>(), out.data(), heads, head_size, t.shape[1]);
    return std::string(reinterpret_cast<const char*>(out.data()), out.size() * sizeof(float));
}

std::string layer(int64_t i, const char* suffix) { return "model.layers." + std::to_string(i) + "." + suffix; }

// Re-exports a checkpoint the way llama2.c's export.py version1_export does.
std::string version1_image(const Llama2cCheckpoint& ck, const Tensor* lm_head) {
    const ModelConfig& c = ck.config;
    std::string out = i32_le(static_cast<int32_t>(kLlama2cMagic)) + i32_le(1);
    for (int64_t v : {c.hidden_size, c.intermediate_size, c.num_layers, c.num_heads, c.num_kv_heads, c.vocab_size,
                      c.max_position_embeddings}) {
        out += i32_le(static_cast<int32_t>(v));
    }
    out += static_cast<char>(lm_head ? 0 : 1);
    out.resize(256, '\0');
    const auto all_layers = [&](const char* suffix) {
        for (int64_t i = 0; i < c.num_layers; ++i) {
            const Tensor& t = ck.tensors.get(layer(i, suffix));
            if (std::string(suffix) == "self_attn.q_proj.weight") {
                out += interleaved_bytes(t, c.num_heads, c.head_dim);
            } else if (std::string(suffix) == "self_attn.k_proj.weight") {
                out += interleaved_bytes(t, c.num_kv_heads, c.head_dim);
            } else {
                out += tensor_bytes(t);
            }
        }
    };
    all_layers("input_layernorm.weight");
    all_layers("post_attention_layernorm.weight");
    out += tensor_bytes(ck.tensors.get("model.norm.weight"));
    out += tensor_bytes(ck.tensors.get("model.embed_tokens.weight"));
    for (const char* s : {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
                          "self_attn.o_proj.weight", "mlp.gate_proj.weight", "mlp.down_proj.weight",
                          "mlp.up_proj.weight"}) {
        all_layers(s);
    }
    if (lm_head) out += tensor_bytes(*lm_head);
    return out;
}

void expect_same_tensors(const TensorMap& a, const TensorMap& b) {
    EXPECT_EQ(a.names(), b.names());
    for (const auto& [name, t] : a.all()) {
        if (!b.has(name)) continue;
        const Tensor& u = b.get(name);
        EXPECT_EQ(t.dtype, u.dtype) << name;
        ASSERT_EQ(t.shape, u.shape) << name;
        ASSERT_EQ(t.nbytes, u.nbytes) << name;
        EXPECT_EQ(std::memcmp(t.data, u.data, t.nbytes), 0) << name << " differs";
    }
}

// A float pattern unlike any real weight, to check a tensor's position.
Tensor distinct_tensor(Shape shape) {
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i) * 0.5f - 7.0f;
    return make_f32_tensor(std::move(shape), std::move(v));
}

TEST(RopePermutation, MovesEvenRowsToTheFirstHalfOfEachHead) {
    // 2 heads of size 4, one column: row r holds r.
    const std::vector<float> in = {0, 1, 2, 3, 4, 5, 6, 7};
    std::vector<float> halves(8), back(8);
    permute_rows_interleaved_to_halves(in.data(), halves.data(), 2, 4, 1);
    EXPECT_EQ(halves, std::vector<float>({0, 2, 1, 3, 4, 6, 5, 7}));
    permute_rows_halves_to_interleaved(halves.data(), back.data(), 2, 4, 1);
    EXPECT_EQ(back, in);
}

TEST(RopePermutation, InverseRoundTripsWideRows) {
    const int64_t heads = 3, head_size = 10, cols = 7;
    std::vector<float> in(heads * head_size * cols), mid(in.size()), back(in.size());
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i);
    permute_rows_halves_to_interleaved(in.data(), mid.data(), heads, head_size, cols);
    EXPECT_NE(mid, in);
    permute_rows_interleaved_to_halves(mid.data(), back.data(), heads, head_size, cols);
    EXPECT_EQ(back, in);
    EXPECT_SPARQ_ERROR(permute_rows_halves_to_interleaved(in.data(), mid.data(), 1, 3, 1), "even head size");
}

TEST(Llama2c, Stories260KConfig) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    const Llama2cCheckpoint ck = read_llama2c(testing::data_path(kStoriesBin));
    EXPECT_EQ(ck.version, 0);
    EXPECT_TRUE(ck.shared_classifier);
    const ModelConfig& c = ck.config;
    EXPECT_EQ(c.architecture, "LlamaForCausalLM");
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.intermediate_size, 172);
    EXPECT_EQ(c.num_layers, 5);
    EXPECT_EQ(c.num_heads, 8);
    EXPECT_EQ(c.num_kv_heads, 4);
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_EQ(c.max_position_embeddings, 512);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_id, 2);
    EXPECT_EQ(c.torch_dtype, "float32");
    EXPECT_EQ(ck.tensors.size(), 2u + 5u * 9u);
    EXPECT_FALSE(ck.tensors.has("lm_head.weight"));
    EXPECT_EQ(ck.tensors.get("model.layers.4.self_attn.k_proj.weight").shape, (Shape{32, 64}));
    EXPECT_EQ(ck.tensors.get("model.layers.0.mlp.down_proj.weight").shape, (Shape{64, 172}));
}

// The Hugging Face copy was converted from the same .bin with q/k permuted to
// rotate-half order; after our permutation every tensor must match exactly.
TEST(Llama2c, Stories260KIsBitIdenticalToItsSafetensorsCopy) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const Llama2cCheckpoint ck = read_llama2c(testing::data_path(kStoriesBin));
    const TensorMap hf = read_safetensors(testing::data_path("stories260K/hf/model.safetensors"));
    expect_same_tensors(ck.tensors, hf);
}

TEST(Llama2c, OnlyQueryAndKeyProjectionsAreCopied) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    const Llama2cCheckpoint ck = read_llama2c(testing::data_path(kStoriesBin));
    const auto file = std::static_pointer_cast<const MappedFile>(ck.tensors.get("model.norm.weight").owner);
    ASSERT_NE(file, nullptr);
    const auto inside = [&](const Tensor& t) {
        return t.data >= file->data() && t.data + t.nbytes <= file->data() + file->size();
    };
    EXPECT_EQ(ck.tensors.get("model.embed_tokens.weight").data, file->data() + 28);
    for (const auto& [name, t] : ck.tensors.all()) {
        const bool permuted = name.find("q_proj") != std::string::npos || name.find("k_proj") != std::string::npos;
        EXPECT_EQ(inside(t), !permuted) << name;
    }
}

TEST(Llama2c, Version1ExportReadsTheSameAsLegacy) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    const Llama2cCheckpoint legacy = read_llama2c(testing::data_path(kStoriesBin));
    const std::string image = version1_image(legacy, nullptr);
    const std::string path = testing::temp_dir("llama2c-v1") + "/stories260K.v1.bin";
    write_bytes(path, image);
    const Llama2cCheckpoint v1 = read_llama2c(path);
    EXPECT_EQ(v1.version, 1);
    EXPECT_TRUE(v1.shared_classifier);
    EXPECT_TRUE(v1.config.tie_word_embeddings);
    EXPECT_EQ(v1.config.max_position_embeddings, 512);
    expect_same_tensors(legacy.tensors, v1.tensors);
}

TEST(Llama2c, Version1WithSeparateClassifier) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    const Llama2cCheckpoint legacy = read_llama2c(testing::data_path(kStoriesBin));
    const Tensor classifier = distinct_tensor({512, 64});
    const std::string image = version1_image(legacy, &classifier);
    const Llama2cCheckpoint v1 = parse_llama2c(nullptr, reinterpret_cast<const uint8_t*>(image.data()),
                                               image.size(), "memory");
    EXPECT_FALSE(v1.shared_classifier);
    EXPECT_FALSE(v1.config.tie_word_embeddings);
    EXPECT_EQ(v1.tensors.get("lm_head.weight", {512, 64}).to_f32(), classifier.to_f32());
    EXPECT_EQ(v1.tensors.size(), legacy.tensors.size() + 1);
}

TEST(Llama2c, LegacyNegativeVocabMeansSeparateClassifier) {
    SPARQ_REQUIRE_DATA(kStoriesBin);
    std::string bytes = testing::read_bytes(testing::data_path(kStoriesBin));
    patch_i32(bytes, 20, -512);
    const Tensor classifier = distinct_tensor({512, 64});
    bytes += tensor_bytes(classifier);
    const std::string path = testing::temp_dir("llama2c-unshared") + "/unshared.bin";
    write_bytes(path, bytes);
    const Llama2cCheckpoint ck = read_llama2c(path);
    EXPECT_FALSE(ck.shared_classifier);
    EXPECT_EQ(ck.config.vocab_size, 512);
    EXPECT_EQ(ck.tensors.get("lm_head.weight", {512, 64}).to_f32(), classifier.to_f32());
}

class HostileLlama2c : public ::testing::Test {
protected:
    void SetUp() override {
        SPARQ_REQUIRE_DATA(kStoriesBin);
        stories_ = testing::read_bytes(testing::data_path(kStoriesBin));
        ASSERT_EQ(stories_.size(), kStoriesBytes);
        dir_ = testing::temp_dir("hostile-llama2c");
    }
    std::string file(const std::string& bytes) {
        const std::string path = dir_ + "/case" + std::to_string(count_++) + ".bin";
        write_bytes(path, bytes);
        return path;
    }
    // The stories260K file with header field `index` (0 = dim) replaced.
    std::string with_field(int index, int32_t value) {
        std::string bytes = stories_;
        patch_i32(bytes, 4 * static_cast<size_t>(index), value);
        return file(bytes);
    }
    std::string stories_;
    std::string dir_;
    int count_ = 0;
};

TEST_F(HostileLlama2c, TruncatedFileNamesTheFirstMissingTensor) {
    // 28 + embeddings + norms + q/k/v/o + ffn norms + 2 gate layers = 467484.
    const std::string path = file(stories_.substr(0, 500000));
    EXPECT_SPARQ_ERROR(read_llama2c(path), path, "tensor 'model.layers.2.mlp.gate_proj.weight'", "truncated",
                       "500000 bytes", "describes 1056540 bytes");
    EXPECT_SPARQ_ERROR(read_llama2c(file(stories_.substr(0, kStoriesBytes - 4))), "tensor 'freq_cis_imag'");
    EXPECT_SPARQ_ERROR(read_llama2c(file(stories_.substr(0, 27))), "27 bytes", "too short for the 28-byte");
    EXPECT_SPARQ_ERROR(read_llama2c(file("")), "0 bytes");
}

TEST_F(HostileLlama2c, TrailingBytes) {
    EXPECT_SPARQ_ERROR(read_llama2c(file(stories_ + std::string(12, '\0'))), "12 trailing bytes", "1056540");
}

TEST_F(HostileLlama2c, WrongHeaderValuesNameTheField) {
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(0, 0)), "field 'dim'", "value 0 is outside");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(0, 1 << 21)), "field 'dim'", "2097152");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(1, -172)), "field 'hidden_dim'", "-172");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(2, 5000)), "field 'n_layers'", "5000");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(3, 7)), "field 'n_heads'", "7 does not divide dim 64");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(3, 64)), "field 'n_heads'", "head size dim/n_heads = 1 must be even");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(4, 3)), "field 'n_kv_heads'", "3 does not divide n_heads 8");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(4, 16)), "field 'n_kv_heads'", "16 is outside");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(5, 0)), "field 'vocab_size'");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(5, INT_MIN)), "field 'vocab_size'", "2147483648");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(6, -1)), "field 'seq_len'");
    // Plausible values that describe a different size than the file holds.
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(2, 6)), "truncated",
                       "tensor 'model.layers.2.mlp.up_proj.weight'");
    EXPECT_SPARQ_ERROR(read_llama2c(with_field(6, 256)), "trailing bytes");
}

TEST_F(HostileLlama2c, UnsupportedVersions) {
    std::string header = i32_le(static_cast<int32_t>(kLlama2cMagic)) + i32_le(2);
    header.resize(256, '\0');
    EXPECT_SPARQ_ERROR(read_llama2c(file(header)), "field 'version'", "version 2", "not supported");
    std::string v9 = i32_le(static_cast<int32_t>(kLlama2cMagic)) + i32_le(9);
    EXPECT_SPARQ_ERROR(read_llama2c(file(v9)), "unsupported llama2.c checkpoint version 9");
    EXPECT_SPARQ_ERROR(read_llama2c(file(i32_le(static_cast<int32_t>(kLlama2cMagic)))), "too short to hold its version");
}

TEST_F(HostileLlama2c, BrokenVersion1Header) {
    const Llama2cCheckpoint legacy = read_llama2c(testing::data_path(kStoriesBin));
    const std::string image = version1_image(legacy, nullptr);
    EXPECT_SPARQ_ERROR(read_llama2c(file(image.substr(0, 100))), "100 bytes", "256-byte version 1 header");
    std::string bad_flag = image;
    bad_flag[36] = 5;
    EXPECT_SPARQ_ERROR(read_llama2c(file(bad_flag)), "field 'shared_classifier'", "found 5");
    std::string negative_vocab = image;
    patch_i32(negative_vocab, 8 + 5 * 4, -512);
    EXPECT_SPARQ_ERROR(read_llama2c(file(negative_vocab)), "field 'vocab_size'", "-512");
    std::string truncated = image.substr(0, image.size() - 1);
    EXPECT_SPARQ_ERROR(read_llama2c(file(truncated)), "tensor 'model.layers.4.mlp.up_proj.weight'");
}

}  // namespace
}  // namespace sparq
