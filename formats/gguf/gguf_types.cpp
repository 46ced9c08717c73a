#include "formats/gguf/gguf_types.h"

#include "core/error.h"

namespace sparq::gguf {
namespace {

struct TypeRow {
    uint32_t id;
    GgmlTypeTraits traits;
};

// Block sizes and bytes per block from the ggml block layouts.
constexpr TypeRow kTypes[] = {
    {0, {"F32", 1, 4}},        {1, {"F16", 1, 2}},        {2, {"Q4_0", 32, 18}},
    {3, {"Q4_1", 32, 20}},     {6, {"Q5_0", 32, 22}},     {7, {"Q5_1", 32, 24}},
    {8, {"Q8_0", 32, 34}},     {9, {"Q8_1", 32, 36}},     {10, {"Q2_K", 256, 84}},
    {11, {"Q3_K", 256, 110}},  {12, {"Q4_K", 256, 144}},  {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}},  {15, {"Q8_K", 256, 292}},  {16, {"IQ2_XXS", 256, 66}},
    {17, {"IQ2_XS", 256, 74}}, {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}},
    {20, {"IQ4_NL", 32, 18}},  {21, {"IQ3_S", 256, 110}}, {22, {"IQ2_S", 256, 82}},
    {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},       {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},       {27, {"I64", 1, 8}},       {28, {"F64", 1, 8}},
    {29, {"IQ1_M", 256, 56}},  {30, {"BF16", 1, 2}},      {34, {"TQ1_0", 256, 54}},
    {35, {"TQ2_0", 256, 66}},
};

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t type_id) {
    for (const TypeRow& row : kTypes) {
        if (row.id == type_id) return row.traits;
    }
    return std::nullopt;
}

GgmlTypeTraits ggml_type_traits(GgmlType type) {
    auto t = ggml_type_traits(static_cast<uint32_t>(type));
    if (!t) fail("internal error: ggml type ", static_cast<uint32_t>(type), " has no traits");
    return *t;
}

std::string_view ggml_type_name(GgmlType type) { return ggml_type_traits(type).name; }

std::string_view value_type_name(ValueType type) {
    switch (type) {
        case ValueType::UInt8: return "uint8";
        case ValueType::Int8: return "int8";
        case ValueType::UInt16: return "uint16";
        case ValueType::Int16: return "int16";
        case ValueType::UInt32: return "uint32";
        case ValueType::Int32: return "int32";
        case ValueType::Float32: return "float32";
        case ValueType::Bool: return "bool";
        case ValueType::String: return "string";
        case ValueType::Array: return "array";
        case ValueType::UInt64: return "uint64";
        case ValueType::Int64: return "int64";
        case ValueType::Float64: return "float64";
    }
    return "unknown";
}

size_t value_type_size(ValueType type) {
    switch (type) {
        case ValueType::UInt8:
        case ValueType::Int8:
        case ValueType::Bool: return 1;
        case ValueType::UInt16:
        case ValueType::Int16: return 2;
        case ValueType::UInt32:
        case ValueType::Int32:
        case ValueType::Float32: return 4;
        case ValueType::UInt64:
        case ValueType::Int64:
        case ValueType::Float64: return 8;
        case ValueType::String:
        case ValueType::Array: return 0;
    }
    return 0;
}

}  // namespace sparq::gguf
