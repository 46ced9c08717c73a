#include "passes/method_registry.h"

#include <algorithm>

#include "core/error.h"

namespace sparq {

bool MethodInfo::reads(std::string_view option) const {
    return std::find(options.begin(), options.end(), option) != options.end();
}

namespace {

std::vector<MethodInfo> quantize_methods() {
    return {
        {"rtn", PassKind::Quantize, "round to nearest, the better of two absmax-fitted scales per group (the default)", false, {}},
        {"mse", PassKind::Quantize, "round to nearest with each group's clipping range searched for the lowest squared error", false, {}},
        {"absmax", PassKind::Quantize, "round to nearest with the plain absmax scale, a baseline", false, {}},
        {"imatrix", PassKind::Quantize,
         "clip search weighted by the inputs' importance (llama.cpp's importance matrix)", true, {"imatrix-score"}},
        {"gptq", PassKind::Quantize, "GPTQ: column by column, the rounding error spread over the rest through H^-1",
         true, {"damp", "no-act-order", "gptq-params"}},
        {"awq", PassKind::Quantize, "AWQ: per-input-channel scales searched on the activations, then a clip search",
         true, {"awq-grid", "awq-score"}},
        {"smoothquant", PassKind::Quantize,
         "SmoothQuant: activation outliers moved into the weights, int8 activations (implies --act-bits 8)", true,
         {"smooth-alpha", "smooth-weights"}},
    };
}

std::vector<MethodInfo> sparsify_methods() {
    return {
        {"magnitude", PassKind::Sparsify, "the smallest |w| of each row (or N:M group) pruned (the default)", false, {}},
        {"wanda", PassKind::Sparsify, "Wanda: |w| times the input channel's activation norm, per row", true, {}},
        {"sparsegpt", PassKind::Sparsify, "SparseGPT: OBS-style mask choice and reconstruction with the Hessian, blockwise",
         true, {"block-size", "damp"}},
    };
}

}  // namespace

const std::vector<MethodInfo>& registered_methods(PassKind pass) {
    static const std::vector<MethodInfo> quantize = quantize_methods();
    static const std::vector<MethodInfo> sparsify = sparsify_methods();
    return pass == PassKind::Quantize ? quantize : sparsify;
}

const MethodInfo* find_method(PassKind pass, std::string_view name) {
    for (const MethodInfo& m : registered_methods(pass)) {
        if (m.name == name) return &m;
    }
    return nullptr;
}

std::string method_names(PassKind pass) {
    std::string out;
    for (const MethodInfo& m : registered_methods(pass)) out += (out.empty() ? "" : ", ") + m.name;
    return out;
}

const MethodInfo& require_method(PassKind pass, std::string_view name, const char* flag) {
    if (const MethodInfo* m = find_method(pass, name)) return *m;
    fail_in({"", "", flag}, "must be one of ", method_names(pass), ", got '", name, "'");
}

std::string method_help(PassKind pass) {
    std::string out;
    for (const MethodInfo& m : registered_methods(pass)) {
        out += (out.empty() ? "" : "\n") + m.name + ": " + m.summary + (m.calibrated ? " (needs --calib)" : "");
    }
    return out;
}

std::string methods_reading(PassKind pass, std::string_view option) {
    std::string out;
    for (const MethodInfo& m : registered_methods(pass)) {
        if (m.reads(option)) out += (out.empty() ? "--method " : " or ") + m.name;
    }
    return out;
}

void refuse_unread_options(const std::vector<OptionUse>& uses, const std::string& run) {
    for (const OptionUse& u : uses) {
        if (u.set && !u.read) {
            fail_in({"", "", u.flag}, "is not read by this run (", run, "); it applies to ", u.readers,
                    ". Leave it out, or add what reads it");
        }
    }
}

}  // namespace sparq
