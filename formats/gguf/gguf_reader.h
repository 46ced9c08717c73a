// A GGUF reader that is safe on hostile input: every length, count, offset
// and size is checked against the bytes really present (with overflow
// checks) before anything is allocated or read, and every failure is a
// sparq::Error naming the file, the field (or tensor) and what was expected.
// It reads the header, the metadata KVs and the tensor infos; tensor data is
// handed out zero-copy from the memory-mapped file.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "formats/gguf/gguf_types.h"
#include "formats/gguf/gguf_value.h"

namespace sparq::gguf {

struct TensorInfo {
    std::string name;
    std::vector<uint64_t> dims;  // GGUF order: dims[0] is the row length
    uint32_t type_id = 0;        // as stored
    GgmlType type = GgmlType::F32;
    uint64_t offset = 0;         // relative to the start of the data section
    uint64_t nbytes = 0;
    uint64_t n_elements = 0;

    // Row-major shape (dims reversed).
    Shape shape() const;
};

// Limits a reader enforces beyond "fits in the file".
struct ReadLimits {
    uint32_t max_array_depth = 4;  // arrays of arrays nested deeper are rejected
};

class GgufFile {
public:
    // Memory-maps and parses a file.
    static GgufFile open(const std::string& path, const ReadLimits& limits = {});
    // Parses bytes in memory. `owner` (optional) keeps them alive for the
    // tensors handed out; `name` names the source in errors.
    static GgufFile parse(const uint8_t* data, size_t size, const std::string& name,
                          std::shared_ptr<const void> owner = {}, const ReadLimits& limits = {});

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute start of the data section
    uint64_t file_size() const { return size_; }

    const std::vector<std::pair<std::string, Value>>& kvs() const { return kvs_; }
    // nullptr when the key is absent.
    const Value* find(std::string_view key) const;
    // Throws sparq::Error naming the file and key when absent.
    const Value& get(std::string_view key) const;
    // Scalar of exactly type T (the error names the key and both types).
    template <typename T>
    T get_scalar(std::string_view key) const {
        const Value& v = get(key);
        try {
            return v.get<T>();
        } catch (const Error& e) {
            throw Error(e.message(), {path_, "", std::string(key)});
        }
    }
    std::string get_string(std::string_view key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;

    // The tensor's bytes inside the file.
    std::span<const uint8_t> tensor_bytes(const TensorInfo& info) const;
    // A zero-copy sparq Tensor: F32/F16/BF16/F64/I8/I16/I32/I64 keep their
    // dtype; quantized types come out as DType::Packed bytes.
    Tensor tensor(const TensorInfo& info) const;

private:
    std::string path_;
    std::shared_ptr<const void> owner_;
    const uint8_t* data_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<std::pair<std::string, Value>> kvs_;
    std::vector<TensorInfo> tensors_;
};

// True when the file starts with the GGUF magic (cheap format sniffing).
bool looks_like_gguf(const std::string& path);

}  // namespace sparq::gguf
