#include "formats/gguf/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_set>

#include "core/mapped_file.h"

namespace sparq::gguf {
namespace {

// Smallest encodings, used to bound counts before allocating anything.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;           // empty key, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims=0, type, offset
constexpr uint64_t kMinStringBytes = 8;
constexpr uint64_t kMinArrayBytes = 4 + 8;

std::string hex_bytes(const uint8_t* p, size_t n) {
    std::string out;
    char buf[4];
    for (size_t i = 0; i < n; ++i) {
        std::snprintf(buf, sizeof buf, "%02x", p[i]);
        if (i) out += ' ';
        out += buf;
    }
    return out;
}

uint32_t byteswap32(uint32_t v) {
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

class Cursor {
public:
    Cursor(const uint8_t* data, uint64_t size, const std::string& file) : data_(data), size_(size), file_(file) {}

    uint64_t pos() const { return pos_; }
    uint64_t remaining() const { return size_ - pos_; }

    [[noreturn]] void error(const std::string& field, const std::string& message) const {
        throw Error(message, {file_, "", field});
    }
    [[noreturn]] void tensor_error(const std::string& tensor, const std::string& message) const {
        throw Error(message, {file_, tensor, ""});
    }

    void need(uint64_t n, const std::string& field, const char* what) const {
        if (n > remaining()) {
            error(field, detail::concat("truncated file: ", what, " needs ", n, " bytes at offset ", pos_,
                                        " but only ", remaining(), " remain (file size ", size_, ")"));
        }
    }

    template <typename T>
    T read(const std::string& field, const char* what) {
        need(sizeof(T), field, what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::vector<uint8_t> read_bytes(uint64_t n, const std::string& field, const char* what) {
        need(n, field, what);
        std::vector<uint8_t> out(data_ + pos_, data_ + pos_ + n);
        pos_ += n;
        return out;
    }

    std::string read_string(const std::string& field, const char* what) {
        const uint64_t len = read<uint64_t>(field, what);
        if (len > remaining()) {
            error(field, detail::concat("truncated file or corrupt length: ", what, " claims ", len,
                                        " bytes at offset ", pos_ - 8, " but only ", remaining(), " remain"));
        }
        std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
        pos_ += len;
        return s;
    }

private:
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    const std::string& file_;
};

ValueType read_value_type(Cursor& in, const std::string& field, const char* what) {
    const uint64_t at = in.pos();
    const uint32_t t = in.read<uint32_t>(field, what);
    if (t >= kValueTypeCount) {
        in.error(field, detail::concat("unknown GGUF value type ", t, " at offset ", at, " (valid: 0..",
                                       kValueTypeCount - 1, ")"));
    }
    return static_cast<ValueType>(t);
}

Value read_value(Cursor& in, ValueType type, const std::string& field, uint32_t depth, const ReadLimits& limits) {
    if (type == ValueType::String) return Value::string(in.read_string(field, "string value"));
    if (type != ValueType::Array) {
        const size_t n = value_type_size(type);
        return Value::from_raw(type, ValueType::UInt8, 1, in.read_bytes(n, field, "value"));
    }
    if (depth >= limits.max_array_depth) {
        in.error(field, detail::concat("arrays nested more than ", limits.max_array_depth, " deep"));
    }
    const ValueType element = read_value_type(in, field, "array element type");
    const uint64_t count_at = in.pos();
    const uint64_t count = in.read<uint64_t>(field, "array length");
    const size_t fixed = value_type_size(element);
    if (fixed > 0) {
        if (count > in.remaining() / fixed) {
            in.error(field, detail::concat("array of ", count, " ", value_type_name(element), " values (length at offset ",
                                           count_at, ") needs ", fixed, " bytes each but only ", in.remaining(),
                                           " bytes remain"));
        }
        return Value::from_raw(ValueType::Array, element, count, in.read_bytes(count * fixed, field, "array data"));
    }
    const uint64_t min_each = element == ValueType::String ? kMinStringBytes : kMinArrayBytes;
    if (count > in.remaining() / min_each) {
        in.error(field, detail::concat("array of ", count, " ", value_type_name(element), " values (length at offset ",
                                       count_at, ") cannot fit in the ", in.remaining(), " bytes that remain"));
    }
    if (element == ValueType::String) {
        std::vector<std::string> items;
        items.reserve(static_cast<size_t>(count));
        for (uint64_t i = 0; i < count; ++i) items.push_back(in.read_string(field, "array string"));
        return Value::string_array(std::move(items));
    }
    std::vector<Value> items;
    items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i) {
        const ValueType inner = ValueType::Array;
        items.push_back(read_value(in, inner, field, depth + 1, limits));
    }
    return Value::array_of_arrays(std::move(items));
}

bool add_overflows(uint64_t a, uint64_t b) { return a > std::numeric_limits<uint64_t>::max() - b; }

}  // namespace

Shape TensorInfo::shape() const { 
    Shape s;
    for (auto it = dims.rbegin(); it != dims.rend(); ++it) s.push_back(static_cast<int64_t>(*it));
    return s;
}

GgufFile GgufFile::open(const std::string& path, const ReadLimits& limits) {
    std::shared_ptr<MappedFile> file = MappedFile::open(path);
    const uint8_t* data = file->data();
    const size_t size = file->size();
    return parse(data, size, path, std::move(file), limits);
}

GgufFile GgufFile::parse(const uint8_t* data, size_t size, const std::string& name,
                         std::shared_ptr<const void> owner, const ReadLimits& limits) {
    GgufFile f;
    f.path_ = name;
    f.owner_ = std::move(owner);
    f.data_ = data;
    f.size_ = size;
    Cursor in(data, size, f.path_);

    // Header.
    if (size < 4) {
        in.error("header.magic", detail::concat("not a GGUF file: ", size, " bytes, too short for the magic \"GGUF\""));
    }
    const uint32_t magic = in.read<uint32_t>("header.magic", "magic");
    if (magic != kMagic) {
        in.error("header.magic", "not a GGUF file: starts with bytes " + hex_bytes(data, 4) +
                                     ", expected 47 47 55 46 (\"GGUF\")");
    }
    const uint32_t version = in.read<uint32_t>("header.version", "version");
    if (version != 2 && version != 3) {
        if (byteswap32(version) == 2 || byteswap32(version) == 3) {
            in.error("header.version", detail::concat("big-endian GGUF (version ", byteswap32(version),
                                                      " byte-swapped) is not supported; only little-endian files"));
        }
        if (version == 1) in.error("header.version", "GGUF version 1 is not supported (only versions 2 and 3)");
        in.error("header.version", detail::concat("unsupported GGUF version ", version, " (expected 3, or 2)"));
    }
    f.version_ = version;
    const uint64_t n_tensors = in.read<uint64_t>("header.tensor_count", "tensor count");
    const uint64_t n_kv = in.read<uint64_t>("header.metadata_kv_count", "metadata KV count");
    if (n_kv > in.remaining() / kMinKvBytes) {
        in.error("header.metadata_kv_count",
                 detail::concat("claims ", n_kv, " key-value pairs, which cannot fit in the ", in.remaining(),
                                " bytes that follow the header"));
    }
    if (n_tensors > in.remaining() / kMinTensorInfoBytes) {
        in.error("header.tensor_count", detail::concat("claims ", n_tensors, " tensors, which cannot fit in the ",
                                                       in.remaining(), " bytes that follow the header"));
    }

    // Metadata.
    std::unordered_set<std::string> keys;
    f.kvs_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string where = "kv[" + std::to_string(i) + "]";
        std::string key = in.read_string(where, "key");
        const std::string field = key.empty() ? where : key;
        if (!keys.insert(key).second) in.error(field, "duplicate metadata key");
        const ValueType type = read_value_type(in, field, "value type");
        Value value = read_value(in, type, field, 0, limits);
        f.kvs_.emplace_back(std::move(key), std::move(value));
    }

    if (const Value* a = f.find(kAlignmentKey)) {
        if (a->type() != ValueType::UInt32) {
            in.error(kAlignmentKey, detail::concat("must be a uint32, found ", value_type_name(a->type())));
        }
        const uint32_t alignment = a->get<uint32_t>();
        if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
            in.error(kAlignmentKey, detail::concat("must be a power of two, found ", alignment));
        }
        f.alignment_ = alignment;
    }

    // Tensor infos.
    if (n_tensors > in.remaining() / kMinTensorInfoBytes) {
        in.error("header.tensor_count", detail::concat("claims ", n_tensors, " tensors, which cannot fit in the ",
                                                       in.remaining(), " bytes left after the metadata"));
    }
    std::unordered_set<std::string> names;
    f.tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        const std::string where = "tensor_info[" + std::to_string(i) + "]";
        TensorInfo t;
        t.name = in.read_string(where, "tensor name");
        const std::string& tn = t.name.empty() ? where : t.name;
        if (!names.insert(t.name).second) in.tensor_error(tn, "duplicate tensor name");
        const uint32_t n_dims = in.read<uint32_t>(where, "tensor dimension count");
        if (n_dims == 0 || n_dims > kMaxDims) {
            in.tensor_error(tn, detail::concat("has ", n_dims, " dimensions; GGUF allows 1 to ", kMaxDims));
        }
        uint64_t n_elements = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t dim = in.read<uint64_t>(where, "tensor dimension");
            if (dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
                in.tensor_error(tn, detail::concat("dimension ", d, " is ", dim, ", beyond int64"));
            }
            if (dim != 0 && n_elements > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dim) {
                in.tensor_error(tn, "element count overflows 64 bits");
            }
            n_elements *= dim;
            t.dims.push_back(dim);
        }
        t.n_elements = n_elements;
        t.type_id = in.read<uint32_t>(where, "tensor type");
        const auto traits = ggml_type_traits(t.type_id);
        if (!traits) in.tensor_error(tn, detail::concat("unknown ggml type id ", t.type_id));
        t.type = static_cast<GgmlType>(t.type_id);
        if (t.dims[0] % traits->block_size != 0) {
            in.tensor_error(tn, detail::concat("rows of ", t.dims[0], " elements are not a multiple of the ",
                                               traits->name, " block size ", traits->block_size));
        }
        const uint64_t blocks = n_elements / traits->block_size;
        if (blocks > std::numeric_limits<uint64_t>::max() / traits->type_size) {
            in.tensor_error(tn, "byte size overflows 64 bits");
        }
        t.nbytes = blocks * traits->type_size;
        t.offset = in.read<uint64_t>(where, "tensor data offset");
        if (t.offset % f.alignment_ != 0) {
            in.tensor_error(tn, detail::concat("data offset ", t.offset, " is not a multiple of the alignment ",
                                               f.alignment_));
        }
        f.tensors_.push_back(std::move(t));
    }

    // Data section: starts at the next multiple of the alignment.
    const uint64_t end_of_infos = in.pos();
    const uint64_t rem = end_of_infos % f.alignment_;
    f.data_offset_ = rem == 0 ? end_of_infos : end_of_infos + (f.alignment_ - rem);
    for (const TensorInfo& t : f.tensors_) {
        if (add_overflows(f.data_offset_, t.offset) || add_overflows(f.data_offset_ + t.offset, t.nbytes) ||
            f.data_offset_ + t.offset + t.nbytes > f.size_) {
            in.tensor_error(t.name, detail::concat("data at offset ", t.offset, " + ", t.nbytes,
                                                   " bytes (data section at ", f.data_offset_,
                                                   ") extends past the end of the file (", f.size_, " bytes)"));
        }
    }
    // Tensors must not overlap.
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& t : f.tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const TensorInfo* prev = by_offset[i - 1];
        if (prev->nbytes > 0 && by_offset[i]->offset < prev->offset + prev->nbytes) {
            in.tensor_error(by_offset[i]->name, "data overlaps tensor '" + prev->name + "'");
        }
    }
    return f;
}

const Value* GgufFile::find(std::string_view key) const {
    for (const auto& kv : kvs_) {
        if (kv.first == key) return &kv.second;
    }
    return nullptr;
}

const Value& GgufFile::get(std::string_view key) const {
    const Value* v = find(key);
    if (!v) throw Error("missing metadata key", {path_, "", std::string(key)});
    return *v;
}

std::string GgufFile::get_string(std::string_view key) const {
    const Value& v = get(key);
    try {
        return v.get_string();
    } catch (const Error& e) {
        throw Error(e.message(), {path_, "", std::string(key)});
    }
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
    for (const TensorInfo& t : tensors_) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

std::span<const uint8_t> GgufFile::tensor_bytes(const TensorInfo& info) const {
    return {data_ + data_offset_ + info.offset, static_cast<size_t>(info.nbytes)};
}

Tensor GgufFile::tensor(const TensorInfo& info) const {
    Tensor t;
    switch (info.type) {
        case GgmlType::F32: t.dtype = DType::F32; break;
        case GgmlType::F16: t.dtype = DType::F16; break;
        case GgmlType::BF16: t.dtype = DType::BF16; break;
        case GgmlType::F64: t.dtype = DType::F64; break;
        case GgmlType::I8: t.dtype = DType::I8; break;
        case GgmlType::I16: t.dtype = DType::I16; break;
        case GgmlType::I32: t.dtype = DType::I32; break;
        case GgmlType::I64: t.dtype = DType::I64; break;
        default: t.dtype = DType::Packed; break;
    }
    t.shape = info.shape();
    const auto bytes = tensor_bytes(info);
    t.data = bytes.data();
    t.nbytes = bytes.size();
    t.owner = owner_;
    return t;
}

bool looks_like_gguf(const std::string& path) {
    FILE* fp = std::fopen(path.c_str(), "rb");
    if (!fp) return false;
    uint8_t magic[4] = {};
    const size_t n = std::fread(magic, 1, 4, fp);
    std::fclose(fp);
    return n == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

}  // namespace sparq::gguf
