// Sharded safetensors (model.safetensors.index.json): stories260K split into
// shards reads back bit-identical, and every way an index can lie is a
// sparq::Error that names the culprit.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "error_matchers.h"
#include "formats/safetensors.h"
#include "formats/sharded_safetensors.h"
#include "test_data.h"

namespace sparq {
namespace {

using testing::write_bytes;

void expect_same_tensors(const TensorMap& expected, const TensorMap& actual) {
    ASSERT_EQ(expected.names(), actual.names());
    for (const auto& [name, e] : expected.all()) {
        const Tensor& a = actual.get(name);
        EXPECT_EQ(e.dtype, a.dtype) << name;
        EXPECT_EQ(e.shape, a.shape) << name;
        ASSERT_EQ(e.nbytes, a.nbytes) << name;
        EXPECT_EQ(0, std::memcmp(e.data, a.data, e.nbytes)) << name;
    }
}

class ShardedSafetensors : public ::testing::Test {
protected:
    void SetUp() override {
        SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
        whole_ = read_safetensors(testing::data_path("stories260K/hf/model.safetensors"));
        dir_ = testing::temp_dir("sharded-safetensors");
        // Three shards, tensors dealt round-robin so each shard mixes layers.
        const std::vector<std::string> names = whole_.names();
        std::vector<std::vector<std::pair<std::string, Tensor>>> parts(3);
        for (size_t i = 0; i < names.size(); ++i) {
            const std::string shard = shard_name(i % 3);
            parts[i % 3].emplace_back(names[i], whole_.get(names[i]));
            weight_map_[names[i]] = shard;
        }
        for (size_t s = 0; s < 3; ++s) write_safetensors(dir_ + "/" + shard_name(s), parts[s]);
    }

    static std::string shard_name(size_t s) { return "model-0000" + std::to_string(s + 1) + "-of-00003.safetensors"; }

    // Writes an index with the given weight map (the real one by default).
    std::string write_index(const nlohmann::json& weight_map,
                            const std::string& name = "model.safetensors.index.json") {
        const nlohmann::json index = {{"metadata", {{"total_size", 1045000}}}, {"weight_map", weight_map}};
        const std::string path = dir_ + "/" + name;
        write_bytes(path, index.dump(2));
        return path;
    }
    std::string write_raw_index(const std::string& text) {
        const std::string path = dir_ + "/raw" + std::to_string(count_++) + ".index.json";
        write_bytes(path, text);
        return path;
    }
    nlohmann::json real_map() const { return nlohmann::json(weight_map_); }

    TensorMap whole_;
    std::string dir_;
    std::map<std::string, std::string> weight_map_;
    int count_ = 0;
};

TEST_F(ShardedSafetensors, ThreeShardsReadBackBitIdentical) {
    const std::string index = write_index(real_map());
    const TensorMap sharded = read_sharded_safetensors(index);
    EXPECT_EQ(sharded.source(), index);
    EXPECT_EQ(sharded.size(), 47u);
    expect_same_tensors(whole_, sharded);

    const ShardIndex parsed = read_shard_index(index);
    EXPECT_EQ(parsed.shards.size(), 3u);
    EXPECT_EQ(parsed.dir, dir_);
    EXPECT_EQ(parsed.metadata.at("total_size"), "1045000");
}

TEST_F(ShardedSafetensors, MissingShardFileIsNamed) {
    nlohmann::json map = real_map();
    map["model.norm.weight"] = "model-00004-of-00004.safetensors";
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "shard 'model-00004-of-00004.safetensors'",
                       "is missing", dir_ + "/model-00004-of-00004.safetensors");
}

TEST_F(ShardedSafetensors, TensorListedTwice) {
    const std::string path = write_raw_index(
        R"({"weight_map": {"model.norm.weight": "model-00001-of-00003.safetensors",
                           "model.norm.weight": "model-00002-of-00003.safetensors"}})");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(path), path, "tensor 'model.norm.weight'", "listed twice");
}

TEST_F(ShardedSafetensors, TensorInAShardButNotListed) {
    nlohmann::json map = real_map();
    const std::string shard = weight_map_.at("model.norm.weight");
    map.erase("model.norm.weight");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "tensor 'model.norm.weight'",
                       "not listed in the index", dir_ + "/" + shard);
}

TEST_F(ShardedSafetensors, TensorListedButAbsent) {
    nlohmann::json map = real_map();
    map["lm_head.weight"] = shard_name(1);
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "tensor 'lm_head.weight'",
                       "listed in shard '" + shard_name(1) + "'", "does not hold it");
}

TEST_F(ShardedSafetensors, TensorInTheWrongShard) {
    nlohmann::json map = real_map();
    const std::string real = weight_map_.at("model.norm.weight");
    const std::string other = real == shard_name(0) ? shard_name(1) : shard_name(0);
    map["model.norm.weight"] = other;
    // Whichever shard is read first reports the mismatch.
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "tensor 'model.norm.weight'");
}

TEST_F(ShardedSafetensors, SameTensorInTwoShards) {
    // A fourth shard repeats a tensor of shard 1; the index lists it in shard 1.
    write_safetensors(dir_ + "/extra.safetensors",
                      {{"model.norm.weight", whole_.get("model.norm.weight")},
                       {"model.embed_tokens.weight", whole_.get("model.embed_tokens.weight")}});
    nlohmann::json map = real_map();
    map["model.embed_tokens.weight"] = "extra.safetensors";
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "tensor 'model.norm.weight'",
                       "places it in shard '" + weight_map_.at("model.norm.weight") + "'");
}

TEST_F(ShardedSafetensors, ShardNamesMustStayInTheDirectory) {
    for (const std::string& evil :
         {std::string("../model-00001-of-00003.safetensors"), std::string("/etc/passwd"),
          std::string("sub/dir.safetensors"), std::string(".."), std::string(""), std::string("a\\b")}) {
        nlohmann::json map = real_map();
        map["model.norm.weight"] = evil;
        EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "tensor 'model.norm.weight'",
                           "field 'weight_map'");
    }
    nlohmann::json map = real_map();
    map["model.norm.weight"] = "../x.safetensors";
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(map)), "'../x.safetensors' must be a plain file name");
}

TEST_F(ShardedSafetensors, InvalidJsonAndWrongTypes) {
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"weight_map": {"a": )")), "not valid JSON");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index("")), "not valid JSON");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index("[1]")), "must be a JSON object", "array");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"metadata": {}})")), "no 'weight_map'");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"weight_map": []})")), "field 'weight_map'",
                       "must be a JSON object");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"weight_map": {}})")), "lists no tensors");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"weight_map": {"w": 3}})")), "tensor 'w'",
                       "must be a file name string");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(R"({"metadata": 3, "weight_map": {"w": "a"}})")),
                       "field 'metadata'");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_raw_index(std::string(100000, '[') + std::string(100000, ']'))),
                       "nested too deeply");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(dir_ + "/no-such.index.json"), "shard index not found");
}

TEST_F(ShardedSafetensors, ACorruptShardIsReportedWithItsName) {
    write_bytes(dir_ + "/" + shard_name(2), "not a safetensors file");
    EXPECT_SPARQ_ERROR(read_sharded_safetensors(write_index(real_map())), dir_ + "/" + shard_name(2));
}

TEST_F(ShardedSafetensors, GenericReaderIsCalledOncePerShard) {
    std::map<std::string, int> calls;
    const TensorMap sharded = read_sharded_checkpoint(write_index(real_map()), [&](const std::string& shard) {
        ++calls[shard];
        return read_safetensors(shard);
    });
    EXPECT_EQ(calls.size(), 3u);
    for (const auto& [shard, n] : calls) EXPECT_EQ(n, 1) << shard;
    expect_same_tensors(whole_, sharded);
}

}  // namespace
}  // namespace sparq
