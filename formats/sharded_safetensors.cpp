#include "formats/sharded_safetensors.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/safetensors.h"

namespace sparq {
namespace {

using json = nlohmann::json;

// An index nests root -> "metadata"/"weight_map" -> values; metadata values
// may be small objects of their own. Anything deeper is refused while
// parsing, so a hostile "[[[[..." costs no memory.
constexpr int kMaxIndexDepth = 6;

json parse_index_json(const std::string& text, const std::string& path) {
    std::string top_key;
    std::set<std::string> seen_tensors;
    auto guard = [&](int depth, json::parse_event_t event, json& parsed) {
        const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
        if (opens && depth >= kMaxIndexDepth) fail_in({path, "", ""}, "index JSON is nested too deeply");
        if (event == json::parse_event_t::key) {
            const std::string& key = parsed.get_ref<const std::string&>();
            if (depth == 1) {
                top_key = key;
            } else if (depth == 2 && top_key == "weight_map" && !seen_tensors.insert(key).second) {
                // JSON parsers silently keep one of two equal keys.
                fail_in({path, key, "weight_map"}, "is listed twice");
            }
        }
        return true;
    };
    try {
        return json::parse(text, guard);
    } catch (const json::exception& e) {
        fail_in({path, "", ""}, "index is not valid JSON: ", e.what());
    }
}

// A shard must be a plain file name beside the index: nothing that reaches
// another directory.
void check_shard_name(const std::string& shard, const std::string& tensor, const std::string& path) {
    const ErrorContext where{path, tensor, "weight_map"};
    if (shard.empty()) fail_in(where, "names an empty shard file name");
    if (shard == "." || shard == "..") fail_in(where, "shard '", shard, "' is not a file name");
    if (shard.find('/') != std::string::npos || shard.find('\\') != std::string::npos) {
        fail_in(where, "shard '", shard, "' must be a plain file name in the index's directory (no '/')");
    }
    if (shard.find('\0') != std::string::npos) fail_in(where, "shard name contains a NUL byte");
}

}  // namespace

ShardIndex read_shard_index(const std::string& index_json_path) {
    namespace fs = std::filesystem;
    const std::string& path = index_json_path;
    if (!file_exists(path)) fail_in({path, "", ""}, "shard index not found");
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    if (ec) fail_in({path, "", ""}, "cannot read the size of the shard index: ", ec.message());
    if (size > kShardIndexMaxBytes) {
        fail_in({path, "", ""}, "shard index is ", size, " bytes, more than the limit of ", kShardIndexMaxBytes);
    }
    const json root = parse_index_json(read_text_file(path), path);
    if (!root.is_object()) fail_in({path, "", ""}, "index must be a JSON object, found ", root.type_name());

    ShardIndex index;
    index.path = path;
    const std::string dir = fs::path(path).parent_path().string();
    index.dir = dir.empty() ? "." : dir;

    if (const auto meta = root.find("metadata"); meta != root.end() && !meta->is_null()) {
        if (!meta->is_object()) fail_in({path, "", "metadata"}, "must be a JSON object, found ", meta->type_name());
        for (const auto& [key, value] : meta->items()) {
            index.metadata.emplace(key, value.is_string() ? value.get<std::string>() : value.dump());
        }
    }

    const auto map = root.find("weight_map");
    if (map == root.end()) fail_in({path, "", ""}, "index has no 'weight_map'");
    if (!map->is_object()) fail_in({path, "", "weight_map"}, "must be a JSON object, found ", map->type_name());
    if (map->empty()) fail_in({path, "", "weight_map"}, "lists no tensors");
    std::set<std::string> shards;
    for (const auto& [tensor, shard] : map->items()) {
        if (!shard.is_string()) {
            fail_in({path, tensor, "weight_map"}, "shard must be a file name string, found ", shard.type_name());
        }
        const std::string& name = shard.get_ref<const std::string&>();
        check_shard_name(name, tensor, path);
        index.weight_map.emplace(tensor, name);
        shards.insert(name);
    }
    index.shards.assign(shards.begin(), shards.end());
    return index;
}

TensorMap read_sharded_checkpoint(const std::string& index_json_path,
                                  const std::function<TensorMap(const std::string&)>& read_shard) {
    const ShardIndex index = read_shard_index(index_json_path);

    // The tensors the index places in each shard.
    std::map<std::string, std::set<std::string>> listed;
    for (const auto& [tensor, shard] : index.weight_map) listed[shard].insert(tensor);

    // Every shard must exist before any is read: the first error names the
    // missing file, not whatever the reader would make of it.
    for (const std::string& shard : index.shards) {
        const std::string shard_path = index.dir + "/" + shard;
        if (!file_exists(shard_path)) {
            fail_in({index.path, "", ""}, "shard '", shard, "' listed in the index is missing (", shard_path, ")");
        }
    }

    TensorMap out(index.path);
    for (const std::string& shard : index.shards) {
        const std::string shard_path = index.dir + "/" + shard;
        TensorMap part = read_shard(shard_path);  // each shard read (mapped) once
        const std::set<std::string>& expected = listed[shard];
        for (const auto& [name, tensor] : part.all()) {
            if (expected.count(name)) continue;
            const auto it = index.weight_map.find(name);
            if (it == index.weight_map.end()) {
                fail_in({shard_path, name, ""}, "is in the shard but not listed in the index ", index.path);
            }
            fail_in({shard_path, name, ""}, "is in this shard but the index ", index.path, " places it in shard '",
                    it->second, "'");
        }
        for (const std::string& name : expected) {
            if (!part.has(name)) {
                fail_in({index.path, name, ""}, "is listed in shard '", shard, "' but that shard does not hold it");
            }
        }
        for (const auto& [name, tensor] : part.all()) out.add(name, tensor);
    }
    return out;
}

TensorMap read_sharded_safetensors(const std::string& index_json_path) {
    return read_sharded_checkpoint(index_json_path, [](const std::string& shard) { return read_safetensors(shard); });
}

}  // namespace sparq
