// Read-only memory mapping of a whole file. Readers hand out Tensors that
// point into the mapping and hold a shared_ptr to it, so weights are used in
// place (zero-copy) and stay valid as long as any tensor needs them. Files of
// 2 MiB and more are mapped on a 2 MiB boundary with transparent huge pages
// advised (see mapped_file.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace sparq {

class MappedFile {
public:
    // Throws sparq::Error naming the file if it cannot be opened or mapped.
    static std::shared_ptr<MappedFile> open(const std::string& path);

    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

    // The share of the mapping's resident bytes that the kernel maps in 2 MiB
    // pages (from /proc/self/smaps; 0 where it cannot tell). Reported by
    // `sparq bench`: the file's page-cache state moves decode speed.
    double huge_page_fraction() const;

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// huge_page_fraction() of any mapped range [data, data + size).
double huge_page_fraction(const void* data, size_t size);

// Reads a whole (small) file into a string; throws sparq::Error on failure.
std::string read_text_file(const std::string& path);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);

}  // namespace sparq
