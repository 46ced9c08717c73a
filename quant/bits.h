// Storage cost of a packed weight, as the contract counts it: packed
// values, scales and zero points (and any padding) over the dense weight
// count. int4 group 128 symmetric on rows of a multiple of 128 is 4.125.
#pragma once

#include <cstddef>
#include <cstdint>

#include "quant/scheme.h"

namespace sparq {

// Exact bytes of the blob (codes + scales + zero points), quant/layout.h.
size_t packed_bytes(const QuantScheme& scheme, int64_t rows, int64_t cols);

// packed_bytes * 8 / (rows * cols); 0 for an empty tensor.
double packed_bits_per_weight(const QuantScheme& scheme, int64_t rows, int64_t cols);

}  // namespace sparq
