// Deterministic parallel loops on oneTBB.
//
// Determinism rule: work is cut into chunks whose boundaries depend only on
// the problem size and the grain, never on the thread count, and each output
// element is produced by exactly one chunk with a fixed summation order. So a
// result is bit-identical whether 1 or 64 threads run it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

namespace sparq {

// Limits the threads used by every parallel loop while it is alive
// (0 = all cores). The CLI creates one from --threads.
class ThreadLimit {
public:
    explicit ThreadLimit(int threads);
    ~ThreadLimit();
    ThreadLimit(const ThreadLimit&) = delete;
    ThreadLimit& operator=(const ThreadLimit&) = delete;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

int hardware_threads();
// Threads the parallel loops currently use.
int active_threads();

// Calls fn(chunk_begin, chunk_end) for fixed chunks of `grain` indices
// covering [begin, end). Chunks run in parallel; fn must only write outputs
// owned by its chunk.
void parallel_for(int64_t begin, int64_t end, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

}  // namespace sparq
