#include "models/gguf_encode.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/ggml_quantize.h"
#include "formats/sparq/sparq_file.h"
#include "models/sparq_model.h"
#include "quant/quantize_tensor.h"

namespace sparq {

using gguf::GgmlType;

std::optional<EncodedTensor> ggml_blocks_of(const PackedView& v) {
    const QuantScheme& s = v.scheme;
    const int64_t block = gguf::kGgmlBlock;
    const bool int4 = s.bits == 4;
    if (!(int4 || (s.bits == 8 && s.symmetric))) return std::nullopt;
    if (v.cols <= 0 || v.cols % block != 0 || (s.group != 0 && s.group % block != 0)) return std::nullopt;
    const int64_t blocks_per_row = v.cols / block;
    EncodedTensor out;
    out.type = !int4 ? GgmlType::Q8_0 : s.symmetric ? GgmlType::Q4_0 : GgmlType::Q4_1;
    const size_t block_bytes = gguf::ggml_type_traits(out.type).type_size;
    out.bytes.resize(static_cast<size_t>(v.rows * blocks_per_row) * block_bytes);
    std::vector<uint8_t> codes(static_cast<size_t>(v.cols));
    std::vector<uint8_t> zeros(static_cast<size_t>(groups_per_row(s, v.cols)));
    const int zero = symmetric_zero_point(s.bits);
    for (int64_t r = 0; r < v.rows; ++r) {
        unpack_code_row(s, v.code_row(r), v.cols, codes.data());
        if (!s.symmetric) unpack_zero_row(s, v.zero_row(r), static_cast<int64_t>(zeros.size()), zeros.data());
        for (int64_t b = 0; b < blocks_per_row; ++b) {
            const int64_t group = s.group == 0 ? 0 : b * block / s.group;
            const uint16_t d = v.scale_bits(r, group);
            const uint8_t* u = codes.data() + b * block;
            uint8_t* dst = out.bytes.data() + static_cast<size_t>(r * blocks_per_row + b) * block_bytes;
            if (out.type == GgmlType::Q4_0) {
                gguf::BlockQ4_0 q{};
                q.d = d;
                // Q4_0 code = level + 8 = the stored code u (zero point 8).
                gguf::pack_q4_nibbles(u, q.qs);
                std::memcpy(dst, &q, sizeof q);
            } else if (out.type == GgmlType::Q4_1) {
                gguf::BlockQ4_1 q{};
                q.d = d;
                // d (u - z) = d u + m with m = -d z: exact in float, rounded once to FP16.
                q.m = fp32_to_fp16(-fp16_to_fp32(d) * static_cast<float>(zeros[static_cast<size_t>(group)]));
                gguf::pack_q4_nibbles(u, q.qs);
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

std::optional<GgmlType> gguf_block_type_for(GgmlType requested, int64_t cols) {
    if (cols <= 0 || cols % gguf::kGgmlBlock != 0) return std::nullopt;
    if (cols % gguf::kGgmlSuperBlock == 0) return requested;
    if (requested == GgmlType::Q4_K) return GgmlType::Q4_1;
    if (requested == GgmlType::Q6_K) return GgmlType::Q8_0;
    return requested;
}

namespace {

bool is_exported_matrix(const std::string& name, const Tensor& t) {
    return t.shape.size() == 2 &&
           (is_block_linear(name) || name == "model.embed_tokens.weight" || name == "lm_head.weight");
}

// RTN at group 32 through sparq's own quantizer, whose codes map to the blocks exactly.
EncodedTensor quantize_rtn_blocks(const std::vector<float>& values, const Tensor& t, GgmlType type,
                                  const std::string& name) {
    QuantScheme scheme;
    scheme.bits = type == GgmlType::Q4_0 ? 4 : 8;
    scheme.group = gguf::kGgmlBlock;
    scheme.symmetric = true;
    const PackedTensor packed =
        quantize_tensor(borrowed_f32_tensor(values.data(), t.rows(), t.cols()), scheme, QuantMethod::Rtn, nullptr, name);
    return *ggml_blocks_of(packed.view());
}

// The tensor as F16 values, row-major (round to nearest even).
EncodedTensor f16_rows(const Tensor& t) {
    const std::vector<float> values = t.to_f32();
    EncodedTensor out;
    out.type = GgmlType::F16;
    out.bytes.resize(values.size() * sizeof(uint16_t));
    for (size_t i = 0; i < values.size(); ++i) {
        const uint16_t h = fp32_to_fp16(values[i]);
        std::memcpy(out.bytes.data() + i * sizeof h, &h, sizeof h);
    }
    return out;
}

EncodedTensor quantize_fitted_blocks(const std::vector<float>& values, const Tensor& t, GgmlType type,
                                     const std::vector<float>* importance) {
    const int64_t rows = t.rows(), cols = t.cols();
    const gguf::GgmlTypeTraits traits = gguf::ggml_type_traits(type);
    const size_t row_bytes = static_cast<size_t>(cols / traits.block_size) * traits.type_size;
    EncodedTensor out;
    out.type = type;
    out.bytes.resize(static_cast<size_t>(rows) * row_bytes);
    // Rows are independent, so the bytes are the same for any thread count.
    parallel_for(0, rows, 16, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
            gguf::quantize_ggml_row(type, values.data() + r * cols, cols, importance ? importance->data() : nullptr,
                                    out.bytes.data() + r * row_bytes);
        }
    });
    return out;
}

}  // namespace

void check_type_reads_importance(const std::string& model_path, GgmlType type) {
    if (!gguf::can_quantize_ggml(type)) {
        fail_in({model_path, "", "--calib"}, "calibration weights the fitted block types (q4_1, q4_k, q6_k), not ",
                gguf::ggml_type_name(type), "'s round-to-nearest; for calibrated Q4_0 / Q8_0 blocks, quantize with "
                "sparq quantize --method imatrix or gptq --group 32 and export that file");
    }
}

GgufEncoding encode_for_gguf(const ModelSource& model, GgmlType type, const ColumnImportance& importance,
                             const std::map<std::string, EncodedTensor>& given, const TypeOverrides& overrides) {
    const auto is_block_type = [](GgmlType t) {
        return t == GgmlType::Q4_0 || t == GgmlType::Q8_0 || gguf::can_quantize_ggml(t);
    };
    if (!is_block_type(type)) {
        fail_in({model.path, "", "--type"}, "quantized GGUF export writes q8_0, q4_0, q4_1, q4_k or q6_k, not ",
                gguf::ggml_type_name(type));
    }
    for (const auto& [name, t] : overrides) {
        if (!model.tensors.has(name) || !is_exported_matrix(name, model.tensors.get(name))) {
            fail_in({model.path, name, ""}, "has a type of its own, but is not a 2-D weight of the model the export writes");
        }
        if (!is_block_type(t) && t != GgmlType::F16 && t != GgmlType::F32) {
            fail_in({model.path, name, ""}, "cannot be exported as ", gguf::ggml_type_name(t));
        }
    }
    if (!importance.empty()) check_type_reads_importance(model.path, type);
    for (const auto& [name, weights] : importance) {
        if (!model.tensors.has(name) || model.tensors.get(name).shape.size() != 2 ||
            static_cast<int64_t>(weights.size()) != model.tensors.get(name).cols()) {
            fail_in({model.path, name, ""}, "has ", weights.size(), " column importances, which do not fit a 2-D weight of the model");
        }
    }
    GgufEncoding out;
    std::shared_ptr<SparqFile> file;
    if (model.format == "sparq") file = SparqFile::open(model.path, false);
    for (const auto& [name, t] : model.tensors.all()) {
        if (!is_exported_matrix(name, t)) continue;
        const auto override = overrides.find(name);
        const GgmlType requested = override != overrides.end() ? override->second : type;
        if (file && override == overrides.end()) {
            const SparqTensor* stored = file->find(name);
            if (stored && stored->encoding == "quant") {
                if (std::optional<EncodedTensor> exact = ggml_blocks_of(packed_view(*stored, model.path))) {
                    out.tensors[name] = std::move(*exact);
                    out.exact.push_back(name);
                    continue;
                }
            }
        }
        if (requested == GgmlType::F32) {
            out.kept_float.push_back(name);
            continue;
        }
        if (requested == GgmlType::F16) {
            out.tensors[name] = f16_rows(t);
            out.kept_f16.push_back(name);
            continue;
        }
        const std::optional<GgmlType> block_type = gguf_block_type_for(requested, t.cols());
        if (!block_type) {
            out.kept_float.push_back(name);
            continue;
        }
        if (const auto g = given.find(name); g != given.end()) {
            if (g->second.type != *block_type) {
                fail_in({model.path, name, ""}, "was given as ", gguf::ggml_type_name(g->second.type), " blocks, but its rows take ",
                        gguf::ggml_type_name(*block_type));
            }
            out.tensors[name] = g->second;
            out.requantized.push_back(name);
            out.given.push_back(name);
            continue;
        }
        const std::vector<float> values = t.to_f32();
        for (size_t i = 0; i < values.size(); ++i) {
            if (!std::isfinite(values[i])) {
                fail_in({model.path, name, ""}, "holds a non-finite value (", values[i], ") at row ",
                        static_cast<int64_t>(i) / t.cols(), ", column ", static_cast<int64_t>(i) % t.cols(),
                        ": it cannot be quantized to ", gguf::ggml_type_name(*block_type));
            }
        }
        const auto weights = importance.find(name);
        out.tensors[name] = *block_type == GgmlType::Q4_0 || *block_type == GgmlType::Q8_0
                                ? quantize_rtn_blocks(values, t, *block_type, name)
                                : quantize_fitted_blocks(values, t, *block_type,
                                                         weights == importance.end() ? nullptr : &weights->second);
        out.requantized.push_back(name);
    }
    return out;
}

}  // namespace sparq
