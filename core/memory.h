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

// Reads byte ranges of a read-only file mapping with pread instead of
// through the mapping. Touching a mapping creates a page-table entry per
// 4 KiB page, and on virtual machines with shadow paging (this project's
// build hosts among them) that costs several times the copy: a 4 GB model
// streams at about 3 GB/s per thread through pread, under 1 GB/s through
// the mapping. Construct it over memory that stays mapped while it lives;
// ok() is false (and callers read in place) when [p, p + n) is not inside
// one read-only mapping of a regular file that still has that inode.
class MappedRangeReader {
public:
    MappedRangeReader() = default;
    MappedRangeReader(const void* p, size_t n);
    ~MappedRangeReader();
    MappedRangeReader(const MappedRangeReader&) = delete;
    MappedRangeReader& operator=(const MappedRangeReader&) = delete;

    bool ok() const { return fd_ >= 0; }
    // Copies bytes [offset, offset + n) of the range into dst; false (dst
    // then undefined) on a short read or an error. Safe from many threads.
    bool read(size_t offset, size_t n, void* dst) const;

private:
    int fd_ = -1;
    uint64_t file_offset_ = 0;  // of the range's first byte
    size_t size_ = 0;
};

// Hints that the pages wholly inside [p, p + n) will not be read again
// soon (MADV_PAGEOUT): clean file-backed pages of an mmapped checkpoint
// leave the process's resident set (they come back from the file if read
// again); contents never change, so any memory may be passed. Lets a pass
// that reads a model block by block stay at one block's weights.
void release_read_pages(const void* p, size_t n);

// A large zeroed vector whose pages come in as huge pages where possible.
// The first touch of fresh memory (the page fault and the kernel's zeroing,
// on virtual machines also the host's) costs far more than the zeroing
// itself: it is done here on all threads (core/parallel.h) before the
// vector writes its zeros into pages that are then already there.
void populate_for_write(void* p, size_t n);

template <typename Vector>
void assign_zeroed_large(Vector& v, size_t count) {
    v.clear();
    v.shrink_to_fit();
    v.reserve(count);  // untouched fresh pages: advise before the zeroing touches them
    const size_t bytes = count * sizeof(typename Vector::value_type);
    advise_huge_pages(v.data(), bytes);
    populate_for_write(v.data(), bytes);
    v.resize(count);
}

}  // namespace sparq
