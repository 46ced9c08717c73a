// The tensors of one model, under their Hugging Face names
// (model.layers.3.mlp.down_proj.weight) whatever file they came from.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace sparq {

class TensorMap {
public:
    TensorMap() = default;
    explicit TensorMap(std::string source) : source_(std::move(source)) {}

    void add(const std::string& name, Tensor tensor);
    bool has(const std::string& name) const { return tensors_.count(name) != 0; }
    // Throws sparq::Error naming the file and tensor when it is missing.
    const Tensor& get(const std::string& name) const;
    // Like get(), and also checks the shape.
    const Tensor& get(const std::string& name, const Shape& expected) const;
    std::vector<std::string> names() const;
    size_t size() const { return tensors_.size(); }
    const std::map<std::string, Tensor>& all() const { return tensors_; }

    const std::string& source() const { return source_; }
    void set_source(std::string s) { source_ = std::move(s); }

private:
    std::string source_;
    std::map<std::string, Tensor> tensors_;
};

}  // namespace sparq
