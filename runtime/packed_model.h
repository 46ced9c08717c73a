// The packed runtime: loads a .sparq file through mmap and runs the model
// with the packed weights used in place (no copy, no dequantized copy):
// each linear layer is a PackedLinear over the file's planes, driven by the
// SIMD kernels of runtime/kernels/. Norms and biases are read in place too.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "formats/sparq/sparq_file.h"
#include "models/llama_reference.h"
#include "models/model_source.h"
#include "runtime/kernels/packed_matmul.h"
#include "runtime/kernels/sparse_layout.h"

namespace sparq {

// A quantized linear layer whose planes live in the mapped file.
class PackedLinear : public Linear {
public:
    PackedLinear(PackedView view, std::shared_ptr<const void> owner, ActivationMode mode);
    int64_t rows() const override { return view_.rows; }
    int64_t cols() const override { return view_.cols; }
    void forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const override;
    // Packed layers of this one's shape, scheme and mode: packed_matmul_group.
    bool forward_group(std::span<const Linear* const> layers, const float* x, int64_t tokens,
                       std::span<const LinearOutput> outputs) const override;
    void row(int64_t r, float* out) const override;
    int64_t weight_bytes() const override;
    std::string kernel_name() const override;

private:
    ActivationMode mode_for(int64_t tokens) const;

    PackedView view_;
    std::shared_ptr<const void> owner_;
    ActivationMode mode_;
};

// A sparse quantized linear layer (nm_sparse or bitmask_sparse) whose planes
// live in the mapped file, driven by runtime/kernels/sparse_matmul.h.
class SparseLinear : public Linear {
public:
    SparseLinear(NmSparseView view, std::shared_ptr<const void> owner);
    SparseLinear(BitmaskSparseView view, std::shared_ptr<const void> owner);
    int64_t rows() const override { return rows_; }
    int64_t cols() const override { return cols_; }
    void forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const override;
    void row(int64_t r, float* out) const override;
    // Every plane, indices or mask and row offsets included.
    int64_t weight_bytes() const override;
    // e.g. "nm_sparse_2:4_int4_g32_sym:AVX3", "bitmask_sparse_int8_ch_sym:AVX3".
    std::string kernel_name() const override;

private:
    std::optional<NmSparseView> nm_;
    std::optional<BitmaskSparseView> bitmask_;
    int64_t rows_ = 0, cols_ = 0;
    std::shared_ptr<const void> owner_;
};

struct PackedModel {
    std::shared_ptr<SparqFile> file;
    ModelSource source;  // config and tokenizer (tensors left empty)
    std::unique_ptr<LlamaTransformer> model;
    int64_t bytes_per_token = 0;  // weight bytes the layers read per decoded token
};

// Opens `path` for the packed runtime. Throws sparq::Error for encodings the
// runtime has no kernel for.
PackedModel load_packed_model(const std::string& path);

// Name of the runtime path, e.g. "packed:AVX3" (the SIMD target that runs).
std::string packed_path_name();

}  // namespace sparq
