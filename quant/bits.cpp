#include "quant/bits.h"

#include "quant/layout.h"

namespace sparq {

size_t packed_bytes(const QuantScheme& scheme, int64_t rows, int64_t cols) {
    return packed_geometry(scheme, rows, cols).total_bytes;
}

double packed_bits_per_weight(const QuantScheme& scheme, int64_t rows, int64_t cols) {
    const size_t bytes = packed_bytes(scheme, rows, cols);
    if (rows == 0) return 0.0;
    return static_cast<double>(bytes) * 8.0 / (static_cast<double>(rows) * static_cast<double>(cols));
}

}  // namespace sparq
