// Reads .sparq files as hostile input: the header is checked field by field
// (with overflow-safe bounds), its checksum before any JSON is parsed, and
// every table entry before a pointer into the file is formed.
#include <xxhash.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/sparq/sparq_file.h"
#include "formats/sparq/sparq_format.h"
#include "formats/sparq/sparq_table.h"
#include "formats/tensor_view.h"

namespace sparq {
namespace {

using json = nlohmann::json;

std::string hex_bytes(const uint8_t* p, size_t n) {
    std::string out;
    char buf[4];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%s%02x", i ? " " : "", p[i]);
        out += buf;
    }
    return out;
}

struct Section {
    const char* name;  // "metadata", "table", "data"
    uint64_t offset;
    uint64_t size;
};

// Every section lies in the file, after the header, and apart from the others.
void check_sections(const std::vector<Section>& sections, uint64_t file_size, const std::string& source) {
    for (const Section& s : sections) {
        const ErrorContext where{source, "", std::string(s.name) + "_offset"};
        if (s.offset < kSparqHeaderBytes) fail_in(where, s.offset, " lies inside the ", kSparqHeaderBytes, "-byte header");
        if (s.offset > file_size || s.size > file_size - s.offset) {
            fail_in(where, "the ", s.name, " section (offset ", s.offset, ", size ", s.size,
                    ") extends past the end of the file (", file_size, " bytes)");
        }
    }
    for (size_t i = 0; i < sections.size(); ++i) {
        for (size_t j = i + 1; j < sections.size(); ++j) {
            const Section& a = sections[i];
            const Section& b = sections[j];
            if (a.size == 0 || b.size == 0) continue;
            if (a.offset < b.offset + b.size && b.offset < a.offset + a.size) {
                fail_in({source, "", std::string(b.name) + "_offset"}, "the ", b.name, " section [", b.offset, ", ",
                        b.offset + b.size, ") overlaps the ", a.name, " section [", a.offset, ", ", a.offset + a.size,
                        ")");
            }
        }
    }
}

SparqHeader check_header(const uint8_t* data, size_t size, const std::string& source) {
    const ErrorContext file_where{source, "", ""};
    if (size < kSparqHeaderBytes) {
        fail_in(file_where, "file is ", size, " bytes, too short for the ", kSparqHeaderBytes,
                "-byte .sparq header (truncated?)");
    }
    if (!std::equal(kSparqMagic.begin(), kSparqMagic.end(), data)) {
        fail_in(file_where, "not a .sparq file: the first 8 bytes are ", hex_bytes(data, 8), ", expected ",
                hex_bytes(kSparqMagic.data(), 8));
    }
    const SparqHeader h = decode_sparq_header(data);
    const ErrorContext endian_where{source, "", "endian_marker"};
    if (h.endian_marker == 0x04030201) {
        fail_in(endian_where, "the file is big-endian; .sparq files are little-endian and sparq reads no other");
    }
    if (h.endian_marker != kSparqEndianMarker) {
        fail_in(endian_where, "is ", hex_bytes(data + sparq_header_offset::kEndianMarker, 4),
                ", expected 04 03 02 01 (0x01020304 little-endian)");
    }
    if (h.major_version != kSparqMajorVersion) {
        fail_in({source, "", "major_version"}, "format version ", h.major_version, ".", h.minor_version,
                " is not supported; this sparq reads version ", kSparqMajorVersion, ".x");
    }
    const ErrorContext size_where{source, "", "file_size"};
    if (h.file_size > size) {
        fail_in(size_where, "file is truncated: the header records ", h.file_size, " bytes, the file has ", size);
    }
    if (h.file_size < size) {
        fail_in(size_where, "the header records ", h.file_size, " bytes, but the file has ", size,
                " (bytes appended after the end)");
    }
    if (h.metadata_size == 0 || h.metadata_size > kSparqMaxMetadataBytes) {
        fail_in({source, "", "metadata_size"}, h.metadata_size, " is outside [1, ", kSparqMaxMetadataBytes, "]");
    }
    if (h.table_size == 0 || h.table_size > kSparqMaxTableBytes) {
        fail_in({source, "", "table_size"}, h.table_size, " is outside [1, ", kSparqMaxTableBytes, "]");
    }
    if (h.data_offset % kSparqAlignment != 0) {
        fail_in({source, "", "data_offset"}, h.data_offset, " is not a multiple of ", kSparqAlignment);
    }
    check_sections({{"metadata", h.metadata_offset, h.metadata_size},
                    {"table", h.table_offset, h.table_size},
                    {"data", h.data_offset, h.data_size}},
                   size, source);
    const uint64_t computed =
        sparq_header_checksum(data, {data + h.metadata_offset, static_cast<size_t>(h.metadata_size)},
                              {data + h.table_offset, static_cast<size_t>(h.table_size)});
    if (computed != h.header_checksum) {
        fail_in({source, "", "header_checksum"}, "mismatch: the header, metadata or tensor table is corrupt (stored ",
                xxh64_hex(h.header_checksum), ", computed ", xxh64_hex(computed), ")");
    }
    return h;
}

// One byte range of the data section and who owns it, for the overlap check.
struct Extent {
    uint64_t begin;
    uint64_t end;
    std::string tensor;  // empty for a blob
    std::string field;   // "planes.codes" or "blobs.tokenizer"
};

void check_no_overlap(std::vector<Extent> extents, const std::string& source) {
    std::erase_if(extents, [](const Extent& e) { return e.begin == e.end; });
    std::sort(extents.begin(), extents.end(), [](const Extent& a, const Extent& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    // Sorted by start, any overlap shows between neighbours.
    for (size_t i = 1; i < extents.size(); ++i) {
        const Extent& prev = extents[i - 1];
        const Extent& e = extents[i];
        if (e.begin < prev.end) {
            const std::string other = prev.tensor.empty() ? prev.field : "tensor '" + prev.tensor + "' " + prev.field;
            fail_in({source, e.tensor, e.field + ".offset"}, "[", e.begin, ", ", e.end, ") overlaps ", other, " at [",
                    prev.begin, ", ", prev.end, ")");
        }
    }
}

}  // namespace

std::shared_ptr<SparqFile> SparqFile::parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                            const std::string& source, bool verify_checksums) {
    const SparqHeader h = check_header(data, size, source);
    const SparqDataSection section{h.data_offset, h.data_offset + h.data_size};

    const json metadata = parse_sparq_json(data + h.metadata_offset, h.metadata_size, kSparqMaxMetadataDepth,
                                           {source, "", "metadata"});
    if (!metadata.is_object()) {
        fail_in({source, "", "metadata"}, "must be a JSON object, found ", metadata.type_name());
    }
    const json table =
        parse_sparq_json(data + h.table_offset, h.table_size, kSparqMaxTableDepth, {source, "", "table"});
    SparqTable parsed = parse_sparq_table(table, section, source);

    std::shared_ptr<SparqFile> file(new SparqFile());
    file->owner_ = std::move(owner);
    file->data_ = data;
    file->size_ = size;
    file->source_ = source;
    file->major_version_ = h.major_version;
    file->minor_version_ = h.minor_version;
    file->metadata_ = metadata;

    std::vector<Extent> extents;
    for (SparqBlob& blob : parsed.blobs) {
        extents.push_back({blob.offset, blob.offset + blob.size, "", "blobs." + blob.name});
        blob.data = data + blob.offset;
    }
    for (SparqTensor& tensor : parsed.tensors) {
        for (SparqPlane& plane : tensor.planes) {
            extents.push_back({plane.offset, plane.offset + plane.size, tensor.name, "planes." + plane.name});
            plane.data = data + plane.offset;
        }
    }
    check_no_overlap(std::move(extents), source);

    // Blobs are small and read whole by whoever uses them: always verified.
    for (const SparqBlob& blob : parsed.blobs) {
        const uint64_t computed = XXH64(blob.data, static_cast<size_t>(blob.size), 0);
        if (computed != blob.checksum) {
            fail_in({source, "", "blobs." + blob.name + ".xxh64"}, "checksum mismatch: the blob is corrupt (stored ",
                    xxh64_hex(blob.checksum), ", computed ", xxh64_hex(computed), ")");
        }
    }
    file->blobs_ = std::move(parsed.blobs);
    file->tensors_ = std::move(parsed.tensors);
    for (size_t i = 0; i < file->tensors_.size(); ++i) file->tensor_index_.emplace(file->tensors_[i].name, i);

    if (verify_checksums) {
        for (const SparqTensor& t : file->tensors_) {
            if (!file->verify_tensor(t)) {
                fail_in({source, t.name, "xxh64"}, "checksum mismatch: the tensor's planes are corrupt");
            }
        }
    }
    return file;
}

std::shared_ptr<SparqFile> SparqFile::open(const std::string& path, bool verify_checksums) {
    const std::shared_ptr<MappedFile> mapped = MappedFile::open(path);
    return parse(mapped, mapped->data(), mapped->size(), path, verify_checksums);
}

const SparqBlob* SparqFile::find_blob(std::string_view name) const {
    for (const SparqBlob& b : blobs_) {
        if (b.name == name) return &b;
    }
    return nullptr;
}

const SparqTensor* SparqFile::find(std::string_view name) const {
    const auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const SparqTensor& SparqFile::tensor(std::string_view name) const {
    const SparqTensor* t = find(name);
    if (!t) fail_in({source_, std::string(name), ""}, "is not in the file");
    return *t;
}

bool SparqFile::verify_tensor(const SparqTensor& tensor) const {
    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    for (const SparqPlane& p : tensor.planes) {
        if (p.size) XXH64_update(state, p.data, static_cast<size_t>(p.size));
    }
    const uint64_t computed = XXH64_digest(state);
    XXH64_freeState(state);
    return computed == tensor.checksum;
}

bool SparqFile::verify_tensor(std::string_view name) const { return verify_tensor(tensor(name)); }

std::vector<std::string> SparqFile::verify_all() const {
    std::vector<std::string> failed;
    for (const SparqTensor& t : tensors_) {
        if (!verify_tensor(t)) failed.push_back(t.name);
    }
    return failed;
}

Tensor SparqFile::dense_tensor(const SparqTensor& tensor) const {
    const ErrorContext where{source_, tensor.name, "encoding"};
    const size_t element = sparq_dense_element_size(tensor.encoding);
    if (element == 0) fail_in(where, "'", tensor.encoding, "' is not a dense encoding (f32, f16, bf16)");
    const SparqPlane& data = tensor.plane("data", source_);
    const uint64_t numel = static_cast<uint64_t>(shape_numel(tensor.shape));
    if (numel > std::numeric_limits<uint64_t>::max() / element || numel * element != data.size) {
        fail_in({source_, tensor.name, "planes.data.size"}, data.size, " bytes, but ", tensor.encoding, " ",
                shape_string(tensor.shape), " needs ", numel, " x ", element);
    }
    const DType dtype = tensor.encoding == "f32" ? DType::F32 : tensor.encoding == "f16" ? DType::F16 : DType::BF16;
    return make_view_tensor(owner_, data.data, static_cast<size_t>(data.size), dtype, tensor.shape);
}

const SparqPlane* SparqTensor::find_plane(std::string_view plane_name) const {
    for (const SparqPlane& p : planes) {
        if (p.name == plane_name) return &p;
    }
    return nullptr;
}

const SparqPlane& SparqTensor::plane(std::string_view plane_name, const std::string& source) const {
    const SparqPlane* p = find_plane(plane_name);
    if (!p) {
        fail_in({source, name, "planes"}, "encoding '", encoding, "' needs a plane '", plane_name, "', which is missing");
    }
    return *p;
}

uint64_t SparqTensor::stored_bytes() const {
    uint64_t total = 0;
    for (const SparqPlane& p : planes) total += p.size;
    return total;
}

}  // namespace sparq
