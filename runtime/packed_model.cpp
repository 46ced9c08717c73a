#include "runtime/packed_model.h"

#include <vector>

#include "core/error.h"
#include "models/llama_weights_builder.h"
#include "models/sparq_model.h"
#include "quant/reference_codec.h"
#include "quant/quantize_tensor.h"
#include "runtime/kernels/sparse_matmul.h"
#include "runtime/kernels/sparse_unpacked.h"

namespace sparq {

PackedLinear::PackedLinear(PackedView view, std::shared_ptr<const void> owner, ActivationMode mode)
    : view_(view), owner_(std::move(owner)), mode_(mode) {}

// int16 activations wherever they are faster than FP32 (decode, and prefill
// on the integer dot-product tiles where the CPU has them): accurate enough
// that `sparq verify` passes (Q8 is not, see packed_matmul.h). A few tokens
// stay in the chosen mode.
ActivationMode PackedLinear::mode_for(int64_t tokens) const {
    return mode_ == ActivationMode::F32 && packed_q16_is_faster(view_.scheme, tokens) ? ActivationMode::Q16 : mode_;
}

void PackedLinear::forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const {
    packed_matmul(view_, x, tokens, y, y_stride, mode_for(tokens));
}

bool PackedLinear::forward_group(std::span<const Linear* const> layers, const float* x, int64_t tokens,
                                 std::span<const LinearOutput> outputs) const {
    std::vector<PackedProduct> products;
    products.reserve(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
        const auto* packed = dynamic_cast<const PackedLinear*>(layers[i]);
        if (!packed || packed->view_.cols != view_.cols || !(packed->view_.scheme == view_.scheme) ||
            packed->mode_ != mode_) {
            return false;
        }
        products.push_back({packed->view_, outputs[i].y, outputs[i].y_stride});
    }
    packed_matmul_group(products, x, tokens, mode_for(tokens));
    return true;
}

void PackedLinear::row(int64_t r, float* out) const {
    PackedView one = view_;
    const PackedGeometry g = view_.geometry();
    one.rows = 1;
    one.codes = view_.codes + r * g.code_row_bytes;
    one.scales = view_.scales + 2 * r * g.groups_per_row;
    if (view_.zeros) one.zeros = view_.zeros + r * g.zero_row_bytes;
    const std::vector<float> values = dequantize_tensor(one);
    std::copy(values.begin(), values.end(), out);
}

int64_t PackedLinear::weight_bytes() const { return static_cast<int64_t>(view_.geometry().total_bytes); }

std::string PackedLinear::kernel_name() const {
    return view_.scheme.name() + (mode_ == ActivationMode::Q8 ? "+q8" : "") + ":" + packed_kernel_target();
}

SparseLinear::SparseLinear(NmSparseView view, std::shared_ptr<const void> owner)
    : nm_(view), rows_(view.rows), cols_(view.cols), owner_(std::move(owner)) {}

SparseLinear::SparseLinear(BitmaskSparseView view, std::shared_ptr<const void> owner)
    : bitmask_(view), rows_(view.rows), cols_(view.cols), owner_(std::move(owner)) {}

void SparseLinear::forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const {
    // Prefill: the rows unpacked once per call and run on the dense kernels
    // (sparse_unpacked.h), in the mode a dense layer of the scheme takes.
    if (sparse_unpacked_applies(x, tokens, cols_)) {
        const QuantScheme& scheme = nm_ ? nm_->scheme.quant : bitmask_->scheme;
        const ActivationMode mode = packed_q16_is_faster(scheme, tokens) ? ActivationMode::Q16 : ActivationMode::F32;
        if (nm_) return nm_sparse_matmul_unpacked(*nm_, x, tokens, y, y_stride, mode);
        return bitmask_sparse_matmul_unpacked(*bitmask_, x, tokens, y, y_stride, mode);
    }
    // Decode takes int16 activations where the CPU has the native kernels
    // (the integer work is per kept weight there; sparse_matmul.h), as the
    // dense layers do; a few tokens stay on the FP32 kernels.
    const bool q16 = tokens == 1 && sparse_q16_native();
    if (nm_) {
        if (q16) return nm_sparse_matmul_q16(*nm_, x, tokens, y, y_stride);
        nm_sparse_matmul(*nm_, x, tokens, y, y_stride);
    } else {
        if (q16) return bitmask_sparse_matmul_q16(*bitmask_, x, tokens, y, y_stride);
        bitmask_sparse_matmul(*bitmask_, x, tokens, y, y_stride);
    }
}

void SparseLinear::row(int64_t r, float* out) const {
    // One row as a one-row tensor of the same encoding, unpacked and
    // dequantized by the reference codec (embedding lookups only).
    if (nm_) {
        const NmSparseGeometry g = nm_sparse_geometry(nm_->scheme, rows_, cols_);
        NmSparseView one = *nm_;
        one.rows = 1;
        one.values = nm_->values + r * g.value_row_bytes;
        one.indices = nm_->indices + r * g.index_row_bytes;
        one.scales = nm_->scales + 2 * r * g.groups_per_row;
        if (nm_->zeros) one.zeros = nm_->zeros + r * g.zero_row_bytes;
        const std::vector<float> values = dequantize_tensor(unpack_nm_sparse(one));
        std::copy(values.begin(), values.end(), out);
        return;
    }
    const BitmaskSparseView& w = *bitmask_;
    const uint64_t begin = w.row_offset(r);
    const uint64_t offsets[2] = {0, w.row_offset(r + 1) - begin};
    BitmaskSparseView one = w;
    one.rows = 1;
    one.mask = w.mask + r * w.mask_row_bytes();
    one.values = w.values + begin;
    one.row_offsets = reinterpret_cast<const uint8_t*>(offsets);
    one.scales = w.scales + 2 * r * groups_per_row(w.scheme, cols_);
    if (w.zeros) one.zeros = w.zeros + r * zero_row_bytes(w.scheme, cols_);
    const std::vector<float> values = dequantize_tensor(unpack_bitmask_sparse(one));
    std::copy(values.begin(), values.end(), out);
}

int64_t SparseLinear::weight_bytes() const {
    if (nm_) return static_cast<int64_t>(nm_sparse_geometry(nm_->scheme, rows_, cols_).total_bytes);
    return static_cast<int64_t>(bitmask_sparse_bytes(*bitmask_));
}

std::string SparseLinear::kernel_name() const {
    if (nm_) {
        return "nm_sparse_" + std::to_string(nm_->scheme.n) + ":" + std::to_string(nm_->scheme.m) + "_" +
               nm_->scheme.quant.name() + ":" + packed_kernel_target();
    }
    return "bitmask_sparse_" + bitmask_->scheme.name() + ":" + packed_kernel_target();
}

std::string packed_path_name() { return std::string("packed:") + packed_kernel_target(); }

namespace {

struct PackedLoader {
    const SparqFile& file;
    std::shared_ptr<const void> owner;
    std::vector<std::shared_ptr<const void>> keep_alive;

    bool has(const std::string& name) const { return file.find(name) != nullptr; }
    const SparqTensor& tensor(const std::string& name, const Shape& shape) {
        const SparqTensor& t = file.tensor(name);
        if (t.shape != shape) {
            fail_in({file.source(), name, "shape"}, "is ", shape_string(t.shape), ", expected ", shape_string(shape));
        }
        return t;
    }
    // Norms and biases: F32 in place, or converted once (they are tiny).
    const float* array(const std::string& name, const Shape& shape) {
        const SparqTensor& t = tensor(name, shape);
        Tensor dense = file.dense_tensor(t);
        if (dense.dtype == DType::F32) {
            keep_alive.push_back(dense.owner);
            return dense.as<float>();
        }
        auto converted = std::make_shared<std::vector<float>>(dense.to_f32());
        keep_alive.push_back(converted);
        return converted->data();
    }
    std::unique_ptr<Linear> linear(const std::string& name, int64_t rows, int64_t cols) {
        const SparqTensor& t = tensor(name, {rows, cols});
        if (t.encoding == "quant") {
            const bool q8 = t.params.contains("act_bits") && t.params["act_bits"] == 8;
            return std::make_unique<PackedLinear>(packed_view(t, file.source()), owner,
                                                  q8 ? ActivationMode::Q8 : ActivationMode::F32);
        }
        if (t.encoding == "nm_sparse") return std::make_unique<SparseLinear>(nm_sparse_view(t, file.source()), owner);
        if (t.encoding == "bitmask_sparse") {
            return std::make_unique<SparseLinear>(bitmask_sparse_view(t, file.source()), owner);
        }
        if (t.encoding == "f32" || t.encoding == "f16" || t.encoding == "bf16") {
            const float* w = array(name, {rows, cols});
            return std::make_unique<DenseLinear>(w, rows, cols, keep_alive.back());
        }
        fail_in({file.source(), name, "encoding"}, "the runtime has no kernel for encoding '", t.encoding, "'");
    }
};

}  // namespace

PackedModel load_packed_model(const std::string& path) {
    PackedModel m;
    m.file = SparqFile::open(path, false);
    // Config and tokenizer come from the same reader as the reference path;
    // with no tensors dequantized.
    m.source = load_sparq_model_header(path, *m.file);
    const ModelConfig& c = m.source.config;
    PackedLoader load{*m.file, m.file, {}};
    LlamaWeights w = build_llama_weights(c, load);
    m.bytes_per_token = w.bytes_per_token();
    // The path names the int8-activation kernels when a file asks for them
    // (act_bits 8: W8A8, SmoothQuant), so eval and verify reports say so.
    bool int8_activations = false;
    for (const auto& layer : w.layers) {
        for (const Linear* l : {layer.wq.get(), layer.wk.get(), layer.wv.get(), layer.wo.get(), layer.w_gate.get(),
                                layer.w_up.get(), layer.w_down.get()}) {
            if (l && l->kernel_name().find("+q8") != std::string::npos) int8_activations = true;
        }
    }
    m.model = std::make_unique<LlamaTransformer>(c, std::move(w), packed_path_name() + (int8_activations ? "+q8" : ""));
    return m;
}

}  // namespace sparq
