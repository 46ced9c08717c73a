#include "formats/safetensors.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/tensor_view.h"

namespace sparq {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxDims = 8;
constexpr const char* kMetadataKey = "__metadata__";

uint64_t read_u64_le(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// A valid header nests at most entry -> "shape" array -> number. Refusing
// deeper containers up front keeps a hostile "[[[[..." from costing memory
// proportional to its (up to 100 MB) length; tensor names that appear twice
// are refused because JSON parsers silently keep only one of them.
json parse_header_json(const uint8_t* begin, const uint8_t* end, const std::string& source) {
    std::set<std::string> seen_names;
    auto guard = [&](int depth, json::parse_event_t event, json& parsed) {
        const bool opens = event == json::parse_event_t::object_start || event == json::parse_event_t::array_start;
        if (opens && depth >= 3) fail_in({source, "", ""}, "header JSON is nested deeper than a safetensors header can be");
        if (event == json::parse_event_t::key && depth == 1) {
            const std::string& name = parsed.get_ref<const std::string&>();
            if (!seen_names.insert(name).second) fail_in({source, name, ""}, "appears twice in the header");
        }
        return true;
    };
    try {
        return json::parse(begin, end, guard);
    } catch (const json::exception& e) {
        fail_in({source, "", ""}, "header is not valid JSON: ", e.what());
    }
}

std::map<std::string, std::string> parse_metadata(const json& value, const std::string& source) {
    const ErrorContext where{source, "", kMetadataKey};
    if (!value.is_object()) fail_in(where, "must be a JSON object, found ", value.type_name());
    std::map<std::string, std::string> out;
    for (const auto& [key, v] : value.items()) {
        if (!v.is_string()) fail_in(where, "value of '", key, "' must be a string, found ", v.type_name());
        out.emplace(key, v.get<std::string>());
    }
    return out;
}

// Reads a JSON integer that must be >= 0 and fit in int64 (shapes) or
// uint64 (offsets); `limit` is the largest accepted value.
uint64_t non_negative_integer(const json& v, uint64_t limit, const ErrorContext& where, const char* what) {
    if (!v.is_number_integer()) fail_in(where, what, " must be an integer, found ", v.type_name(), " ", v.dump());
    if (v.is_number_unsigned()) {
        const uint64_t u = v.get<uint64_t>();
        if (u > limit) fail_in(where, what, " ", u, " is too large");
        return u;
    }
    const int64_t s = v.get<int64_t>();
    if (s < 0) fail_in(where, what, " ", s, " is negative");
    return static_cast<uint64_t>(s);
}

const json& required_field(const json& entry, const char* field, const ErrorContext& tensor_where) {
    const auto it = entry.find(field);
    if (it == entry.end()) fail_in(tensor_where, "has no '", field, "' field");
    return *it;
}

struct Entry {
    std::string name;
    DType dtype;
    Shape shape;
    uint64_t begin;
    uint64_t end;
};

Entry parse_entry(const std::string& name, const json& entry, uint64_t data_size, const std::string& source) {
    const ErrorContext tensor_where{source, name, ""};
    if (!entry.is_object()) fail_in(tensor_where, "header entry must be a JSON object, found ", entry.type_name());

    Entry out{name, DType::F32, {}, 0, 0};
    const ErrorContext dtype_where{source, name, "dtype"};
    const json& dtype = required_field(entry, "dtype", tensor_where);
    if (!dtype.is_string()) fail_in(dtype_where, "must be a string, found ", dtype.type_name());
    const std::string& dtype_text = dtype.get_ref<const std::string&>();
    const auto parsed_dtype = dtype_from_safetensors(dtype_text);
    if (!parsed_dtype) {
        fail_in(dtype_where, "unknown dtype '", dtype_text, "' (supported: F32 F16 BF16 F64 I8 U8 I16 I32 I64 BOOL)");
    }
    out.dtype = *parsed_dtype;

    const ErrorContext shape_where{source, name, "shape"};
    const json& shape = required_field(entry, "shape", tensor_where);
    if (!shape.is_array()) fail_in(shape_where, "must be an array, found ", shape.type_name());
    if (shape.size() > kMaxDims) fail_in(shape_where, "has ", shape.size(), " dimensions, at most ", kMaxDims, " are supported");
    uint64_t numel = 1;
    for (const json& dim : shape) {
        const uint64_t d = non_negative_integer(dim, std::numeric_limits<int64_t>::max(), shape_where, "dimension");
        out.shape.push_back(static_cast<int64_t>(d));
        if (d != 0 && numel > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / d) {
            fail_in(shape_where, shape.dump(), " has more elements than fit in 64 bits");
        }
        numel *= d;
    }

    const ErrorContext offsets_where{source, name, "data_offsets"};
    const json& offsets = required_field(entry, "data_offsets", tensor_where);
    if (!offsets.is_array() || offsets.size() != 2) fail_in(offsets_where, "must be an array [begin, end], found ", offsets.dump());
    const uint64_t limit = std::numeric_limits<uint64_t>::max();
    out.begin = non_negative_integer(offsets[0], limit, offsets_where, "begin");
    out.end = non_negative_integer(offsets[1], limit, offsets_where, "end");
    if (out.begin > out.end) fail_in(offsets_where, "[", out.begin, ", ", out.end, "] has begin after end");
    if (out.end > data_size) {
        fail_in(offsets_where, "[", out.begin, ", ", out.end, "] extend past the end of the data section (", data_size,
                " bytes)");
    }
    const uint64_t element_size = dtype_size(out.dtype);
    const uint64_t span = out.end - out.begin;
    if (numel > span / element_size || numel * element_size != span) {
        fail_in(offsets_where, "[", out.begin, ", ", out.end, "] span ", span, " bytes, but ", dtype_text, " ",
                shape.dump(), " needs ", numel, " x ", element_size, " bytes");
    }
    return out;
}

void check_no_overlap(std::vector<const Entry*> entries, const std::string& source) {
    // Empty tensors occupy no bytes, so they cannot overlap anything.
    std::erase_if(entries, [](const Entry* e) { return e->begin == e->end; });
    std::sort(entries.begin(), entries.end(), [](const Entry* a, const Entry* b) {
        return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
    });
    for (size_t i = 1; i < entries.size(); ++i) {
        const Entry& prev = *entries[i - 1];
        const Entry& cur = *entries[i];
        if (cur.begin < prev.end) {
            fail_in({source, cur.name, "data_offsets"}, "[", cur.begin, ", ", cur.end, "] overlap tensor '", prev.name,
                    "' at [", prev.begin, ", ", prev.end, "]");
        }
    }
}

}  // namespace

SafetensorsFile parse_safetensors(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                  const std::string& source) {
    if (size < 8) fail_in({source, "", ""}, "file is ", size, " bytes, too short to hold the 8-byte header length");
    const uint64_t header_size = read_u64_le(data);
    if (header_size > kSafetensorsMaxHeaderBytes) {
        fail_in({source, "", ""}, "header length ", header_size, " exceeds the limit of ", kSafetensorsMaxHeaderBytes,
                " bytes");
    }
    if (header_size > size - 8) {
        fail_in({source, "", ""}, "header length ", header_size, " extends past the end of the file (", size, " bytes)");
    }
    const uint8_t* header = data + 8;
    const json root = parse_header_json(header, header + header_size, source);
    if (!root.is_object()) fail_in({source, "", ""}, "header must be a JSON object, found ", root.type_name());

    const uint8_t* data_section = header + header_size;
    const uint64_t data_size = size - 8 - header_size;

    SafetensorsFile out{TensorMap(source), {}};
    std::vector<Entry> entries;
    entries.reserve(root.size());
    for (const auto& [name, value] : root.items()) {
        if (name == kMetadataKey) {
            out.metadata = parse_metadata(value, source);
            continue;
        }
        entries.push_back(parse_entry(name, value, data_size, source));
    }
    std::vector<const Entry*> by_offset;
    for (const Entry& e : entries) by_offset.push_back(&e);
    check_no_overlap(std::move(by_offset), source);

    for (Entry& e : entries) {
        out.tensors.add(e.name, make_view_tensor(owner, data_section + e.begin, static_cast<size_t>(e.end - e.begin),
                                                 e.dtype, std::move(e.shape)));
    }
    return out;
}

SafetensorsFile open_safetensors(const std::string& path) {
    const std::shared_ptr<MappedFile> file = MappedFile::open(path);
    return parse_safetensors(file, file->data(), file->size(), path);
}

TensorMap read_safetensors(const std::string& path) { return open_safetensors(path).tensors; }

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
    return open_safetensors(path).metadata;
}

}  // namespace sparq
