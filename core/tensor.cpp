#include "core/tensor.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"

namespace sparq {

std::string shape_string(const Shape& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(shape[i]);
    }
    return s + "]";
}

int64_t shape_numel(const Shape& shape) {
    int64_t n = 1;
    for (int64_t d : shape) {
        if (d < 0) fail("negative dimension in shape ", shape_string(shape));
        if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
            fail("shape ", shape_string(shape), " has more elements than fit in 64 bits");
        }
        n *= d;
    }
    return n;
}

void Tensor::rows_to_f32(int64_t row_begin, int64_t row_end, float* out) const {
    const int64_t c = cols();
    const size_t first = static_cast<size_t>(row_begin * c);
    const size_t count = static_cast<size_t>((row_end - row_begin) * c);
    switch (dtype) {
        case DType::F32:
            std::memcpy(out, as<float>() + first, count * sizeof(float));
            return;
        case DType::F16:
            fp16_to_fp32_row(as<uint16_t>() + first, out, count);
            return;
        case DType::BF16:
            bf16_to_fp32_row(as<uint16_t>() + first, out, count);
            return;
        case DType::F64:
            for (size_t i = 0; i < count; ++i) out[i] = static_cast<float>(as<double>()[first + i]);
            return;
        default:
            fail("cannot convert a ", dtype_name(dtype), " tensor to F32");
    }
}

std::vector<float> Tensor::to_f32() const {
    std::vector<float> out(static_cast<size_t>(numel()));
    if (!out.empty()) rows_to_f32(0, rows(), out.data());
    return out;
}

Tensor borrowed_f32_tensor(const float* values, int64_t rows, int64_t cols) {
    Tensor t;
    t.dtype = DType::F32;
    t.shape = {rows, cols};
    t.data = reinterpret_cast<const uint8_t*>(values);
    t.nbytes = static_cast<size_t>(rows * cols) * sizeof(float);
    return t;
}

Tensor make_f32_tensor(Shape shape, std::vector<float> values) {
    auto storage = std::make_shared<std::vector<float>>(std::move(values));
    Tensor t;
    t.dtype = DType::F32;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const uint8_t*>(storage->data());
    t.nbytes = storage->size() * sizeof(float);
    t.owner = storage;
    return t;
}

Tensor make_tensor_from_f32(Shape shape, std::vector<float> values, DType dtype) {
    if (dtype == DType::F32) return make_f32_tensor(std::move(shape), std::move(values));
    if (dtype != DType::F16 && dtype != DType::BF16) {
        fail("cannot store a tensor as ", dtype_name(dtype), " (expected F32, F16 or BF16)");
    }
    auto storage = std::make_shared<std::vector<uint16_t>>(values.size());
    if (dtype == DType::BF16) {
        fp32_to_bf16_row(values.data(), storage->data(), values.size());
    } else {
        fp32_to_fp16_row(values.data(), storage->data(), values.size());
    }
    Tensor t;
    t.dtype = dtype;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const uint8_t*>(storage->data());
    t.nbytes = storage->size() * sizeof(uint16_t);
    t.owner = storage;
    return t;
}

}  // namespace sparq
