#include "formats/gguf/gguf_value.h"

#include <limits>
#include <sstream>

#include "core/error.h"

namespace sparq::gguf {

Value Value::string(std::string s) {
    Value out;
    out.type_ = ValueType::String;
    out.count_ = 1;
    out.string_ = std::move(s);
    return out;
}

Value Value::string_array(std::vector<std::string> items) {
    Value out;
    out.type_ = ValueType::Array;
    out.element_ = ValueType::String;
    out.count_ = items.size();
    out.strings_ = std::move(items);
    return out;
}

Value Value::array_of_arrays(std::vector<Value> items) {
    for (const Value& v : items) {
        if (!v.is_array()) fail("an array of arrays holds a ", value_type_name(v.type()), " element");
    }
    Value out;
    out.type_ = ValueType::Array;
    out.element_ = ValueType::Array;
    out.count_ = items.size();
    out.arrays_ = std::move(items);
    return out;
}

Value Value::from_raw(ValueType type, ValueType element, uint64_t count, std::vector<uint8_t> bytes) {
    const ValueType fixed = type == ValueType::Array ? element : type;
    const size_t size = value_type_size(fixed);
    if (size == 0) fail("internal error: from_raw needs a fixed-size type, got ", value_type_name(fixed));
    if (type != ValueType::Array && count != 1) fail("internal error: a scalar has count 1");
    if (bytes.size() / size != count || bytes.size() % size != 0) {
        fail("internal error: ", bytes.size(), " bytes for ", count, " ", value_type_name(fixed), " values");
    }
    Value out;
    out.type_ = type;
    out.element_ = type == ValueType::Array ? element : ValueType::UInt8;
    out.count_ = count;
    out.bytes_ = std::move(bytes);
    return out;
}

void Value::expect(ValueType t, bool array) const {
    if (!array) {
        if (type_ != t) fail("expected a ", value_type_name(t), " value, found ", value_type_name(type_));
        return;
    }
    if (type_ != ValueType::Array) {
        fail("expected an array of ", value_type_name(t), ", found a ", value_type_name(type_));
    }
    if (element_ != t) {
        fail("expected an array of ", value_type_name(t), ", found an array of ", value_type_name(element_));
    }
}

const std::string& Value::get_string() const {
    expect(ValueType::String, false);
    return string_;
}

const std::vector<std::string>& Value::get_strings() const {
    expect(ValueType::String, true);
    return strings_;
}

const std::vector<Value>& Value::get_arrays() const {
    expect(ValueType::Array, true);
    return arrays_;
}

std::optional<int64_t> Value::to_int64() const {
    switch (type_) {
        case ValueType::UInt8: return get<uint8_t>();
        case ValueType::Int8: return get<int8_t>();
        case ValueType::UInt16: return get<uint16_t>();
        case ValueType::Int16: return get<int16_t>();
        case ValueType::UInt32: return get<uint32_t>();
        case ValueType::Int32: return get<int32_t>();
        case ValueType::Int64: return get<int64_t>();
        case ValueType::UInt64: {
            const uint64_t v = get<uint64_t>();
            if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
            return static_cast<int64_t>(v);
        }
        default: return std::nullopt;
    }
}

std::optional<double> Value::to_double() const {
    if (type_ == ValueType::Float32) return get<float>();
    if (type_ == ValueType::Float64) return get<double>();
    if (type_ == ValueType::UInt64) return static_cast<double>(get<uint64_t>());
    if (auto i = to_int64()) return static_cast<double>(*i);
    return std::nullopt;
}

namespace {

std::string scalar_text(ValueType type, const uint8_t* p) {
    std::ostringstream os;
    auto load = [p](auto zero) {
        decltype(zero) v;
        std::memcpy(&v, p, sizeof v);
        return v;
    };
    switch (type) {
        case ValueType::UInt8: os << static_cast<unsigned>(load(uint8_t{})); break;
        case ValueType::Int8: os << static_cast<int>(load(int8_t{})); break;
        case ValueType::UInt16: os << load(uint16_t{}); break;
        case ValueType::Int16: os << load(int16_t{}); break;
        case ValueType::UInt32: os << load(uint32_t{}); break;
        case ValueType::Int32: os << load(int32_t{}); break;
        case ValueType::UInt64: os << load(uint64_t{}); break;
        case ValueType::Int64: os << load(int64_t{}); break;
        case ValueType::Float32: os << load(float{}); break;
        case ValueType::Float64: os << load(double{}); break;
        case ValueType::Bool: os << (p[0] ? "true" : "false"); break;
        default: os << "?"; break;
    }
    return os.str();
}

std::string quoted(const std::string& s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20) {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

}  // namespace

std::string Value::to_display(size_t max_items) const {
    if (type_ == ValueType::String) return quoted(string_);
    if (type_ != ValueType::Array) return scalar_text(type_, bytes_.data());
    std::string out = "[";
    out += value_type_name(element_);
    out += " x ";
    out += std::to_string(count_);
    const size_t shown = static_cast<size_t>(std::min<uint64_t>(count_, max_items));
    if (shown > 0) out += ":";
    for (size_t i = 0; i < shown; ++i) {
        out += i ? ", " : " ";
        if (element_ == ValueType::String) {
            out += quoted(strings_[i]);
        } else if (element_ == ValueType::Array) {
            out += arrays_[i].to_display(max_items);
        } else {
            out += scalar_text(element_, bytes_.data() + i * value_type_size(element_));
        }
    }
    if (shown < count_) out += ", ...";
    return out + "]";
}

bool Value::operator==(const Value& other) const {
    if (type_ != other.type_ || count_ != other.count_) return false;
    if (type_ == ValueType::Array && element_ != other.element_) return false;
    return bytes_ == other.bytes_ && string_ == other.string_ && strings_ == other.strings_ &&
           arrays_ == other.arrays_;
}

}  // namespace sparq::gguf
