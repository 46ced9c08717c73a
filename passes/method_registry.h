// The compression methods of the quantize and sparsify passes, registered
// by name in one table: what each does, whether it reads calibration, and
// which method-specific options it reads. Validation, `--help` and the
// unread-option check take names from here, so a method is added in one
// place.
//
// Options a run would not read are refused at the user's boundary (the
// CLI's flags and the recipes' keys, which become the same flags): an
// option that differs from its default and that nothing in the run reads
// is an error naming the option and what reads it, instead of a setting
// silently dropped (`--damp` with `--method rtn`, `--owl-m` without OWL
// ratios). The check compares against the defaults, so passing an option's
// default value is accepted: it changes nothing either way.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace sparq {

enum class PassKind { Quantize, Sparsify };

struct MethodInfo {
    std::string name;
    PassKind pass = PassKind::Quantize;
    std::string summary;      // one line for --help and docs
    bool calibrated = false;  // needs --calib FILE or --calib-cache FILE
    // Method-specific options (CLI spelling without the dashes); the
    // options every method of the pass reads are not listed.
    std::vector<std::string> options;
    bool reads(std::string_view option) const;
};

// Every registered method of a pass, in --help order.
const std::vector<MethodInfo>& registered_methods(PassKind pass);
// nullptr when the pass has no such method.
const MethodInfo* find_method(PassKind pass, std::string_view name);
// Throws sparq::Error naming `flag` and listing the pass's methods.
const MethodInfo& require_method(PassKind pass, std::string_view name, const char* flag);
// "rtn, mse, ..." in registry order.
std::string method_names(PassKind pass);
// "name: summary" of every method, one per line, for --help.
std::string method_help(PassKind pass);
// The methods of `pass` that read `option`, as "--method a or b" (empty
// when none does).
std::string methods_reading(PassKind pass, std::string_view option);

// One option of a run for refuse_unread_options: its flag, whether the user
// changed it from its default, whether the run reads it, and what would.
struct OptionUse {
    const char* flag;
    bool set;
    bool read;
    std::string readers;  // "--method gptq", "--layer-ratios owl", ...
};

// Throws sparq::Error for the first option set but not read: "--damp: not
// read by this run (--method rtn); it applies to --method gptq".
void refuse_unread_options(const std::vector<OptionUse>& uses, const std::string& run);

}  // namespace sparq
