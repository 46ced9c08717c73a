#include "formats/sparq/sparq_table.h"

#include <limits>
#include <set>

#include "formats/sparq/sparq_format.h"

namespace sparq {
namespace {

using json = nlohmann::json;

const json* member(const json& object, const char* key) {
    const auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
}

const json& required(const json& object, const char* key, const ErrorContext& where) {
    const json* v = member(object, key);
    if (!v) fail_in(where, "has no '", key, "' field");
    return *v;
}

ErrorContext with_field(ErrorContext where, std::string field) {
    where.field = std::move(field);
    return where;
}

uint64_t unsigned_value(const json& v, uint64_t limit, const ErrorContext& where) {
    if (!v.is_number_integer()) fail_in(where, "must be a non-negative integer, found ", v.type_name());
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > limit) fail_in(where, u, " is larger than ", limit);
        return u;
    }
    const int64_t s = v.get<int64_t>();
    if (s < 0) fail_in(where, s, " is negative");
    return static_cast<uint64_t>(s);
}

const std::string& string_value(const json& v, const ErrorContext& where) {
    if (!v.is_string()) fail_in(where, "must be a string, found ", v.type_name());
    return v.get_ref<const std::string&>();
}

uint64_t checksum_value(const json& object, const ErrorContext& where) {
    const ErrorContext field = with_field(where, where.field.empty() ? "xxh64" : where.field + ".xxh64");
    const std::string& text = string_value(required(object, "xxh64", where), field);
    uint64_t value = 0;
    if (!parse_xxh64_hex(text, value)) fail_in(field, "must be 16 lowercase hex digits, found '", text.substr(0, 40), "'");
    return value;
}

// A plane or blob: 64-aligned and wholly inside the data section.
void read_extent(const json& entry, SparqDataSection data, const ErrorContext& where, const std::string& prefix,
                 uint64_t& offset, uint64_t& size) {
    const ErrorContext offset_where = with_field(where, prefix + ".offset");
    const uint64_t limit = std::numeric_limits<uint64_t>::max();
    offset = unsigned_value(required(entry, "offset", offset_where), limit, offset_where);
    size = unsigned_value(required(entry, "size", offset_where), limit, with_field(where, prefix + ".size"));
    if (offset % kSparqAlignment != 0) fail_in(offset_where, offset, " is not a multiple of ", kSparqAlignment);
    if (offset < data.begin || offset > data.end || size > data.end - offset) {
        fail_in(offset_where, "offset ", offset, " size ", size, " lies outside the data section [", data.begin, ", ",
                data.end, ")");
    }
}

Shape read_shape(const json& entry, const ErrorContext& where) {
    const ErrorContext shape_where = with_field(where, "shape");
    const json& shape = required(entry, "shape", where);
    if (!shape.is_array()) fail_in(shape_where, "must be an array, found ", shape.type_name());
    if (shape.size() > kSparqMaxDims) fail_in(shape_where, "has ", shape.size(), " dimensions, at most ", kSparqMaxDims);
    const uint64_t max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    Shape out;
    uint64_t numel = 1;
    for (const json& dim : shape) {
        const uint64_t d = unsigned_value(dim, max, shape_where);
        if (d != 0 && numel > max / d) fail_in(shape_where, "has more elements than fit in 63 bits");
        numel *= d;
        out.push_back(static_cast<int64_t>(d));
    }
    return out;
}

SparqTensor parse_tensor(const json& entry, size_t index, SparqDataSection data, const std::string& source) {
    const ErrorContext entry_where{source, detail::concat('#', index), ""};
    if (!entry.is_object()) fail_in(entry_where, "table entry must be a JSON object, found ", entry.type_name());
    SparqTensor t;
    t.name = string_value(required(entry, "name", entry_where), with_field(entry_where, "name"));
    if (const std::string problem = sparq_name_problem(t.name); !problem.empty()) {
        fail_in(with_field(entry_where, "name"), problem);
    }
    const ErrorContext where{source, t.name, ""};
    t.encoding = string_value(required(entry, "encoding", where), with_field(where, "encoding"));
    if (const std::string problem = sparq_identifier_problem(t.encoding); !problem.empty()) {
        fail_in(with_field(where, "encoding"), problem);
    }
    t.shape = read_shape(entry, where);
    t.params = json::object();
    if (const json* params = member(entry, "params")) {
        if (!params->is_object()) fail_in(with_field(where, "params"), "must be a JSON object, found ", params->type_name());
        t.params = *params;
    }
    const ErrorContext planes_where = with_field(where, "planes");
    const json& planes = required(entry, "planes", where);
    if (!planes.is_array()) fail_in(planes_where, "must be an array, found ", planes.type_name());
    if (planes.empty() || planes.size() > kSparqMaxPlanes) {
        fail_in(planes_where, "has ", planes.size(), " planes, expected 1 to ", kSparqMaxPlanes);
    }
    std::set<std::string, std::less<>> plane_names;
    for (const json& p : planes) {
        if (!p.is_object()) fail_in(planes_where, "each plane must be a JSON object, found ", p.type_name());
        SparqPlane plane;
        plane.name = string_value(required(p, "name", planes_where), with_field(where, "planes.name"));
        const std::string prefix = "planes." + plane.name;
        if (const std::string problem = sparq_identifier_problem(plane.name); !problem.empty()) {
            fail_in(with_field(where, prefix), problem);
        }
        if (!plane_names.insert(plane.name).second) fail_in(with_field(where, prefix), "appears twice in the tensor");
        read_extent(p, data, where, prefix, plane.offset, plane.size);
        t.planes.push_back(std::move(plane));
    }
    t.checksum = checksum_value(entry, where);
    return t;
}

SparqBlob parse_blob(const json& entry, size_t index, SparqDataSection data, const std::string& source) {
    const ErrorContext entry_where{source, "", detail::concat("blobs.#", index)};
    if (!entry.is_object()) fail_in(entry_where, "must be a JSON object, found ", entry.type_name());
    SparqBlob blob;
    blob.name = string_value(required(entry, "name", entry_where), with_field(entry_where, "blobs.name"));
    if (const std::string problem = sparq_name_problem(blob.name); !problem.empty()) fail_in(entry_where, problem);
    const std::string prefix = "blobs." + blob.name;
    const ErrorContext where{source, "", prefix};
    blob.kind = string_value(required(entry, "kind", where), with_field(where, prefix + ".kind"));
    if (const std::string problem = sparq_name_problem(blob.kind); !problem.empty()) {
        fail_in(with_field(where, prefix + ".kind"), problem);
    }
    read_extent(entry, data, ErrorContext{source, "", ""}, prefix, blob.offset, blob.size);
    blob.checksum = checksum_value(entry, where);
    return blob;
}

}  // namespace

json parse_sparq_json(const uint8_t* bytes, uint64_t size, int max_depth, const ErrorContext& where) {
    std::vector<std::set<std::string>> keys_of_open_objects;
    auto guard = [&](int depth, json::parse_event_t event, json& parsed) {
        switch (event) {
        case json::parse_event_t::object_start:
        case json::parse_event_t::array_start:
            if (depth >= max_depth) fail_in(where, "JSON nests deeper than ", max_depth, " levels");
            if (event == json::parse_event_t::object_start) keys_of_open_objects.emplace_back();
            break;
        case json::parse_event_t::object_end:
            if (!keys_of_open_objects.empty()) keys_of_open_objects.pop_back();
            break;
        case json::parse_event_t::key:
            if (!keys_of_open_objects.empty() &&
                !keys_of_open_objects.back().insert(parsed.get_ref<const std::string&>()).second) {
                fail_in(where, "key '", parsed.get_ref<const std::string&>().substr(0, 200),
                        "' appears twice in one JSON object");
            }
            break;
        default:
            break;
        }
        return true;
    };
    try {
        return json::parse(bytes, bytes + size, guard);
    } catch (const json::exception& e) {
        fail_in(where, "is not valid JSON: ", e.what());
    }
}

SparqTable parse_sparq_table(const json& table, SparqDataSection data, const std::string& source) {
    const ErrorContext where{source, "", "table"};
    if (!table.is_object()) fail_in(where, "must be a JSON object, found ", table.type_name());
    SparqTable out;
    const json& tensors = required(table, "tensors", where);
    if (!tensors.is_array()) fail_in(with_field(where, "tensors"), "must be an array, found ", tensors.type_name());
    if (tensors.size() > kSparqMaxTensors) {
        fail_in(with_field(where, "tensors"), "lists ", tensors.size(), " tensors, at most ", kSparqMaxTensors);
    }
    std::set<std::string, std::less<>> names;
    for (size_t i = 0; i < tensors.size(); ++i) {
        SparqTensor t = parse_tensor(tensors[i], i, data, source);
        if (!names.insert(t.name).second) fail_in({source, t.name, "name"}, "appears twice in the tensor table");
        out.tensors.push_back(std::move(t));
    }
    if (const json* blobs = member(table, "blobs")) {
        if (!blobs->is_array()) fail_in(with_field(where, "blobs"), "must be an array, found ", blobs->type_name());
        if (blobs->size() > kSparqMaxBlobs) {
            fail_in(with_field(where, "blobs"), "lists ", blobs->size(), " blobs, at most ", kSparqMaxBlobs);
        }
        std::set<std::string, std::less<>> blob_names;
        for (size_t i = 0; i < blobs->size(); ++i) {
            SparqBlob b = parse_blob((*blobs)[i], i, data, source);
            if (!blob_names.insert(b.name).second) fail_in({source, "", "blobs." + b.name}, "appears twice");
            out.blobs.push_back(std::move(b));
        }
    }
    return out;
}

std::string sparq_name_problem(const std::string& name) {
    if (name.empty()) return "is empty";
    if (name.size() > kSparqMaxNameBytes) {
        return detail::concat("is ", name.size(), " bytes long, at most ", kSparqMaxNameBytes);
    }
    for (const char c : name) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "contains a control character";
    }
    return "";
}

std::string sparq_identifier_problem(const std::string& identifier) {
    if (identifier.empty()) return "is empty";
    if (identifier.size() > kSparqMaxEncodingBytes) {
        return detail::concat("'", identifier.substr(0, 80), "' is longer than ", kSparqMaxEncodingBytes, " bytes");
    }
    for (const char c : identifier) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
            return detail::concat("'", identifier, "' has a character other than a-z, 0-9 and _");
        }
    }
    return "";
}

}  // namespace sparq
