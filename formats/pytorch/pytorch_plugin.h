// Internal: the boundary between sparq_pytorch (linked into every program
// that loads models, LibTorch-free) and the LibTorch plugin
// (libsparq_pytorch_plugin.so) that it dlopens the first time a PyTorch
// checkpoint is read. Loading LibTorch costs every process ~2.5 s of static
// initialisation and ~150 MB of RSS, so only the programs that really read a
// .bin/.pt file pay for it.
#pragma once

#include <cstddef>
#include <string>

#include "core/tensor.h"
#include "formats/tensor_map.h"

namespace sparq::pytorch_plugin {

// Changes whenever the data crossing the boundary changes layout, so a stale
// plugin from an older build is refused instead of misread.
inline constexpr long kAbi = 1 * 1000003L + static_cast<long>(sizeof(Tensor)) * 1009L +
                             static_cast<long>(sizeof(TensorMap)) * 31L + static_cast<long>(sizeof(std::string));

// A sparq::Error, taken apart: exceptions do not cross the boundary.
struct Failure {
    std::string message, file, tensor, field;
};

// Fills `out` and returns true, or fills `failure` and returns false.
using ReadFn = bool (*)(const char* path, TensorMap* out, Failure* failure);
using AbiFn = long (*)();

inline constexpr const char* kReadSymbol = "sparq_pytorch_plugin_read";
inline constexpr const char* kAbiSymbol = "sparq_pytorch_plugin_abi";

}  // namespace sparq::pytorch_plugin
