#include "passes/tensor_selection.h"

#include "core/error.h"
#include "models/model_source.h"

namespace sparq {

namespace {
std::regex compile(const std::string& pattern, const char* flag) {
    try {
        return std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        fail_in({"", "", flag}, "invalid regular expression '", pattern, "': ", e.what());
    }
}
}  // namespace

TensorSelection::TensorSelection(const std::string& targets, const std::string& ignore) {
    if (!targets.empty()) {
        targets_ = compile(targets, "--targets");
        has_targets_ = true;
    }
    if (!ignore.empty()) {
        ignore_ = compile(ignore, "--ignore");
        has_ignore_ = true;
    }
}

bool TensorSelection::selected(const std::string& name) const {
    if (has_ignore_ && std::regex_match(name, ignore_)) return false;
    if (has_targets_) return std::regex_match(name, targets_);
    return is_block_linear(name);
}

}  // namespace sparq
