#include "formats/gguf/gguf_writer.h"

#include <cstring>
#include <limits>
#include <unordered_set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace sparq::gguf {
namespace {

// GGML_MAX_NAME is 64 including the terminating NUL.
constexpr size_t kMaxTensorName = 63;

class Buffer {
public:
    template <typename T>
    void put(T v) {
        const size_t at = bytes_.size();
        bytes_.resize(at + sizeof(T));
        std::memcpy(bytes_.data() + at, &v, sizeof(T));
    }
    void put_bytes(const void* p, size_t n) {
        const auto* b = static_cast<const uint8_t*>(p);
        bytes_.insert(bytes_.end(), b, b + n);
    }
    void put_string(const std::string& s) {
        put<uint64_t>(s.size());
        put_bytes(s.data(), s.size());
    }
    void pad_to(uint64_t alignment) {
        while (bytes_.size() % alignment != 0) bytes_.push_back(0);
    }
    const std::vector<uint8_t>& bytes() const { return bytes_; }

private:
    std::vector<uint8_t> bytes_;
};

void put_value_body(Buffer& out, const Value& v) {
    switch (v.type()) {
        case ValueType::String:
            out.put_string(v.get_string());
            return;
        case ValueType::Array:
            out.put<uint32_t>(static_cast<uint32_t>(v.element_type()));
            out.put<uint64_t>(v.size());
            if (v.element_type() == ValueType::String) {
                for (const std::string& s : v.get_strings()) out.put_string(s);
            } else if (v.element_type() == ValueType::Array) {
                for (const Value& a : v.get_arrays()) put_value_body(out, a);
            } else {
                out.put_bytes(v.raw_bytes().data(), v.raw_bytes().size());
            }
            return;
        default:
            out.put_bytes(v.raw_bytes().data(), v.raw_bytes().size());
            return;
    }
}

uint64_t align_up(uint64_t x, uint64_t alignment) {
    const uint64_t rem = x % alignment;
    if (rem == 0) return x;
    if (x > std::numeric_limits<uint64_t>::max() - (alignment - rem)) fail("GGUF offsets overflow 64 bits");
    return x + (alignment - rem);
}

}  // namespace

std::vector<uint64_t> gguf_dims_from_shape(const Shape& shape) {
    if (shape.empty()) return {1};
    std::vector<uint64_t> dims;
    for (auto it = shape.rbegin(); it != shape.rend(); ++it) {
        if (*it < 0) fail("negative dimension in shape ", shape_string(shape));
        dims.push_back(static_cast<uint64_t>(*it));
    }
    return dims;
}

Shape shape_from_gguf_dims(const std::vector<uint64_t>& dims) {
    Shape shape;
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) {
        if (*it > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
            fail("dimension ", *it, " does not fit in int64");
        }
        shape.push_back(static_cast<int64_t>(*it));
    }
    return shape;
}

uint64_t ggml_tensor_bytes(GgmlType type, const Shape& shape) {
    const GgmlTypeTraits t = ggml_type_traits(type);
    const int64_t numel = shape_numel(shape);
    const int64_t row = shape.empty() ? 1 : shape.back();
    if (row % t.block_size != 0) {
        fail("a ", t.name, " tensor needs rows that are a multiple of ", t.block_size, " elements; shape ",
             shape_string(shape), " has rows of ", row);
    }
    const uint64_t blocks = static_cast<uint64_t>(numel) / t.block_size;
    if (blocks > std::numeric_limits<uint64_t>::max() / t.type_size) {
        fail("tensor of shape ", shape_string(shape), " is too large");
    }
    return blocks * t.type_size;
}

void GgufWriter::set(const std::string& key, Value value) {
    if (key.empty()) fail("GGUF metadata keys must not be empty");
    if (key.size() > 65535) fail("GGUF metadata key of ", key.size(), " bytes (at most 65535)");
    const size_t fixed = value_type_size(value.type());
    if (fixed > 0 && value.raw_bytes().size() != fixed) {
        fail_in({"", "", key}, "value holds ", value.raw_bytes().size(), " bytes, a ", value_type_name(value.type()),
                " needs ", fixed, " (default-constructed Value?)");
    }
    if (key == kAlignmentKey) {
        if (value.type() != ValueType::UInt32) {
            fail_in({"", "", key}, "must be a uint32, got ", value_type_name(value.type()));
        }
        const uint32_t a = value.get<uint32_t>();
        if (a < 8 || (a & (a - 1)) != 0) fail_in({"", "", key}, "must be a power of two >= 8, got ", a);
        alignment_ = a;
    }
    for (auto& kv : kvs_) {
        if (kv.first == key) {
            kv.second = std::move(value);
            return;
        }
    }
    kvs_.emplace_back(key, std::move(value));
}

bool GgufWriter::has(const std::string& key) const {
    for (const auto& kv : kvs_) {
        if (kv.first == key) return true;
    }
    return false;
}

void GgufWriter::add_tensor(const std::string& name, const Shape& shape, GgmlType type, FillFn fill) {
    if (name.empty()) fail("GGUF tensor names must not be empty");
    if (name.size() > kMaxTensorName) {
        fail_in({"", name, ""}, "tensor name of ", name.size(), " bytes; GGUF allows at most ", kMaxTensorName);
    }
    if (shape.size() > kMaxDims) {
        fail_in({"", name, ""}, "shape ", shape_string(shape), " has more than ", kMaxDims, " dimensions");
    }
    for (const auto& t : tensors_) {
        if (t.name == name) fail_in({"", name, ""}, "tensor added twice");
    }
    uint64_t nbytes = 0;
    try {
        nbytes = ggml_tensor_bytes(type, shape);
    } catch (const Error& e) {
        throw e.with_tensor(name);
    }
    tensors_.push_back(TensorEntry{name, shape, type, nbytes, std::move(fill), nullptr});
}

void GgufWriter::add_tensor_data(const std::string& name, const Shape& shape, GgmlType type, const void* data,
                                 size_t nbytes) {
    add_tensor(name, shape, type, nullptr);
    TensorEntry& t = tensors_.back();
    if (t.nbytes != nbytes) {
        const uint64_t expected = t.nbytes;
        tensors_.pop_back();
        fail_in({"", name, ""}, "has ", nbytes, " bytes of data; a ", ggml_type_name(type), " tensor of shape ",
                shape_string(shape), " needs ", expected);
    }
    t.data = data;
}

std::string GgufWriter::metadata_bytes() const {
    if (!tensors_.empty()) fail("metadata_bytes: the writer holds ", tensors_.size(), " tensors; it serializes KVs alone");
    uint64_t data_bytes = 0;
    const std::vector<uint8_t> head = header_bytes(data_bytes);
    return std::string(reinterpret_cast<const char*>(head.data()), head.size());
}

std::vector<uint8_t> GgufWriter::header_bytes(uint64_t& data_bytes) const {
    const uint64_t alignment = alignment_;
    Buffer head;
    head.put<uint32_t>(kMagic);
    head.put<uint32_t>(kVersion);
    head.put<uint64_t>(tensors_.size());
    head.put<uint64_t>(kvs_.size());
    for (const auto& [key, value] : kvs_) {
        head.put_string(key);
        head.put<uint32_t>(static_cast<uint32_t>(value.type()));
        put_value_body(head, value);
    }
    uint64_t offset = 0;
    for (const TensorEntry& t : tensors_) {
        head.put_string(t.name);
        const std::vector<uint64_t> dims = gguf_dims_from_shape(t.shape);
        head.put<uint32_t>(static_cast<uint32_t>(dims.size()));
        for (uint64_t d : dims) head.put<uint64_t>(d);
        head.put<uint32_t>(static_cast<uint32_t>(t.type));
        head.put<uint64_t>(offset);
        offset = align_up(offset + t.nbytes, alignment);
    }
    head.pad_to(alignment);
    data_bytes = offset;
    return head.bytes();
}

uint64_t GgufWriter::write(const std::string& path) const {
    const uint64_t alignment = alignment_;
    uint64_t offset = 0;
    const std::vector<uint8_t> header = header_bytes(offset);
    AtomicFileWriter out(path);
    try {
        out.write(header.data(), header.size());
        const uint64_t data_start = out.offset();
        std::vector<uint8_t> scratch;
        for (const TensorEntry& t : tensors_) {
            if (t.data != nullptr) {
                out.write(t.data, static_cast<size_t>(t.nbytes));
            } else {
                scratch.assign(static_cast<size_t>(t.nbytes), 0);
                try {
                    t.fill(scratch.data());
                } catch (const Error& e) {
                    throw e.with_tensor(t.name);
                }
                out.write(scratch.data(), scratch.size());
            }
            out.align_to(alignment);
        }
        if (out.offset() - data_start != offset) {
            fail("internal error: wrote ", out.offset() - data_start, " bytes of tensor data, planned ", offset);
        }
        const uint64_t size = out.offset();
        out.commit();
        return size;
    } catch (const Error& e) {
        throw e.with_file(path);
    }
}

}  // namespace sparq::gguf
