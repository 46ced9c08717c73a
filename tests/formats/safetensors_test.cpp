#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "error_matchers.h"
#include "formats/safetensors.h"
#include "test_data.h"

namespace sparq {
namespace {

using testing::error_text;
using testing::write_bytes;

std::string u64_le(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
    return s;
}

// A safetensors file built by hand, so the header can lie.
std::string raw_file(const std::string& header, size_t data_bytes) {
    return u64_le(header.size()) + header + std::string(data_bytes, '\x01');
}

class HostileSafetensors : public ::testing::Test {
protected:
    void SetUp() override { dir_ = testing::temp_dir("hostile-safetensors"); }
    // Writes `bytes` to a fresh file and returns its path.
    std::string file(const std::string& bytes) {
        const std::string path = dir_ + "/case" + std::to_string(count_++) + ".safetensors";
        write_bytes(path, bytes);
        return path;
    }
    std::string dir_;
    int count_ = 0;
};

TEST_F(HostileSafetensors, FileShorterThanTheLengthField) {
    const std::string path = file(std::string("\x10\0\0\0\0", 5));
    EXPECT_SPARQ_ERROR(read_safetensors(path), path, "5 bytes", "too short");
    EXPECT_SPARQ_ERROR(read_safetensors(file("")), "0 bytes");
}

TEST_F(HostileSafetensors, HeaderLengthPastTheEnd) {
    const std::string path = file(u64_le(1000) + std::string(92, ' '));
    EXPECT_SPARQ_ERROR(read_safetensors(path), path, "header length 1000", "past the end of the file (100 bytes)");
}

TEST_F(HostileSafetensors, AbsurdHeaderLength) {
    EXPECT_SPARQ_ERROR(read_safetensors(file(u64_le(uint64_t{1} << 40) + "{}")), "header length 1099511627776",
                       "exceeds the limit");
    EXPECT_SPARQ_ERROR(read_safetensors(file(u64_le(~uint64_t{0}) + "{}")), "exceeds the limit");
}

TEST_F(HostileSafetensors, InvalidJson) {
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(R"({"w": {"dtype": )", 0))), "not valid JSON");
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(std::string("{\0}", 3), 0))), "not valid JSON");
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file("[1, 2]", 0))), "must be a JSON object", "array");
}

TEST_F(HostileSafetensors, OffsetsPastTheDataSection) {
    const std::string path =
        file(raw_file(R"({"w": {"dtype": "F32", "shape": [2, 100], "data_offsets": [100, 900]}})", 800));
    EXPECT_SPARQ_ERROR(read_safetensors(path), path, "tensor 'w'", "field 'data_offsets'",
                       "[100, 900] extend past the end of the data section (800 bytes)");
}

TEST_F(HostileSafetensors, OverlappingTensors) {
    const std::string header = R"({"a": {"dtype": "F32", "shape": [100], "data_offsets": [0, 400]},
                                   "b": {"dtype": "F32", "shape": [100], "data_offsets": [200, 600]}})";
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(header, 600))), "tensor 'b'", "overlap tensor 'a'",
                       "[200, 600]", "[0, 400]");
    // One tensor wholly inside another.
    const std::string nested = R"({"outer": {"dtype": "U8", "shape": [600], "data_offsets": [0, 600]},
                                   "inner": {"dtype": "U8", "shape": [10], "data_offsets": [10, 20]}})";
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(nested, 600))), "tensor 'inner'", "overlap tensor 'outer'");
}

TEST_F(HostileSafetensors, ByteSizeDisagreesWithDtypeAndShape) {
    const std::string path = file(raw_file(R"({"w": {"dtype": "F32", "shape": [10], "data_offsets": [0, 36]}})", 40));
    EXPECT_SPARQ_ERROR(read_safetensors(path), "tensor 'w'", "span 36 bytes", "needs 10 x 4 bytes");
}

TEST_F(HostileSafetensors, ShapeWhoseProductOverflows) {
    const std::string header = R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}})";
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(header, 0))), "tensor 'w'", "field 'shape'",
                       "more elements than fit in 64 bits");
    // Fits int64 as a count, but not once multiplied by the element size.
    const std::string bytes_overflow =
        R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 0]}})";
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(bytes_overflow, 0))), "tensor 'w'", "needs 4611686018427387904 x 8");
    const std::string huge_dim = R"({"w": {"dtype": "U8", "shape": [18446744073709551615], "data_offsets": [0, 0]}})";
    EXPECT_SPARQ_ERROR(read_safetensors(file(raw_file(huge_dim, 0))), "dimension 18446744073709551615 is too large");
}

TEST_F(HostileSafetensors, UnknownDtypeIsNamed) {
    const std::string path =
        file(raw_file(R"({"scales": {"dtype": "F8_E4M3", "shape": [4], "data_offsets": [0, 4]}})", 4));
    EXPECT_SPARQ_ERROR(read_safetensors(path), "tensor 'scales'", "unknown dtype 'F8_E4M3'");
}

TEST_F(HostileSafetensors, NegativeDimension) {
    const std::string path = file(raw_file(R"({"w": {"dtype": "F32", "shape": [-1, 4], "data_offsets": [0, 16]}})", 16));
    EXPECT_SPARQ_ERROR(read_safetensors(path), "tensor 'w'", "field 'shape'", "dimension -1 is negative");
}

TEST_F(HostileSafetensors, MalformedEntries) {
    const auto read = [&](const std::string& header, size_t data = 16) { read_safetensors(file(raw_file(header, data))); };
    EXPECT_SPARQ_ERROR(read(R"({"w": {"shape": [4], "data_offsets": [0, 16]}})"), "tensor 'w'", "no 'dtype'");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "data_offsets": [0, 16]}})"), "tensor 'w'", "no 'shape'");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": [4]}})"), "tensor 'w'", "no 'data_offsets'");
    EXPECT_SPARQ_ERROR(read(R"({"w": [1, 2]})"), "tensor 'w'", "must be a JSON object");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": 7, "shape": [4], "data_offsets": [0, 16]}})"), "field 'dtype'",
                       "must be a string");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 16]}})"), "field 'shape'",
                       "must be an integer");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]}})"), "field 'shape'",
                       "must be an array");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "U8", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 1]}})"),
                       "has 9 dimensions");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}})"),
                       "[16, 0] has begin after end");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8, 16]}})"),
                       "field 'data_offsets'", "[begin, end]");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [-4, 12]}})"),
                       "begin -4 is negative");
    EXPECT_SPARQ_ERROR(read(R"({"__metadata__": {"format": 1}})"), "field '__metadata__'", "'format' must be a string");
    EXPECT_SPARQ_ERROR(read(R"({"__metadata__": "pt"})"), "field '__metadata__'", "must be a JSON object");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})"),
                       "tensor 'w'", "appears twice");
    EXPECT_SPARQ_ERROR(read(R"({"w": {"dtype": "U8", "shape": [[[1]]], "data_offsets": [0, 1]}})"),
                       "nested deeper");
    EXPECT_SPARQ_ERROR(read("{\"w\": " + std::string(100000, '[') + std::string(100000, ']') + "}"), "nested deeper");
}

TEST_F(HostileSafetensors, EmptyAndAdjacentTensorsAreFine) {
    const std::string header = R"({"__metadata__": {"format": "pt"},
        "empty": {"dtype": "F32", "shape": [0, 4], "data_offsets": [8, 8]},
        "a": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]},
        "b": {"dtype": "U8", "shape": [2, 4], "data_offsets": [8, 16]}})";
    const SafetensorsFile f = open_safetensors(file(raw_file(header, 16)));
    EXPECT_EQ(f.tensors.size(), 3u);
    EXPECT_EQ(f.metadata.at("format"), "pt");
    EXPECT_EQ(f.tensors.get("empty").nbytes, 0u);
    EXPECT_EQ(f.tensors.get("b", {2, 4}).nbytes, 8u);
}

// A tensor at an odd offset must still be readable as floats.
TEST_F(HostileSafetensors, MisalignedTensorIsCopiedToAlignedMemory) {
    const float values[2] = {1.5f, -2.25f};
    std::string data(2, '\0');
    data.append(reinterpret_cast<const char*>(values), sizeof values);
    const std::string header = R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [2, 10]}})";
    const std::string path = file(u64_le(header.size()) + header + data);
    const TensorMap m = read_safetensors(path);
    const Tensor& t = m.get("w");
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % alignof(float), 0u);
    EXPECT_EQ(t.to_f32(), std::vector<float>({1.5f, -2.25f}));
}

TEST(Safetensors, WriteThenReadRoundTrips) {
    const std::string dir = testing::temp_dir("safetensors-roundtrip");
    const std::string path = dir + "/out.safetensors";
    const Tensor a = make_f32_tensor({2, 3}, {1, 2, 3, 4, 5, 6});
    static const uint16_t halves[3] = {0x3c00, 0xc000, 0x7c00};
    Tensor b;
    b.dtype = DType::F16;
    b.shape = {3};
    b.data = reinterpret_cast<const uint8_t*>(halves);
    b.nbytes = sizeof halves;
    const Tensor empty = make_f32_tensor({0}, {});
    write_safetensors(path, {{"z.first", a}, {"a.second", b}, {"empty", empty}}, {{"format", "pt"}, {"note", "x"}});

    const std::string bytes = testing::read_bytes(path);
    uint64_t header_len = 0;
    std::memcpy(&header_len, bytes.data(), 8);
    EXPECT_EQ(header_len % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + header_len + 24 + 6);
    // Data in the order given, not sorted by name.
    EXPECT_EQ(std::memcmp(bytes.data() + 8 + header_len, a.data, 24), 0);
    EXPECT_EQ(std::memcmp(bytes.data() + 8 + header_len + 24, halves, 6), 0);

    const SafetensorsFile f = open_safetensors(path);
    EXPECT_EQ(f.metadata, (std::map<std::string, std::string>{{"format", "pt"}, {"note", "x"}}));
    EXPECT_EQ(f.tensors.get("z.first", {2, 3}).to_f32(), a.to_f32());
    EXPECT_EQ(f.tensors.get("a.second").dtype, DType::F16);
    EXPECT_EQ(std::memcmp(f.tensors.get("a.second").data, halves, 6), 0);
    EXPECT_EQ(f.tensors.get("empty").shape, Shape{0});
    EXPECT_EQ(read_safetensors_metadata(path).at("note"), "x");
}

TEST(Safetensors, WriterRefusesInconsistentTensors) {
    const std::string path = testing::temp_dir("safetensors-refuse") + "/out.safetensors";
    Tensor lying = make_f32_tensor({4}, {1, 2, 3, 4});
    lying.shape = {5};
    EXPECT_SPARQ_ERROR(write_safetensors(path, {{"w", lying}}), "tensor 'w'", "holds 16 bytes", "needs 20");
    const Tensor ok = make_f32_tensor({1}, {1});
    EXPECT_SPARQ_ERROR(write_safetensors(path, {{"w", ok}, {"w", ok}}), "appears twice");
    EXPECT_SPARQ_ERROR(write_safetensors(path, {{"__metadata__", ok}}), "reserved");
    EXPECT_FALSE(file_exists(path));
}

// The shared models: names, dtypes and shapes as their config.json says.
void check_hf_model(const std::string& folder, DType expected_dtype) {
    const std::string dir = testing::data_path(folder + "/hf");
    const nlohmann::json config = nlohmann::json::parse(read_text_file(dir + "/config.json"));
    const int64_t hidden = config["hidden_size"], inter = config["intermediate_size"];
    const int64_t layers = config["num_hidden_layers"], heads = config["num_attention_heads"];
    const int64_t kv_heads = config["num_key_value_heads"], vocab = config["vocab_size"];
    const bool tied = config.value("tie_word_embeddings", false);
    const int64_t kv_dim = hidden / heads * kv_heads;

    const TensorMap m = read_safetensors(dir + "/model.safetensors");
    std::map<std::string, Shape> expected{{"model.embed_tokens.weight", {vocab, hidden}},
                                          {"model.norm.weight", {hidden}}};
    if (!tied) expected["lm_head.weight"] = {vocab, hidden};
    for (int64_t i = 0; i < layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        expected[p + "input_layernorm.weight"] = {hidden};
        expected[p + "post_attention_layernorm.weight"] = {hidden};
        expected[p + "self_attn.q_proj.weight"] = {hidden, hidden};
        expected[p + "self_attn.k_proj.weight"] = {kv_dim, hidden};
        expected[p + "self_attn.v_proj.weight"] = {kv_dim, hidden};
        expected[p + "self_attn.o_proj.weight"] = {hidden, hidden};
        expected[p + "mlp.gate_proj.weight"] = {inter, hidden};
        expected[p + "mlp.up_proj.weight"] = {inter, hidden};
        expected[p + "mlp.down_proj.weight"] = {hidden, inter};
    }
    EXPECT_EQ(m.size(), expected.size());
    for (const auto& [name, shape] : expected) {
        ASSERT_TRUE(m.has(name)) << name;
        const Tensor& t = m.get(name);
        EXPECT_EQ(t.shape, shape) << name;
        EXPECT_EQ(t.dtype, expected_dtype) << name;
        EXPECT_EQ(t.nbytes, static_cast<size_t>(t.numel()) * dtype_size(expected_dtype)) << name;
        EXPECT_NE(t.owner, nullptr) << name;
    }
}

TEST(SafetensorsRealModels, Stories260K) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    check_hf_model("stories260K", DType::F32);
    const auto metadata = read_safetensors_metadata(testing::data_path("stories260K/hf/model.safetensors"));
    EXPECT_EQ(metadata.at("format"), "pt");
}

TEST(SafetensorsRealModels, SmallLlama) {
    SPARQ_REQUIRE_DATA("small-llama/hf/model.safetensors");
    check_hf_model("small-llama", DType::F16);
}

TEST(SafetensorsRealModels, SmallLlamaV2) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/model.safetensors");
    check_hf_model("small-llama-v2", DType::F16);
}

// Tensors are views into the mapping, which stays alive with them.
TEST(SafetensorsRealModels, TensorsAreZeroCopyAndOutliveTheReader) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    const std::string path = testing::data_path("stories260K/hf/model.safetensors");
    Tensor norm;
    {
        const TensorMap m = read_safetensors(path);
        norm = m.get("model.norm.weight");
    }
    const auto file = MappedFile::open(path);
    const uint64_t header_len = [&] {
        uint64_t v;
        std::memcpy(&v, file->data(), 8);
        return v;
    }();
    const nlohmann::json header =
        nlohmann::json::parse(file->data() + 8, file->data() + 8 + header_len);
    const uint64_t begin = header["model.norm.weight"]["data_offsets"][0];
    EXPECT_EQ(std::memcmp(norm.data, file->data() + 8 + header_len + begin, norm.nbytes), 0);
    EXPECT_EQ(norm.to_f32().size(), 64u);
}

}  // namespace
}  // namespace sparq
