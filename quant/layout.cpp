#include "quant/layout.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "core/memory.h"
#include "core/vectorize.h"

namespace sparq {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t checked_product(int64_t a, int64_t b, const char* what) {
    if (a < 0 || b < 0 || (b != 0 && a > std::numeric_limits<int64_t>::max() / b)) {
        fail("packed ", what, " size ", a, " x ", b, " overflows");
    }
    return static_cast<size_t>(a * b);
}

// Little-endian bit stream of `width`-bit fields (width 1, 2, 4 or 8).
inline void put_field(uint8_t* bytes, int width, int64_t index, unsigned value) {
    const int64_t bit = index * width;
    bytes[bit >> 3] |= static_cast<uint8_t>(value << (bit & 7));
}

inline unsigned get_field(const uint8_t* bytes, int width, int64_t index) {
    const int64_t bit = index * width;
    return (bytes[bit >> 3] >> (bit & 7)) & ((1u << width) - 1);
}

}  // namespace

int64_t code_row_bytes(const QuantScheme& scheme, int64_t cols) {
    switch (scheme.bits) {
        case 8: return cols;
        case 4: return ceil_div(cols, 2);
        case 3: return ceil_div(cols, 4) + ceil_div(cols, 8);
        case 2: return ceil_div(cols, 4);
    }
    validate_quant_scheme(scheme);
    return 0;
}

int64_t groups_per_row(const QuantScheme& scheme, int64_t cols) {
    if (scheme.group == 0) return 1;
    return ceil_div(cols, scheme.group);
}

int zero_point_field_bits(int bits) { return bits == 3 ? 4 : bits; }

int64_t zero_row_bytes(const QuantScheme& scheme, int64_t cols) {
    if (scheme.symmetric) return 0;
    return ceil_div(groups_per_row(scheme, cols) * zero_point_field_bits(scheme.bits), 8);
}

PackedGeometry packed_geometry(const QuantScheme& scheme, int64_t rows, int64_t cols) {
    validate_quant_scheme(scheme);
    if (rows < 0 || cols < 1) {
        fail("cannot pack a weight of shape [", rows, ", ", cols,
             "] (rows must be >= 0 and cols >= 1)");
    }
    PackedGeometry g;
    g.rows = rows;
    g.cols = cols;
    g.groups_per_row = groups_per_row(scheme, cols);
    g.code_row_bytes = code_row_bytes(scheme, cols);
    g.zero_row_bytes = zero_row_bytes(scheme, cols);
    g.code_bytes = checked_product(rows, g.code_row_bytes, "codes");
    g.scale_bytes = checked_product(rows, 2 * g.groups_per_row, "scales");
    g.zero_bytes = checked_product(rows, g.zero_row_bytes, "zero points");
    g.total_bytes = g.code_bytes + g.scale_bytes + g.zero_bytes;
    if (g.total_bytes < g.code_bytes) fail("packed tensor size overflows");
    return g;
}

SPARQ_VECTORIZE_CLONES
void pack_code_row(const QuantScheme& scheme, const uint8_t* codes, int64_t cols, uint8_t* row) {
    if (scheme.bits == 8) {
        const uint8_t flip = scheme.symmetric ? 0x80 : 0x00;
        for (int64_t j = 0; j < cols; ++j) row[j] = codes[j] ^ flip;
        return;
    }
    std::memset(row, 0, static_cast<size_t>(code_row_bytes(scheme, cols)));
    if (scheme.bits == 3) {
        uint8_t* high_plane = row + ceil_div(cols, 4);
        for (int64_t j = 0; j < cols; ++j) {
            put_field(row, 2, j, codes[j] & 3u);
            put_field(high_plane, 1, j, codes[j] >> 2);
        }
        return;
    }
    int64_t j = 0;
    if (scheme.bits == 4) {  // whole bytes at once (vectorizes); put_field for the tail
        for (; j + 2 <= cols; j += 2) {
            row[j / 2] = static_cast<uint8_t>((codes[j] & 15u) | (codes[j + 1] & 15u) << 4);
        }
    } else if (scheme.bits == 2) {
        for (; j + 4 <= cols; j += 4) {
            row[j / 4] = static_cast<uint8_t>((codes[j] & 3u) | (codes[j + 1] & 3u) << 2 |
                                              (codes[j + 2] & 3u) << 4 | (codes[j + 3] & 3u) << 6);
        }
    }
    for (; j < cols; ++j) put_field(row, scheme.bits, j, codes[j]);
}

void unpack_code_row(const QuantScheme& scheme, const uint8_t* row, int64_t cols,
                     uint8_t* codes) {
    if (scheme.bits == 8) {
        const uint8_t flip = scheme.symmetric ? 0x80 : 0x00;
        for (int64_t j = 0; j < cols; ++j) codes[j] = row[j] ^ flip;
        return;
    }
    if (scheme.bits == 3) {
        const uint8_t* high_plane = row + ceil_div(cols, 4);
        for (int64_t j = 0; j < cols; ++j) {
            codes[j] = static_cast<uint8_t>(get_field(row, 2, j) | get_field(high_plane, 1, j) << 2);
        }
        return;
    }
    for (int64_t j = 0; j < cols; ++j) {
        codes[j] = static_cast<uint8_t>(get_field(row, scheme.bits, j));
    }
}

void pack_zero_row(const QuantScheme& scheme, const uint8_t* zeros, int64_t groups,
                   uint8_t* row) {
    const int width = zero_point_field_bits(scheme.bits);
    std::memset(row, 0, static_cast<size_t>(ceil_div(groups * width, 8)));
    for (int64_t g = 0; g < groups; ++g) put_field(row, width, g, zeros[g]);
}

void unpack_zero_row(const QuantScheme& scheme, const uint8_t* row, int64_t groups,
                     uint8_t* zeros) {
    const int width = zero_point_field_bits(scheme.bits);
    for (int64_t g = 0; g < groups; ++g) zeros[g] = static_cast<uint8_t>(get_field(row, width, g));
}

PackedView view_packed_blob(const QuantScheme& scheme, int64_t rows, int64_t cols,
                            const uint8_t* blob, size_t size, const std::string& tensor) {
    PackedGeometry g;
    try {
        g = packed_geometry(scheme, rows, cols);
    } catch (const Error& e) {
        throw e.with_tensor(tensor);
    }
    if (size != g.total_bytes) {
        fail_in({"", tensor, ""}, "packed ", scheme.name(), " data of shape [", rows, ", ",
                cols, "] needs ", g.total_bytes, " bytes, found ", size);
    }
    PackedView view;
    view.scheme = scheme;
    view.rows = rows;
    view.cols = cols;
    view.codes = blob;
    view.scales = blob + g.code_bytes;
    view.zeros = scheme.symmetric ? nullptr : blob + g.code_bytes + g.scale_bytes;
    return view;
}

namespace {

// True when every bit of `row` past the first `used_bits` is zero.
bool tail_bits_clear(const uint8_t* row, int64_t used_bits, int64_t bytes) {
    if (used_bits % 8 != 0 && (row[used_bits / 8] >> (used_bits % 8)) != 0) return false;
    for (int64_t b = (used_bits + 7) / 8; b < bytes; ++b) {
        if (row[b] != 0) return false;
    }
    return true;
}

}  // namespace

void check_packed_contents(const PackedView& view, const std::string& tensor) {
    const PackedGeometry g = view.geometry();
    const QuantScheme& s = view.scheme;
    const auto bad = [&](int64_t r, const std::string& what) {
        fail_in({"", tensor, ""}, "corrupt packed ", s.name(), " data at row ", r, ": ", what);
    };
    std::vector<uint8_t> zeros(static_cast<size_t>(g.groups_per_row));
    for (int64_t r = 0; r < view.rows; ++r) {
        for (int64_t k = 0; k < g.groups_per_row; ++k) {
            const float d = fp16_to_fp32(view.scale_bits(r, k));
            if (!std::isfinite(d)) bad(r, "scale " + std::to_string(k) + " is not finite");
            if (!s.symmetric && d < 0) bad(r, "negative scale " + std::to_string(k));
        }
        const uint8_t* codes = view.code_row(r);
        if (s.bits == 8 && s.symmetric) {
            for (int64_t j = 0; j < view.cols; ++j) {
                if (codes[j] == 0x80) bad(r, "int8 code -128 at column " + std::to_string(j));
            }
        } else if (s.bits == 3) {
            const int64_t low = (view.cols + 3) / 4;
            if (!tail_bits_clear(codes, 2 * view.cols, low) ||
                !tail_bits_clear(codes + low, view.cols, g.code_row_bytes - low)) {
                bad(r, "nonzero padding bits");
            }
        } else if (!tail_bits_clear(codes, s.bits * view.cols, g.code_row_bytes)) {
            bad(r, "nonzero padding bits");
        }
        if (!s.symmetric) {
            const uint8_t* zrow = view.zero_row(r);
            if (!tail_bits_clear(zrow, g.groups_per_row * zero_point_field_bits(s.bits),
                                 g.zero_row_bytes)) {
                bad(r, "nonzero padding bits in zero points");
            }
            unpack_zero_row(s, zrow, g.groups_per_row, zeros.data());
            for (int64_t k = 0; k < g.groups_per_row; ++k) {
                if (zeros[k] > max_code(s.bits)) {
                    bad(r, "zero point " + std::to_string(zeros[k]) + " of group " +
                               std::to_string(k) + " exceeds " + std::to_string(max_code(s.bits)));
                }
            }
        }
    }
}

PackedTensor::PackedTensor(const QuantScheme& s, int64_t r, int64_t c)
    : scheme(s), rows(r), cols(c) {
    const PackedGeometry g = packed_geometry(s, r, c);
    // Hundreds of MB for a large model: huge pages make the first touch
    // (the zeroing) cheap.
    assign_zeroed_large(codes, g.code_bytes);
    assign_zeroed_large(scales, g.scale_bytes / 2);
    zeros.assign(g.zero_bytes, 0);
}

PackedView PackedTensor::view() const {
    PackedView v;
    v.scheme = scheme;
    v.rows = rows;
    v.cols = cols;
    v.codes = codes.data();
    v.scales = reinterpret_cast<const uint8_t*>(scales.data());
    v.zeros = scheme.symmetric ? nullptr : zeros.data();
    return v;
}

std::vector<uint8_t> PackedTensor::blob() const {
    std::vector<uint8_t> out(codes.size() + 2 * scales.size() + zeros.size());
    if (!codes.empty()) std::memcpy(out.data(), codes.data(), codes.size());
    if (!scales.empty()) std::memcpy(out.data() + codes.size(), scales.data(), 2 * scales.size());
    if (!zeros.empty()) {
        std::memcpy(out.data() + codes.size() + 2 * scales.size(), zeros.data(), zeros.size());
    }
    return out;
}

}  // namespace sparq
