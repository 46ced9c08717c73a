#include "formats/tensor_map.h"

#include "core/error.h"

namespace sparq {

void TensorMap::add(const std::string& name, Tensor tensor) {
    if (!tensors_.emplace(name, std::move(tensor)).second) {
        fail_in({source_, name, ""}, "tensor appears twice");
    }
}

const Tensor& TensorMap::get(const std::string& name) const {
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) fail_in({source_, name, ""}, "tensor is missing");
    return it->second;
}

const Tensor& TensorMap::get(const std::string& name, const Shape& expected) const {
    const Tensor& t = get(name);
    if (t.shape != expected) {
        fail_in({source_, name, ""}, "has shape ", shape_string(t.shape), ", expected ",
                shape_string(expected));
    }
    return t;
}

std::vector<std::string> TensorMap::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto& [name, t] : tensors_) out.push_back(name);
    return out;
}

}  // namespace sparq
