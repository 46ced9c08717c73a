// Builds GGUF bytes by hand, field by field as the spec lays them out, so the
// tests do not depend on the writer they check and can craft hostile files.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

namespace sparq::testing {

class GgufBytes {
public:
    GgufBytes& u8(uint8_t v) { return raw(&v, 1); }
    GgufBytes& u32(uint32_t v) { return raw(&v, 4); }
    GgufBytes& u64(uint64_t v) { return raw(&v, 8); }
    GgufBytes& f32(float v) { return raw(&v, 4); }
    GgufBytes& str(const std::string& s) {
        u64(s.size());
        bytes_ += s;
        return *this;
    }
    GgufBytes& raw(const void* p, size_t n) {
        bytes_.append(static_cast<const char*>(p), n);
        return *this;
    }
    GgufBytes& pad_to(size_t alignment) {
        while (bytes_.size() % alignment) bytes_.push_back('\0');
        return *this;
    }
    // magic, version, tensor count, KV count
    GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        bytes_ += "GGUF";
        u32(version);
        u64(n_tensors);
        return u64(n_kv);
    }
    GgufBytes& kv_u32(const std::string& key, uint32_t v) { return str(key).u32(4).u32(v); }
    GgufBytes& kv_string(const std::string& key, const std::string& v) { return str(key).u32(8).str(v); }
    // name, n_dims, dims (GGUF order), type, offset
    GgufBytes& tensor_info(const std::string& name, std::initializer_list<uint64_t> dims, uint32_t type,
                           uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(dims.size()));
        for (uint64_t d : dims) u64(d);
        return u32(type).u64(offset);
    }

    const std::string& bytes() const { return bytes_; }
    size_t size() const { return bytes_.size(); }

private:
    std::string bytes_;
};

}  // namespace sparq::testing
