// A streaming-read bandwidth probe: how many bytes per second the threads in
// use can read from memory, measured the way decode reads weights (every
// byte once, sequentially, split across threads in fixed chunks). sparq
// bench reports decode speed as a fraction of this, measured in the same run.
#pragma once

#include <cstdint>

namespace sparq {

// Reads a buffer of `bytes` (well beyond the caches) `repeats` times and
// returns the best rate in bytes per second.
double measure_read_bandwidth(int64_t bytes = int64_t{1} << 30, int repeats = 5);

}  // namespace sparq
