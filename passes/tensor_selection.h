// The one targets/ignore syntax every pass uses (CONTRACT.md): ECMAScript
// regular expressions matched against the whole Hugging Face tensor name;
// --ignore wins over --targets. An empty targets pattern selects the default
// set (the linear layers inside transformer blocks).
#pragma once

#include <regex>
#include <string>

namespace sparq {

class TensorSelection {
public:
    TensorSelection(const std::string& targets, const std::string& ignore);
    bool selected(const std::string& name) const;

private:
    bool has_targets_ = false;
    bool has_ignore_ = false;
    std::regex targets_;
    std::regex ignore_;
};

}  // namespace sparq
