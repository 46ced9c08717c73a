// Corrupted and hostile .sparq files: each must give a sparq::Error naming the
// file, the tensor and the field at fault (or, for plane bytes, a failed
// checksum naming the tensor).
#include <gtest/gtest.h>

#include "formats/error_matchers.h"
#include "formats/sparq/sparq_file.h"
#include "sparq_samples.h"
#include "test_data.h"

namespace sparq {
namespace {

using json = nlohmann::json;
using testing::read_bytes;
namespace at = sparq_header_offset;

class HostileSparq : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = testing::temp_dir("sparq-hostile");
        const std::string path = dir_ + "/good.sparq";
        testing::write_sample(path, testing::sample_file());
        good_ = read_bytes(path);
        header_ = testing::header_of(good_);
        table_ = testing::table_of(good_);
    }
    // Writes `bytes` to a fresh file and returns its path.
    std::string file(const std::string& bytes) {
        const std::string path = dir_ + "/case" + std::to_string(count_++) + ".sparq";
        testing::write_bytes(path, bytes);
        return path;
    }
    std::string file_with_table(const json& table) { return file(testing::with_table(good_, table.dump())); }
    std::string file_with_header_u64(size_t at, uint64_t value) {
        std::string bytes = good_;
        testing::put_u64(bytes, at, value);
        return file(bytes);
    }
    // The plane `plane` of the tensor `tensor` in the table.
    json& plane_entry(json& table, size_t tensor, size_t plane) { return table["tensors"][tensor]["planes"][plane]; }

    std::string dir_;
    std::string good_;
    SparqHeader header_;
    json table_;
    int count_ = 0;
};

TEST_F(HostileSparq, FlippedPlaneByteFailsOnlyThatTensorsChecksum) {
    const SparqTensor quant = SparqFile::open(file(good_))->tensor("model.layers.0.mlp.down_proj.weight");
    std::string bytes = good_;
    bytes[quant.plane("scales", "").offset + 5] ^= 0x10;
    const std::string path = file(bytes);
    const auto opened = SparqFile::open(path);  // the cheap check on load does not hash planes
    EXPECT_FALSE(opened->verify_tensor("model.layers.0.mlp.down_proj.weight"));
    EXPECT_TRUE(opened->verify_tensor("model.embed_tokens.weight"));
    EXPECT_EQ(opened->verify_all(), std::vector<std::string>{"model.layers.0.mlp.down_proj.weight"});
    EXPECT_SPARQ_ERROR(SparqFile::open(path, true), path, "tensor 'model.layers.0.mlp.down_proj.weight'",
                       "field 'xxh64'", "checksum mismatch");
}

TEST_F(HostileSparq, FlippedTableOrMetadataByteFailsTheHeaderChecksum) {
    for (const uint64_t at : {header_.table_offset + header_.table_size / 2, header_.metadata_offset + 3,
                              uint64_t{at::kReserved + 7}}) {
        std::string bytes = good_;
        bytes[at] ^= 0x01;
        const std::string path = file(bytes);
        EXPECT_SPARQ_ERROR(SparqFile::open(path), path, "field 'header_checksum'", "mismatch", "corrupt");
    }
}

TEST_F(HostileSparq, FlippedTokenizerByteIsCaughtOnLoad) {
    std::string bytes = good_;
    bytes[table_["blobs"][0]["offset"].get<size_t>() + 10] ^= 0x40;
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "field 'blobs.tokenizer.xxh64'", "checksum mismatch");
}

TEST_F(HostileSparq, TruncatedFiles) {
    const std::string cut = file(good_.substr(0, good_.size() - 1));
    EXPECT_SPARQ_ERROR(SparqFile::open(cut), cut, "field 'file_size'", "truncated", std::to_string(good_.size() - 1));
    EXPECT_SPARQ_ERROR(SparqFile::open(file(good_.substr(0, 100))), "100 bytes", "too short", "128-byte");
    EXPECT_SPARQ_ERROR(SparqFile::open(file("")), "0 bytes", "too short");
    EXPECT_SPARQ_ERROR(SparqFile::open(file(good_ + "x")), "field 'file_size'", "appended");
}

TEST_F(HostileSparq, MagicEndiannessAndVersion) {
    std::string bytes = good_;
    bytes[0] = 'X';
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "not a .sparq file", "58 50 41 52 51 00 0d 0a");
    bytes = good_;
    bytes.replace(at::kEndianMarker, 4, "\x01\x02\x03\x04");
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "field 'endian_marker'", "big-endian");
    bytes.replace(at::kEndianMarker, 4, "\x00\x02\x03\x04", 4);
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "field 'endian_marker'", "00 02 03 04");
    bytes = good_;
    bytes[at::kMajorVersion] = 2;
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "field 'major_version'", "version 2.0 is not supported");
    bytes[at::kMajorVersion] = 0;
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "version 0.0 is not supported");
    // A newer minor version only adds what old readers may ignore.
    bytes = good_;
    bytes[at::kMinorVersion] = 7;
    testing::reseal(bytes);
    EXPECT_EQ(SparqFile::open(file(bytes), true)->minor_version(), 7);
}

TEST_F(HostileSparq, HeaderFieldsOutOfRange) {
    const uint64_t huge = ~uint64_t{0} - 10;
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kMetadataOffset, huge)), "field 'metadata_offset'",
                       "extends past the end of the file");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kDataSize, huge)), "field 'data_offset'",
                       "extends past the end of the file");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kTableSize, uint64_t{1} << 40)), "field 'table_size'",
                       "outside [1, 67108864]");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kMetadataSize, 0)), "field 'metadata_size'");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kDataOffset, 130)), "field 'data_offset'",
                       "not a multiple of 64");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kTableOffset, 16)), "field 'table_offset'",
                       "inside the 128-byte header");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kTableOffset, header_.metadata_offset)),
                       "field 'table_offset'", "overlaps the metadata section");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_header_u64(at::kDataSize, header_.data_size + 64)),
                       "field 'data_offset'", "overlaps the metadata section");
}

TEST_F(HostileSparq, PlanesOutsideTheDataSectionOrMisaligned) {
    json t = table_;
    json& p = plane_entry(t, 1, 0);
    p["offset"] = (header_.data_offset + header_.data_size + 63) / 64 * 64;  // the metadata section
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "tensor 'model.layers.0.mlp.down_proj.weight'",
                       "field 'planes.codes.offset'", "lies outside the data section");
    t = table_;
    plane_entry(t, 1, 1)["size"] = ~uint64_t{0};
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.scales.offset'", "outside the data section");
    t = table_;
    plane_entry(t, 1, 0)["offset"] = plane_entry(t, 1, 0)["offset"].get<uint64_t>() + 8;
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.codes.offset'", "not a multiple of 64");
    t = table_;
    plane_entry(t, 1, 0)["size"] = -5;
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.codes.size'", "-5 is negative");
    t = table_;
    plane_entry(t, 1, 0)["offset"] = "128";
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.codes.offset'", "non-negative integer");
}

TEST_F(HostileSparq, OverlappingPlanes) {
    json t = table_;
    plane_entry(t, 2, 1)["offset"] = plane_entry(t, 1, 2)["offset"];  // indices of up_proj onto zeros of down_proj
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.", "overlaps tensor 'model.layers.0.mlp.");
    // A plane that runs into the next one.
    t = table_;
    plane_entry(t, 4, 0)["size"] = 200;  // lut, 65 bytes, followed by ids 128 bytes on
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "tensor 'future.codebook'", "field 'planes.ids.offset'",
                       "overlaps tensor 'future.codebook' planes.lut");
    // A plane inside the tokenizer blob.
    t = table_;
    plane_entry(t, 0, 0)["offset"] = t["blobs"][0]["offset"].get<uint64_t>() + 64;
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "overlaps blobs.tokenizer");
}

TEST_F(HostileSparq, DuplicateNames) {
    json t = table_;
    t["tensors"][3]["name"] = t["tensors"][1]["name"];
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "tensor 'model.layers.0.mlp.down_proj.weight'",
                       "appears twice in the tensor table");
    t = table_;
    t["tensors"][1]["planes"][1]["name"] = "codes";
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'planes.codes'", "appears twice in the tensor");
    t = table_;
    t["blobs"].push_back(t["blobs"][0]);
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'blobs.tokenizer'", "appears twice");
    // The same key twice in one JSON object: parsers disagree on which wins.
    std::string text = table_.dump();
    text.replace(text.find("\"encoding\""), 0, R"("encoding":"f32",)");
    EXPECT_SPARQ_ERROR(SparqFile::open(file(testing::with_table(good_, text))), "field 'table'",
                       "key 'encoding' appears twice");
}

TEST_F(HostileSparq, MalformedTableEntries) {
    const std::string name = "model.layers.0.mlp.down_proj.weight";
    auto expect = [&](auto edit, std::initializer_list<std::string> pieces) {
        json t = table_;
        edit(t["tensors"][1]);
        const std::string path = file_with_table(t);
        const std::string text = testing::error_text([&] { SparqFile::open(path); });
        for (const std::string& piece : pieces) EXPECT_NE(text.find(piece), std::string::npos) << text << "\nlacks: " << piece;
    };
    expect([](json& e) { e.erase("encoding"); }, {"tensor '" + name + "'", "has no 'encoding' field"});
    expect([](json& e) { e["encoding"] = "Q4"; }, {"field 'encoding'", "other than a-z"});
    expect([](json& e) { e["shape"] = {uint64_t{1} << 62, 4}; }, {"field 'shape'", "more elements than fit"});
    expect([](json& e) { e["shape"] = json::array({1, 1, 1, 1, 1, 1, 1, 1, 1}); }, {"9 dimensions"});
    expect([](json& e) { e["shape"] = {3.5}; }, {"field 'shape'", "non-negative integer"});
    expect([](json& e) { e["params"] = 4; }, {"field 'params'", "JSON object"});
    expect([](json& e) { e["planes"] = json::array(); }, {"field 'planes'", "0 planes"});
    expect([](json& e) { e["xxh64"] = "XYZ"; }, {"field 'xxh64'", "16 lowercase hex digits"});
    expect([](json& e) { e["name"] = ""; }, {"tensor '#1'", "field 'name'", "is empty"});
    expect([](json& e) { e["name"] = std::string("a\nb"); }, {"control character"});
    expect([](json& e) { e = json::array(); }, {"tensor '#1'", "must be a JSON object"});
    json t = table_;
    t.erase("tensors");
    EXPECT_SPARQ_ERROR(SparqFile::open(file_with_table(t)), "field 'table'", "has no 'tensors' field");
    EXPECT_SPARQ_ERROR(SparqFile::open(file(testing::with_table(good_, "[1]"))), "field 'table'", "JSON object");
    EXPECT_SPARQ_ERROR(SparqFile::open(file(testing::with_table(good_, "{\"tensors\": ["))), "not valid JSON");
    const std::string deep = "{\"tensors\": [], \"x\": " + std::string(20, '[') + std::string(20, ']') + "}";
    EXPECT_SPARQ_ERROR(SparqFile::open(file(testing::with_table(good_, deep))), "nests deeper than 8");
}

TEST_F(HostileSparq, MetadataMustBeAJsonObject) {
    std::string bytes = good_;
    std::string replacement(header_.metadata_size, ' ');
    replacement.front() = '[';
    replacement.back() = ']';
    bytes.replace(header_.metadata_offset, header_.metadata_size, replacement);
    testing::reseal(bytes);
    EXPECT_SPARQ_ERROR(SparqFile::open(file(bytes)), "field 'metadata'", "must be a JSON object, found array");
}

}  // namespace
}  // namespace sparq
