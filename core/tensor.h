// A tensor is a typed, shaped view over bytes that live elsewhere: an mmapped
// file region (zero-copy) or an owned buffer. The `owner` keeps the memory
// alive, so a Tensor may outlive the reader that produced it.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace sparq {

using Shape = std::vector<int64_t>;

std::string shape_string(const Shape& shape);

// Number of elements, or throws sparq::Error if the product overflows int64.
int64_t shape_numel(const Shape& shape);

struct Tensor {
    DType dtype = DType::F32;
    Shape shape;
    const uint8_t* data = nullptr;
    size_t nbytes = 0;
    std::shared_ptr<const void> owner;

    int64_t numel() const { return shape_numel(shape); }
    // Rows of the tensor seen as a matrix [numel / last_dim, last_dim].
    int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
    int64_t rows() const { return cols() == 0 ? 0 : numel() / cols(); }

    template <typename T>
    const T* as() const { return reinterpret_cast<const T*>(data); }

    // Converts any float dtype to a freshly owned F32 buffer.
    std::vector<float> to_f32() const;
    // Converts rows [row_begin, row_end) of a 2-D (or 1-D) float tensor.
    void rows_to_f32(int64_t row_begin, int64_t row_end, float* out) const;
};

// Makes a tensor that owns its F32 data.
Tensor make_f32_tensor(Shape shape, std::vector<float> values);
// A [rows, cols] F32 tensor over `values` without owning them: the caller
// keeps them alive while the tensor is used.
Tensor borrowed_f32_tensor(const float* values, int64_t rows, int64_t cols);
// A tensor owning `values` stored as `dtype` (F32, F16 or BF16; the 16-bit
// types rounded to nearest even). Throws sparq::Error for other dtypes.
Tensor make_tensor_from_f32(Shape shape, std::vector<float> values, DType dtype);

}  // namespace sparq
