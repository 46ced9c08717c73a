// The byte layouts of sparse quantized weights [rows, cols]: the planes of
// the `nm_sparse` and `bitmask_sparse` encodings of docs/format.md, which
// this header implements as written there (values packed like code rows of
// quant/layout.h, FP16 scales and zero points per group of DENSE columns).
// Codes, scales and zero points mean what they mean in quant/layout.h:
// w = d * (u - z). A weight is "pruned" when its code equals its group's
// zero point (an exact zero); the encodings store only the rest.
//
// nm_sparse (N:M structured): every run of m consecutive columns (a "run";
// cols % m == 0) keeps exactly n values, padded with zero-valued entries
// when fewer are non-zero.
//   values   per row, the k = cols * n / m kept codes in column order,
//            packed like a code row of k columns; row r at
//            r * value_row_bytes.
//   indices  per row, one field per kept value: its column within its run
//            (0..m-1, strictly increasing within the run), fields of
//            1, 2, 4 or 8 bits (2:4 -> 2 bits, 4:8 -> 4 bits), LSB first,
//            each row starting on a byte boundary.
//   scales, zeros   exactly the planes of the dense `quant` layout.
// With int4 values a 2:4 row costs 3 bits per dense weight plus scales
// (int8: 5), so decode streams 25% (37.5%) fewer bytes than dense.
//
// bitmask_sparse (unstructured):
//   mask         rows x ceil(cols / 8) bytes; bit j % 8 of byte j / 8 of row
//                r is 1 when (r, j) is stored; unused bits zero.
//   values       row r's k_r stored codes in column order, packed like a
//                code row of k_r columns, starting at byte row_offsets[r].
//   row_offsets  rows + 1 little-endian u64: [0] = 0, [r + 1] - [r] = row r's
//                packed size, [rows] = size of values. Rows are independent,
//                so they split across threads like dense rows.
//   scales, zeros   exactly the planes of the dense `quant` layout.
// At 50% sparsity int8 costs 5 bits per dense weight (1 mask + 4 values).
//
// All planes are read in place (no alignment needed). The runtime kernels
// take values of 8, 4, 3 or 2 bits (docs/format.md also reserves FP16
// values, bits = 16, which these layouts do not implement).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/layout.h"
#include "quant/scheme.h"

namespace sparq {

// ---------------------------------------------------------------- nm_sparse

struct NmSparseScheme {
    int n = 2;
    int m = 4;
    QuantScheme quant;  // bits of the kept values; group counts dense columns

    bool operator==(const NmSparseScheme&) const = default;
};

// Throws sparq::Error naming the field: 1 <= n <= m <= 256, quant valid,
// group 0 or a multiple of m.
void validate_nm_sparse_scheme(const NmSparseScheme& s);
// Width in bits of one index field: 1, 2, 4 or 8.
int nm_index_field_bits(int m);

struct NmSparseGeometry {
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t kept_per_row = 0;  // cols * n / m
    int64_t value_row_bytes = 0;
    int64_t index_row_bytes = 0;
    int64_t groups_per_row = 0;
    int64_t zero_row_bytes = 0;
    size_t value_bytes = 0;
    size_t index_bytes = 0;
    size_t scale_bytes = 0;
    size_t zero_bytes = 0;
    size_t total_bytes = 0;
};
// Throws sparq::Error for an invalid scheme, cols % m != 0 or overflow.
NmSparseGeometry nm_sparse_geometry(const NmSparseScheme& s, int64_t rows, int64_t cols);

struct NmSparseView {
    NmSparseScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    const uint8_t* values = nullptr;
    const uint8_t* indices = nullptr;
    const uint8_t* scales = nullptr;  // FP16 little-endian, dense groups
    const uint8_t* zeros = nullptr;   // asymmetric only

    // The scales and zero points as a dense view (codes null), so group
    // parameters read through quant/reference_codec.h.
    PackedView group_params() const;
};

struct NmSparseTensor {
    NmSparseScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> values;
    std::vector<uint8_t> indices;
    std::vector<uint16_t> scales;
    std::vector<uint8_t> zeros;

    NmSparseView view() const;
};

// Packs a dense quantized matrix whose every run of m columns has at most n
// codes different from the zero point. Runs with fewer keep the zero-valued
// columns of lowest index to make up n. Throws sparq::Error (naming the row
// and column) when a run holds more than n non-zeros.
NmSparseTensor pack_nm_sparse(const PackedView& dense, int n, int m);
// The dense matrix back: pruned columns get the zero point.
PackedTensor unpack_nm_sparse(const NmSparseView& sparse);
// Rows [r0, r1) of that matrix's code plane only, written to `codes` (row r
// at (r - r0) * code_row_bytes): with the sparse tensor's own scales and
// zero points (group_params()) it is the dense matrix, no plane copied.
void unpack_nm_sparse_codes(const NmSparseView& sparse, int64_t r0, int64_t r1, uint8_t* codes);
// Hostile-input checks beyond sizes: index fields strictly increasing in
// each run and below m, padding bits zero, scales and zero points as
// check_packed_contents requires. Throws sparq::Error naming `tensor`.
void check_nm_sparse_contents(const NmSparseView& sparse, const std::string& tensor);

// ----------------------------------------------------------- bitmask_sparse

struct BitmaskSparseView {
    QuantScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    const uint8_t* mask = nullptr;
    const uint8_t* values = nullptr;
    const uint8_t* row_offsets = nullptr;  // rows + 1 u64 LE
    const uint8_t* scales = nullptr;
    const uint8_t* zeros = nullptr;

    int64_t mask_row_bytes() const { return (cols + 7) / 8; }
    uint64_t row_offset(int64_t r) const;
    PackedView group_params() const;
};

struct BitmaskSparseTensor {
    QuantScheme scheme;
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> mask;
    std::vector<uint8_t> values;
    std::vector<uint64_t> row_offsets;
    std::vector<uint16_t> scales;
    std::vector<uint8_t> zeros;

    BitmaskSparseView view() const;
};

// Stores every code that differs from its group's zero point.
BitmaskSparseTensor pack_bitmask_sparse(const PackedView& dense);
PackedTensor unpack_bitmask_sparse(const BitmaskSparseView& sparse);
// Rows [r0, r1) of its code plane, as unpack_nm_sparse_codes.
void unpack_bitmask_sparse_codes(const BitmaskSparseView& sparse, int64_t r0, int64_t r1, uint8_t* codes);
// Checks `values_size` bytes of values against row_offsets and the mask
// (non-decreasing, ending at the size, each row's size matching its mask's
// count), unused mask bits zero, and the group planes. Throws sparq::Error
// naming `tensor` and the first bad row.
void check_bitmask_sparse_contents(const BitmaskSparseView& sparse, size_t values_size,
                                   const std::string& tensor);

}  // namespace sparq
