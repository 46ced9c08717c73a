// Parsing of the JSON parts of a .sparq file (internal to the reader). The
// table is checked entry by entry: names, encodings, shapes, and each plane's
// offset and size against the data section. Pointers are set by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/sparq/sparq_file.h"

namespace sparq {

// Parses JSON that must nest at most `max_depth` containers and may not
// repeat a key within an object (parsers disagree on which copy wins).
nlohmann::json parse_sparq_json(const uint8_t* bytes, uint64_t size, int max_depth, const ErrorContext& where);

// The data section as absolute file offsets [begin, end).
struct SparqDataSection {
    uint64_t begin;
    uint64_t end;
};

struct SparqTable {
    std::vector<SparqTensor> tensors;
    std::vector<SparqBlob> blobs;
};

// Checks every entry of the table object; does not check overlaps.
SparqTable parse_sparq_table(const nlohmann::json& table, SparqDataSection data, const std::string& source);

// Name rules shared with the writer; each returns an explanation or "".
std::string sparq_name_problem(const std::string& name);
std::string sparq_identifier_problem(const std::string& identifier);  // encodings, plane names

}  // namespace sparq
