// The numbers GGUF files use: ggml tensor type ids (with their block sizes)
// and metadata value type ids, defined here once for the writer, the reader
// and the exporters. Written from the GGUF specification (ggml docs/gguf.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace sparq::gguf {

inline constexpr uint32_t kMagic = 0x46554747u;  // "GGUF" read as a little-endian uint32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint32_t kDefaultAlignment = 32;
inline constexpr const char* kAlignmentKey = "general.alignment";
inline constexpr uint32_t kMaxDims = 4;  // GGML_MAX_DIMS

// ggml tensor element types, numbered as in GGUF tensor infos.
enum class GgmlType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
};

struct GgmlTypeTraits {
    std::string_view name;    // "F32", "Q4_K", ...
    uint32_t block_size;      // elements per block (1 for plain types)
    uint32_t type_size;       // bytes per block
};

// Traits of a type id, or nullopt for ids that are unknown or retired.
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id);
// Same, for a known enum value (never nullopt).
GgmlTypeTraits ggml_type_traits(GgmlType type);
std::string_view ggml_type_name(GgmlType type);

// Metadata value types (gguf_metadata_value_type).
enum class ValueType : uint32_t {
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
};

inline constexpr uint32_t kValueTypeCount = 13;

// "uint32", "string", "array", ...; "unknown" for ids outside the enum.
std::string_view value_type_name(ValueType type);
// Bytes of one value of a fixed-size type; 0 for String and Array.
size_t value_type_size(ValueType type);

// llama.cpp's general.file_type (llama_ftype) for the types sparq writes.
// general.file_type, numbered as llama.cpp's llama_ftype.
enum class FileType : uint32_t {
    AllF32 = 0,
    MostlyF16 = 1,
    MostlyQ4_0 = 2,
    MostlyQ4_1 = 3,
    MostlyQ8_0 = 7,
    MostlyQ4_K_S = 14,
    MostlyQ6_K = 18,
};

}  // namespace sparq::gguf
