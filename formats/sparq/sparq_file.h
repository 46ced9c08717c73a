// The .sparq container (spec: docs/format.md): a 128-byte header, a JSON
// metadata block, a JSON tensor table, and a data section where every plane
// of every tensor starts 64-byte aligned, so a runtime mmaps the file and uses
// packed weights in place. The container knows no quantization math: a
// tensor is a name, an encoding name, a shape, a params object and named byte
// planes; quant/ and runtime/ give the encodings their meaning.
//
// The reader treats the file as hostile: every offset, size and count is
// checked before use, and every failure is a sparq::Error naming the file,
// the tensor and the field. Opening always checks the header checksum (which
// covers the metadata and the table, so every stored plane checksum is known
// good) and the blob checksums; plane bytes are hashed only when asked
// (open(path, true), verify_tensor, verify_all).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/tensor.h"

namespace sparq {

// ---- Reading -------------------------------------------------------------

struct SparqPlane {
    std::string name;
    uint64_t offset = 0;  // absolute file offset, a multiple of 64
    uint64_t size = 0;
    const uint8_t* data = nullptr;  // into the mapping; valid while the SparqFile lives
    std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(size)}; }
};

struct SparqTensor {
    std::string name;
    std::string encoding;
    Shape shape;
    nlohmann::json params;  // always an object
    std::vector<SparqPlane> planes;
    uint64_t checksum = 0;  // XXH64 of the planes' bytes, in table order

    const SparqPlane* find_plane(std::string_view plane_name) const;
    // Throws sparq::Error naming `source`, the tensor and the plane if absent.
    const SparqPlane& plane(std::string_view plane_name, const std::string& source) const;
    uint64_t stored_bytes() const;
};

// A named byte string stored in the data section (the tokenizer is the blob
// named "tokenizer"; its kind is "sentencepiece", "llama2c", "hf-json" or
// "gguf").
struct SparqBlob {
    std::string name;
    std::string kind;
    uint64_t offset = 0;
    uint64_t size = 0;
    const uint8_t* data = nullptr;
    uint64_t checksum = 0;
    std::span<const uint8_t> bytes() const { return {data, static_cast<size_t>(size)}; }
};

inline constexpr std::string_view kSparqTokenizerBlob = "tokenizer";

class SparqFile {
public:
    // Memory-maps `path`. With verify_checksums, every tensor's checksum is
    // checked too and the first mismatch throws, naming the tensor.
    static std::shared_ptr<SparqFile> open(const std::string& path, bool verify_checksums = false);

    // Parses a whole .sparq image held in memory; `owner` keeps `data` alive
    // (may be null if the caller guarantees it); `source` names it in errors.
    static std::shared_ptr<SparqFile> parse(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                            const std::string& source, bool verify_checksums = false);

    const std::string& source() const { return source_; }
    uint16_t major_version() const { return major_version_; }
    uint16_t minor_version() const { return minor_version_; }
    uint64_t file_size() const { return size_; }
    // The whole image (the mapping, for files opened with open()).
    const uint8_t* data() const { return data_; }

    const nlohmann::json& metadata() const { return metadata_; }

    const std::vector<SparqBlob>& blobs() const { return blobs_; }
    const SparqBlob* find_blob(std::string_view name) const;
    const SparqBlob* tokenizer() const { return find_blob(kSparqTokenizerBlob); }

    const std::vector<SparqTensor>& tensors() const { return tensors_; }
    const SparqTensor* find(std::string_view name) const;
    // Throws sparq::Error naming the file and the tensor if absent.
    const SparqTensor& tensor(std::string_view name) const;

    // Hashes the tensor's planes and compares with the stored checksum.
    bool verify_tensor(const SparqTensor& tensor) const;
    bool verify_tensor(std::string_view name) const;
    // Names of the tensors whose checksum does not match (empty: all good).
    std::vector<std::string> verify_all() const;

    // A zero-copy core Tensor of a dense ("f32", "f16", "bf16") tensor; any
    // other encoding, or a "data" plane of the wrong size, is a sparq::Error.
    Tensor dense_tensor(const SparqTensor& tensor) const;

private:
    SparqFile() = default;

    std::shared_ptr<const void> owner_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    std::string source_;
    uint16_t major_version_ = 0;
    uint16_t minor_version_ = 0;
    nlohmann::json metadata_;
    std::vector<SparqBlob> blobs_;
    std::vector<SparqTensor> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

// ---- Writing -------------------------------------------------------------

struct SparqPlaneData {
    std::string name;
    std::span<const uint8_t> bytes;
};

// A tensor to store: the writer copies the plane bytes into the file at once,
// so the spans need only live until add_tensor returns.
struct StoredTensor {
    std::string name;
    std::string encoding;
    Shape shape;
    nlohmann::json params = nlohmann::json::object();
    std::vector<SparqPlaneData> planes;
};

// Streams a .sparq file: plane bytes go to the (temporary) output file as each
// tensor is added, so a model is never held twice in memory; the metadata,
// the table and the header are written by commit(), which renames the file
// into place. Destroyed without commit(), the writer leaves no file.
class SparqWriter {
public:
    explicit SparqWriter(std::string path);

    // A JSON object, free-form (docs/format.md lists the conventional keys).
    void set_metadata(nlohmann::json metadata);
    // Embeds the tokenizer file; `kind` as Tokenizer::source_kind() names it.
    void set_tokenizer(std::string kind, std::span<const uint8_t> bytes);
    void add_blob(std::string name, std::string kind, std::span<const uint8_t> bytes);

    // Checks names, shape, plane names (and, for the encodings the spec
    // names, the plane set and dense sizes), then writes the planes.
    void add_tensor(const StoredTensor& tensor);
    // Stores an F32, F16 or BF16 core Tensor as encoding f32, f16 or bf16.
    void add_dense(const std::string& name, const Tensor& tensor);

    void commit();
    const std::string& path() const { return out_.path(); }

private:
    void check_open() const;
    // Pads to the next multiple of 64, writes `bytes`, returns where they start.
    uint64_t write_aligned(std::span<const uint8_t> bytes);

    AtomicFileWriter out_;
    nlohmann::json metadata_ = nlohmann::json::object();
    nlohmann::ordered_json tensors_ = nlohmann::ordered_json::array();
    nlohmann::ordered_json blobs_ = nlohmann::ordered_json::array();
    std::set<std::string, std::less<>> tensor_names_;
    std::set<std::string, std::less<>> blob_names_;
    bool committed_ = false;
};

}  // namespace sparq
