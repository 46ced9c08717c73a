// One GGUF metadata value: a scalar of any GGUF value type, a string, or an
// array (of scalars, of strings, or of arrays). Fixed-size values are kept as
// their little-endian bytes, exactly as they sit in the file.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "formats/gguf/gguf_types.h"

namespace sparq::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");

// The GGUF value type of a C++ scalar type.
template <typename T>
struct ValueTypeOf;
template <> struct ValueTypeOf<uint8_t> { static constexpr ValueType value = ValueType::UInt8; };
template <> struct ValueTypeOf<int8_t> { static constexpr ValueType value = ValueType::Int8; };
template <> struct ValueTypeOf<uint16_t> { static constexpr ValueType value = ValueType::UInt16; };
template <> struct ValueTypeOf<int16_t> { static constexpr ValueType value = ValueType::Int16; };
template <> struct ValueTypeOf<uint32_t> { static constexpr ValueType value = ValueType::UInt32; };
template <> struct ValueTypeOf<int32_t> { static constexpr ValueType value = ValueType::Int32; };
template <> struct ValueTypeOf<float> { static constexpr ValueType value = ValueType::Float32; };
template <> struct ValueTypeOf<bool> { static constexpr ValueType value = ValueType::Bool; };
template <> struct ValueTypeOf<uint64_t> { static constexpr ValueType value = ValueType::UInt64; };
template <> struct ValueTypeOf<int64_t> { static constexpr ValueType value = ValueType::Int64; };
template <> struct ValueTypeOf<double> { static constexpr ValueType value = ValueType::Float64; };

class Value {
public:
    Value() = default;

    template <typename T>
    static Value scalar(T v) {
        Value out;
        out.type_ = ValueTypeOf<T>::value;
        out.count_ = 1;
        if constexpr (std::is_same_v<T, bool>) {
            out.bytes_.push_back(v ? 1 : 0);
        } else {
            out.bytes_.resize(sizeof(T));
            std::memcpy(out.bytes_.data(), &v, sizeof(T));
        }
        return out;
    }
    static Value string(std::string s);

    template <typename T>
    static Value array(const std::vector<T>& items) {
        Value out;
        out.type_ = ValueType::Array;
        out.element_ = ValueTypeOf<T>::value;
        out.count_ = items.size();
        if constexpr (std::is_same_v<T, bool>) {
            for (bool b : items) out.bytes_.push_back(b ? 1 : 0);
        } else {
            out.bytes_.resize(items.size() * sizeof(T));
            if (!items.empty()) std::memcpy(out.bytes_.data(), items.data(), out.bytes_.size());
        }
        return out;
    }
    static Value string_array(std::vector<std::string> items);
    // An array whose elements are arrays (the spec allows it; llama.cpp never writes it).
    static Value array_of_arrays(std::vector<Value> items);
    // Builds a fixed-size value or array from raw little-endian bytes (the reader uses it).
    static Value from_raw(ValueType type, ValueType element, uint64_t count, std::vector<uint8_t> bytes);

    ValueType type() const { return type_; }
    // The element type of an array (meaningless for scalars).
    ValueType element_type() const { return element_; }
    bool is_array() const { return type_ == ValueType::Array; }
    // Number of elements of an array; 1 for a scalar or a string.
    uint64_t size() const { return count_; }

    // Scalar of exactly type T; throws sparq::Error naming both types otherwise.
    template <typename T>
    T get() const {
        expect(ValueTypeOf<T>::value, false);
        if constexpr (std::is_same_v<T, bool>) {
            return bytes_[0] != 0;
        } else {
            T v;
            std::memcpy(&v, bytes_.data(), sizeof(T));
            return v;
        }
    }
    const std::string& get_string() const;

    // Array of exactly element type T.
    template <typename T>
    std::vector<T> get_array() const {
        expect(ValueTypeOf<T>::value, true);
        std::vector<T> out(static_cast<size_t>(count_));
        if constexpr (std::is_same_v<T, bool>) {
            for (size_t i = 0; i < out.size(); ++i) out[i] = bytes_[i] != 0;
        } else {
            if (!out.empty()) std::memcpy(out.data(), bytes_.data(), out.size() * sizeof(T));
        }
        return out;
    }
    const std::vector<std::string>& get_strings() const;
    const std::vector<Value>& get_arrays() const;

    // Any integer scalar as int64_t, when it fits (nullopt otherwise).
    std::optional<int64_t> to_int64() const;
    // Any numeric scalar as double.
    std::optional<double> to_double() const;

    // Little-endian bytes of a fixed-size scalar or of a fixed-size array's elements.
    const std::vector<uint8_t>& raw_bytes() const { return bytes_; }

    // Short human-readable form: scalars in full, arrays as "[type x N: first items...]".
    std::string to_display(size_t max_items = 8) const;

    bool operator==(const Value& other) const;

private:
    void expect(ValueType t, bool array) const;

    ValueType type_ = ValueType::UInt8;
    ValueType element_ = ValueType::UInt8;
    uint64_t count_ = 0;
    std::vector<uint8_t> bytes_;          // fixed-size scalar or array elements
    std::string string_;                  // String scalar
    std::vector<std::string> strings_;    // array of strings
    std::vector<Value> arrays_;           // array of arrays
};

}  // namespace sparq::gguf
