// Sharded checkpoints: an index JSON (Hugging Face's
// model.safetensors.index.json or pytorch_model.bin.index.json)
//   {"metadata": {...}, "weight_map": {"<tensor name>": "<shard file>", ...}}
// names, for every tensor, the file beside the index that holds it.
//
// The index is hostile input like the shards: shard names must be plain file
// names in the index's directory (no directories, no ".."), every shard is
// read once, every tensor the index lists must be in exactly the shard it
// names, and every tensor of every shard must be listed (so no tensor is
// dropped silently and none appears twice). Failures are sparq::Error naming
// the index, the shard and the tensor.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/tensor_map.h"

namespace sparq {

// Index files above this size are refused before they are read (a real index
// lists a few thousand names: well under a megabyte).
inline constexpr uint64_t kShardIndexMaxBytes = 64ull << 20;

struct ShardIndex {
    std::string path;                               // the index file
    std::string dir;                                // its directory ("." when none)
    std::map<std::string, std::string> weight_map;  // tensor -> shard file name
    std::vector<std::string> shards;                // distinct shard file names, sorted
    std::map<std::string, std::string> metadata;    // "metadata", each value as its JSON text
};

// Parses and checks an index (shard names, duplicate tensor names) without
// opening any shard.
ShardIndex read_shard_index(const std::string& index_json_path);

// Reads every shard of the index with `read_shard` (given the shard's path),
// checks that the shards hold exactly the tensors the index places in them,
// and merges them into one map whose source is the index path.
TensorMap read_sharded_checkpoint(const std::string& index_json_path,
                                  const std::function<TensorMap(const std::string&)>& read_shard);

// model.safetensors.index.json: each shard memory-mapped once (zero-copy).
TensorMap read_sharded_safetensors(const std::string& index_json_path);

}  // namespace sparq
