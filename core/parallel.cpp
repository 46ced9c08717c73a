#include "core/parallel.h"

#include <tbb/blocked_range.h>
#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <thread>

namespace sparq {

struct ThreadLimit::Impl {
    std::unique_ptr<tbb::global_control> control;
};

ThreadLimit::ThreadLimit(int threads) : impl_(std::make_unique<Impl>()) {
    if (threads > 0) {
        impl_->control = std::make_unique<tbb::global_control>(
            tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
    }
}

ThreadLimit::~ThreadLimit() = default;

int hardware_threads() {
    const int n = tbb::info::default_concurrency();
    return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int active_threads() {
    return static_cast<int>(
        tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism));
}

void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn) {
    if (end <= begin) return;
    if (grain < 1) grain = 1;
    const int64_t chunks = (end - begin + grain - 1) / grain;
    if (chunks == 1 || active_threads() <= 1) {
        for (int64_t c = 0; c < chunks; ++c) {
            const int64_t b = begin + c * grain;
            fn(b, std::min(end, b + grain));
        }
        return;
    }
    // One task per fixed chunk: simple_partitioner with grain 1 over chunk
    // indices never merges or splits chunks differently per thread count.
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(0, chunks, 1),
        [&](const tbb::blocked_range<int64_t>& r) {
            for (int64_t c = r.begin(); c < r.end(); ++c) {
                const int64_t b = begin + c * grain;
                fn(b, std::min(end, b + grain));
            }
        },
        tbb::simple_partitioner());
}

}  // namespace sparq
