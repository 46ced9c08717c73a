#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace sparq {

namespace {
std::string directory_of(const std::string& path) {
    const auto slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}
}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
    const std::string dir = directory_of(path_);
    const auto slash = path_.find_last_of('/');
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    std::string templ = dir + "/." + base + ".tmp.XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    fd_ = ::mkstemp(buf.data());
    if (fd_ < 0) fail_in({path_, "", ""}, "cannot create a temporary file in ", dir, ": ", std::strerror(errno));
    temp_path_ = buf.data();
}

AtomicFileWriter::~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !temp_path_.empty()) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_in({path_, "", ""}, "write failed: ", std::strerror(errno));
        }
        p += w;
        n -= static_cast<size_t>(w);
        offset_ += static_cast<uint64_t>(w);
    }
}

void AtomicFileWriter::write_zeros(size_t n) {
    static const uint8_t zeros[4096] = {};
    while (n > 0) {
        const size_t k = n < sizeof zeros ? n : sizeof zeros;
        write(zeros, k);
        n -= k;
    }
}

void AtomicFileWriter::align_to(size_t alignment) {
    const uint64_t rem = offset_ % alignment;
    if (rem) write_zeros(static_cast<size_t>(alignment - rem));
}

void AtomicFileWriter::pwrite_at(uint64_t offset, const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        const ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) continue;
            fail_in({path_, "", ""}, "write failed: ", std::strerror(errno));
        }
        p += w;
        n -= static_cast<size_t>(w);
        offset += static_cast<uint64_t>(w);
    }
}

void AtomicFileWriter::commit() {
    if (::fsync(fd_) != 0) fail_in({path_, "", ""}, "fsync failed: ", std::strerror(errno));
    // Written pages sit in the page cache as 4 KiB pages scattered over
    // physical memory, and a later mmap of the file streams them more slowly
    // than pages read back fresh (which the kernel may cache in 2 MiB folios
    // that MappedFile maps whole). The data is on disk now: drop those pages.
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_DONTNEED);
    // mkstemp creates 0600; outputs are ordinary files.
    ::fchmod(fd_, 0644);
    ::close(fd_);
    fd_ = -1;
    if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
        fail_in({path_, "", ""}, "cannot rename temporary file into place: ", std::strerror(errno));
    }
    committed_ = true;
    const int dir_fd = ::open(directory_of(path_).c_str(), O_RDONLY | O_DIRECTORY);
    if (dir_fd >= 0) {
        ::fsync(dir_fd);
        ::close(dir_fd);
    }
}

void write_file_atomic(const std::string& path, const std::string& contents) {
    AtomicFileWriter w(path);
    w.write(contents.data(), contents.size());
    w.commit();
}

}  // namespace sparq
