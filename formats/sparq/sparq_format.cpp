#include "formats/sparq/sparq_format.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>

namespace sparq {
namespace {

template <typename T>
void put_le(uint8_t* out, T value) {
    for (size_t i = 0; i < sizeof(T); ++i) out[i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
}

template <typename T>
T get_le(const uint8_t* in) {
    uint64_t v = 0;
    for (size_t i = sizeof(T); i-- > 0;) v = (v << 8) | in[i];
    return static_cast<T>(v);
}

}  // namespace

std::array<uint8_t, kSparqHeaderBytes> encode_sparq_header(const SparqHeader& h) {
    namespace at = sparq_header_offset;
    std::array<uint8_t, kSparqHeaderBytes> out{};
    std::copy(kSparqMagic.begin(), kSparqMagic.end(), out.begin() + at::kMagic);
    put_le(out.data() + at::kMajorVersion, h.major_version);
    put_le(out.data() + at::kMinorVersion, h.minor_version);
    put_le(out.data() + at::kEndianMarker, h.endian_marker);
    put_le(out.data() + at::kFileSize, h.file_size);
    put_le(out.data() + at::kMetadataOffset, h.metadata_offset);
    put_le(out.data() + at::kMetadataSize, h.metadata_size);
    put_le(out.data() + at::kTableOffset, h.table_offset);
    put_le(out.data() + at::kTableSize, h.table_size);
    put_le(out.data() + at::kDataOffset, h.data_offset);
    put_le(out.data() + at::kDataSize, h.data_size);
    put_le(out.data() + at::kHeaderChecksum, h.header_checksum);
    return out;
}

SparqHeader decode_sparq_header(const uint8_t* in) {
    namespace at = sparq_header_offset;
    SparqHeader h;
    h.major_version = get_le<uint16_t>(in + at::kMajorVersion);
    h.minor_version = get_le<uint16_t>(in + at::kMinorVersion);
    h.endian_marker = get_le<uint32_t>(in + at::kEndianMarker);
    h.file_size = get_le<uint64_t>(in + at::kFileSize);
    h.metadata_offset = get_le<uint64_t>(in + at::kMetadataOffset);
    h.metadata_size = get_le<uint64_t>(in + at::kMetadataSize);
    h.table_offset = get_le<uint64_t>(in + at::kTableOffset);
    h.table_size = get_le<uint64_t>(in + at::kTableSize);
    h.data_offset = get_le<uint64_t>(in + at::kDataOffset);
    h.data_size = get_le<uint64_t>(in + at::kDataSize);
    h.header_checksum = get_le<uint64_t>(in + at::kHeaderChecksum);
    return h;
}

uint64_t sparq_header_checksum(const uint8_t* header_bytes, std::span<const uint8_t> metadata,
                               std::span<const uint8_t> table) {
    uint8_t header[kSparqHeaderBytes];
    std::memcpy(header, header_bytes, kSparqHeaderBytes);
    std::memset(header + sparq_header_offset::kHeaderChecksum, 0, 8);
    XXH64_state_t* state = XXH64_createState();
    XXH64_reset(state, 0);
    XXH64_update(state, header, sizeof header);
    if (!metadata.empty()) XXH64_update(state, metadata.data(), metadata.size());
    if (!table.empty()) XXH64_update(state, table.data(), table.size());
    const uint64_t digest = XXH64_digest(state);
    XXH64_freeState(state);
    return digest;
}

std::string xxh64_hex(uint64_t value) {
    static const char digits[] = "0123456789abcdef";
    std::string out(16, '0');
    for (int i = 15; i >= 0; --i, value >>= 4) out[static_cast<size_t>(i)] = digits[value & 15];
    return out;
}

bool parse_xxh64_hex(std::string_view text, uint64_t& value) {
    if (text.size() != 16) return false;
    uint64_t v = 0;
    for (const char c : text) {
        int digit;
        if (c >= '0' && c <= '9') digit = c - '0';
        else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
        else return false;
        v = (v << 4) | static_cast<uint64_t>(digit);
    }
    value = v;
    return true;
}

const SparqEncodingPlanes* find_sparq_encoding(std::string_view encoding) {
    static const std::vector<SparqEncodingPlanes> encodings = {
        {"f32", {"data"}, {}},
        {"f16", {"data"}, {}},
        {"bf16", {"data"}, {}},
        {"quant", {"codes", "scales"}, {"zeros"}},
        // Sparse values may be FP16 (params.bits 16), which have no scales.
        {"nm_sparse", {"values", "indices"}, {"scales", "zeros"}},
        {"bitmask_sparse", {"mask", "values", "row_offsets"}, {"scales", "zeros"}},
    };
    for (const SparqEncodingPlanes& e : encodings) {
        if (e.encoding == encoding) return &e;
    }
    return nullptr;
}

size_t sparq_dense_element_size(std::string_view encoding) {
    if (encoding == "f32") return 4;
    if (encoding == "f16" || encoding == "bf16") return 2;
    return 0;
}

}  // namespace sparq
