#include "quant/imatrix.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/group_output_error.h"
#include "quant/rtn.h"

namespace sparq {

namespace {

GroupParams search_with_float_block(const QuantScheme& scheme, const float* x, int64_t n, const float* h_transposed,
                                    const ClipGrid& grid, float* scratch) {
    if (const std::optional<GroupParams> exact = exact_group_params(scheme, x, n)) return *exact;
    const GroupRange range = group_range(x, n);
    const RtnCandidates at_one = rtn_candidates(scheme, range, 1.0f);
    GroupParams best = at_one.params[0];
    double best_error = group_output_error(scheme, x, n, h_transposed, best, scratch);
    for (int c = 1; c < at_one.count; ++c) {
        const double e = group_output_error(scheme, x, n, h_transposed, at_one.params[c], scratch);
        if (e < best_error) {
            best = at_one.params[c];
            best_error = e;
        }
    }
    // Ties keep the larger ratio, as the plain clip search does.
    for (int k = 1; k <= grid.steps && best_error > 0.0; ++k) {
        const GroupParams candidate = rtn_candidates(scheme, range, grid.ratio(k)).params[0];
        if (candidate == best) continue;
        const double e = group_output_error(scheme, x, n, h_transposed, candidate, scratch);
        if (e < best_error) {
            best = candidate;
            best_error = e;
        }
    }
    return best;
}

}  // namespace

GroupParams search_clip_params_hessian(const QuantScheme& scheme, const float* x, int64_t n, const double* h_block,
                                       int64_t ld, const ClipGrid& grid) {
    const std::vector<float> block = float_block_transposed(h_block, n, ld);
    std::vector<float> scratch(static_cast<size_t>(2 * n));
    return search_with_float_block(scheme, x, n, block.data(), grid, scratch.data());
}

PackedTensor quantize_importance_weighted(const float* weight, int64_t rows, int64_t cols,
                                          const std::vector<double>& hessian, const QuantScheme& scheme,
                                          ImportanceWeighting weighting, const std::string& tensor_name,
                                          const ClipGrid& grid) {
    const ErrorContext context{"", tensor_name, ""};
    try {
        validate_quant_scheme(scheme);
    } catch (const Error& e) {
        throw e.with_tensor(tensor_name);
    }
    if (rows < 0 || cols < 1) fail_in(context, "needs a weight with at least one column, got [", rows, ", ", cols, "]");
    if (hessian.size() != static_cast<size_t>(cols) * static_cast<size_t>(cols)) {
        fail_in(context, "the Hessian has ", hessian.size(), " values, expected ", cols, " x ", cols);
    }
    for (size_t i = 0; i < hessian.size(); ++i) {
        if (!std::isfinite(hessian[i])) fail_in(context, "the Hessian has a non-finite value at ", i);
    }
    std::vector<float> energy(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) {
        const double e = hessian[static_cast<size_t>(c * cols + c)];
        if (e < 0) fail_in(context, "the Hessian's diagonal is negative at column ", c);
        energy[c] = static_cast<float>(e);
    }
    for (int64_t i = 0; i < rows * cols; ++i) {
        if (!std::isfinite(weight[i])) {
            fail_in(context, "non-finite value ", weight[i], " at row ", i / cols, ", column ", i % cols,
                    " (quantization needs finite weights)");
        }
    }
    PackedTensor out(scheme, rows, cols);
    const PackedGeometry geometry = out.view().geometry();
    const int64_t span = scheme.group_span(cols), groups = geometry.groups_per_row;
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 14) / cols);
    std::vector<std::optional<std::string>> failures(static_cast<size_t>((rows + grain - 1) / grain));
    // Every row shares the groups' blocks of H: convert them once.
    std::vector<std::vector<float>> blocks;
    if (weighting == ImportanceWeighting::GroupHessian) {
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t first = g * span, n = std::min(span, cols - first);
            blocks.push_back(float_block_transposed(hessian.data() + first * cols + first, n, cols));
        }
    }
    parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
        std::vector<float> scratch(static_cast<size_t>(span)), error_scratch(static_cast<size_t>(2 * span));
        std::vector<uint8_t> codes(static_cast<size_t>(cols)), zeros(static_cast<size_t>(groups));
        for (int64_t r = begin; r < end; ++r) {
            const float* row = weight + r * cols;
            for (int64_t g = 0; g < groups; ++g) {
                const int64_t first = g * span, n = std::min(span, cols - first);
                GroupParams p;
                try {
                    if (weighting == ImportanceWeighting::Diagonal) {
                        p = quantize_group_mse(scheme, row + first, n, energy.data() + first, grid,
                                               codes.data() + first, scratch.data());
                    } else {
                        const GroupParams chosen =
                            search_with_float_block(scheme, row + first, n, blocks[g].data(), grid,
                                                    error_scratch.data());
                        p = encode_group_canonical(scheme, row + first, n, chosen, codes.data() + first,
                                                   scratch.data());
                    }
                } catch (const Error& e) {
                    failures[static_cast<size_t>(begin / grain)] =
                        "row " + std::to_string(r) + ", group " + std::to_string(g) + ": " + e.message();
                    return;
                }
                out.scales[static_cast<size_t>(r * groups + g)] = p.scale;
                zeros[static_cast<size_t>(g)] = static_cast<uint8_t>(p.zero);
            }
            pack_code_row(scheme, codes.data(), cols, out.codes.data() + r * geometry.code_row_bytes);
            if (!scheme.symmetric) {
                pack_zero_row(scheme, zeros.data(), groups, out.zeros.data() + r * geometry.zero_row_bytes);
            }
        }
    });
    for (const auto& f : failures) {
        if (f) fail_in(context, *f);
    }
    return out;
}

}  // namespace sparq
