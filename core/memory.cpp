#include "core/memory.h"

#include "core/parallel.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <string>

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

void release_read_pages(const void* p, size_t n) {
#ifdef MADV_PAGEOUT
    uintptr_t begin = 0;
    size_t length = 0;
    if (page_range(p, n, static_cast<size_t>(::sysconf(_SC_PAGESIZE)), &begin, &length)) {
        ::madvise(reinterpret_cast<void*>(begin), length, MADV_PAGEOUT);
    }
#else
    (void)p;
    (void)n;
#endif
}

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

void populate_for_write(void* p, size_t n) {
#ifdef MADV_POPULATE_WRITE
    // Whole 2 MiB pieces (huge pages where advised); the ragged ends are
    // left to the ordinary faults.
    uintptr_t begin = 0;
    size_t length = 0;
    constexpr size_t kPiece = size_t{2} << 20;
    if (n < 4 * kPiece || !page_range(p, n, kPiece, &begin, &length)) return;
    const int64_t pieces = static_cast<int64_t>(length / kPiece);
    parallel_for(0, pieces, 1, [&](int64_t first, int64_t last) {
        ::madvise(reinterpret_cast<void*>(begin + static_cast<size_t>(first) * kPiece),
                  static_cast<size_t>(last - first) * kPiece, MADV_POPULATE_WRITE);
    });
#else
    (void)p;
    (void)n;
#endif
}

namespace {

// The /proc/self/maps line of the mapping holding [p, p + n).
struct MappingLine {
    uintptr_t begin = 0, end = 0;
    uint64_t offset = 0;
    unsigned major = 0, minor = 0;
    uint64_t inode = 0;
    std::string perms, path;
};

bool find_mapping(uintptr_t p, size_t n, MappingLine* found) {
    std::FILE* f = std::fopen("/proc/self/maps", "re");
    if (!f) return false;
    char line[4096 + 256];
    bool ok = false;
    while (std::fgets(line, sizeof line, f)) {
        MappingLine m;
        char perms[8] = {};
        int path_at = 0;
        if (std::sscanf(line, "%" SCNxPTR "-%" SCNxPTR " %7s %" SCNx64 " %x:%x %" SCNu64 " %n", &m.begin, &m.end, perms,
                        &m.offset, &m.major, &m.minor, &m.inode, &path_at) < 7) {
            continue;
        }
        if (p < m.begin || p >= m.end) continue;
        if (n > m.end - p) break;  // spans two mappings: read in place
        m.perms = perms;
        m.path = line + path_at;
        while (!m.path.empty() && (m.path.back() == '\n' || m.path.back() == ' ')) m.path.pop_back();
        *found = m;
        ok = true;
        break;
    }
    std::fclose(f);
    return ok;
}

}  // namespace

MappedRangeReader::MappedRangeReader(const void* p, size_t n) {
    MappingLine m;
    if (!p || n == 0 || !find_mapping(reinterpret_cast<uintptr_t>(p), n, &m)) return;
    // Read-only (an unwritten private mapping shows the file), a file that
    // is still there (not "(deleted)"), with the same inode when reopened.
    if (m.perms.size() < 4 || m.perms[0] != 'r' || m.perms[1] != '-' || m.inode == 0) return;
    if (m.path.empty() || m.path[0] != '/' || m.path.find(" (deleted)") != std::string::npos) return;
    const int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || static_cast<uint64_t>(st.st_ino) != m.inode ||
        major(st.st_dev) != m.major || minor(st.st_dev) != m.minor) {
        ::close(fd);
        return;
    }
    fd_ = fd;
    file_offset_ = m.offset + (reinterpret_cast<uintptr_t>(p) - m.begin);
    size_ = n;
}

MappedRangeReader::~MappedRangeReader() {
    if (fd_ >= 0) ::close(fd_);
}

bool MappedRangeReader::read(size_t offset, size_t n, void* dst) const {
    if (fd_ < 0 || offset > size_ || n > size_ - offset) return false;
    auto* out = static_cast<uint8_t*>(dst);
    while (n > 0) {
        const ssize_t got = ::pread(fd_, out, n, static_cast<off_t>(file_offset_ + offset));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        out += got;
        offset += static_cast<size_t>(got);
        n -= static_cast<size_t>(got);
    }
    return true;
}

}  // namespace sparq
