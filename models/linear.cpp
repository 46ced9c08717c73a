#include "models/linear.h"

#include <cstring>

#include "models/matmul.h"

namespace sparq {

DenseLinear::DenseLinear(const float* weights, int64_t rows, int64_t cols, std::shared_ptr<const void> owner)
    : weights_(weights), rows_(rows), cols_(cols), owner_(std::move(owner)) {}

void DenseLinear::forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const {
    matmul_f32(x, tokens, weights_, rows_, cols_, y, y_stride);
}

void DenseLinear::row(int64_t r, float* out) const {
    std::memcpy(out, weights_ + r * cols_, static_cast<size_t>(cols_) * sizeof(float));
}

}  // namespace sparq
