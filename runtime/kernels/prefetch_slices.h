// Software prefetch for the decode row loops, spread over the loop's steps.
//
// Decode streams every weight from memory once, and the row loops do
// enough work per cache line that the hardware prefetcher alone leaves the
// memory system idle part of the time: so each loop fetches the weights of
// rows further on ahead of use. It fetches them a slice per loop step (per
// chunk of 64 columns or activation segment), not a whole row at the row's
// start: a burst of 14-32 prefetches fills the core's line-fill buffers and
// the loop stalls behind it (perf put 20-50% of the decode loops' samples
// on those prefetch instructions). On an Intel Sapphire Rapids host, 1B
// synth decode at 2 threads went int8 per channel 16.6 -> 22.4 tokens/s,
// int4 g32 31.2 -> 34.7 and 2:4 int4 g32 30.6 -> 38.5 (docs/results.md,
// session 21).
//
// The same on every SIMD target. On x86 the prefetch is a volatile asm
// statement: while this was written, GCC 12 dropped every prefetch from the
// kernels for one shape of fetch() (the loop calling __builtin_prefetch,
// _mm_prefetch or hwy::Prefetch directly; a noinline fetch() was not even
// called, as a function that only prefetches has no side effects GCC must
// keep), and the loops silently fetched nothing. The builtin through
// visit() below happens to survive; the asm does not depend on such luck.
// tests/runtime/check_prefetches.sh checks the built kernels.
#pragma once

#include <algorithm>
#include <cstdint>

namespace sparq::kernels {

// How much further on than a line fetched into L1 the loops fetch into L2
// (the line kPrefetchFurtherBytes after it in the same plane: rows further
// ahead, or past the plane's end, where a prefetch is harmless). On an
// Intel Sapphire Rapids host, 1B synth decode at 2 threads, alternating
// runs: int8 per channel 22.0-22.6 -> 23.8-24.2 tokens/s (5 rounds), int4
// g32 and 2:4 int4 unchanged within noise; 16 KiB further was no better
// (docs/results.md, session 22). The L1 fetches alone hold a line-fill
// buffer each until the line arrives, which caps what one core streams.
inline constexpr int64_t kPrefetchFurtherBytes = 8192;

// One cache line from `p` towards the core (into L1), for reading.
inline void PrefetchLine(const char* p) {
#if defined(__x86_64__) || defined(__i386__)
    asm volatile("prefetcht0 %0" : : "m"(*p));
#else
    __builtin_prefetch(p, 0, 3);
#endif
}

// The same, and the line kPrefetchFurtherBytes on into L2.
inline void PrefetchLineAndFurther(const char* p) {
    PrefetchLine(p);
    const char* further = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) + kPrefetchFurtherBytes);
#if defined(__x86_64__) || defined(__i386__)
    asm volatile("prefetcht2 %0" : : "m"(*further));
#else
    __builtin_prefetch(further, 0, 1);
#endif
}

class PrefetchSlices {
public:
    static constexpr int kMaxPlanes = 3;
    static constexpr int64_t kLine = 64;

    // `steps`: how many steps the loop that fetches takes.
    explicit PrefetchSlices(int64_t steps) : steps_(std::max<int64_t>(steps, 1)) {}

    // The `bytes` at `p` (one plane of the rows ahead), fetched in order
    // over the loop's steps. Empty ranges and planes past kMaxPlanes are
    // ignored (a prefetch is only ever a hint).
    void add(const void* p, int64_t bytes) {
        if (!p || bytes <= 0 || planes_ == kMaxPlanes) return;
        Plane& plane = plane_[planes_++];
        plane.base = static_cast<const char*>(p);
        plane.step_bytes = (bytes + steps_ - 1) / steps_;
        plane.lines = static_cast<int>((plane.step_bytes + kLine - 1) / kLine);
    }

    // add() for a plane of scales: one of less than a line for the whole
    // tile (per channel rows hold one FP16 scale each) is left to the
    // hardware, as its one line serves many rows and the plane's share of
    // every step cost more than the rare miss (1B synth int8 per channel
    // decode, alternating: 26.2-26.4 -> 26.8-27.4 tokens/s without it;
    // docs/results.md, session 23).
    void add_scales(const void* p, int64_t bytes) {
        if (bytes >= kLine) add(p, bytes);
    }

    // Calls visit(line_address) for the slices of steps [first, first +
    // count). Each step takes its slice's first byte and the lines after
    // it up to the slice's size: a slice that starts late in a line leaves
    // its last line to the next step (which takes it first), and slices
    // smaller than a line take a line again; only the range's last line
    // can go untaken, and the rounded-up steps may reach a few bytes past
    // the range (a prefetch never faults). A repeated prefetch costs one
    // load slot; exact line bookkeeping would cost tests on every step.
    template <typename Visit>
    inline void visit(int64_t first, int64_t count, Visit&& visit_line) const {
        for (int64_t step = first; step < first + count; ++step) {
            for (int i = 0; i < planes_; ++i) {
                const Plane& p = plane_[i];
                const char* at = p.base + step * p.step_bytes;
                visit_line(at);
                if (p.lines > 1) [[unlikely]] {
                    for (int line = 1; line < p.lines; ++line) visit_line(at + line * kLine);
                }
            }
        }
    }

    inline void fetch(int64_t first, int64_t count) const {
        if (further_) {
            visit(first, count, [](const char* p) { PrefetchLineAndFurther(p); });
        } else {
            visit(first, count, [](const char* p) { PrefetchLine(p); });
        }
    }

    // Whether fetch() also takes each line's kPrefetchFurtherBytes-on
    // line into L2 (the default). Loops bound by their arithmetic rather
    // than by memory (2:4 int4) leave it off: it doubles their prefetch
    // instructions and did not speed them up.
    void set_further(bool further) { further_ = further; }

    int planes() const { return planes_; }

private:
    struct Plane {
        const char* base = nullptr;
        int64_t step_bytes = 0;  // the range's bytes / steps, rounded up
        int lines = 0;           // lines per step: step_bytes / kLine, rounded up
    };
    Plane plane_[kMaxPlanes];
    int planes_ = 0;
    int64_t steps_;
    bool further_ = true;
};

// How far ahead the loops fetch: 8 KiB rather than 4 (on an Intel Sapphire
// Rapids host, 1B synth decode at 2 threads, alternating runs, went int8
// per channel 18-19 -> 20.5 tokens/s and int4 g128 31-32 -> 34-35, then with
// whole-row prefetches; with slices 4, 16 and 32 KiB were no better).
inline constexpr int64_t kPrefetchAheadBytes = 8192;

// Rows to fetch ahead of a loop over `rows` rows of `row_bytes` at a time:
// about kPrefetchAheadBytes of whole tiles, at least one.
inline int64_t RowsAheadDistance(int64_t row_bytes, int64_t rows) {
    const int64_t tile_bytes = rows * std::max<int64_t>(row_bytes, 1);
    return rows * std::max<int64_t>(1, (kPrefetchAheadBytes + tile_bytes / 2) / tile_bytes);
}

// A loop step's share of `slices` (nothing when null: no rows ahead).
inline void FetchSlices(const PrefetchSlices* slices, int64_t first, int64_t count) {
    if (slices) slices->fetch(first, count);
}

}  // namespace sparq::kernels
