#include "models/gguf_encode.h"

#include <cstring>

#include "core/error.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/sparq/sparq_file.h"
#include "models/sparq_model.h"
#include "quant/quantize_tensor.h"

namespace sparq {

using gguf::GgmlType;

std::optional<EncodedTensor> ggml_blocks_of(const PackedView& v) {
    const QuantScheme& s = v.scheme;
    const int64_t block = gguf::kGgmlBlock;
    if (!s.symmetric || (s.bits != 4 && s.bits != 8)) return std::nullopt;
    if (v.cols <= 0 || v.cols % block != 0 || (s.group != 0 && s.group % block != 0)) return std::nullopt;
    const int64_t blocks_per_row = v.cols / block;
    const bool int4 = s.bits == 4;
    EncodedTensor out;
    out.type = int4 ? GgmlType::Q4_0 : GgmlType::Q8_0;
    const size_t block_bytes = int4 ? sizeof(gguf::BlockQ4_0) : sizeof(gguf::BlockQ8_0);
    out.bytes.resize(static_cast<size_t>(v.rows * blocks_per_row) * block_bytes);
    std::vector<uint8_t> codes(static_cast<size_t>(v.cols));
    const int zero = symmetric_zero_point(s.bits);
    for (int64_t r = 0; r < v.rows; ++r) {
        unpack_code_row(s, v.code_row(r), v.cols, codes.data());
        for (int64_t b = 0; b < blocks_per_row; ++b) {
            const int64_t group = s.group == 0 ? 0 : b * block / s.group;
            const uint16_t d = v.scale_bits(r, group);
            const uint8_t* u = codes.data() + b * block;
            uint8_t* dst = out.bytes.data() + static_cast<size_t>(r * blocks_per_row + b) * block_bytes;
            if (int4) {
                gguf::BlockQ4_0 q{};
                q.d = d;
                // Q4_0 code = level + 8 = the stored code u (zero point 8).
                for (int j = 0; j < block / 2; ++j) q.qs[j] = static_cast<uint8_t>(u[j] | (u[j + block / 2] << 4));
                std::memcpy(dst, &q, sizeof q);
            } else {
                gguf::BlockQ8_0 q{};
                q.d = d;
                for (int j = 0; j < block; ++j) q.q[j] = static_cast<int8_t>(static_cast<int>(u[j]) - zero);
                std::memcpy(dst, &q, sizeof q);
            }
        }
    }
    return out;
}

namespace {

bool is_exported_matrix(const std::string& name, const Tensor& t) {
    return t.shape.size() == 2 &&
           (is_block_linear(name) || name == "model.embed_tokens.weight" || name == "lm_head.weight");
}

}  // namespace

GgufEncoding encode_for_gguf(const ModelSource& model, GgmlType type) {
    if (type != GgmlType::Q4_0 && type != GgmlType::Q8_0) {
        fail_in({model.path, "", "--type"}, "quantized GGUF export writes q4_0 or q8_0, not ", gguf::ggml_type_name(type));
    }
    GgufEncoding out;
    std::shared_ptr<SparqFile> file;
    if (model.format == "sparq") file = SparqFile::open(model.path, false);
    QuantScheme scheme;
    scheme.bits = type == GgmlType::Q4_0 ? 4 : 8;
    scheme.group = gguf::kGgmlBlock;
    scheme.symmetric = true;
    for (const auto& [name, t] : model.tensors.all()) {
        if (!is_exported_matrix(name, t)) continue;
        if (file) {
            const SparqTensor* stored = file->find(name);
            if (stored && stored->encoding == "quant") {
                if (std::optional<EncodedTensor> exact = ggml_blocks_of(packed_view(*stored, model.path))) {
                    out.tensors[name] = std::move(*exact);
                    out.exact.push_back(name);
                    continue;
                }
            }
        }
        if (t.cols() % gguf::kGgmlBlock != 0) {
            out.kept_float.push_back(name);
            continue;
        }
        const std::vector<float> values = t.to_f32();
        const PackedTensor packed =
            quantize_tensor(borrowed_f32_tensor(values.data(), t.rows(), t.cols()), scheme, QuantMethod::Rtn, nullptr, name);
        out.tensors[name] = *ggml_blocks_of(packed.view());
        out.requantized.push_back(name);
    }
    return out;
}

}  // namespace sparq
