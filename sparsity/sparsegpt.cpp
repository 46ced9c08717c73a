#include "sparsity/sparsegpt.h"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/clip_search.h"
#include "quant/quantize_tensor.h"
#include "quant/reference_codec.h"
#include "quant/rtn.h"
#include "quant/subtract_product.h"
#include "sparsity/mask_refit.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_inputs(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                  const SparsityTarget& target, const std::optional<QuantScheme>& quant,
                  const SparseGptOptions& options, const PruneMask* fixed_mask) {
    target.validate(target.kind == SparsityTarget::Kind::NM ? "pattern" : "sparsity");
    if (quant) validate_quant_scheme(*quant);
    if (rows < 0 || cols < 1) fail("SparseGPT needs a weight with at least one column, got [", rows, ", ", cols, "]");
    if (rows > 0 && !weight) fail("SparseGPT got no weight data");
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail("the Hessian has ", hessian.size(), " values, expected ", cols, " x ", cols, " for the weight's columns");
    }
    if (options.block_size < 1) fail("SparseGPT block size must be positive, got ", options.block_size);
    if (target.kind == SparsityTarget::Kind::NM && !fixed_mask) {
        if (cols % target.m != 0) {
            fail("rows of ", cols, " columns cannot be cut into runs of ", target.m, " for the ", target.name(),
                 " pattern (leave this tensor out with --ignore)");
        }
        if (options.block_size % target.m != 0) {
            fail("SparseGPT block size ", options.block_size, " is not a multiple of M = ", target.m);
        }
    }
    if (fixed_mask && (fixed_mask->rows != rows || fixed_mask->cols != cols)) {
        fail("the mask is [", fixed_mask->rows, ", ", fixed_mask->cols, "], the weight [", rows, ", ", cols, "]");
    }
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (!std::isfinite(weight[i])) {
            fail("non-finite value ", weight[i], " at row ", i / cols, ", column ", i % cols,
                 " (pruning needs finite weights)");
        }
    }
}

int64_t rows_per_chunk(int64_t rows, int64_t cols) {
    const int64_t grain = std::max<int64_t>(8, (int64_t{1} << 18) / cols);
    return std::max<int64_t>(1, std::min(grain, rows));
}

// Parameters of a group from its kept values only (pruned positions store
// the zero point and must not widen the range). Exact representation first,
// as RTN and GPTQ do.
GroupParams group_params_of(const QuantScheme& scheme, const float* kept, const float* importance, int64_t n,
                            bool clip_search) {
    if (n == 0) {
        const float zero = 0.0f;
        return rtn_group_params(scheme, &zero, 1);
    }
    if (const std::optional<GroupParams> exact = exact_group_params(scheme, kept, n)) return *exact;
    if (!clip_search) return rtn_group_params(scheme, kept, n);
    return search_clip_params(scheme, kept, n, importance, ClipGrid{});
}

inline float round_to_grid(const QuantScheme& scheme, float w, GroupParams p) {
    const float scale = p.scale_value();
    const uint8_t code = quantize_value(w, scale, p.zero, min_code(scheme), max_code(scheme));
    return dequantize_value(code, scale, p.zero);
}

// Each input's weight in the clip search: H's diagonal (its mean squared
// activation), 0 where it is not a usable number.
std::vector<float> diagonal_importance(const std::vector<double>& hessian, int64_t cols) {
    std::vector<float> importance(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        const double d = hessian[static_cast<size_t>(c * cols + c)];
        importance[static_cast<size_t>(c)] = std::isfinite(d) && d > 0 ? static_cast<float>(d) : 0.0f;
    }
    return importance;
}

// The fallback when H cannot be factored: the mask from |w| alone, no update.
PruneMask magnitude_mask(const float* weight, int64_t rows, int64_t cols, const SparsityTarget& target,
                         const std::string& tensor) {
    std::vector<float> scores(weight, weight + rows * cols);
    for (float& s : scores) s = std::fabs(s);
    return select_mask(scores.data(), rows, cols, target, tensor);
}

}  // namespace

SparseGptResult sparsegpt_prune(const float* weight, int64_t rows, int64_t cols, const std::vector<double>& hessian,
                                const SparsityTarget& target, const std::optional<QuantScheme>& quant,
                                const SparseGptOptions& options, const std::string& tensor,
                                const PruneMask* fixed_mask) {
    try {
        check_inputs(weight, rows, cols, hessian, target, quant, options, fixed_mask);
    } catch (const Error& e) {
        throw e.with_tensor(tensor);
    }
    SparseGptResult result;
    std::string failure;
    const std::optional<InverseHessianFactor> factor =
        inverse_hessian_factor(hessian, cols, options.damping, &failure);
    if (!factor) {
        // Without a usable H no update is meaningful: select on |w| (or keep
        // the given mask) and round the survivors with the scheme's RTN.
        result.fell_back = true;
        result.fallback_reason = failure;
        result.mask = fixed_mask ? *fixed_mask : magnitude_mask(weight, rows, cols, target, tensor);
        result.weights.assign(weight, weight + rows * cols);
        apply_mask(result.mask, result.weights.data());
        if (quant) {
            result.packed = quantize_tensor(make_f32_tensor({rows, cols}, result.weights), *quant, QuantMethod::Rtn,
                                            nullptr, tensor);
            result.weights = dequantize_tensor(*result.packed);
            apply_mask(result.mask, result.weights.data());
        }
        return result;
    }
    result.damp_fraction = factor->damp_fraction;
    result.dead_columns = factor->dead_columns;
    const Eigen::Map<const RowMatrix> upper(factor->upper.data(), cols, cols);

    const std::vector<float> importance = diagonal_importance(hessian, cols);
    const bool nm = target.kind == SparsityTarget::Kind::NM;
    const int64_t span = quant ? quant->group_span(cols) : cols;
    const int64_t groups = quant ? groups_per_row(*quant, cols) : 1;
    const int64_t block = options.block_size;

    result.mask.rows = rows;
    result.mask.cols = cols;
    result.mask.keep.assign(static_cast<size_t>(rows * cols), 1);
    if (fixed_mask) result.mask.keep = fixed_mask->keep;
    result.weights.assign(static_cast<size_t>(rows * cols), 0.0f);
    if (quant) result.packed = PackedTensor(*quant, rows, cols);
    const int64_t grain = rows_per_chunk(rows, cols);
    std::vector<std::optional<std::string>> failures(static_cast<size_t>((rows + grain - 1) / grain));

    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        const int64_t n_rows = end - begin;
        RowMatrix w(n_rows, cols);
        for (int64_t r = 0; r < n_rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) w(r, c) = weight[(begin + r) * cols + c];
        }
        uint8_t* keep = result.mask.keep.data() + begin * cols;
        float* out = result.weights.data() + begin * cols;
        std::vector<GroupParams> params(static_cast<size_t>(n_rows * groups));
        std::vector<float> scores(static_cast<size_t>(std::max(block, nm ? int64_t{target.m} : int64_t{1})));
        std::vector<float> kept(static_cast<size_t>(span)), kept_importance(static_cast<size_t>(span));
        RowMatrix errors(n_rows, block);
        try {
            for (int64_t i1 = 0; i1 < cols; i1 += block) {
                const int64_t i2 = std::min(cols, i1 + block), count = i2 - i1;
                if (!fixed_mask && !nm) {
                    const int64_t prune = std::llround(target.sparsity * static_cast<double>(i2)) -
                                          std::llround(target.sparsity * static_cast<double>(i1));
                    for (int64_t r = 0; r < n_rows; ++r) {
                        for (int64_t j = 0; j < count; ++j) {
                            const double u = upper(i1 + j, i1 + j);
                            scores[j] = static_cast<float>(w(r, i1 + j) * w(r, i1 + j) / (u * u));
                        }
                        select_row_keep(scores.data(), count, count - prune, keep + r * cols + i1);
                    }
                }
                for (int64_t i = i1; i < i2; ++i) {
                    if (!fixed_mask && nm && i % target.m == 0) {
                        for (int64_t r = 0; r < n_rows; ++r) {
                            for (int64_t j = 0; j < target.m; ++j) {
                                const double u = upper(i + j, i + j);
                                scores[j] = static_cast<float>(w(r, i + j) * w(r, i + j) / (u * u));
                            }
                            select_row_keep(scores.data(), target.m, target.n, keep + r * cols + i);
                        }
                    }
                    if (quant && i % span == 0) {
                        const int64_t n = std::min(span, cols - i);
                        for (int64_t r = 0; r < n_rows; ++r) {
                            int64_t k = 0;
                            for (int64_t j = 0; j < n; ++j) {
                                if (!keep[r * cols + i + j]) continue;
                                kept[k] = static_cast<float>(w(r, i + j));
                                kept_importance[k] = importance[i + j];
                                ++k;
                            }
                            params[static_cast<size_t>(r * groups + i / span)] =
                                group_params_of(*quant, kept.data(), kept_importance.data(), k, options.clip_search);
                        }
                    }
                    const double d = upper(i, i);
                    const double* u_row = factor->upper.data() + i * cols;
                    for (int64_t r = 0; r < n_rows; ++r) {
                        const double value = w(r, i);
                        float q = 0.0f;
                        if (keep[r * cols + i]) {
                            q = quant ? round_to_grid(*quant, static_cast<float>(value),
                                                      params[static_cast<size_t>(r * groups + i / span)])
                                      : static_cast<float>(value);
                        }
                        out[r * cols + i] = q;
                        const double e = (value - static_cast<double>(q)) / d;
                        errors(r, i - i1) = e;
                        double* w_row = w.data() + r * cols;
                        for (int64_t j = i + 1; j < i2; ++j) w_row[j] -= e * u_row[j];
                    }
                }
                if (i2 < cols) {
                    // w(:, i2..) -= errors(:, 0..count) upper(i1..i2, i2..)
                    subtract_product(w.data() + i2, cols, errors.data(), block, 1,
                                     factor->upper.data() + i1 * cols + i2, cols, n_rows, cols - i2, count);
                }
            }
            if (quant) {
                // The layout's canonical encoding of the values chosen above
                // (the same grid points; pruned zeros get the zero point).
                PackedTensor& packed = *result.packed;
                const PackedGeometry geometry = packed.view().geometry();
                std::vector<uint8_t> codes(static_cast<size_t>(cols)), zeros(static_cast<size_t>(groups));
                std::vector<float> scratch(static_cast<size_t>(span));
                for (int64_t r = 0; r < n_rows; ++r) {
                    const int64_t row = begin + r;
                    for (int64_t g = 0; g < groups; ++g) {
                        const int64_t first = g * span, n = std::min(span, cols - first);
                        const GroupParams p =
                            encode_group_canonical(*quant, out + r * cols + first, n,
                                                   params[static_cast<size_t>(r * groups + g)], codes.data() + first,
                                                   scratch.data());
                        packed.scales[static_cast<size_t>(row * groups + g)] = p.scale;
                        zeros[static_cast<size_t>(g)] = static_cast<uint8_t>(p.zero);
                    }
                    pack_code_row(*quant, codes.data(), cols, packed.codes.data() + row * geometry.code_row_bytes);
                    if (!quant->symmetric) {
                        pack_zero_row(*quant, zeros.data(), groups, packed.zeros.data() + row * geometry.zero_row_bytes);
                    }
                }
            }
        } catch (const Error& e) {
            failures[static_cast<size_t>(begin / grain)] = "rows " + std::to_string(begin) + "..: " + e.message();
        }
    });
    for (const auto& f : failures) {
        if (f) fail_in({"", tensor, ""}, *f);
    }
    if (quant) {
        // What the runtime will compute with: the stored codes, decoded.
        result.weights = dequantize_tensor(*result.packed);
    }
    return result;
}

double quantize_masked_with_refit_cost(int64_t rows, int64_t cols, int64_t span, int refit_iterations) {
    const double groups = static_cast<double>((cols + span - 1) / std::max<int64_t>(1, span));
    return (refit_iterations + 2) * groups * static_cast<double>(rows) * static_cast<double>(cols) *
           static_cast<double>(cols);
}

SparseGptResult quantize_masked_with_refit(const float* original, const float* start, int64_t rows, int64_t cols,
                                           const std::vector<double>& hessian, const PruneMask& mask,
                                           const QuantScheme& quant, const SparseGptOptions& options,
                                           int refit_iterations, const std::string& tensor) {
    validate_quant_scheme(quant);
    if (mask.rows != rows || mask.cols != cols) {
        fail_in({"", tensor, ""}, "the mask is [", mask.rows, ", ", mask.cols, "], the weight [", rows, ", ", cols, "]");
    }
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail_in({"", tensor, ""}, "the Hessian has ", hessian.size(), " values, expected ", cols, " x ", cols);
    }
    const std::vector<float> importance = diagonal_importance(hessian, cols);
    const int64_t span = quant.group_span(cols);
    std::vector<float> values(start, start + rows * cols);
    PruneMask free = mask;
    const MaskRefitOptions refit{refit_iterations, options.damping.fraction};
    for (int64_t first = 0; first < cols; first += span) {
        const int64_t n = std::min(span, cols - first);
        parallel_for(0, rows, 64, [&](int64_t begin, int64_t end) {
            std::vector<float> kept(static_cast<size_t>(n)), kept_importance(static_cast<size_t>(n));
            for (int64_t r = begin; r < end; ++r) {
                float* row = values.data() + r * cols + first;
                int64_t k = 0;
                for (int64_t j = 0; j < n; ++j) {
                    if (!mask.kept(r, first + j)) continue;
                    kept[k] = row[j];
                    kept_importance[k] = importance[first + j];
                    ++k;
                }
                const GroupParams p =
                    group_params_of(quant, kept.data(), kept_importance.data(), k, options.clip_search);
                for (int64_t j = 0; j < n; ++j) {
                    if (mask.kept(r, first + j)) row[j] = round_to_grid(quant, row[j], p);
                    free.keep[static_cast<size_t>(r * cols + first + j)] = 0;
                }
            }
        });
        if (first + n < cols) refit_kept_weights(original, values.data(), rows, cols, free, hessian, refit, tensor);
    }
    // Every kept value is now a grid point of its group: the OBS pass with
    // the mask fixed makes no error on them and only packs them.
    return sparsegpt_prune(values.data(), rows, cols, hessian, SparsityTarget::unstructured(0.0), quant, options,
                           tensor, &mask);
}

}  // namespace sparq
