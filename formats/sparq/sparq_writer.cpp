// Writes .sparq files: header placeholder, then the data section streamed as
// tensors arrive (each plane 64-byte aligned), then the metadata and the
// table; the header, with its checksum, is patched in last and the file is
// renamed into place by AtomicFileWriter::commit().
#include <xxhash.h>

#include <algorithm>
#include <limits>

#include "core/dtype.h"
#include "core/error.h"
#include "formats/sparq/sparq_file.h"
#include "formats/sparq/sparq_format.h"
#include "formats/sparq/sparq_table.h"

namespace sparq {
namespace {

// The plane set of an encoding the spec names; unknown encodings pass.
void check_known_encoding_planes(const StoredTensor& t, const ErrorContext& where) {
    const SparqEncodingPlanes* known = find_sparq_encoding(t.encoding);
    if (!known) return;
    for (const std::string_view name : known->required) {
        bool present = false;
        for (const SparqPlaneData& p : t.planes) present = present || p.name == name;
        if (!present) fail_in(where, "encoding '", t.encoding, "' needs a plane '", name, "'");
    }
    for (const SparqPlaneData& p : t.planes) {
        bool allowed = false;
        for (const std::string_view name : known->required) allowed = allowed || p.name == name;
        for (const std::string_view name : known->optional) allowed = allowed || p.name == name;
        if (!allowed) fail_in(where, "encoding '", t.encoding, "' has no plane '", p.name, "'");
    }
    const size_t element = sparq_dense_element_size(t.encoding);
    if (element != 0) {
        const uint64_t numel = static_cast<uint64_t>(shape_numel(t.shape));
        const uint64_t bytes = t.planes.front().bytes.size();
        if (numel > std::numeric_limits<uint64_t>::max() / element || numel * element != bytes) {
            fail_in(where, "plane 'data' holds ", bytes, " bytes, but ", t.encoding, " ", shape_string(t.shape),
                    " needs ", numel, " x ", element);
        }
    }
}

// Containers nested in `value`, itself included (0 for a scalar).
int json_depth(const nlohmann::json& value) {
    int deepest = 0;
    if (value.is_structured()) {
        for (const auto& child : value) deepest = std::max(deepest, json_depth(child));
        return deepest + 1;
    }
    return 0;
}

// JSON text of `value`; invalid UTF-8 in a string becomes a sparq::Error.
template <typename Json>
std::string dump_json(const Json& value, const ErrorContext& where) {
    try {
        return value.dump();
    } catch (const nlohmann::json::exception& e) {
        fail_in(where, "cannot be written as JSON: ", e.what());
    }
}

// The table nests root, "tensors", the entry: params may add this many.
constexpr int kMaxParamsDepth = kSparqMaxTableDepth - 3;

}  // namespace

SparqWriter::SparqWriter(std::string path) : out_(std::move(path)) {
    // Placeholder for the header; the data section starts right after it.
    out_.write_zeros(kSparqHeaderBytes);
}

void SparqWriter::check_open() const {
    if (committed_) fail_in({out_.path(), "", ""}, "the .sparq writer was already committed");
}

void SparqWriter::set_metadata(nlohmann::json metadata) {
    check_open();
    if (!metadata.is_object()) {
        fail_in({out_.path(), "", "metadata"}, "must be a JSON object, found ", metadata.type_name());
    }
    if (json_depth(metadata) > kSparqMaxMetadataDepth) {
        fail_in({out_.path(), "", "metadata"}, "nests deeper than ", kSparqMaxMetadataDepth, " levels");
    }
    metadata_ = std::move(metadata);
}

void SparqWriter::set_tokenizer(std::string kind, std::span<const uint8_t> bytes) {
    add_blob(std::string(kSparqTokenizerBlob), std::move(kind), bytes);
}

uint64_t SparqWriter::write_aligned(std::span<const uint8_t> bytes) {
    out_.align_to(kSparqAlignment);
    const uint64_t offset = out_.offset();
    if (!bytes.empty()) out_.write(bytes.data(), bytes.size());
    return offset;
}

void SparqWriter::add_blob(std::string name, std::string kind, std::span<const uint8_t> bytes) {
    check_open();
    const ErrorContext where{out_.path(), "", "blobs." + name};
    if (const std::string problem = sparq_name_problem(name); !problem.empty()) fail_in(where, "name ", problem);
    if (const std::string problem = sparq_name_problem(kind); !problem.empty()) fail_in(where, "kind ", problem);
    dump_json(nlohmann::json::array({name, kind}), where);
    if (blob_names_.contains(name)) fail_in(where, "was already written");
    if (blob_names_.size() >= kSparqMaxBlobs) fail_in(where, "a file holds at most ", kSparqMaxBlobs, " blobs");
    const uint64_t offset = write_aligned(bytes);
    blobs_.push_back({{"name", name},
                      {"kind", kind},
                      {"offset", offset},
                      {"size", bytes.size()},
                      {"xxh64", xxh64_hex(XXH64(bytes.data(), bytes.size(), 0))}});
    blob_names_.insert(std::move(name));
}

void SparqWriter::add_tensor(const StoredTensor& t) {
    check_open();
    const ErrorContext where{out_.path(), t.name, ""};
    if (const std::string problem = sparq_name_problem(t.name); !problem.empty()) {
        fail_in({out_.path(), "", "name"}, "tensor name '", t.name.substr(0, 200), "' ", problem);
    }
    dump_json(nlohmann::json(t.name), {out_.path(), "", "name"});
    if (tensor_names_.contains(t.name)) fail_in(where, "was already written to this file");
    if (tensor_names_.size() >= kSparqMaxTensors) fail_in(where, "a file holds at most ", kSparqMaxTensors, " tensors");
    if (const std::string problem = sparq_identifier_problem(t.encoding); !problem.empty()) {
        fail_in({out_.path(), t.name, "encoding"}, problem);
    }
    if (t.shape.size() > kSparqMaxDims) fail_in({out_.path(), t.name, "shape"}, "has more than ", kSparqMaxDims, " dimensions");
    for (const int64_t d : t.shape) {
        if (d < 0) fail_in({out_.path(), t.name, "shape"}, shape_string(t.shape), " has a negative dimension");
    }
    try {
        shape_numel(t.shape);
    } catch (const Error& e) {
        throw e.with_file(out_.path()).with_tensor(t.name);
    }
    const ErrorContext params_where{out_.path(), t.name, "params"};
    if (!t.params.is_object()) fail_in(params_where, "must be a JSON object, found ", t.params.type_name());
    if (json_depth(t.params) > kMaxParamsDepth) fail_in(params_where, "nests deeper than ", kMaxParamsDepth, " levels");
    dump_json(t.params, params_where);
    if (t.planes.empty() || t.planes.size() > kSparqMaxPlanes) {
        fail_in({out_.path(), t.name, "planes"}, "has ", t.planes.size(), " planes, expected 1 to ", kSparqMaxPlanes);
    }
    for (size_t i = 0; i < t.planes.size(); ++i) {
        const std::string& name = t.planes[i].name;
        if (const std::string problem = sparq_identifier_problem(name); !problem.empty()) {
            fail_in({out_.path(), t.name, "planes"}, "plane name ", problem);
        }
        for (size_t j = 0; j < i; ++j) {
            if (t.planes[j].name == name) fail_in({out_.path(), t.name, "planes." + name}, "appears twice in the tensor");
        }
    }
    check_known_encoding_planes(t, {out_.path(), t.name, "planes"});

    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    nlohmann::ordered_json planes = nlohmann::ordered_json::array();
    try {
        for (const SparqPlaneData& p : t.planes) {
            const uint64_t offset = write_aligned(p.bytes);
            planes.push_back({{"name", p.name}, {"offset", offset}, {"size", p.bytes.size()}});
            if (!p.bytes.empty()) XXH64_update(state, p.bytes.data(), p.bytes.size());
        }
    } catch (...) {
        XXH64_freeState(state);
        throw;
    }
    const uint64_t checksum = XXH64_digest(state);
    XXH64_freeState(state);
    tensors_.push_back({{"name", t.name},
                        {"encoding", t.encoding},
                        {"shape", t.shape},
                        {"params", t.params},
                        {"planes", std::move(planes)},
                        {"xxh64", xxh64_hex(checksum)}});
    tensor_names_.insert(t.name);
}

void SparqWriter::add_dense(const std::string& name, const Tensor& tensor) {
    std::string encoding;
    switch (tensor.dtype) {
    case DType::F32: encoding = "f32"; break;
    case DType::F16: encoding = "f16"; break;
    case DType::BF16: encoding = "bf16"; break;
    default:
        fail_in({out_.path(), name, "dtype"}, dtype_name(tensor.dtype), " cannot be stored densely; use f32, f16 or bf16");
    }
    add_tensor({name, encoding, tensor.shape, nlohmann::json::object(), {{"data", {tensor.data, tensor.nbytes}}}});
}

void SparqWriter::commit() {
    check_open();
    SparqHeader h;
    h.data_offset = kSparqHeaderBytes;
    h.data_size = out_.offset() - kSparqHeaderBytes;

    const std::string metadata = dump_json(metadata_, {out_.path(), "", "metadata"});
    if (metadata.size() > kSparqMaxMetadataBytes) {
        fail_in({out_.path(), "", "metadata"}, "is ", metadata.size(), " bytes of JSON, at most ", kSparqMaxMetadataBytes);
    }
    const std::string table =
        dump_json(nlohmann::ordered_json{{"tensors", tensors_}, {"blobs", blobs_}}, {out_.path(), "", "table"});
    if (table.size() > kSparqMaxTableBytes) {
        fail_in({out_.path(), "", "table"}, "is ", table.size(), " bytes of JSON, at most ", kSparqMaxTableBytes);
    }
    out_.align_to(kSparqAlignment);
    h.metadata_offset = out_.offset();
    h.metadata_size = metadata.size();
    out_.write(metadata.data(), metadata.size());
    out_.align_to(kSparqAlignment);
    h.table_offset = out_.offset();
    h.table_size = table.size();
    out_.write(table.data(), table.size());
    h.file_size = out_.offset();

    std::array<uint8_t, kSparqHeaderBytes> header = encode_sparq_header(h);
    const auto as_bytes = [](const std::string& s) {
        return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    };
    h.header_checksum = sparq_header_checksum(header.data(), as_bytes(metadata), as_bytes(table));
    header = encode_sparq_header(h);
    out_.pwrite_at(0, header.data(), header.size());
    out_.commit();
    committed_ = true;
}

}  // namespace sparq
