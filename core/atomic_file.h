// Writes an output file so that a failed or interrupted run never leaves a
// partial file under the requested name: data goes to a temporary file in the
// destination directory, which is fsynced and renamed into place on commit().
// If the writer is destroyed without commit(), the temporary file is removed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace sparq {

class AtomicFileWriter {
public:
    explicit AtomicFileWriter(std::string path);
    ~AtomicFileWriter();
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

    void write(const void* data, size_t n);
    void write_zeros(size_t n);
    // Pads with zeros until the offset is a multiple of `alignment`.
    void align_to(size_t alignment);
    uint64_t offset() const { return offset_; }

    // Overwrites bytes already written (e.g. a header patched at the end).
    void pwrite_at(uint64_t offset, const void* data, size_t n);

    void commit();
    const std::string& path() const { return path_; }

private:
    std::string path_;
    std::string temp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    bool committed_ = false;
};

// Convenience: atomically writes a whole buffer.
void write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace sparq
