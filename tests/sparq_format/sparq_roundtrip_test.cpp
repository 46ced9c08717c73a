// Write -> read round trips of the .sparq container, and atomic writes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/mapped_file.h"
#include "formats/error_matchers.h"
#include "formats/sparq/sparq_file.h"
#include "sparq_samples.h"
#include "test_data.h"

namespace sparq {
namespace {

using testing::read_bytes;

std::vector<std::string> directory_entries(const std::string& dir) {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(dir)) out.push_back(e.path().filename().string());
    return out;
}

class SparqRoundTrip : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = testing::temp_dir("sparq-roundtrip");
        path_ = dir_ + "/model.sparq";
        sample_ = testing::sample_file();
        testing::write_sample(path_, sample_);
    }
    std::string dir_;
    std::string path_;
    testing::SampleFile sample_;
};

TEST_F(SparqRoundTrip, PlanesMetadataAndTokenizerComeBackBitIdentical) {
    const auto file = SparqFile::open(path_, /*verify_checksums=*/true);
    EXPECT_EQ(file->major_version(), 1);
    EXPECT_EQ(file->minor_version(), 0);
    EXPECT_EQ(file->metadata(), sample_.metadata);
    ASSERT_NE(file->tokenizer(), nullptr);
    EXPECT_EQ(file->tokenizer()->kind, "sentencepiece");
    const auto tok = file->tokenizer()->bytes();
    EXPECT_TRUE(std::equal(tok.begin(), tok.end(), sample_.tokenizer.begin(), sample_.tokenizer.end()));

    ASSERT_EQ(file->tensors().size(), sample_.tensors.size() + 1);
    for (size_t i = 0; i < sample_.tensors.size(); ++i) {
        const StoredTensor& want = sample_.tensors[i];
        const SparqTensor& got = file->tensors()[i];  // table order is write order
        EXPECT_EQ(got.name, want.name);
        EXPECT_EQ(&file->tensor(want.name), &got);
        EXPECT_EQ(got.encoding, want.encoding);
        EXPECT_EQ(got.shape, want.shape);
        EXPECT_EQ(got.params, want.params) << got.name;
        ASSERT_EQ(got.planes.size(), want.planes.size());
        for (size_t p = 0; p < want.planes.size(); ++p) {
            const SparqPlane& plane = got.planes[p];
            EXPECT_EQ(plane.name, want.planes[p].name);
            ASSERT_EQ(plane.size, want.planes[p].bytes.size()) << got.name << " " << plane.name;
            EXPECT_TRUE(std::equal(plane.bytes().begin(), plane.bytes().end(), want.planes[p].bytes.begin()))
                << got.name << " " << plane.name;
            EXPECT_EQ(got.find_plane(plane.name), &plane);
        }
        EXPECT_TRUE(file->verify_tensor(got));
    }
    EXPECT_TRUE(file->verify_all().empty());
    EXPECT_EQ(file->file_size(), read_bytes(path_).size());
}

TEST_F(SparqRoundTrip, EveryPlaneAndBlobIs64ByteAlignedInTheFileAndInMemory) {
    const auto file = SparqFile::open(path_);
    const SparqHeader h = testing::header_of(read_bytes(path_));
    EXPECT_EQ(h.data_offset % 64, 0u);
    for (const SparqTensor& t : file->tensors()) {
        for (const SparqPlane& p : t.planes) {
            EXPECT_EQ(p.offset % 64, 0u) << t.name << " " << p.name;
            EXPECT_EQ(reinterpret_cast<uintptr_t>(p.data) % 64, 0u) << t.name << " " << p.name;
            EXPECT_GE(p.offset, h.data_offset);
            EXPECT_LE(p.offset + p.size, h.data_offset + h.data_size);
        }
    }
    for (const SparqBlob& b : file->blobs()) EXPECT_EQ(b.offset % 64, 0u) << b.name;
}

TEST_F(SparqRoundTrip, HeaderBytesAreTheDocumentedOnes) {
    const std::string bytes = read_bytes(path_);
    EXPECT_EQ(bytes.substr(0, 8), std::string("SPARQ\0\r\n", 8));
    EXPECT_EQ(bytes.substr(8, 8), std::string("\x01\0\0\0\x04\x03\x02\x01", 8));  // 1.0, 0x01020304
    const SparqHeader h = testing::header_of(bytes);
    EXPECT_EQ(h.file_size, bytes.size());
    EXPECT_EQ(bytes.substr(80, 48), std::string(48, '\0'));  // reserved
    const nlohmann::json metadata = nlohmann::json::parse(bytes.substr(h.metadata_offset, h.metadata_size));
    EXPECT_EQ(metadata, sample_.metadata);
    EXPECT_TRUE(testing::table_of(bytes)["tensors"].is_array());
}

TEST_F(SparqRoundTrip, DenseTensorsAreZeroCopyCoreTensors) {
    const auto file = SparqFile::open(path_);
    const Tensor norm = file->dense_tensor(file->tensor("model.norm.weight"));
    EXPECT_EQ(norm.dtype, DType::F32);
    EXPECT_EQ(norm.shape, Shape{5});
    EXPECT_EQ(norm.to_f32(), (std::vector<float>{1.f, -2.f, 3.5f, 0.f, 1e-3f}));
    EXPECT_EQ(norm.data, file->tensor("model.norm.weight").plane("data", path_).data);
    const Tensor embed = file->dense_tensor(file->tensor("model.embed_tokens.weight"));
    EXPECT_EQ(embed.dtype, DType::F16);
    EXPECT_EQ(embed.nbytes, 24u);
    EXPECT_EQ(file->dense_tensor(file->tensor("empty")).numel(), 0);
}

TEST_F(SparqRoundTrip, UnknownEncodingsOpenButFailWhenReadAsDense) {
    const auto file = SparqFile::open(path_, true);
    const SparqTensor& future = file->tensor("future.codebook");
    EXPECT_EQ(future.encoding, "codebook_v9");
    EXPECT_EQ(future.stored_bytes(), 165u);
    EXPECT_SPARQ_ERROR(file->dense_tensor(future), path_, "tensor 'future.codebook'", "'codebook_v9' is not a dense");
    EXPECT_SPARQ_ERROR(future.plane("codes", path_), "tensor 'future.codebook'", "plane 'codes'", "missing");
    EXPECT_SPARQ_ERROR(file->tensor("nope"), path_, "tensor 'nope'", "is not in the file");
}

TEST_F(SparqRoundTrip, ParsesFromAMemoryBuffer) {
    const std::string bytes = read_bytes(path_);
    auto owner = std::make_shared<std::string>(bytes);
    const auto file =
        SparqFile::parse(owner, reinterpret_cast<const uint8_t*>(owner->data()), owner->size(), "in-memory", true);
    EXPECT_EQ(file->source(), "in-memory");
    EXPECT_EQ(file->tensors().size(), sample_.tensors.size() + 1);
}

TEST(SparqWriter, FileWithoutTensorsOrTokenizer) {
    const std::string path = testing::temp_dir("sparq-empty") + "/empty.sparq";
    SparqWriter w(path);
    w.commit();
    const auto file = SparqFile::open(path, true);
    EXPECT_TRUE(file->tensors().empty());
    EXPECT_EQ(file->tokenizer(), nullptr);
    EXPECT_EQ(file->metadata(), nlohmann::json::object());
}

TEST(SparqWriter, WriterDestroyedWithoutCommitLeavesNoFile) {
    const std::string dir = testing::temp_dir("sparq-interrupted");
    const std::string path = dir + "/out.sparq";
    const testing::SampleFile s = testing::sample_file();
    {
        SparqWriter w(path);
        w.set_tokenizer("llama2c", s.tokenizer);
        w.add_tensor(s.tensors[0]);
        w.add_tensor(s.tensors[1]);
        EXPECT_EQ(directory_entries(dir).size(), 1u);  // the temporary file
    }
    EXPECT_FALSE(file_exists(path));
    EXPECT_TRUE(directory_entries(dir).empty());
}

TEST(SparqWriter, FailedWriteLeavesAnExistingFileUntouched) {
    const std::string dir = testing::temp_dir("sparq-replace");
    const std::string path = dir + "/out.sparq";
    testing::write_bytes(path, "previous contents");
    {
        SparqWriter w(path);
        const testing::SampleFile s = testing::sample_file();
        w.add_tensor(s.tensors[0]);
        EXPECT_THROW(w.add_tensor(s.tensors[0]), Error);  // duplicate name: the run fails
    }
    EXPECT_EQ(read_bytes(path), "previous contents");
    EXPECT_EQ(directory_entries(dir).size(), 1u);
}

TEST(SparqWriter, RefusesTensorsTheReaderWouldRefuse) {
    const std::string path = testing::temp_dir("sparq-writer-checks") + "/x.sparq";
    SparqWriter w(path);
    const std::vector<uint8_t> bytes(12);
    auto tensor = [&](std::string name, std::string encoding, Shape shape, std::vector<std::string> planes) {
        StoredTensor t{std::move(name), std::move(encoding), std::move(shape), nlohmann::json::object(), {}};
        for (auto& p : planes) t.planes.push_back({p, bytes});
        return t;
    };
    w.add_tensor(tensor("a", "f32", {3}, {"data"}));
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("a", "f32", {3}, {"data"})), "tensor 'a'", "already written");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("b", "f32", {4}, {"data"})), "tensor 'b'", "12 bytes", "needs 4 x 4");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("c", "quant", {3}, {"codes"})), "tensor 'c'", "needs a plane 'scales'");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("d", "quant", {3}, {"codes", "scales", "extra"})), "has no plane 'extra'");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("e", "Quant!", {3}, {"codes"})), "field 'encoding'", "a-z, 0-9 and _");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("f", "x", {3}, {"p", "p"})), "planes.p", "appears twice");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("g", "x", {-1}, {"p"})), "field 'shape'", "negative");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("h", "x", {3}, {})), "0 planes");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("", "x", {3}, {"p"})), "is empty");
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("bad\xff", "x", {3}, {"p"})), "cannot be written as JSON");
    StoredTensor bad_params = tensor("i", "x", {3}, {"p"});
    bad_params.params = nlohmann::json::array();
    EXPECT_SPARQ_ERROR(w.add_tensor(bad_params), "field 'params'", "must be a JSON object");
    EXPECT_SPARQ_ERROR(w.set_metadata(nlohmann::json::array()), "field 'metadata'", "JSON object");
    const Tensor i32{DType::I32, {1}, bytes.data(), 4, nullptr};
    EXPECT_SPARQ_ERROR(w.add_dense("j", i32), "tensor 'j'", "I32 cannot be stored densely");
    w.set_tokenizer("hf-json", bytes);
    EXPECT_SPARQ_ERROR(w.set_tokenizer("hf-json", bytes), "blobs.tokenizer", "already written");
    w.commit();  // the refused tensors left the file consistent
    const auto file = SparqFile::open(path, true);
    ASSERT_EQ(file->tensors().size(), 1u);
    EXPECT_SPARQ_ERROR(w.add_tensor(tensor("k", "x", {3}, {"p"})), "already committed");
}

}  // namespace
}  // namespace sparq
