#include "quant/clip_search.h"

#include <optional>

#include "quant/rtn.h"

namespace sparq {

GroupParams quantize_group_mse(const QuantScheme& scheme, const float* x, int64_t n,
                               const float* importance, const ClipGrid& grid, uint8_t* codes,
                               float* scratch) {
    // Exactly representable groups take the same path as RTN, so both
    // methods agree on (and are idempotent over) representable values.
    if (const std::optional<GroupParams> exact = exact_group_params(scheme, x, n)) {
        quantize_group(scheme, x, n, *exact, codes);
        return *exact;
    }
    return encode_group_canonical(scheme, x, n, search_clip_params(scheme, x, n, importance, grid),
                                  codes, scratch);
}

GroupParams search_clip_params(const QuantScheme& scheme, const float* x, int64_t n,
                               const float* importance, const ClipGrid& grid) {
    const GroupRange range = group_range(x, n);
    double best_error = 0.0;
    GroupParams best = best_candidate(scheme, x, n, importance,
                                      rtn_candidates(scheme, range, 1.0f), &best_error);
    // Below ratio 1 only the smallest-step shape: once the range is clipped
    // the second shape is within 0.01 dB (int4/int3/int2 on N(0,1)) and
    // would double the cost.
    for (int k = 1; k <= grid.steps && best_error > 0.0; ++k) {
        const GroupParams candidate = rtn_candidates(scheme, range, grid.ratio(k)).params[0];
        if (candidate == best) continue;
        const double error = group_squared_error(scheme, x, n, importance, candidate);
        if (error < best_error) {
            best = candidate;
            best_error = error;
        }
    }
    return best;
}

}  // namespace sparq
