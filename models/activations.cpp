#include "models/activations.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "models/activations.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

HWY_BEFORE_NAMESPACE();
namespace sparq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// silu(x) = x / (1 + e) for x >= 0 and x e / (1 + e) below, e = e^-|x| in
// (0, 1]: Exp's argument stays in its valid range (e^x for x up to 104),
// and large negative x gives the tiny product instead of x / inf. NaN stays
// NaN (x carries it; Exp's NaN lane is zeroed, not propagated).
template <class D>
HWY_INLINE hn::Vec<D> Silu(D d, hn::Vec<D> x) {
    const auto e = hn::Exp(d, hn::Neg(hn::Abs(x)));
    const auto numerator = hn::IfThenElse(hn::Lt(x, hn::Zero(d)), hn::Mul(x, e), x);
    return hn::Div(numerator, hn::Add(hn::Set(d, 1.0f), e));
}

void SiluTimes(float* HWY_RESTRICT gate, const float* HWY_RESTRICT up, int64_t n) {
    const hn::ScalableTag<float> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    int64_t i = 0;
    for (; i + lanes <= n; i += lanes) {
        hn::StoreU(hn::Mul(Silu(d, hn::LoadU(d, gate + i)), hn::LoadU(d, up + i)), d, gate + i);
    }
    if (i < n) {  // the last partial vector, through a zero-padded copy
        HWY_ALIGN float g[HWY_MAX_BYTES / sizeof(float)] = {}, u[HWY_MAX_BYTES / sizeof(float)] = {};
        const int64_t rest = n - i;
        std::copy(gate + i, gate + n, g);
        std::copy(up + i, up + n, u);
        hn::Store(hn::Mul(Silu(d, hn::Load(d, g)), hn::Load(d, u)), d, g);
        std::copy(g, g + rest, gate + i);
    }
}

int64_t SiluCompiledTarget() { return HWY_TARGET; }

}  // namespace HWY_NAMESPACE
}  // namespace sparq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sparq {

HWY_EXPORT(SiluTimes);
HWY_EXPORT(SiluCompiledTarget);

void silu_times(float* gate, const float* up, int64_t n) {
    if (n > 0) HWY_DYNAMIC_DISPATCH(SiluTimes)(gate, up, n);
}

void silu_times_scalar(float* gate, const float* up, int64_t n) {
    for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

const char* silu_target_name() { return hwy::TargetName(HWY_DYNAMIC_DISPATCH(SiluCompiledTarget)()); }

int64_t silu_compiled_targets() { return HWY_TARGETS; }

}  // namespace sparq
#endif  // HWY_ONCE
