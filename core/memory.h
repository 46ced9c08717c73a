// Process memory figures reported by commands (peak_rss_bytes).
#pragma once

#include <cstdint>

namespace sparq {

// Peak resident set size of this process so far, in bytes.
int64_t peak_rss_bytes();
// Current resident set size, in bytes (0 where unknown).
int64_t current_rss_bytes();

}  // namespace sparq
