#include "core/dtype.h"

namespace sparq {

size_t dtype_size(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F16: return 2;
        case DType::BF16: return 2;
        case DType::F64: return 8;
        case DType::I8: return 1;
        case DType::U8: return 1;
        case DType::I16: return 2;
        case DType::I32: return 4;
        case DType::I64: return 8;
        case DType::Bool: return 1;
        case DType::Packed: return 0;
    }
    return 0;
}

std::string_view dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "F32";
        case DType::F16: return "F16";
        case DType::BF16: return "BF16";
        case DType::F64: return "F64";
        case DType::I8: return "I8";
        case DType::U8: return "U8";
        case DType::I16: return "I16";
        case DType::I32: return "I32";
        case DType::I64: return "I64";
        case DType::Bool: return "BOOL";
        case DType::Packed: return "PACKED";
    }
    return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view name) {
    if (name == "F32") return DType::F32;
    if (name == "F16") return DType::F16;
    if (name == "BF16") return DType::BF16;
    if (name == "F64") return DType::F64;
    if (name == "I8") return DType::I8;
    if (name == "U8") return DType::U8;
    if (name == "I16") return DType::I16;
    if (name == "I32") return DType::I32;
    if (name == "I64") return DType::I64;
    if (name == "BOOL") return DType::Bool;
    return std::nullopt;
}

bool dtype_is_float(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64;
}

}  // namespace sparq
