// Element types of tensors as they sit in files and in memory. Packed
// quantized layouts are described by quant/ schemes; here they are just
// "Packed" bytes with a scheme id carried alongside.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sparq {

enum class DType : uint8_t {
    F32,
    F16,
    BF16,
    F64,
    I8,
    U8,
    I16,
    I32,
    I64,
    Bool,
    Packed,  // opaque bytes of a quantized/sparse layout
};

// Bytes per element; 0 for Packed (its size comes from its scheme).
size_t dtype_size(DType t);

// Canonical short name used in CLI/JSON output: "F32", "F16", "BF16", ...
std::string_view dtype_name(DType t);

// Parses a safetensors dtype string ("F32", "BF16", ...). Returns nullopt for
// anything unknown so the caller can name the offending field.
std::optional<DType> dtype_from_safetensors(std::string_view name);

bool dtype_is_float(DType t);

}  // namespace sparq
