#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "test_data.h"

namespace sparq {
namespace {

std::vector<uint8_t> pattern(size_t n) {
    std::vector<uint8_t> bytes(n);
    uint32_t x = 12345;
    for (auto& b : bytes) {
        x = x * 1103515245u + 12345u;
        b = static_cast<uint8_t>(x >> 24);
    }
    return bytes;
}

std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = testing::temp_dir("mapped") + "/" + name;
    AtomicFileWriter w(path);
    w.write(bytes.data(), bytes.size());
    w.commit();
    return path;
}

// Files of 2 MiB and more go on a 2 MiB boundary (so the kernel can map the
// page cache's 2 MiB folios whole); the bytes are the file's, whatever the
// size, including one that ends mid-page.
TEST(MappedFile, LargeFilesStartOnAHugePageBoundaryWithTheirBytes) {
    for (size_t size : {size_t{100}, size_t{4096}, (size_t{2} << 20) - 1, size_t{2} << 20, (size_t{5} << 20) + 123}) {
        const std::vector<uint8_t> bytes = pattern(size);
        std::string name = std::to_string(size);
        name += ".bin";  // (not "f" + ...: GCC 12 warns falsely, -Wrestrict, on that concatenation)
        const auto file = MappedFile::open(write_file(name, bytes));
        ASSERT_EQ(file->size(), size);
        if (size >= (size_t{2} << 20)) {
            EXPECT_EQ(reinterpret_cast<uintptr_t>(file->data()) % (uintptr_t{2} << 20), 0u) << size;
        }
        EXPECT_EQ(std::vector<uint8_t>(file->data(), file->data() + size), bytes) << size;
        const double fraction = file->huge_page_fraction();
        EXPECT_GE(fraction, 0.0);
        EXPECT_LE(fraction, 1.0);
    }
}

TEST(MappedFile, MissingFileIsANamedError) {
    try {
        MappedFile::open(testing::temp_dir("mapped-missing") + "/absent.bin");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("absent.bin"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("cannot open"), std::string::npos) << e.what();
    }
}

// Bytes of address space the process has mapped (from /proc/self/maps).
uint64_t mapped_bytes() {
    std::ifstream maps("/proc/self/maps");
    uint64_t total = 0;
    for (std::string line; std::getline(maps, line);) {
        unsigned long long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%llx-%llx", &lo, &hi) == 2) total += hi - lo;
    }
    return total;
}

// The alignment reserves a huge page of slack around each mapping: opening
// and closing a file many times must give all of it back.
TEST(MappedFile, ReopeningLeavesNoReservationBehind) {
    const std::vector<uint8_t> bytes = pattern((size_t{3} << 20) + 7);
    const std::string path = write_file("repeat.bin", bytes);
    { const auto warm = MappedFile::open(path); }
    const size_t before = mapped_bytes();
    for (int i = 0; i < 64; ++i) {
        const auto file = MappedFile::open(path);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(file->data()) % (uintptr_t{2} << 20), 0u);
        EXPECT_EQ(file->data()[file->size() - 1], bytes.back());
    }
    EXPECT_EQ(mapped_bytes(), before);
}

}  // namespace
}  // namespace sparq
