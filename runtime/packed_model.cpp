#include "runtime/packed_model.h"

#include <vector>

#include "core/error.h"
#include "models/llama_weights_builder.h"
#include "models/sparq_model.h"
#include "quant/reference_codec.h"
#include "quant/quantize_tensor.h"

namespace sparq {

PackedLinear::PackedLinear(PackedView view, std::shared_ptr<const void> owner, ActivationMode mode)
    : view_(view), owner_(std::move(owner)), mode_(mode) {}

void PackedLinear::forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const {
    if (tokens == 1) {
        if (y_stride >= view_.rows) {
            packed_matvec(view_, x, y, mode_);
            return;
        }
    }
    packed_matmul(view_, x, tokens, y, y_stride, mode_);
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
    m.model = std::make_unique<LlamaTransformer>(c, std::move(w), packed_path_name());
    return m;
}

}  // namespace sparq
