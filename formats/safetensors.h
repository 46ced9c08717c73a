// Reader and writer for Hugging Face safetensors files:
//   8-byte little-endian header length N | N bytes of JSON | data section.
// The header is hostile input: every offset, shape and dtype is checked
// before a tensor is handed out, and every failure is a sparq::Error naming
// the file, the tensor and what was wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "formats/tensor_map.h"

namespace sparq {

// Headers above this size are refused before parsing (the reference
// implementation uses the same limit).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

struct SafetensorsFile {
    TensorMap tensors;
    std::map<std::string, std::string> metadata;  // the optional "__metadata__"
};

// Parses a whole safetensors image held in memory. Tensors point into `data`
// and hold `owner`, which must keep `data` alive; `source` names the input in
// errors.
SafetensorsFile parse_safetensors(std::shared_ptr<const void> owner, const uint8_t* data, size_t size,
                                  const std::string& source);

// Memory-maps `path`; the tensors are zero-copy views into the mapping.
SafetensorsFile open_safetensors(const std::string& path);
TensorMap read_safetensors(const std::string& path);
std::map<std::string, std::string> read_safetensors_metadata(const std::string& path);

// Writes tensors in the given order, contiguously, after a JSON header padded
// with spaces to a multiple of 8 bytes. The file appears atomically.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

struct TensorSpec {
    std::string name;
    DType dtype;
    Shape shape;
};

// Streams a safetensors file whose tensor list is known up front, so a model
// larger than memory can be written one tensor at a time: construct with the
// specs, call write_next() with each tensor's bytes in order, then commit().
class SafetensorsStreamWriter {
public:
    SafetensorsStreamWriter(const std::string& path, const std::vector<TensorSpec>& specs,
                            const std::map<std::string, std::string>& metadata = {});
    ~SafetensorsStreamWriter();
    void write_next(const void* data, size_t nbytes);
    void commit();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sparq
