#include "runtime/bandwidth_probe.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/bandwidth_probe.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "core/parallel.h"

HWY_BEFORE_NAMESPACE();
namespace sparq {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Sums 32-bit words with four independent accumulators so the loop is
// bound by loads, not by the add latency.
uint32_t SumWords(const uint32_t* HWY_RESTRICT p, int64_t n) {
    const hn::ScalableTag<uint32_t> d;
    const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
    auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
    int64_t i = 0;
    for (; i + 4 * lanes <= n; i += 4 * lanes) {
        a0 = hn::Add(a0, hn::LoadU(d, p + i));
        a1 = hn::Add(a1, hn::LoadU(d, p + i + lanes));
        a2 = hn::Add(a2, hn::LoadU(d, p + i + 2 * lanes));
        a3 = hn::Add(a3, hn::LoadU(d, p + i + 3 * lanes));
    }
    uint32_t sum = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
    for (; i < n; ++i) sum += p[i];
    return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace sparq
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace sparq {

HWY_EXPORT(SumWords);

double measure_read_bandwidth(int64_t bytes, int repeats) {
    const int64_t words = bytes / 4;
    std::vector<uint32_t> buffer(static_cast<size_t>(words));
    // Touch every page (and give the data non-trivial values) before timing.
    parallel_for(0, words, int64_t{1} << 20, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) buffer[i] = static_cast<uint32_t>(i * 2654435761u);
    });
    const int64_t grain = int64_t{1} << 20;  // 4 MiB chunks
    std::vector<uint32_t> sums(static_cast<size_t>((words + grain - 1) / grain));
    double best = 0;
    for (int r = 0; r < repeats; ++r) {
        const auto start = std::chrono::steady_clock::now();
        parallel_for(0, words, grain, [&](int64_t b, int64_t e) {
            sums[b / grain] = HWY_DYNAMIC_DISPATCH(SumWords)(buffer.data() + b, e - b);
        });
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (s > 0) best = std::max(best, static_cast<double>(words) * 4 / s);
    }
    volatile uint32_t sink = 0;
    for (uint32_t v : sums) sink = sink + v;  // keep the reads observable
    return best;
}

}  // namespace sparq
#endif
