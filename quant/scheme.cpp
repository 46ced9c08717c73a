#include "quant/scheme.h"

#include <charconv>

#include "core/error.h"

namespace sparq {

std::string QuantScheme::name() const {
    std::string out = "int";
    out += std::to_string(bits);
    if (group == 0) {
        out += "_ch";
    } else {
        out += "_g";
        out += std::to_string(group);
    }
    out += symmetric ? "_sym" : "_asym";
    return out;
}

void validate_quant_scheme(const QuantScheme& scheme) {
    if (scheme.bits != 8 && scheme.bits != 4 && scheme.bits != 3 && scheme.bits != 2) {
        fail_in({"", "", "bits"}, "unsupported bit width ", scheme.bits,
                " (expected 8, 4, 3 or 2)");
    }
    const int64_t g = scheme.group;
    if (g != 0 && (g < 8 || (g & (g - 1)) != 0)) {
        fail_in({"", "", "group"}, "unsupported group size ", g,
                " (expected 0 for per-output-channel, or a power of two >= 8)");
    }
}

namespace {

bool parse_int(std::string_view text, int64_t& value) {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

QuantScheme parse_quant_scheme(std::string_view name) {
    const auto bad = [&]() {
        fail("unknown quantization scheme '", name,
             "' (expected int<bits>_g<group>_<sym|asym> or int<bits>_ch_<sym|asym>, "
             "e.g. int4_g128_sym)");
    };
    if (name.substr(0, 3) != "int") bad();
    const size_t first = name.find('_');
    const size_t second = first == std::string_view::npos ? first : name.find('_', first + 1);
    if (second == std::string_view::npos) bad();
    int64_t bits = 0;
    if (!parse_int(name.substr(3, first - 3), bits)) bad();
    const std::string_view group_part = name.substr(first + 1, second - first - 1);
    const std::string_view kind = name.substr(second + 1);
    QuantScheme scheme;
    scheme.bits = static_cast<int>(bits);
    if (group_part == "ch") {
        scheme.group = 0;
    } else if (group_part.size() < 2 || group_part[0] != 'g' ||
               !parse_int(group_part.substr(1), scheme.group) || scheme.group == 0) {
        bad();
    }
    if (kind == "sym") {
        scheme.symmetric = true;
    } else if (kind == "asym") {
        scheme.symmetric = false;
    } else {
        bad();
    }
    if (bits != scheme.bits) bad();
    validate_quant_scheme(scheme);
    // Only the canonical spelling is accepted ("int4_g0128_sym" is not).
    if (scheme.name() != name) bad();
    return scheme;
}

}  // namespace sparq
