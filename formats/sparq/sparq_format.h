// The fixed parts of the .sparq container (docs/format.md is the spec): the
// 128-byte header, its limits, its checksum, and the names of the tensor
// encodings. Shared by the reader, the writer and the fuzz harness.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sparq {

// "SPARQ", a NUL (stops text tools), CR LF (catches line-ending translation).
inline constexpr std::array<uint8_t, 8> kSparqMagic = {'S', 'P', 'A', 'R', 'Q', 0x00, 0x0D, 0x0A};
inline constexpr uint16_t kSparqMajorVersion = 1;  // readers refuse any other major version
inline constexpr uint16_t kSparqMinorVersion = 0;  // additions old readers may ignore
inline constexpr uint32_t kSparqEndianMarker = 0x01020304;  // stored little-endian: 04 03 02 01
inline constexpr size_t kSparqHeaderBytes = 128;
inline constexpr uint64_t kSparqAlignment = 64;  // every plane and blob starts at a multiple of this

// Limits a reader enforces before parsing anything (hostile input).
inline constexpr uint64_t kSparqMaxMetadataBytes = uint64_t{16} << 20;
inline constexpr uint64_t kSparqMaxTableBytes = uint64_t{64} << 20;
inline constexpr int kSparqMaxMetadataDepth = 64;
inline constexpr int kSparqMaxTableDepth = 8;
inline constexpr size_t kSparqMaxTensors = size_t{1} << 20;
inline constexpr size_t kSparqMaxBlobs = 1024;
inline constexpr size_t kSparqMaxPlanes = 16;
inline constexpr size_t kSparqMaxDims = 8;
inline constexpr size_t kSparqMaxNameBytes = 4096;
inline constexpr size_t kSparqMaxEncodingBytes = 64;

// Byte offsets of the header fields (all little-endian).
namespace sparq_header_offset {
inline constexpr size_t kMagic = 0;
inline constexpr size_t kMajorVersion = 8;
inline constexpr size_t kMinorVersion = 10;
inline constexpr size_t kEndianMarker = 12;
inline constexpr size_t kFileSize = 16;
inline constexpr size_t kMetadataOffset = 24;
inline constexpr size_t kMetadataSize = 32;
inline constexpr size_t kTableOffset = 40;
inline constexpr size_t kTableSize = 48;
inline constexpr size_t kDataOffset = 56;
inline constexpr size_t kDataSize = 64;
inline constexpr size_t kHeaderChecksum = 72;
inline constexpr size_t kReserved = 80;  // 48 bytes, written as zeros
}  // namespace sparq_header_offset

struct SparqHeader {
    uint16_t major_version = kSparqMajorVersion;
    uint16_t minor_version = kSparqMinorVersion;
    uint32_t endian_marker = kSparqEndianMarker;
    uint64_t file_size = 0;
    uint64_t metadata_offset = 0;
    uint64_t metadata_size = 0;
    uint64_t table_offset = 0;
    uint64_t table_size = 0;
    uint64_t data_offset = 0;
    uint64_t data_size = 0;
    uint64_t header_checksum = 0;
};

// Serializes the header (magic, fields, zero reserved bytes).
std::array<uint8_t, kSparqHeaderBytes> encode_sparq_header(const SparqHeader& header);
// Reads the fields of a 128-byte header; checks nothing (the reader does).
SparqHeader decode_sparq_header(const uint8_t* bytes);

// XXH64 (seed 0) of: the 128 header bytes with the checksum field read as
// zeros, then the metadata bytes, then the table bytes.
uint64_t sparq_header_checksum(const uint8_t* header_bytes, std::span<const uint8_t> metadata,
                               std::span<const uint8_t> table);

// Checksums are stored in the table as 16 lowercase hex digits.
std::string xxh64_hex(uint64_t value);
bool parse_xxh64_hex(std::string_view text, uint64_t& value);

// The planes an encoding named in docs/format.md has. Encodings not listed
// here are legal in a file; only a consumer that reads them must know them.
struct SparqEncodingPlanes {
    std::string_view encoding;
    std::vector<std::string_view> required;
    std::vector<std::string_view> optional;
};
const SparqEncodingPlanes* find_sparq_encoding(std::string_view encoding);

// Bytes per element of the dense encodings "f32", "f16", "bf16"; 0 otherwise.
size_t sparq_dense_element_size(std::string_view encoding);

}  // namespace sparq
