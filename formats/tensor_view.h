// Builds Tensors that point into a file's bytes. Shared by the readers of
// formats/ so that every tensor they hand out is safe to read as a typed
// array, whatever offset a (possibly hostile) file put it at.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace sparq {

// A zero-copy view of `nbytes` at `bytes`, kept alive by `owner`. Consumers
// read tensor data through typed pointers (and SIMD loads), which needs
// natural alignment; a file may legally place a tensor at any byte offset,
// so a misaligned tensor is copied into an owned (aligned) buffer instead.
inline Tensor make_view_tensor(std::shared_ptr<const void> owner, const uint8_t* bytes, size_t nbytes,
                               DType dtype, Shape shape) {
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.nbytes = nbytes;
    const size_t alignment = dtype_size(dtype) == 0 ? 1 : dtype_size(dtype);
    if (reinterpret_cast<uintptr_t>(bytes) % alignment == 0) {
        t.data = bytes;
        t.owner = std::move(owner);
        return t;
    }
    // operator new aligns to at least 16 bytes, enough for every dtype.
    auto copy = std::make_shared<std::vector<uint8_t>>(bytes, bytes + nbytes);
    t.data = copy->data();
    t.owner = std::move(copy);
    return t;
}

}  // namespace sparq
