#include "quant/rtn.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/half.h"
#include "core/vectorize.h"

namespace sparq {

GroupRange group_range(const float* x, int64_t n) {
    GroupRange r;
    for (int64_t i = 0; i < n; ++i) {
        r.lowest = std::min(r.lowest, x[i]);
        r.highest = std::max(r.highest, x[i]);
    }
    return r;
}

uint16_t fp16_round_up(float magnitude) {
    uint16_t h = fp32_to_fp16(magnitude);
    if (h >= 0x7c00u) return 0x7c00u;
    if (fp16_to_fp32(h) < magnitude) ++h;  // next FP16 up; 0x7bff + 1 is infinity
    return h;
}

namespace {

uint16_t checked_scale(float magnitude, float extreme) {
    const uint16_t h = fp16_round_up(magnitude);
    if (h >= 0x7c00u) {
        fail("a group with values up to ", extreme,
             " needs a scale above the FP16 maximum 65504 at this bit width");
    }
    return h;
}

// n / d where a zero numerator costs nothing even at d = 0.
float step_for(float n, float d) {
    if (n == 0.0f) return 0.0f;
    return d > 0.0f ? n / d : std::numeric_limits<float>::infinity();
}

RtnCandidates symmetric_candidates(int bits, float positive, float negative) {
    const int h = symmetric_zero_point(bits);
    const float extreme = std::max(positive, negative);
    RtnCandidates out;
    if (extreme == 0.0f) {
        out.params[out.count++] = {0, h};
        return out;
    }
    if (bits == 8) {
        out.params[out.count++] = {checked_scale(extreme / 127.0f, extreme), h};
        return out;
    }
    const float lng = extreme, shrt = std::min(positive, negative);
    const float hf = static_cast<float>(h);
    const float long_fits = std::max(lng / hf, shrt / (hf - 0.5f));
    const float short_fits = std::max(lng / (hf + 0.5f), shrt / (hf - 1.0f));
    // The long side must reach q = -h: a negative scale when it is positive.
    const uint16_t sign = negative >= positive ? 0 : 0x8000u;
    for (float step : {std::min(long_fits, short_fits), std::max(long_fits, short_fits)}) {
        out.params[out.count++] = {static_cast<uint16_t>(checked_scale(step, extreme) | sign), h};
    }
    return out;
}

RtnCandidates asymmetric_candidates(int bits, float positive, float negative) {
    RtnCandidates out;
    if (positive == 0.0f && negative == 0.0f) {
        out.params[out.count++] = {0, 0};
        return out;
    }
    const int q = max_code(bits);
    const float qf = static_cast<float>(q);
    const float infinity = std::numeric_limits<float>::infinity();
    // Step of each shape at zero point z: [0] low end fits, high end may
    // overhang half a step; [1] the mirror.
    const auto steps_at = [&](int z, float* steps) {
        const float zf = static_cast<float>(z);
        steps[0] = (z >= 1 || negative == 0.0f)
                       ? std::max(step_for(negative, zf), step_for(positive, qf - zf + 0.5f))
                       : infinity;
        steps[1] = (z <= q - 1 || positive == 0.0f)
                       ? std::max(step_for(negative, zf + 0.5f), step_for(positive, qf - zf))
                       : infinity;
    };
    const int z0 = static_cast<int>(std::floor(qf * negative / (negative + positive)));
    float best = infinity;
    int best_zero = 0, best_shape = 0;
    for (int z = std::max(0, z0 - 1); z <= std::min(q, z0 + 2); ++z) {
        float steps[2];
        steps_at(z, steps);
        for (int shape = 0; shape < 2; ++shape) {
            if (steps[shape] < best) {
                best = steps[shape];
                best_zero = z;
                best_shape = shape;
            }
        }
    }
    float steps[2];
    steps_at(best_zero, steps);
    const float extreme = std::max(positive, negative);
    out.params[out.count++] = {checked_scale(best, extreme), best_zero};
    if (steps[1 - best_shape] < infinity) {
        out.params[out.count++] = {checked_scale(steps[1 - best_shape], extreme), best_zero};
    }
    return out;
}

}  // namespace

RtnCandidates rtn_candidates(const QuantScheme& scheme, GroupRange range, float clip_ratio) {
    const float positive = range.highest * clip_ratio;
    const float negative = -range.lowest * clip_ratio;
    return scheme.symmetric ? symmetric_candidates(scheme.bits, positive, negative)
                            : asymmetric_candidates(scheme.bits, positive, negative);
}

GroupParams best_candidate(const QuantScheme& scheme, const float* x, int64_t n,
                           const float* importance, const RtnCandidates& candidates,
                           double* error) {
    GroupParams best = candidates.params[0];
    if (candidates.count == 1 && !error) return best;
    double best_error = group_squared_error(scheme, x, n, importance, best);
    for (int c = 1; c < candidates.count; ++c) {
        if (candidates.params[c] == best) continue;
        const double e = group_squared_error(scheme, x, n, importance, candidates.params[c]);
        if (e < best_error) {
            best = candidates.params[c];
            best_error = e;
        }
    }
    if (error) *error = best_error;
    return best;
}

GroupParams absmax_group_params(const QuantScheme& scheme, const float* x, int64_t n) {
    const GroupRange range = group_range(x, n);
    GroupParams p;
    float step;
    if (scheme.symmetric) {
        const int top = (1 << (scheme.bits - 1)) - 1;
        step = std::max(-range.lowest, range.highest) / static_cast<float>(top);
        p.zero = implicit_zero_point(scheme);
    } else {
        step = (range.highest - range.lowest) / static_cast<float>((1 << scheme.bits) - 1);
    }
    if (!(step > 0.0f)) return p;  // an all-zero group: scale 0 stores it exactly
    p.scale = fp16_round_up(step);
    if (p.scale == 0x7c00) fail("group scale ", step, " exceeds the FP16 range");
    if (!scheme.symmetric) {
        const float d = p.scale_value();
        p.zero = d > 0 ? static_cast<int>(std::clamp(round_half_even(-range.lowest / d), 0.0f,
                                                     static_cast<float>((1 << scheme.bits) - 1)))
                       : 0;
    }
    return p;
}

GroupParams rtn_group_params(const QuantScheme& scheme, const float* x, int64_t n) {
    return best_candidate(scheme, x, n, nullptr, rtn_candidates(scheme, group_range(x, n), 1.0f));
}

namespace {

bool represents_exactly(const QuantScheme& scheme, const float* x, int64_t n, GroupParams p) {
    const float scale = p.scale_value();
    const int lowest = min_code(scheme), highest = max_code(scheme);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t code = quantize_value(x[i], scale, p.zero, lowest, highest);
        if (dequantize_value(code, scale, p.zero) != x[i]) return false;
    }
    return true;
}

}  // namespace

std::optional<GroupParams> exact_group_params(const QuantScheme& scheme, const float* x,
                                              int64_t n) {
    // Every FP16 value, hence every representable weight, is a multiple of
    // 2^-24. In those units a step S must divide every value, so it divides
    // their gcd G; the largest S that is an FP16 value and keeps the codes
    // in range is the canonical one (the group "in lowest terms"). It is
    // never smaller than the step the values were quantized with, so the
    // half-step bound still holds for the stored scale.
    constexpr double kUnitsPerOne = 16777216.0;       // 2^24
    constexpr double kExactLimit = 9007199254740992.0;  // 2^53: doubles hold integers exactly
    const auto is_integer = [](double v) {
        return static_cast<double>(static_cast<int64_t>(v)) == v;
    };
    for (int64_t i = 0; i < n; ++i) {  // F32 weights fail here, at the first element
        const double units = static_cast<double>(x[i]) * kUnitsPerOne;
        if (!(std::fabs(units) < kExactLimit) || !is_integer(units)) return std::nullopt;
    }
    // The range bounds the smallest usable step and the gcd only shrinks, so
    // most groups of FP16 weights are ruled out after a couple of gcds
    // instead of costing one per element.
    const GroupRange range = group_range(x, n);
    const double lowest_units = static_cast<double>(range.lowest) * kUnitsPerOne;
    const double highest_units = static_cast<double>(range.highest) * kUnitsPerOne;
    const int64_t lowest = static_cast<int64_t>(lowest_units);
    const int64_t highest = static_cast<int64_t>(highest_units);
    const int h = symmetric_zero_point(scheme.bits);
    int64_t levels = 0, needed = 0;  // codes available, and the span to cover
    if (scheme.symmetric) {
        levels = scheme.bits == 8 ? 127 : h;
        needed = std::max(highest, -lowest);
    } else {
        levels = max_code(scheme.bits);
        needed = highest - lowest;
    }
    const int64_t min_step = (needed + levels - 1) / levels;
    double divisor = 0.0;  // gcd so far, an integer in units
    for (int64_t i = 0; i < n; ++i) {
        const double units = std::fabs(static_cast<double>(x[i]) * kUnitsPerOne);
        if (units == 0.0) continue;
        if (divisor == 0.0) {
            divisor = units;
        } else if (!is_integer(units / divisor)) {
            divisor = static_cast<double>(
                std::gcd(static_cast<int64_t>(divisor), static_cast<int64_t>(units)));
            if (static_cast<int64_t>(divisor) < min_step) return std::nullopt;
        }
    }
    if (divisor == 0.0) return GroupParams{0, implicit_zero_point(scheme)};
    const int64_t g = static_cast<int64_t>(divisor);
    const uint16_t sign = scheme.symmetric && scheme.bits != 8 && -lowest < highest ? 0x8000u : 0;
    // Steps g / j, largest first; j <= levels since g <= needed.
    for (int64_t j = 1; g / j >= min_step; ++j) {
        if (g % j != 0) continue;
        const int64_t step_units = g / j;
        const float step = static_cast<float>(std::ldexp(static_cast<double>(step_units), -24));
        const uint16_t bits = fp32_to_fp16(step);
        if (bits >= 0x7c00u || fp16_to_fp32(bits) != step) continue;
        GroupParams p{static_cast<uint16_t>(bits | sign), h};
        if (!scheme.symmetric) p.zero = static_cast<int>(-lowest / step_units);
        if (represents_exactly(scheme, x, n, p)) return p;
    }
    return std::nullopt;
}

namespace {

// m_i = +-(u_i - z) and their extremes (widened to include 0).
SPARQ_VECTORIZE_CLONES
void signed_levels(const uint8_t* codes, int64_t n, int zero, bool negative, int* levels, int* lowest,
                   int* highest) {
    const int sign = negative ? -1 : 1;
    int low = 0, high = 0;
    for (int64_t i = 0; i < n; ++i) {
        const int m = sign * (codes[i] - zero);
        levels[i] = m;
        low = std::min(low, m);
        high = std::max(high, m);
    }
    *lowest = low;
    *highest = high;
}

// What exact_group_params(dequantized group) returns, read off the codes
// alone, for the usual case. The dequantized values are |d| * m_i with
// m_i = sign(d) * (u_i - z); when the m_i have no common factor no step
// larger than |d| divides them all, so the canonical step is |d| itself and
// only the sign (symmetric: the side with more magnitude gets the extra
// level) and the zero point (asymmetric: -min(m, 0)) may change. Returns
// nullopt, leaving the decision to the general path, when a common factor
// exists or the levels would not fit; fills `levels` with the m_i.
std::optional<GroupParams> canonical_from_codes(const QuantScheme& scheme, const uint8_t* codes,
                                                int64_t n, GroupParams params, int* levels) {
    const int h = symmetric_zero_point(scheme.bits);
    const uint16_t magnitude = params.scale & 0x7fffu;
    const bool negative = (params.scale & 0x8000u) != 0;
    if (!scheme.symmetric && negative) return std::nullopt;
    if (magnitude >= 0x7c00u) return std::nullopt;
    int lowest = 0, highest = 0;
    signed_levels(codes, n, params.zero, negative, levels, &lowest, &highest);
    int common = 0;  // gcd of the levels; almost always 1 after a few
    for (int64_t i = 0; i < n && common != 1; ++i) common = std::gcd(common, levels[i]);
    if (magnitude == 0 || common == 0) return GroupParams{0, implicit_zero_point(scheme)};
    if (common != 1) return std::nullopt;
    if (!scheme.symmetric) return GroupParams{magnitude, -lowest};
    const bool flip = scheme.bits != 8 && -lowest < highest;  // canonical scale negative
    const int low_level = min_code(scheme) - h, high_level = max_code(scheme) - h;
    const int first = flip ? -highest : lowest, last = flip ? -lowest : highest;
    if (first < low_level || last > high_level) return std::nullopt;
    return GroupParams{static_cast<uint16_t>(magnitude | (flip ? 0x8000u : 0u)), h};
}

}  // namespace

GroupParams encode_group_canonical(const QuantScheme& scheme, const float* x, int64_t n,
                                   GroupParams params, uint8_t* codes, float* scratch) {
    quantize_group(scheme, x, n, params, codes);
    // scratch holds n floats; the levels fit in it as ints of the same size.
    static_assert(sizeof(int) == sizeof(float));
    int* levels = reinterpret_cast<int*>(scratch);
    if (const std::optional<GroupParams> fast = canonical_from_codes(scheme, codes, n, params, levels)) {
        if (*fast == params) return params;
        if (fast->scale == 0) {
            std::fill(codes, codes + n, static_cast<uint8_t>(fast->zero));
            return *fast;
        }
        // The same values re-expressed: level m under the new sign and zero.
        const bool flip = (fast->scale & 0x8000u) != 0;
        for (int64_t i = 0; i < n; ++i) {
            codes[i] = static_cast<uint8_t>((flip ? -levels[i] : levels[i]) + fast->zero);
        }
        return *fast;
    }
    dequantize_group(codes, n, params, scratch);
    const std::optional<GroupParams> canonical = exact_group_params(scheme, scratch, n);
    if (!canonical || *canonical == params) return params;
    quantize_group(scheme, scratch, n, *canonical, codes);
    return *canonical;
}

GroupParams quantize_group_rtn(const QuantScheme& scheme, const float* x, int64_t n,
                               uint8_t* codes, float* scratch) {
    if (const std::optional<GroupParams> exact = exact_group_params(scheme, x, n)) {
        quantize_group(scheme, x, n, *exact, codes);
        return *exact;
    }
    return encode_group_canonical(scheme, x, n, rtn_group_params(scheme, x, n), codes, scratch);
}

}  // namespace sparq
