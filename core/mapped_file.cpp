#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace sparq {

namespace {

constexpr size_t kHugePageBytes = size_t{2} << 20;

// Maps a file read-only with its offset 0 on a 2 MiB boundary and asks for
// transparent huge pages. Where the kernel and file system cache the file in
// 2 MiB folios (Linux 6.x: ext4, xfs, tmpfs...), each one is then mapped by a
// single page-table entry: decode streams the weights over physically
// contiguous 2 MiB runs instead of scattered 4 KiB pages (a few to ~20% more
// bytes per second on our hosts). Smaller files, or kernels without the
// feature, get the plain mapping.
void* map_at_huge_page_boundary(int fd, size_t size) {
    if (size < kHugePageBytes) return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    // Reserve room for the file plus one huge page of slack, then place the
    // file at the first 2 MiB boundary inside it and give back the slack.
    const size_t reserved = size + kHugePageBytes;
    void* r = ::mmap(nullptr, reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED) return ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const auto base = reinterpret_cast<uintptr_t>(r);
    const uintptr_t aligned = (base + kHugePageBytes - 1) & ~(uintptr_t{kHugePageBytes} - 1);
    void* p = ::mmap(reinterpret_cast<void*>(aligned), size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    if (p == MAP_FAILED) {
        const int err = errno;
        ::munmap(r, reserved);
        errno = err;
        return MAP_FAILED;
    }
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t end = (aligned + size + page - 1) & ~(page - 1);
    if (aligned > base) ::munmap(r, aligned - base);
    if (base + reserved > end) ::munmap(reinterpret_cast<void*>(end), base + reserved - end);
#ifdef MADV_HUGEPAGE
    ::madvise(p, size, MADV_HUGEPAGE);  // advisory: EINVAL without THP is fine
#endif
    return p;
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_in({path, "", ""}, "cannot open: ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        fail_in({path, "", ""}, "cannot stat: ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail_in({path, "", ""}, "not a regular file");
    }
    std::shared_ptr<MappedFile> file(new MappedFile());
    file->path_ = path;
    file->size_ = static_cast<size_t>(st.st_size);
    if (file->size_ > 0) {
        void* p = map_at_huge_page_boundary(fd, file->size_);
        if (p == MAP_FAILED) {
            const int err = errno;
            ::close(fd);
            fail_in({path, "", ""}, "cannot mmap: ", std::strerror(err));
        }
        file->data_ = static_cast<const uint8_t*>(p);
    }
    ::close(fd);
    return file;
}

double huge_page_fraction(const void* data, size_t size) {
    if (!data || size < kHugePageBytes) return 0;
    std::ifstream smaps("/proc/self/smaps");
    if (!smaps) return 0;
    const auto begin = reinterpret_cast<uintptr_t>(data);
    const uintptr_t end = begin + size;
    bool inside = false;
    uint64_t rss_kib = 0, pmd_kib = 0;
    std::string line;
    while (std::getline(smaps, line)) {
        unsigned long long lo = 0, hi = 0;
        char dash = 0;
        std::istringstream head(line);
        if (head >> std::hex >> lo >> dash >> hi && dash == '-') {  // a mapping's first line
            inside = lo >= begin && lo < end;
            continue;
        }
        if (!inside) continue;
        unsigned long long kib = 0;
        if (std::sscanf(line.c_str(), "Rss: %llu kB", &kib) == 1) rss_kib += kib;
        if (std::sscanf(line.c_str(), "FilePmdMapped: %llu kB", &kib) == 1) pmd_kib += kib;
    }
    return rss_kib ? static_cast<double>(pmd_kib) / static_cast<double>(rss_kib) : 0;
}

double MappedFile::huge_page_fraction() const { return sparq::huge_page_fraction(data_, size_); }

MappedFile::~MappedFile() {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_text_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail_in({path, "", ""}, "cannot open: ", std::strerror(errno));
    std::ostringstream os;
    os << in.rdbuf();
    if (in.bad()) fail_in({path, "", ""}, "read error");
    return os.str();
}

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool is_directory(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace sparq
