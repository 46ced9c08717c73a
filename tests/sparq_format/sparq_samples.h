// A small .sparq file with one tensor of each named encoding (plus one of an
// encoding the spec does not name), and byte-level helpers for tests that
// corrupt or rewrite such a file. Plane sizes and params are arbitrary: the
// container does not check encoding semantics (quant/ and runtime/ do).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/sparq/sparq_file.h"
#include "formats/sparq/sparq_format.h"

namespace sparq::testing {

// Bytes that differ from plane to plane and include zeros and 0xff.
inline std::vector<uint8_t> pattern_bytes(size_t n, uint8_t seed) {
    std::vector<uint8_t> out(n);
    uint32_t x = seed * 2654435761u + 1;
    for (auto& b : out) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<uint8_t>(x >> 24);
    }
    return out;
}

struct SampleFile {
    std::vector<StoredTensor> tensors;
    std::vector<std::vector<uint8_t>> storage;  // keeps the planes' bytes alive
    nlohmann::json metadata;
    std::string tokenizer_kind = "sentencepiece";
    std::vector<uint8_t> tokenizer;
};

inline SampleFile sample_file() {
    SampleFile s;
    s.storage.reserve(32);
    auto plane = [&](const std::string& name, size_t size) {
        s.storage.push_back(pattern_bytes(size, static_cast<uint8_t>(s.storage.size())));
        return SparqPlaneData{name, s.storage.back()};
    };
    s.metadata = {{"config", {{"hidden_size", 4}, {"architectures", {"LlamaForCausalLM"}}}},
                  {"command", "sparq quantize model -o out.sparq --bits 4"},
                  {"source", {{"checksum", "xxh64:0123456789abcdef"}}},
                  {"metrics", {{"ppl", 5.25}}}};
    s.tokenizer = pattern_bytes(1000, 99);
    s.tensors.push_back({"model.embed_tokens.weight", "f16", {4, 3}, nlohmann::json::object(), {plane("data", 24)}});
    s.tensors.push_back({"model.layers.0.mlp.down_proj.weight",
                         "quant",
                         {3, 5},
                         {{"bits", 4}, {"group", 2}, {"symmetric", false}},
                         {plane("codes", 9), plane("scales", 18), plane("zeros", 6)}});
    s.tensors.push_back({"model.layers.0.mlp.up_proj.weight",
                         "nm_sparse",
                         {2, 8},
                         {{"n", 2}, {"m", 4}, {"bits", 4}, {"group", 4}},
                         {plane("values", 4), plane("indices", 2), plane("scales", 8)}});
    s.tensors.push_back({"model.layers.0.mlp.gate_proj.weight",
                         "bitmask_sparse",
                         {2, 16},
                         {{"bits", 8}, {"group", 16}},
                         {plane("mask", 4), plane("values", 11), plane("row_offsets", 24), plane("scales", 4)}});
    s.tensors.push_back({"future.codebook", "codebook_v9", {7}, {{"k", 16}}, {plane("lut", 65), plane("ids", 100)}});
    s.tensors.push_back({"empty", "f32", {0, 3}, nlohmann::json::object(), {plane("data", 0)}});
    return s;
}

inline void write_sample(const std::string& path, const SampleFile& s) {
    SparqWriter w(path);
    w.set_metadata(s.metadata);
    w.set_tokenizer(s.tokenizer_kind, s.tokenizer);
    for (const StoredTensor& t : s.tensors) w.add_tensor(t);
    w.add_dense("model.norm.weight", make_f32_tensor({5}, {1.f, -2.f, 3.5f, 0.f, 1e-3f}));
    w.commit();
}

inline void put_u64(std::string& bytes, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) bytes[at + i] = static_cast<char>(v >> (8 * i));
}

inline SparqHeader header_of(const std::string& bytes) {
    return decode_sparq_header(reinterpret_cast<const uint8_t*>(bytes.data()));
}

// Recomputes the header checksum, so a test reaches the checks after it.
inline void reseal(std::string& bytes) {
    const SparqHeader h = header_of(bytes);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
    const uint64_t sum = sparq_header_checksum(p, {p + h.metadata_offset, static_cast<size_t>(h.metadata_size)},
                                               {p + h.table_offset, static_cast<size_t>(h.table_size)});
    put_u64(bytes, sparq_header_offset::kHeaderChecksum, sum);
}

inline nlohmann::json table_of(const std::string& bytes) {
    const SparqHeader h = header_of(bytes);
    return nlohmann::json::parse(bytes.substr(h.table_offset, h.table_size));
}

// The same file with its table replaced by `table_text` (appended at the end).
inline std::string with_table(std::string bytes, const std::string& table_text) {
    put_u64(bytes, sparq_header_offset::kTableOffset, bytes.size());
    put_u64(bytes, sparq_header_offset::kTableSize, table_text.size());
    bytes += table_text;
    put_u64(bytes, sparq_header_offset::kFileSize, bytes.size());
    reseal(bytes);
    return bytes;
}

}  // namespace sparq::testing
