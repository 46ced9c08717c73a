#include "models/linear.h"

#include <cstring>

#include "core/error.h"
#include "models/matmul.h"

namespace sparq {

void forward_same_input(std::span<const Linear* const> layers, const float* x, int64_t tokens,
                        std::span<const LinearOutput> outputs) {
    if (layers.size() != outputs.size()) fail("forward_same_input: ", layers.size(), " layers, ", outputs.size(), " outputs");
    if (layers.empty() || layers.front()->forward_group(layers, x, tokens, outputs)) return;
    for (size_t i = 0; i < layers.size(); ++i) layers[i]->forward(x, tokens, outputs[i].y, outputs[i].y_stride);
}

DenseLinear::DenseLinear(const float* weights, int64_t rows, int64_t cols, std::shared_ptr<const void> owner)
    : weights_(weights), rows_(rows), cols_(cols), owner_(std::move(owner)) {}

void DenseLinear::forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const {
    matmul_f32(x, tokens, weights_, rows_, cols_, y, y_stride);
}

void DenseLinear::row(int64_t r, float* out) const {
    std::memcpy(out, weights_ + r * cols_, static_cast<size_t>(cols_) * sizeof(float));
}

}  // namespace sparq
