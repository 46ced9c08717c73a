#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <vector>

#include "core/parallel.h"

namespace sparq {
namespace {

// A float reduction per chunk whose result would change if chunking depended
// on the thread count.
std::vector<float> chunked_sums(int threads) {
    ThreadLimit limit(threads);
    std::vector<float> values(100003);
    for (size_t i = 0; i < values.size(); ++i) values[i] = std::sin(static_cast<float>(i)) * 1e3f;
    const int64_t grain = 997;
    std::vector<float> sums((values.size() + grain - 1) / grain);
    parallel_for(0, static_cast<int64_t>(values.size()), grain, [&](int64_t b, int64_t e) {
        float s = 0;
        for (int64_t i = b; i < e; ++i) s += values[i];
        sums[b / grain] = s;
    });
    return sums;
}

TEST(Parallel, ResultsAreBitIdenticalForAnyThreadCount) {
    const auto one = chunked_sums(1);
    const auto two = chunked_sums(2);
    const auto many = chunked_sums(8);
    EXPECT_EQ(one, two);
    EXPECT_EQ(one, many);
}

TEST(Parallel, CoversEveryIndexExactlyOnce) {
    std::vector<std::atomic<int>> hits(1000);
    parallel_for(0, 1000, 7, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) hits[i]++;
    });
    for (auto& h : hits) EXPECT_EQ(h.load(), 1);
    int calls = 0;
    parallel_for(5, 5, 3, [&](int64_t, int64_t) { ++calls; });
    EXPECT_EQ(calls, 0);
}

TEST(Parallel, ThreadLimitIsApplied) {
    ThreadLimit limit(1);
    EXPECT_EQ(active_threads(), 1);
}

}  // namespace
}  // namespace sparq
