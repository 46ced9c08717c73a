// A generic GGUF v3 writer: metadata key-value pairs of every GGUF value
// type, tensor infos and aligned tensor data, written through
// AtomicFileWriter (temporary file renamed into place on success).
//
// Layout (GGUF spec): header (magic, version, tensor count, KV count), the
// KVs, the tensor infos (name, dims in GGUF order, ggml type, offset relative
// to the data section), zero padding to the alignment, then the tensor data,
// each tensor starting at a multiple of the alignment.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "formats/gguf/gguf_types.h"
#include "formats/gguf/gguf_value.h"

namespace sparq::gguf {

// GGUF's dims are the row-major shape reversed (ne[0] is the row length).
std::vector<uint64_t> gguf_dims_from_shape(const Shape& shape);
Shape shape_from_gguf_dims(const std::vector<uint64_t>& dims);

// Bytes of a tensor of that shape and type; throws sparq::Error if the row
// length is not a multiple of the type's block size or the size overflows.
uint64_t ggml_tensor_bytes(GgmlType type, const Shape& shape);

class GgufWriter {
public:
    // Fills exactly the tensor's byte count at `out`.
    using FillFn = std::function<void(uint8_t* out)>;

    // Adds a KV pair; setting an existing key replaces its value in place
    // (keys keep their first insertion order). "general.alignment" must be a
    // uint32 power of two, at least 8; it sets the alignment used.
    void set(const std::string& key, Value value);
    template <typename T>
    void set_scalar(const std::string& key, T v) { set(key, Value::scalar<T>(v)); }
    void set_string(const std::string& key, std::string v) { set(key, Value::string(std::move(v))); }

    bool has(const std::string& key) const;
    const std::vector<std::pair<std::string, Value>>& kvs() const { return kvs_; }

    // `shape` is row-major (sparq order); the file stores it reversed.
    void add_tensor(const std::string& name, const Shape& shape, GgmlType type, FillFn fill);
    // The bytes are copied at write() time: `data` must stay valid until then.
    void add_tensor_data(const std::string& name, const Shape& shape, GgmlType type, const void* data,
                         size_t nbytes);

    size_t tensor_count() const { return tensors_.size(); }
    uint32_t alignment() const { return alignment_; }

    // Writes the file atomically; returns its size in bytes.
    uint64_t write(const std::string& path) const;
    // A whole GGUF file of the KVs alone, in memory (a vocabulary embedded
    // in a .sparq file); throws sparq::Error when tensors were added.
    std::string metadata_bytes() const;

private:
    // Header, KVs and tensor infos padded to the alignment; data_bytes gets
    // the size of the data section they describe.
    std::vector<uint8_t> header_bytes(uint64_t& data_bytes) const;

    struct TensorEntry {
        std::string name;
        Shape shape;
        GgmlType type;
        uint64_t nbytes;
        FillFn fill;
        const void* data = nullptr;
    };

    std::vector<std::pair<std::string, Value>> kvs_;
    std::vector<TensorEntry> tensors_;
    uint32_t alignment_ = kDefaultAlignment;
};

}  // namespace sparq::gguf
