#include "core/memory.h"

#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace sparq {

int64_t peak_rss_bytes() {
    struct rusage usage {};
    if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
    return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

int64_t current_rss_bytes() {
    std::FILE* f = std::fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long pages_total = 0, pages_resident = 0;
    const int got = std::fscanf(f, "%ld %ld", &pages_total, &pages_resident);
    std::fclose(f);
    if (got != 2) return 0;
    return static_cast<int64_t>(pages_resident) * sysconf(_SC_PAGESIZE);
}

namespace {

// [p, p + n) shrunk to whole pages of `page` bytes; empty when none.
bool page_range(const void* p, size_t n, size_t page, uintptr_t* begin, size_t* length) {
    const uintptr_t first = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const uintptr_t last = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    if (!p || last <= first) return false;
    *begin = first;
    *length = last - first;
    return true;
}

}  // namespace

void advise_huge_pages(void* p, size_t n) {
#ifdef MADV_HUGEPAGE
    uintptr_t begin = 0;
    size_t length = 0;
    if (page_range(p, n, size_t{2} << 20, &begin, &length)) {
        ::madvise(reinterpret_cast<void*>(begin), length, MADV_HUGEPAGE);
    }
#else
    (void)p;
    (void)n;
#endif
}

void prefault_for_read(const void* p, size_t n) {
#ifdef MADV_POPULATE_READ
    const long page = ::sysconf(_SC_PAGESIZE);
    if (page <= 0 || !p || n == 0) return;
    // Widen to whole pages: madvise needs a page-aligned start.
    const uintptr_t begin = reinterpret_cast<uintptr_t>(p) / page * page;
    const size_t length = reinterpret_cast<uintptr_t>(p) + n - begin;
    ::madvise(reinterpret_cast<void*>(begin), length, MADV_POPULATE_READ);
#else
    (void)p;
    (void)n;
#endif
}

}  // namespace sparq
