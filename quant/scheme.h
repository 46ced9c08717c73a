// A weight quantization scheme: bit width, group size along the input
// dimension, and symmetric or asymmetric codes. The scheme name
// ("int4_g128_sym", "int8_ch_sym" for per-output-channel) is what files,
// plans and JSON carry, so it is stable and round-trips through
// parse_quant_scheme. The bytes a scheme produces are described in
// quant/layout.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sparq {

struct QuantScheme {
    int bits = 4;          // 8, 4, 3 or 2
    int64_t group = 128;   // 0 = per output channel (one group per row)
    bool symmetric = true;

    std::string name() const;
    // Columns per group for a row of `cols` (the whole row per channel).
    int64_t group_span(int64_t cols) const { return group == 0 ? cols : group; }
    bool operator==(const QuantScheme&) const = default;
};

// Throws sparq::Error naming the offending field: bits must be 8, 4, 3 or 2;
// group 0 or a power of two >= 8 (so every group starts on a byte boundary
// in every code plane, which SIMD kernels and sparse encodings rely on).
void validate_quant_scheme(const QuantScheme& scheme);

// Parses "int<bits>_g<group>_<sym|asym>" or "int<bits>_ch_<sym|asym>".
QuantScheme parse_quant_scheme(std::string_view name);

}  // namespace sparq
