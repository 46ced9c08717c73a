#include "models/attention.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "models/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>
#include <limits>

HWY_BEFORE_NAMESPACE();
namespace sparq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void AttendOneHead(const float* HWY_RESTRICT q, const float* HWY_RESTRICT keys, const float* HWY_RESTRICT values,
                   int64_t stride, int64_t head_dim, int64_t first, int64_t span, float scale,
                   float* HWY_RESTRICT scores, float* HWY_RESTRICT out) {
    const hn::ScalableTag<float> d;
    using V = hn::Vec<decltype(d)>;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    const int64_t whole = head_dim / lanes * lanes;  // dimensions in whole vectors; the rest one at a time
    if (first >= span) {
        std::fill(out, out + head_dim, 0.0f);  // nothing visible: no weight on anything, as the twin
        return;
    }
    // Scores, two running sums per position.
    for (int64_t s = first; s < span; ++s) {
        const float* HWY_RESTRICT k = keys + s * stride;
        V acc0 = hn::Zero(d), acc1 = hn::Zero(d);
        int64_t i = 0;
        for (; i + 2 * lanes <= whole; i += 2 * lanes) {
            acc0 = hn::MulAdd(hn::LoadU(d, q + i), hn::LoadU(d, k + i), acc0);
            acc1 = hn::MulAdd(hn::LoadU(d, q + i + lanes), hn::LoadU(d, k + i + lanes), acc1);
        }
        if (i < whole) acc0 = hn::MulAdd(hn::LoadU(d, q + i), hn::LoadU(d, k + i), acc0);
        float dot = hn::GetLane(hn::SumOfLanes(d, hn::Add(acc0, acc1)));
        for (i = whole; i < head_dim; ++i) dot += q[i] * k[i];
        scores[s] = dot * scale;
    }
    float max_score = scores[first];
    for (int64_t s = first + 1; s < span; ++s) max_score = std::max(max_score, scores[s]);
    // e^(score - max) in place, their sum, and whether any difference is
    // NaN (a NaN score, or infinite scores of one sign).
    const V max_v = hn::Set(d, max_score);
    V sum = hn::Zero(d);
    auto nan = hn::Ne(sum, sum);  // all false
    int64_t s = first;
    for (; s + lanes <= span; s += lanes) {
        const V diff = hn::Sub(hn::LoadU(d, scores + s), max_v);
        nan = hn::Or(nan, hn::IsNaN(diff));
        const V e = hn::Exp(d, diff);
        hn::StoreU(e, d, scores + s);
        sum = hn::Add(sum, e);
    }
    if (s < span) {  // the last partial vector, through a padded copy
        HWY_ALIGN float tail[HWY_MAX_BYTES / sizeof(float)] = {};
        const int64_t rest = span - s;
        std::copy(scores + s, scores + span, tail);
        const auto valid = hn::FirstN(d, static_cast<size_t>(rest));
        const V diff = hn::Sub(hn::Load(d, tail), max_v);
        nan = hn::Or(nan, hn::And(valid, hn::IsNaN(diff)));
        const V e = hn::IfThenElseZero(valid, hn::Exp(d, diff));
        hn::Store(e, d, tail);
        std::copy(tail, tail + rest, scores + s);
        sum = hn::Add(sum, e);
    }
    if (!hn::AllFalse(d, nan)) {
        std::fill(out, out + head_dim, std::numeric_limits<float>::quiet_NaN());
        return;
    }
    const float inv_sum = 1.0f / hn::GetLane(hn::SumOfLanes(d, sum));
    // out = inv_sum * sum_s e_s v_s: per vector of dimensions, four running
    // sums over the positions (in a fixed order).
    const V inv = hn::Set(d, inv_sum);
    for (int64_t i = 0; i < whole; i += lanes) {
        V a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
        const float* HWY_RESTRICT v = values + i;
        int64_t p = first;
        for (; p + 4 <= span; p += 4) {
            a0 = hn::MulAdd(hn::Set(d, scores[p]), hn::LoadU(d, v + p * stride), a0);
            a1 = hn::MulAdd(hn::Set(d, scores[p + 1]), hn::LoadU(d, v + (p + 1) * stride), a1);
            a2 = hn::MulAdd(hn::Set(d, scores[p + 2]), hn::LoadU(d, v + (p + 2) * stride), a2);
            a3 = hn::MulAdd(hn::Set(d, scores[p + 3]), hn::LoadU(d, v + (p + 3) * stride), a3);
        }
        for (; p < span; ++p) a0 = hn::MulAdd(hn::Set(d, scores[p]), hn::LoadU(d, v + p * stride), a0);
        hn::StoreU(hn::Mul(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)), inv), d, out + i);
    }
    for (int64_t i = whole; i < head_dim; ++i) {
        float acc = 0.0f;
        for (int64_t p = first; p < span; ++p) acc += scores[p] * values[p * stride + i];
        out[i] = acc * inv_sum;
    }
}

int64_t AttentionCompiledTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace sparq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sparq {

HWY_EXPORT(AttendOneHead);
HWY_EXPORT(AttentionCompiledTarget);

void attend_one_head(const float* q, const float* keys, const float* values, int64_t stride, int64_t head_dim,
                     int64_t first, int64_t span, float scale, float* scores, float* out) {
    HWY_DYNAMIC_DISPATCH(AttendOneHead)(q, keys, values, stride, head_dim, first, span, scale, scores, out);
}

namespace {

// q . k over one head. Eight running sums instead of one: a single chain
// waits on every add (a head of 128 is 128 dependent adds).
float head_dot(const float* __restrict__ a, const float* __restrict__ b, int64_t n) {
    float sums[8] = {};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; ++j) sums[j] += a[i + j] * b[i + j];
    }
    for (; i < n; ++i) sums[i % 8] += a[i] * b[i];
    return ((sums[0] + sums[4]) + (sums[1] + sums[5])) + ((sums[2] + sums[6]) + (sums[3] + sums[7]));
}

}  // namespace

void attend_one_head_scalar(const float* q, const float* keys, const float* values, int64_t stride,
                            int64_t head_dim, int64_t first, int64_t span, float scale, float* scores, float* out) {
    float max_score = -INFINITY;
    for (int64_t s = first; s < span; ++s) {
        scores[s] = head_dot(q, keys + s * stride, head_dim) * scale;
        max_score = std::max(max_score, scores[s]);
    }
    double sum = 0;
    for (int64_t s = first; s < span; ++s) {
        scores[s] = std::exp(scores[s] - max_score);
        sum += scores[s];
    }
    const float inv_sum = static_cast<float>(1.0 / sum);
    std::fill(out, out + head_dim, 0.0f);
    for (int64_t s = first; s < span; ++s) {
        const float p = scores[s] * inv_sum;
        const float* v = values + s * stride;
        for (int64_t i = 0; i < head_dim; ++i) out[i] += p * v[i];
    }
}

const char* attention_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(AttentionCompiledTarget)()); }

int64_t attention_compiled_targets() { return HWY_TARGETS; }

}  // namespace sparq
#endif  // HWY_ONCE
