// The fused RTN row kernel of quant/rtn_fused.h, compiled once per Highway
// target. Every floating-point operation mirrors the reference (quant/rtn.cpp,
// quant/reference_codec.cpp): x / scale (a true division: a reciprocal would
// round differently), the clamps, round-half-even by adding 1.5 * 2^23, and
// the error sums in the reference's lanes and order. sparq_quant builds with
// -ffp-contract=off, so no product is fused into an add on any target.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "quant/rtn_fused.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cstring>
#include <limits>

#include "quant/reference_codec.h"
#include "quant/rtn.h"
#include "quant/rtn_fused.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::rtn_simd::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 float lanes: the reference sums squared errors in 16 lanes and
// error sums in 8 double lanes, so a vector never spans two of its lanes' turns.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
using DD = hn::CappedTag<double, 8>;
using VD = hn::Vec<DD>;
using DFD = hn::Rebind<float, DD>;  // as many floats as DD has doubles

int64_t CompiledTarget() { return HWY_TARGET; }

// Loads x[i, i + N) with lanes at or past n zeroed; a zero lane adds
// nothing to any statistic below (the range includes 0 anyway, 0 is an
// integer, and its level and error are 0).
template <class D>
HWY_INLINE hn::Vec<D> LoadPadded(D d, const float* x, int64_t i, int64_t n) {
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    if (i + lanes <= n) return hn::LoadU(d, x + i);
    HWY_ALIGN float tail[hn::MaxLanes(D())] = {};
    std::memcpy(tail, x + i, static_cast<size_t>(n - i) * sizeof(float));
    return hn::Load(d, tail);
}

// quantize_level of reference_codec.h, lane-wise.
HWY_INLINE VF Level(DF d, VF x, VF scale, VF lowest, VF highest) {
    VF v = hn::Div(x, scale);
    v = hn::Min(hn::Max(v, hn::Set(d, -1024.0f)), hn::Set(d, 1024.0f));
    const VF magic = hn::Set(d, 12582912.0f);
    const VF q = hn::Sub(hn::Add(v, magic), magic);
    return hn::Min(hn::Max(q, lowest), highest);
}

// The reference's pairwise tree over 16 lanes (lane j += lane j + w for
// w = 8, 4, 2, 1): halves of a vector are added until one lane is left.
template <class D>
HWY_INLINE float TreeSum(D d, hn::Vec<D> v) {
#if HWY_TARGET == HWY_SCALAR
    (void)d;
    return hn::GetLane(v);
#else
    if constexpr (hn::MaxLanes(D()) == 1) {
        return hn::GetLane(v);
    } else {
        const hn::Half<D> dh;
        return TreeSum(dh, hn::Add(hn::LowerHalf(dh, v), hn::UpperHalf(dh, v)));
    }
#endif
}

// The 16 float lanes of one block of 64 as 16 / N vectors; the first
// halving step of the tree pairs vector k with vector k + count / 2.
float BlockSum(DF d, VF* acc) {
    size_t count = 16 / hn::Lanes(d);
    while (count > 1) {
        count /= 2;
        for (size_t k = 0; k < count; ++k) acc[k] = hn::Add(acc[k], acc[k + count]);
    }
    return TreeSum(d, acc[0]);
}

// FP16 conversions: F16C on x86 targets that have it (exact IEEE, ties to
// even, as core/half.h), core/half.h elsewhere.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
HWY_INLINE float Fp16ToFloat(uint16_t h) { return _cvtsh_ss(h); }
HWY_INLINE uint16_t RoundUpFp16(float magnitude) {  // fp16_round_up of rtn.h
    uint16_t h = static_cast<uint16_t>(_cvtss_sh(magnitude, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if (h >= 0x7c00u) return 0x7c00u;
    if (_cvtsh_ss(h) < magnitude) ++h;
    return h;
}
#else
HWY_INLINE float Fp16ToFloat(uint16_t h) { return fp16_to_fp32(h); }
HWY_INLINE uint16_t RoundUpFp16(float magnitude) { return fp16_round_up(magnitude); }
#endif

// rtn_candidates(s, range, 1) (quant/rtn.cpp), inlined for the symmetric
// schemes below 8 bits, the hot case; the others, and any scale that would
// overflow FP16 (so the error is the reference's), go to rtn_candidates.
RtnCandidates Candidates(const QuantScheme& s, GroupRange range) {
    if (!s.symmetric || s.bits == 8) return rtn_candidates(s, range, 1.0f);
    const float positive = range.highest, negative = -range.lowest;
    const int h = symmetric_zero_point(s.bits);
    const float extreme = std::max(positive, negative);
    RtnCandidates out;
    if (extreme == 0.0f) {
        out.params[out.count++] = {0, h};
        return out;
    }
    const float lng = extreme, shrt = std::min(positive, negative);
    const float hf = static_cast<float>(h);
    const float long_fits = std::max(lng / hf, shrt / (hf - 0.5f));
    const float short_fits = std::max(lng / (hf + 0.5f), shrt / (hf - 1.0f));
    const uint16_t sign = negative >= positive ? 0 : 0x8000u;
    const uint16_t first = RoundUpFp16(std::min(long_fits, short_fits));
    const uint16_t second = RoundUpFp16(std::max(long_fits, short_fits));
    if (first >= 0x7c00u || second >= 0x7c00u) return rtn_candidates(s, range, 1.0f);
    out.params[0] = {static_cast<uint16_t>(first | sign), h};
    out.params[1] = {static_cast<uint16_t>(second | sign), h};
    out.count = 2;
    return out;
}

struct Candidate {
    float scale = 0, lowest = 0, highest = 0;  // levels [lowest, highest]
};

Candidate MakeCandidate(const QuantScheme& s, GroupParams p) {
    return {Fp16ToFloat(p.scale), static_cast<float>(min_code(s) - p.zero), static_cast<float>(max_code(s) - p.zero)};
}

// Extremes of the levels and whether some level is +-1 (which makes their
// gcd 1, the canonical form's usual case).
struct LevelStats {
    VF lowest, highest, has_unit;
};

HWY_INLINE void AddStats(DF d, VF q, LevelStats& s) {
    s.lowest = hn::Min(s.lowest, q);
    s.highest = hn::Max(s.highest, q);
    s.has_unit = hn::Or(s.has_unit, hn::VecFromMask(d, hn::Eq(hn::Abs(q), hn::Set(d, 1.0f))));
}

// Squared errors of the candidates as group_squared_error sums them, with
// each candidate's levels stored to levels[c] (N-padded) and their stats.
void CandidateErrors(DF d, const float* x, int64_t n, const Candidate* cand, int count, float* const* levels,
                     double* error, LevelStats* stats) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    VF scale[2], lowest[2], highest[2];
    for (int c = 0; c < count; ++c) {
        scale[c] = hn::Set(d, cand[c].scale);
        lowest[c] = hn::Set(d, cand[c].lowest);
        highest[c] = hn::Set(d, cand[c].highest);
        error[c] = 0.0;
    }
    for (int64_t begin = 0; begin < n; begin += 64) {
        const int64_t end = std::min<int64_t>(begin + 64, n);
        VF acc[2][16];
        for (int c = 0; c < count; ++c) {
            for (int64_t k = 0; k < 16 / N; ++k) acc[c][k] = hn::Zero(d);
        }
        for (int64_t i = begin; i < end; i += N) {
            const VF xv = LoadPadded(d, x, i, n);
            const int64_t slot = ((i - begin) % 16) / N;
            for (int c = 0; c < count; ++c) {
                const VF q = Level(d, xv, scale[c], lowest[c], highest[c]);
                hn::StoreU(q, d, levels[c] + i);
                AddStats(d, q, stats[c]);
                const VF diff = hn::Sub(xv, hn::Mul(scale[c], q));
                acc[c][slot] = hn::Add(acc[c][slot], hn::Mul(diff, diff));
            }
        }
        for (int c = 0; c < count; ++c) error[c] += static_cast<double>(BlockSum(d, acc[c]));
    }
}

// Levels of one candidate, stored N-padded, and their stats.
void CandidateLevels(DF d, const float* x, int64_t n, const Candidate& cand, float* levels, LevelStats& stats) {
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    const VF scale = hn::Set(d, cand.scale), lowest = hn::Set(d, cand.lowest), highest = hn::Set(d, cand.highest);
    for (int64_t i = 0; i < n; i += N) {
        const VF q = Level(d, LoadPadded(d, x, i, n), scale, lowest, highest);
        hn::StoreU(q, d, levels + i);
        AddStats(d, q, stats);
    }
}

// codes[i] = sign * levels[i] + zero, for levels in [-255, 255] and codes
// in [0, 255].
void WriteCodes(DF d, const float* levels, int64_t n, bool negate, int zero, uint8_t* codes) {
    const hn::RebindToSigned<DF> di;
    const hn::Rebind<uint8_t, DF> du8;
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    const auto offset = hn::Set(di, zero);
    int64_t i = 0;
    for (; i + N <= n; i += N) {
        VF q = hn::LoadU(d, levels + i);
        if (negate) q = hn::Neg(q);
        const auto u = hn::Add(hn::ConvertTo(di, q), offset);
        hn::StoreU(hn::DemoteTo(du8, u), du8, codes + i);
    }
    if (i < n) {
        VF q = hn::LoadU(d, levels + i);
        if (negate) q = hn::Neg(q);
        HWY_ALIGN uint8_t tail[hn::MaxLanes(DF())];
        hn::Store(hn::DemoteTo(du8, hn::Add(hn::ConvertTo(di, q), offset)), du8, tail);
        std::memcpy(codes + i, tail, static_cast<size_t>(n - i));
    }
}

// add_error_sums of quantize_tensor: lane j (of 8, in double) takes
// elements j, j + 8, ...; then the lanes are added in order.
void ErrorSums(const float* x, const float* levels, int64_t n, float scale, double* signal, double* noise) {
    const DD dd;
    const DFD dfd;
    const int64_t N = static_cast<int64_t>(hn::Lanes(dd));
    VD sig[8], err[8];
    for (int64_t k = 0; k < 8 / N; ++k) sig[k] = err[k] = hn::Zero(dd);
    const auto vscale = hn::Set(dfd, scale);
    for (int64_t i = 0; i < n; i += N) {
        const int64_t slot = (i % 8) / N;
        const VD xv = hn::PromoteTo(dd, LoadPadded(dfd, x, i, n));
        const VD dq = hn::PromoteTo(dd, hn::Mul(vscale, hn::LoadU(dfd, levels + i)));
        const VD diff = hn::Sub(xv, dq);
        sig[slot] = hn::Add(sig[slot], hn::Mul(xv, xv));
        err[slot] = hn::Add(err[slot], hn::Mul(diff, diff));
    }
    HWY_ALIGN double s[8], e[8];
    for (int64_t k = 0; k < 8 / N; ++k) {
        hn::Store(sig[k], dd, s + k * N);
        hn::Store(err[k], dd, e + k * N);
    }
    double total_signal = *signal, total_noise = *noise;  // locals: the two may not alias
    for (int j = 0; j < 8; ++j) {
        total_signal += s[j];
        total_noise += e[j];
    }
    *signal = total_signal;
    *noise = total_noise;
}

float Lowest(DF d, VF v) { return hn::GetLane(hn::MinOfLanes(d, v)); }
float Highest(DF d, VF v) { return hn::GetLane(hn::MaxOfLanes(d, v)); }

// One group; false if it holds NaN or Inf.
bool QuantizeGroup(const QuantScheme& s, const float* x, int64_t n, float* scratch, int64_t padded, uint8_t* codes,
                   GroupParams* stored, double* signal, double* noise) {
    const DF d;
    const int64_t N = static_cast<int64_t>(hn::Lanes(d));
    // Pass 1: range, finiteness, and whether every value is an integer
    // multiple of 2^-24 below 2^53 of them (then exact_group_params may
    // apply: the reference decides). F32 weights almost never are.
    VF lo = hn::Zero(d), hi = hn::Zero(d), bad = hn::Zero(d), fractional = hn::Zero(d);
    const VF finite_limit = hn::Set(d, std::numeric_limits<float>::max());
    const VF units_per_one = hn::Set(d, 16777216.0f), exact_limit = hn::Set(d, 9007199254740992.0f);
    for (int64_t i = 0; i < n; i += N) {
        const VF v = LoadPadded(d, x, i, n);
        lo = hn::Min(lo, v);
        hi = hn::Max(hi, v);
        bad = hn::Or(bad, hn::VecFromMask(d, hn::Not(hn::Le(hn::Abs(v), finite_limit))));
        const VF units = hn::Mul(v, units_per_one);
        const auto integral = hn::And(hn::Eq(hn::Round(units), units), hn::Lt(hn::Abs(units), exact_limit));
        fractional = hn::Or(fractional, hn::VecFromMask(d, hn::Not(integral)));
    }
    if (!hn::AllFalse(d, hn::MaskFromVec(bad))) return false;
    const bool integral = hn::AllFalse(d, hn::MaskFromVec(fractional));
    const auto reference_sums = [&](GroupParams p) {
        if (!signal) return;
        float* dq = scratch;  // the levels are no longer needed
        dequantize_group(codes, n, p, dq);
        add_group_error_sums(x, dq, n, signal, noise);
    };
    if (integral) {
        *stored = quantize_group_rtn(s, x, n, codes, scratch);
        reference_sums(*stored);
        return true;
    }
    // group_range widens with +0 and keeps it unless a value is strictly
    // beyond it; vector min/max may return -0.0 instead.
    GroupRange range;
    range.lowest = Lowest(d, lo);
    range.highest = Highest(d, hi);
    if (range.lowest == 0.0f) range.lowest = 0.0f;
    if (range.highest == 0.0f) range.highest = 0.0f;
    const RtnCandidates candidates = Candidates(s, range);

    // Pass 2: levels, stats and (with two distinct candidates) errors;
    // best_candidate's rule: the second wins only with a strictly smaller error.
    float* levels[2] = {scratch, scratch + padded};
    LevelStats stats[2];
    for (LevelStats& st : stats) st = {hn::Zero(d), hn::Zero(d), hn::Zero(d)};
    Candidate cand[2];
    int chosen = 0;
    const bool two = candidates.count == 2 && !(candidates.params[1] == candidates.params[0]);
    cand[0] = MakeCandidate(s, candidates.params[0]);
    if (two) {
        cand[1] = MakeCandidate(s, candidates.params[1]);
        double error[2];
        CandidateErrors(d, x, n, cand, 2, levels, error, stats);
        chosen = error[1] < error[0] ? 1 : 0;
    } else {
        CandidateLevels(d, x, n, cand[0], levels[0], stats[0]);
    }
    const GroupParams params = candidates.params[chosen];

    // The canonical form (canonical_from_codes in rtn.cpp) from the stats:
    // m = sign(d) * level, the gcd of the m is 1 when some |m| is 1.
    const uint16_t magnitude = params.scale & 0x7fffu;
    const bool negative = (params.scale & 0x8000u) != 0;
    const bool has_unit = !hn::AllFalse(d, hn::MaskFromVec(stats[chosen].has_unit));
    bool fast = magnitude != 0 && has_unit && (s.symmetric || !negative);
    GroupParams canonical = params;
    bool flip = false;
    if (fast) {
        const int q_low = static_cast<int>(Lowest(d, stats[chosen].lowest));
        const int q_high = static_cast<int>(Highest(d, stats[chosen].highest));
        const int lowest = std::min(0, negative ? -q_high : q_low);
        const int highest = std::max(0, negative ? -q_low : q_high);
        if (!s.symmetric) {
            canonical = {magnitude, -lowest};
        } else {
            flip = s.bits != 8 && -lowest < highest;
            const int h = symmetric_zero_point(s.bits);
            const int first = flip ? -highest : lowest, last = flip ? -lowest : highest;
            fast = first >= min_code(s) - h && last <= max_code(s) - h;
            canonical = {static_cast<uint16_t>(magnitude | (flip ? 0x8000u : 0u)), h};
        }
    }
    if (!fast) {  // a common factor, a zero scale, or levels out of range: the reference decides
        *stored = encode_group_canonical(s, x, n, params, codes, scratch);
        reference_sums(*stored);
        return true;
    }
    // Pass 3: the codes in canonical form (same values: level' = +-level),
    // and the report's sums from the chosen levels.
    WriteCodes(d, levels[chosen], n, flip != negative, canonical.zero, codes);
    if (signal) ErrorSums(x, levels[chosen], n, cand[chosen].scale, signal, noise);
    *stored = canonical;
    return true;
}

constexpr int64_t kPrefetchFloats = 1024;

int64_t QuantizeRowRtn(RtnRowJob& job) {
    const QuantScheme& s = job.scheme;
    const int64_t span = s.group_span(job.cols);
    const int64_t groups = (job.cols + span - 1) / span;
    const int64_t padded = (span + 15) / 16 * 16;
    for (int64_t k = 0; k < groups; ++k) {
        job.current_group = k;
        const int64_t first = k * span, n = std::min(span, job.cols - first);
        // The rows stream from a mapped file (4 KiB pages the hardware
        // prefetcher does not cross): ask for the group a page ahead, which
        // may lie in the next row (rows are contiguous) or past the tensor
        // (prefetches never fault).
        for (int64_t line = 0; line < n; line += 16) hwy::Prefetch(job.row + first + kPrefetchFloats + line);
        GroupParams p;
        if (!QuantizeGroup(s, job.row + first, n, job.scratch, padded, job.codes + first, &p, job.signal, job.noise)) {
            return k;
        }
        job.scales[k] = p.scale;
        if (job.zeros) job.zeros[k] = static_cast<uint8_t>(p.zero);
    }
    return -1;
}

}  // namespace sparq::rtn_simd::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cmath>

#include "core/vectorize.h"

namespace sparq {
namespace rtn_simd {
HWY_EXPORT(QuantizeRowRtn);
HWY_EXPORT(CompiledTarget);
}  // namespace rtn_simd

SPARQ_VECTORIZE_CLONES
void add_group_error_sums(const float* w, const float* dq, int64_t n, double* signal_sum, double* noise_sum) {
    constexpr int64_t kLanes = 8;
    double signal[kLanes] = {}, noise[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int64_t j = 0; j < kLanes; ++j) {
            const double x = w[i + j], d = x - static_cast<double>(dq[i + j]);
            signal[j] += x * x;
            noise[j] += d * d;
        }
    }
    for (int64_t j = 0; i + j < n; ++j) {
        const double x = w[i + j], d = x - static_cast<double>(dq[i + j]);
        signal[j] += x * x;
        noise[j] += d * d;
    }
    for (int64_t j = 0; j < kLanes; ++j) {
        *signal_sum += signal[j];
        *noise_sum += noise[j];
    }
}

int64_t rtn_row_scratch_floats(const QuantScheme& scheme, int64_t cols) {
    return 2 * ((scheme.group_span(cols) + 15) / 16 * 16);
}

int64_t quantize_row_rtn(RtnRowJob& job) { return HWY_DYNAMIC_DISPATCH(rtn_simd::QuantizeRowRtn)(job); }

int64_t quantize_row_rtn_reference(RtnRowJob& job) {
    const QuantScheme& s = job.scheme;
    const int64_t span = s.group_span(job.cols);
    const int64_t groups = (job.cols + span - 1) / span;
    for (int64_t k = 0; k < groups; ++k) {
        job.current_group = k;
        const int64_t first = k * span, n = std::min(span, job.cols - first);
        const float* x = job.row + first;
        for (int64_t i = 0; i < n; ++i) {
            if (!std::isfinite(x[i])) return k;
        }
        const GroupParams p = quantize_group_rtn(s, x, n, job.codes + first, job.scratch);
        job.scales[k] = p.scale;
        if (job.zeros) job.zeros[k] = static_cast<uint8_t>(p.zero);
        if (job.signal) {
            dequantize_group(job.codes + first, n, p, job.scratch);
            add_group_error_sums(x, job.scratch, n, job.signal, job.noise);
        }
    }
    return -1;
}

const char* rtn_row_target() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(rtn_simd::CompiledTarget)()); }

int64_t rtn_row_compiled_targets() { return HWY_TARGETS; }

}  // namespace sparq
#endif  // HWY_ONCE
