// Writing safetensors: the header is computed from the tensor specs first, so
// the data can then be streamed tensor by tensor.
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "formats/safetensors.h"

namespace sparq {

struct SafetensorsStreamWriter::Impl {
    AtomicFileWriter out;
    std::vector<TensorSpec> specs;
    std::vector<uint64_t> sizes;
    size_t next = 0;
    explicit Impl(const std::string& path) : out(path) {}
};

SafetensorsStreamWriter::SafetensorsStreamWriter(const std::string& path, const std::vector<TensorSpec>& specs,
                                                 const std::map<std::string, std::string>& metadata)
    : impl_(std::make_unique<Impl>(path)) {
    // ordered_json keeps the header in the order the tensors are written.
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    std::set<std::string> names;
    uint64_t offset = 0;
    for (const auto& spec : specs) {
        const ErrorContext where{path, spec.name, ""};
        if (spec.name == "__metadata__") fail_in(where, "is a reserved name");
        if (!names.insert(spec.name).second) fail_in(where, "appears twice in the tensors to write");
        if (spec.dtype == DType::Packed) fail_in(where, "packed tensors cannot be stored in safetensors");
        const uint64_t bytes = static_cast<uint64_t>(shape_numel(spec.shape)) * dtype_size(spec.dtype);
        header[spec.name] = {{"dtype", std::string(dtype_name(spec.dtype))},
                             {"shape", spec.shape},
                             {"data_offsets", {offset, offset + bytes}}};
        offset += bytes;
        impl_->sizes.push_back(bytes);
    }
    impl_->specs = specs;
    std::string header_text = header.dump();
    header_text.append((8 - header_text.size() % 8) % 8, ' ');
    uint8_t length_le[8];
    for (int i = 0; i < 8; ++i) length_le[i] = static_cast<uint8_t>(static_cast<uint64_t>(header_text.size()) >> (8 * i));
    impl_->out.write(length_le, sizeof length_le);
    impl_->out.write(header_text.data(), header_text.size());
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() = default;

void SafetensorsStreamWriter::write_next(const void* data, size_t nbytes) {
    if (impl_->next >= impl_->specs.size()) fail_in({impl_->out.path(), "", ""}, "more tensors written than declared");
    const TensorSpec& spec = impl_->specs[impl_->next];
    if (nbytes != impl_->sizes[impl_->next]) {
        fail_in({impl_->out.path(), spec.name, ""}, "holds ", nbytes, " bytes but ", dtype_name(spec.dtype), " ",
                shape_string(spec.shape), " needs ", impl_->sizes[impl_->next]);
    }
    if (nbytes) impl_->out.write(data, nbytes);
    ++impl_->next;
}

void SafetensorsStreamWriter::commit() {
    if (impl_->next != impl_->specs.size()) {
        fail_in({impl_->out.path(), impl_->specs[impl_->next].name, ""}, "was declared but never written");
    }
    impl_->out.commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<TensorSpec> specs;
    for (const auto& [name, t] : tensors) {
        specs.push_back({name, t.dtype, t.shape});
        if (t.dtype != DType::Packed && t.nbytes != static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype)) {
            fail_in({path, name, ""}, "holds ", t.nbytes, " bytes but ", dtype_name(t.dtype), " ", shape_string(t.shape),
                    " needs ", static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype));
        }
    }
    SafetensorsStreamWriter writer(path, specs, metadata);
    for (const auto& [name, t] : tensors) writer.write_next(t.data, t.nbytes);
    writer.commit();
}

}  // namespace sparq
