#include <gtest/gtest.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/mapped_file.h"
#include "test_data.h"

namespace sparq {
namespace {

namespace fs = std::filesystem;

TEST(AtomicFile, NothingAppearsUntilCommit) {
    const std::string dir = testing::temp_dir("atomic");
    const std::string path = dir + "/out.bin";
    {
        AtomicFileWriter w(path);
        w.write("abc", 3);
        w.align_to(64);
        EXPECT_EQ(w.offset(), 64u);
        EXPECT_FALSE(fs::exists(path));
        w.commit();
    }
    ASSERT_TRUE(fs::exists(path));
    EXPECT_EQ(fs::file_size(path), 64u);
    EXPECT_EQ(read_text_file(path).substr(0, 3), "abc");
}

TEST(AtomicFile, AbandonedWriteLeavesNoFileAndNoTemporary) {
    const std::string dir = testing::temp_dir("atomic-abandon");
    const std::string path = dir + "/out.bin";
    {
        AtomicFileWriter w(path);
        w.write("partial", 7);
    }
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(fs::is_empty(dir));
}

TEST(AtomicFile, MissingDirectoryIsAClearError) {
    try {
        AtomicFileWriter w("/nonexistent-dir-for-sparq/x.bin");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent-dir-for-sparq/x.bin"), std::string::npos);
    }
}

}  // namespace
}  // namespace sparq
