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

}  // namespace sparq
