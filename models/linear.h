// A linear layer as the transformer sees it: y = W x for a batch of tokens,
// and single rows of W (embedding lookup). The reference forward uses dense
// FP32 weights; the packed runtime plugs in quantized and sparse kernels
// behind the same interface, so there is one transformer implementation.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sparq {

// Where one layer's product goes: y[t * y_stride + r].
struct LinearOutput {
    float* y = nullptr;
    int64_t y_stride = 0;
};

class Linear {
public:
    virtual ~Linear() = default;
    virtual int64_t rows() const = 0;  // output features
    virtual int64_t cols() const = 0;  // input features
    // y[t * y_stride + r] = sum_c W[r][c] x[t * cols + c].
    virtual void forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const = 0;
    // Row r of W as floats (cols values).
    virtual void row(int64_t r, float* out) const = 0;
    // Bytes of weights one forward over all rows reads.
    virtual int64_t weight_bytes() const = 0;
    // What runs it ("f32", or the packed kernel and its SIMD target).
    virtual std::string kernel_name() const = 0;
    // Runs `layers` (this one first) on the same input together, where
    // their kind can share the work (forward_same_input); false where it
    // cannot, and nothing was written.
    virtual bool forward_group(std::span<const Linear* const> layers, const float* x, int64_t tokens,
                               std::span<const LinearOutput> outputs) const {
        (void)layers, (void)x, (void)tokens, (void)outputs;
        return false;
    }
};

// layers[i]->forward(x, tokens, outputs[i]) for every i, for layers that
// read one input (q, k and v; gate and up). Packed layers of one scheme
// prepare the input once and run their rows in one parallel loop: at
// decode each parallel loop costs a few microseconds of waking and
// waiting, and q/k/v and gate/up were five of a block's seven.
void forward_same_input(std::span<const Linear* const> layers, const float* x, int64_t tokens,
                        std::span<const LinearOutput> outputs);

// Dense FP32 weights [rows, cols], used in place; `owner` keeps them alive.
class DenseLinear : public Linear {
public:
    DenseLinear(const float* weights, int64_t rows, int64_t cols, std::shared_ptr<const void> owner);
    int64_t rows() const override { return rows_; }
    int64_t cols() const override { return cols_; }
    void forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const override;
    void row(int64_t r, float* out) const override;
    int64_t weight_bytes() const override { return rows_ * cols_ * 4; }
    std::string kernel_name() const override { return "f32"; }

private:
    const float* weights_;
    int64_t rows_, cols_;
    std::shared_ptr<const void> owner_;
};

}  // namespace sparq
