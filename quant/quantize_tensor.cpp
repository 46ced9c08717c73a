#include "quant/quantize_tensor.h"

#include <algorithm>
#include <cstdint>
#include <cmath>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/memory.h"
#include "core/parallel.h"
#include "core/vectorize.h"
#include "quant/reference_codec.h"
#include "quant/rtn.h"
#include "quant/rtn_fused.h"

namespace sparq {

std::string_view quant_method_name(QuantMethod method) {
    return method == QuantMethod::Rtn ? "rtn" : method == QuantMethod::Mse ? "mse" : "absmax";
}

QuantMethod parse_quant_method(std::string_view name) {
    if (name == "rtn") return QuantMethod::Rtn;
    if (name == "mse") return QuantMethod::Mse;
    if (name == "absmax") return QuantMethod::Absmax;
    fail("unknown quantization method '", name, "' (expected rtn, mse or absmax)");
}

namespace {

// About 64K weights per chunk: big enough to amortize scheduling, small
// enough to balance; depends only on the shape, never on the threads.
int64_t rows_per_chunk(int64_t cols) { return std::max<int64_t>(1, (int64_t{1} << 16) / cols); }

void check_inputs(const Tensor& weight, const QuantScheme& scheme,
                  const std::vector<float>* importance, const std::string& name) {
    const ErrorContext context{"", name, ""};
    validate_quant_scheme(scheme);
    if (weight.shape.size() != 2) {
        fail_in(context, "quantization needs a 2-D weight [rows, cols], got shape ",
                shape_string(weight.shape));
    }
    if (weight.shape[1] < 1) fail_in(context, "cannot quantize a weight with 0 columns");
    const size_t expected_bytes = static_cast<size_t>(weight.numel()) * dtype_size(weight.dtype);
    if (weight.dtype != DType::F32 && weight.dtype != DType::F16 &&
        weight.dtype != DType::BF16 && weight.dtype != DType::F64) {
        fail_in(context, "cannot quantize a ", dtype_name(weight.dtype),
                " tensor (expected F32, F16, BF16 or F64)");
    }
    if (weight.nbytes != expected_bytes || (expected_bytes > 0 && weight.data == nullptr)) {
        fail_in(context, "holds ", weight.nbytes, " bytes, expected ", expected_bytes, " for ",
                dtype_name(weight.dtype), " ", shape_string(weight.shape));
    }
    if (!importance) return;
    if (static_cast<int64_t>(importance->size()) != weight.shape[1]) {
        fail_in(context, "importance has ", importance->size(), " values, expected one per column (",
                weight.shape[1], ")");
    }
    for (size_t i = 0; i < importance->size(); ++i) {
        if (!std::isfinite((*importance)[i]) || (*importance)[i] < 0) {
            fail_in(context, "importance of column ", i, " is ", (*importance)[i],
                    " (expected finite and >= 0)");
        }
    }
}

// Rows of an F32 tensor read in place (no copy) when its data is aligned
// for floats; null otherwise.
const float* aligned_f32_rows(const Tensor& weight, int64_t row_begin, int64_t cols) {
    if (weight.dtype != DType::F32) return nullptr;
    if (reinterpret_cast<uintptr_t>(weight.data) % alignof(float) != 0) return nullptr;
    return reinterpret_cast<const float*>(weight.data) + row_begin * cols;
}

// Branch-free so it vectorizes; the caller finds the culprit when false.
SPARQ_VECTORIZE_CLONES
bool all_finite(const float* x, size_t n) {
    constexpr size_t kLanes = 16;
    uint32_t bad[kLanes] = {};
    size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (size_t j = 0; j < kLanes; ++j) {
            bad[j] |= std::fabs(x[i + j]) <= std::numeric_limits<float>::max() ? 0u : 1u;
        }
    }
    for (size_t j = 0; i + j < n; ++j) bad[j] |= std::fabs(x[i + j]) <= std::numeric_limits<float>::max() ? 0u : 1u;
    uint32_t any = 0;
    for (size_t j = 0; j < kLanes; ++j) any |= bad[j];
    return any == 0;
}

std::string describe_non_finite(float v) {
    if (std::isnan(v)) return "NaN";
    return v > 0 ? "+Inf" : "-Inf";
}

}  // namespace

PackedTensor quantize_tensor(const Tensor& weight, const QuantScheme& scheme, QuantMethod method,
                             const std::vector<float>* importance, const std::string& tensor_name,
                             const ClipGrid& grid, QuantizationError* error) {
    try {
        check_inputs(weight, scheme, importance, tensor_name);
    } catch (const Error& e) {
        throw e.with_tensor(tensor_name);
    }
    const int64_t rows = weight.shape[0], cols = weight.shape[1];
    PackedTensor out(scheme, rows, cols);
    const PackedGeometry geometry = out.view().geometry();
    const int64_t span = scheme.group_span(cols);
    const int64_t grain = rows_per_chunk(cols);
    // Error slots per chunk; after the loop the first non-finite value wins,
    // then the first other failure, so the message never depends on
    // scheduling.
    const size_t chunks = static_cast<size_t>((rows + grain - 1) / grain);
    std::vector<std::optional<std::string>> non_finite(chunks), failures(chunks);
    std::vector<QuantizationError> chunk_errors(error ? chunks : 0);

    // F32 weights in a file mapping are read with pread (core/memory.h:
    // cheaper than faulting the mapping in); others are read in place.
    const MappedRangeReader mapped_source = weight.dtype == DType::F32 && weight.nbytes >= (size_t{1} << 20)
                                                ? MappedRangeReader(weight.data, weight.nbytes)
                                                : MappedRangeReader();
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        const size_t chunk = static_cast<size_t>(begin / grain);
        const size_t count = static_cast<size_t>((end - begin) * cols);
        // A reused buffer per thread: fresh allocations of this size come
        // from mmap and fault in zeroed pages for every chunk.
        thread_local std::vector<float> converted;
        const float* values = aligned_f32_rows(weight, begin, cols);
        if (values && mapped_source.ok()) {
            if (converted.size() < count) converted.resize(count);
            if (mapped_source.read(static_cast<size_t>(begin * cols) * sizeof(float), count * sizeof(float),
                                   converted.data())) {
                values = converted.data();
            } else {
                prefault_for_read(values, count * sizeof(float));
            }
        } else if (values) {
            prefault_for_read(values, count * sizeof(float));
        } else {
            if (converted.size() < count) converted.resize(count);
            weight.rows_to_f32(begin, end, converted.data());
            values = converted.data();
        }
        std::vector<uint8_t> codes(static_cast<size_t>(cols));
        std::vector<uint8_t> zeros(static_cast<size_t>(geometry.groups_per_row));
        std::vector<float> scratch(static_cast<size_t>(std::max(span, rtn_row_scratch_floats(scheme, cols))));
        const auto report_non_finite = [&](const float* row, int64_t r) {
            const int64_t c = std::find_if(row, row + cols, [](float v) { return !std::isfinite(v); }) - row;
            non_finite[chunk] = "non-finite value " + describe_non_finite(row[c]) + " at row " +
                                std::to_string(r) + ", column " + std::to_string(c) +
                                " (quantization needs finite weights)";
        };
        const auto pack_row = [&](int64_t r) {
            pack_code_row(scheme, codes.data(), cols, out.codes.data() + r * geometry.code_row_bytes);
            if (!scheme.symmetric) {
                pack_zero_row(scheme, zeros.data(), geometry.groups_per_row,
                              out.zeros.data() + r * geometry.zero_row_bytes);
            }
        };
        // Each row is checked just before it is quantized (so it is read
        // from memory once; RTN checks each group in its range pass). After
        // a group fails, the rest of the chunk is still checked: a
        // non-finite value anywhere outranks the failure.
        for (int64_t r = begin; r < end; ++r) {
            const float* row = values + (r - begin) * cols;
            if (method == QuantMethod::Rtn && !failures[chunk]) {
                RtnRowJob job;
                job.scheme = scheme;
                job.row = row;
                job.cols = cols;
                job.codes = codes.data();
                job.scales = out.scales.data() + r * geometry.groups_per_row;
                job.zeros = zeros.data();
                job.signal = error ? &chunk_errors[chunk].signal : nullptr;
                job.noise = error ? &chunk_errors[chunk].noise : nullptr;
                job.scratch = scratch.data();
                try {
                    if (quantize_row_rtn(job) >= 0) {
                        report_non_finite(row, r);
                        return;
                    }
                    pack_row(r);
                    continue;
                } catch (const Error& e) {
                    failures[chunk] = "row " + std::to_string(r) + ", group " + std::to_string(job.current_group) +
                                      ": " + e.message();
                }
            }
            if (!all_finite(row, cols)) {
                report_non_finite(row, r);
                return;
            }
            if (failures[chunk]) continue;  // the tensor is discarded; keep checking finiteness
            for (int64_t k = 0; k < geometry.groups_per_row; ++k) {
                const int64_t first = k * span;
                const int64_t n = std::min(span, cols - first);
                GroupParams p;
                try {
                    p = method == QuantMethod::Absmax
                            ? encode_group_canonical(scheme, row + first, n,
                                                     absmax_group_params(scheme, row + first, n),
                                                     codes.data() + first, scratch.data())
                            : quantize_group_mse(scheme, row + first, n,
                                                 importance ? importance->data() + first : nullptr, grid,
                                                 codes.data() + first, scratch.data());
                } catch (const Error& e) {
                    failures[chunk] = "row " + std::to_string(r) + ", group " + std::to_string(k) +
                                      ": " + e.message();
                    break;
                }
                out.scales[static_cast<size_t>(r * geometry.groups_per_row + k)] = p.scale;
                zeros[static_cast<size_t>(k)] = static_cast<uint8_t>(p.zero);
                if (error) {
                    dequantize_group(codes.data() + first, n, p, scratch.data());
                    add_group_error_sums(row + first, scratch.data(), n, &chunk_errors[chunk].signal,
                                         &chunk_errors[chunk].noise);
                }
            }
            if (failures[chunk]) continue;
            pack_row(r);
        }
    });
    for (const auto* errors : {&non_finite, &failures}) {
        for (const auto& message : *errors) {
            if (message) fail_in({"", tensor_name, ""}, *message);
        }
    }
    if (error) {
        *error = {};
        for (const QuantizationError& sums : chunk_errors) {  // fixed order: any thread count
            error->signal += sums.signal;
            error->noise += sums.noise;
        }
    }
    return out;
}

double QuantizationError::sqnr_db() const {
    if (noise == 0) return std::numeric_limits<double>::infinity();
    if (signal == 0) return -std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(signal / noise);
}

std::vector<float> dequantize_tensor(const PackedView& packed) {
    const PackedGeometry geometry = packed.geometry();
    std::vector<float> out(static_cast<size_t>(geometry.rows * geometry.cols));
    parallel_for(0, packed.rows, rows_per_chunk(packed.cols), [&](int64_t begin, int64_t end) {
        dequantize_rows(packed, begin, end, out.data() + begin * packed.cols);
    });
    return out;
}

std::vector<float> dequantize_tensor(const PackedTensor& packed) {
    return dequantize_tensor(packed.view());
}

double sqnr_db(const std::vector<float>& original, const std::vector<float>& dequantized) {
    if (original.size() != dequantized.size()) {
        fail("sqnr_db: ", original.size(), " original values but ", dequantized.size(),
             " dequantized ones");
    }
    const int64_t n = static_cast<int64_t>(original.size());
    const int64_t grain = int64_t{1} << 16;
    std::vector<double> signal(static_cast<size_t>((n + grain - 1) / grain));
    std::vector<double> noise(signal.size());
    parallel_for(0, n, grain, [&](int64_t begin, int64_t end) {
        double s = 0, e = 0;
        for (int64_t i = begin; i < end; ++i) {
            const double w = original[i], d = w - static_cast<double>(dequantized[i]);
            s += w * w;
            e += d * d;
        }
        signal[static_cast<size_t>(begin / grain)] = s;
        noise[static_cast<size_t>(begin / grain)] = e;
    });
    double s = 0, e = 0;
    for (size_t c = 0; c < signal.size(); ++c) {
        s += signal[c];
        e += noise[c];
    }
    if (e == 0) return std::numeric_limits<double>::infinity();
    if (s == 0) return -std::numeric_limits<double>::infinity();
    return 10.0 * std::log10(s / e);
}

}  // namespace sparq
