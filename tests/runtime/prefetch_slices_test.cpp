// The decode loops' prefetch plan (runtime/kernels/prefetch_slices.h): over
// a loop's steps every line of every plane is taken, in order, and nothing
// far from the planes is. The prefetches themselves are only hints, so the
// plan is what can go wrong silently.
#include "runtime/kernels/prefetch_slices.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace sparq::kernels {
namespace {

constexpr int64_t kLine = PrefetchSlices::kLine;

int64_t line_of(const char* p) { return static_cast<int64_t>(reinterpret_cast<uintptr_t>(p) / kLine); }

struct Range {
    int64_t offset;  // into the buffer
    int64_t bytes;
};

// Every step once (the loops' pattern, `step_count` steps per call).
std::vector<const char*> visit_all(const PrefetchSlices& slices, int64_t steps, int64_t step_count) {
    std::vector<const char*> seen;
    for (int64_t first = 0; first < steps; first += step_count) {
        slices.visit(first, std::min(step_count, steps - first), [&](const char* p) { seen.push_back(p); });
    }
    return seen;
}

void expect_covers(const std::vector<char>& buffer, const std::vector<Range>& ranges, int64_t steps,
                   int64_t step_count) {
    PrefetchSlices slices(steps);
    for (const Range& r : ranges) slices.add(buffer.data() + r.offset, r.bytes);
    const std::vector<const char*> seen = visit_all(slices, steps, step_count);
    std::set<int64_t> lines;
    for (const char* p : seen) lines.insert(line_of(p));
    for (const Range& r : ranges) {
        const int64_t first = line_of(buffer.data() + r.offset);
        // The range's last line may go untaken (documented); every other is taken.
        const int64_t last = line_of(buffer.data() + r.offset + r.bytes - 1);
        for (int64_t line = first; line < last; ++line) {
            EXPECT_TRUE(lines.count(line)) << "range at " << r.offset << " (" << r.bytes << " bytes), " << steps
                                           << " steps: line " << line - first << " never taken";
        }
        EXPECT_TRUE(lines.count(first)) << "range at " << r.offset << ": its first line is not taken";
    }
    // Nothing taken lies far from every range: at most one rounded-up step past the end.
    for (const char* p : seen) {
        bool near = false;
        for (const Range& r : ranges) {
            const char* begin = buffer.data() + r.offset;
            const int64_t slack = (r.bytes + steps - 1) / steps + kLine;
            near = near || (p >= begin && p < begin + r.bytes + slack);
        }
        EXPECT_TRUE(near) << "a prefetch outside every range";
    }
    // Per plane, the steps take lines in order (the loop walks forward).
    for (size_t plane = 0; plane < ranges.size(); ++plane) {
        PrefetchSlices one(steps);
        one.add(buffer.data() + ranges[plane].offset, ranges[plane].bytes);
        const std::vector<const char*> walk = visit_all(one, steps, step_count);
        for (size_t i = 1; i < walk.size(); ++i) EXPECT_LE(walk[i - 1], walk[i]);
    }
}

TEST(PrefetchSlices, EveryLineOfEveryPlaneIsTaken) {
    std::vector<char> buffer(1 << 20);
    // The decode loops' shapes: 2:4 int4 tiles (values, indices, scales
    // over 32 chunks), int8 rows over 8 or 64 segments, odd sizes and
    // unaligned starts, planes smaller than a line and larger than a step.
    expect_covers(buffer, {{0, 2048}, {4096, 1024}, {8192, 512}}, 32, 1);
    expect_covers(buffer, {{0, 2048 * 4}, {16384, 16}}, 8, 1);
    expect_covers(buffer, {{3, 5000}, {70001, 77}, {90000, 1}}, 21, 1);
    expect_covers(buffer, {{17, 9999}}, 64, 4);
    expect_covers(buffer, {{129, 130}, {1000, 6400}}, 7, 2);
    expect_covers(buffer, {{5, 100000}}, 3, 1);
}

TEST(PrefetchSlices, EmptyOrExtraPlanesAreIgnored) {
    std::vector<char> buffer(4096);
    PrefetchSlices slices(4);
    slices.add(nullptr, 100);
    slices.add(buffer.data(), 0);
    slices.add(buffer.data(), -5);
    EXPECT_EQ(slices.planes(), 0);
    int visited = 0;
    slices.visit(0, 4, [&](const char*) { ++visited; });
    EXPECT_EQ(visited, 0);
    for (int i = 0; i < PrefetchSlices::kMaxPlanes + 2; ++i) slices.add(buffer.data() + 64 * i, 64);
    EXPECT_EQ(slices.planes(), PrefetchSlices::kMaxPlanes);
    // A loop of zero steps still takes a valid plan (steps clamp to 1).
    PrefetchSlices none(0);
    none.add(buffer.data(), 256);
    std::vector<const char*> seen;
    none.visit(0, 1, [&](const char* p) { seen.push_back(p); });
    EXPECT_EQ(seen.size(), 4u);
    // And fetching (real prefetches) over the plan is harmless.
    none.fetch(0, 1);
    FetchSlices(nullptr, 0, 1);
    FetchSlices(&none, 0, 1);
}

}  // namespace
}  // namespace sparq::kernels
