// Process memory figures reported by commands (peak_rss_bytes).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparq {

// Peak resident set size of this process so far, in bytes.
int64_t peak_rss_bytes();
// Current resident set size, in bytes (0 where unknown).
int64_t current_rss_bytes();

// Best-effort hints for large buffers (no effect where unsupported): back
// [p, p + n) with transparent huge pages, so first touching a freshly
// allocated multi-MB buffer costs one fault per 2 MiB instead of per 4 KiB.
void advise_huge_pages(void* p, size_t n);
// Fault a mapped file range in ahead of a sequential read, in one call
// instead of a page fault per few pages.
void prefault_for_read(const void* p, size_t n);

// A large zeroed vector whose pages come in as huge pages where possible.
template <typename Vector>
void assign_zeroed_large(Vector& v, size_t count) {
    v.clear();
    v.shrink_to_fit();
    v.reserve(count);  // untouched fresh pages: advise before the zeroing touches them
    advise_huge_pages(v.data(), count * sizeof(typename Vector::value_type));
    v.resize(count);
}

}  // namespace sparq
