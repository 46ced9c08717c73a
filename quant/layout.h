// The byte layout of a quantized 2-D weight [rows, cols] (rows = output
// features, cols = input features). This comment is the one place that
// defines every byte; the writer, the runtime kernels, the exporter and the
// reference codec (quant/reference_codec.h) all follow it. Little-endian.
//
// Groups. Each row is cut into groups of G = scheme.group columns starting
// at column 0; the last group of a row is shorter when cols % G != 0 (a row
// of 172 at G = 128 has groups of 128 and 44). Nothing is padded. G = 0
// means one group per row (per output channel). Every group has its own
// FP16 scale d and, for asymmetric schemes, an integer zero point z.
//
// Codes. Every weight is stored as an unsigned code u in [0, Q], Q = 2^b - 1,
// and dequantizes exactly (no rounding: |u - z| <= 2^8 times an FP16 fits a
// float mantissa, so FMA or not, every kernel gets the same float) to
//     w = d * (u - z)
// where z is the group's stored zero point (asymmetric) or the implicit
// zero point 2^(b-1) (symmetric). Symmetric levels are q = u - 2^(b-1):
//   int8 sym:     q in [-127, 127] (u = 0, q = -128, never occurs, as in
//                 Q8_0, so kernels may negate codes without overflow), d >= 0.
//   int4/3/2 sym: q in [-2^(b-1), 2^(b-1) - 1], all 2^b levels as in Q4_0,
//                 with a signed scale d: the quantizer gives the extra
//                 negative level to the side of the group with the larger
//                 magnitude (d < 0 when that side is positive).
//   asym:         u in [0, Q], z in [0, Q], d >= 0. Zero is exact (u = z),
//                 so pruned weights stay exact zeros.
// How d and z are chosen is the quantizer's business (quant/rtn.h); a
// reader needs only the formula above.
//
// Tensor bytes ("blob"), three planes back to back, no padding between them:
//   1. codes   rows x code_row_bytes, row r at r * code_row_bytes.
//   2. scales  rows x groups_per_row FP16 (IEEE binary16, 2 bytes LE),
//              row-major: scale (r, g) at byte 2 * (r * groups_per_row + g).
//   3. zeros   asymmetric only: rows x zero_row_bytes.
// Planes start at arbitrary byte offsets, so readers load scales with
// memcpy / unaligned vector loads. A writer that wants aligned planes places
// the blob (and pads) itself and counts that padding in bits_per_weight.
//
// One row of codes (code_row_bytes bytes), element j = column j:
//   int8: byte j. Symmetric stores the two's-complement int8 q (= u ^ 0x80),
//         asymmetric the unsigned u.
//   int4: byte j/2, bits 4*(j%2) .. +3 (element 2i in the low nibble, 2i+1
//         in the high nibble). code_row_bytes = ceil(cols / 2).
//   int2: byte j/4, bits 2*(j%4) .. +1. code_row_bytes = ceil(cols / 4).
//   int3: two bit planes so SIMD unpacks with shifts and masks only:
//         low plane  ceil(cols/4) bytes: bits 0-1 of u, laid out as int2;
//         high plane ceil(cols/8) bytes, right after: bit 2 of u at byte j/8,
//         bit j%8. code_row_bytes = ceil(cols/4) + ceil(cols/8).
//   The interleaved int4/int2 order is vector-width independent: a dot
//   product kernel de-interleaves the activation vector once per token and
//   then needs only masks and shifts per weight byte. Since G >= 8 is a
//   power of two, every group starts on a byte boundary in every plane.
//   Unused bits at the end of a row are zero.
// One row of zero points (zero_row_bytes bytes), group g:
//   field width zb = 8 (int8), 4 (int4 and int3), 2 (int2), packed like the
//   codes: field g at bit zb*g of the row, LSB first. zero_row_bytes =
//   ceil(groups_per_row * zb / 8). int3 uses 4-bit fields (1 wasted bit per
//   group, under 0.01 bits per weight at G = 128) so zero points stay
//   nibble-addressable. Unused bits are zero.
//
// Canonical form: the quantizer always emits the same bytes for the same
// dequantized values (see quant/rtn.h), so re-quantizing a dequantized
// tensor reproduces its codes, scales and zero points exactly.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "quant/scheme.h"

namespace sparq {

static_assert(std::endian::native == std::endian::little,
              "packed layouts are little-endian and read in place");

// Sizes of the planes of one tensor. Throws sparq::Error on a negative
// shape, an invalid scheme, or sizes that overflow.
struct PackedGeometry {
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t groups_per_row = 0;
    int64_t code_row_bytes = 0;
    int64_t zero_row_bytes = 0;  // 0 for symmetric schemes
    size_t code_bytes = 0;
    size_t scale_bytes = 0;
    size_t zero_bytes = 0;
    size_t total_bytes = 0;  // code_bytes + scale_bytes + zero_bytes
};
PackedGeometry packed_geometry(const QuantScheme& scheme, int64_t rows, int64_t cols);

int64_t code_row_bytes(const QuantScheme& scheme, int64_t cols);
int64_t groups_per_row(const QuantScheme& scheme, int64_t cols);
int64_t zero_row_bytes(const QuantScheme& scheme, int64_t cols);
// Width in bits of one stored zero point field.
int zero_point_field_bits(int bits);

// Largest code, Q = 2^bits - 1, and the implicit zero point of a symmetric
// scheme, 2^(bits-1).
inline int max_code(int bits) { return (1 << bits) - 1; }
inline int symmetric_zero_point(int bits) { return 1 << (bits - 1); }

// Packs `cols` unsigned codes (each in [0, 2^bits - 1]) into one row of
// code_row_bytes bytes, and back.
void pack_code_row(const QuantScheme& scheme, const uint8_t* codes, int64_t cols, uint8_t* row);
void unpack_code_row(const QuantScheme& scheme, const uint8_t* row, int64_t cols, uint8_t* codes);
// Packs one row's zero points (groups_per_row values), and back.
void pack_zero_row(const QuantScheme& scheme, const uint8_t* zeros, int64_t groups,
                   uint8_t* row);
void unpack_zero_row(const QuantScheme& scheme, const uint8_t* row, int64_t groups,
                     uint8_t* zeros);

// A quantized tensor read in place (e.g. from an mmapped file). Pointers
// need no alignment; `zeros` is null for symmetric schemes.
struct PackedView {
    QuantScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    const uint8_t* codes = nullptr;
    const uint8_t* scales = nullptr;  // FP16 little-endian
    const uint8_t* zeros = nullptr;

    PackedGeometry geometry() const { return packed_geometry(scheme, rows, cols); }
    const uint8_t* code_row(int64_t r) const {
        return codes + r * code_row_bytes(scheme, cols);
    }
    uint16_t scale_bits(int64_t r, int64_t g) const {
        uint16_t h;
        std::memcpy(&h, scales + 2 * (r * groups_per_row(scheme, cols) + g), 2);
        return h;
    }
    const uint8_t* zero_row(int64_t r) const {
        return zeros + r * zero_row_bytes(scheme, cols);
    }
};

// Views a blob laid out as above; throws sparq::Error (naming `tensor`) if
// its size is not exactly the size the scheme and shape require.
PackedView view_packed_blob(const QuantScheme& scheme, int64_t rows, int64_t cols,
                            const uint8_t* blob, size_t size, const std::string& tensor);

// Checks what a hostile or corrupted file could get wrong beyond its size:
// finite scales, non-negative asymmetric scales, zero points in [0, Q],
// no -128 in int8 symmetric codes, zero padding bits. Throws sparq::Error
// naming `tensor` and the first bad row.
void check_packed_contents(const PackedView& view, const std::string& tensor);

// A quantized tensor that owns its planes.
struct PackedTensor {
    QuantScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> codes;    // rows x code_row_bytes
    std::vector<uint16_t> scales;  // rows x groups_per_row, FP16 bits
    std::vector<uint8_t> zeros;    // rows x zero_row_bytes (asymmetric only)

    // Allocates zeroed planes for the shape.
    PackedTensor(const QuantScheme& scheme, int64_t rows, int64_t cols);
    PackedTensor() = default;

    PackedView view() const;
    // The blob: codes, scales, zeros back to back.
    std::vector<uint8_t> blob() const;
};

}  // namespace sparq
