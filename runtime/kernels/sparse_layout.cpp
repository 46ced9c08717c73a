#include "runtime/kernels/sparse_layout.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "quant/reference_codec.h"

namespace sparq {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t checked_bytes(int64_t rows, int64_t row_bytes, const char* what) {
    if (rows < 0 || row_bytes < 0 || (row_bytes != 0 && rows > std::numeric_limits<int64_t>::max() / row_bytes)) {
        fail("sparse ", what, " size ", rows, " x ", row_bytes, " overflows");
    }
    return static_cast<size_t>(rows * row_bytes);
}

unsigned get_field(const uint8_t* bytes, int width, int64_t index) {
    const int64_t bit = index * width;
    return (bytes[bit >> 3] >> (bit & 7)) & ((1u << width) - 1);
}

void put_field(uint8_t* bytes, int width, int64_t index, unsigned value) {
    const int64_t bit = index * width;
    bytes[bit >> 3] |= static_cast<uint8_t>(value << (bit & 7));
}

// Bits [used_bits, 8 * bytes) of a row are zero.
bool padding_clear(const uint8_t* row, int64_t used_bits, int64_t bytes) {
    for (int64_t bit = used_bits; bit < 8 * bytes; ++bit) {
        if ((row[bit >> 3] >> (bit & 7)) & 1) return false;
    }
    return true;
}

// Zero points (effective) of one row's groups.
std::vector<int> row_zero_points(const PackedView& params, int64_t r, int64_t groups) {
    std::vector<int> z(static_cast<size_t>(groups));
    for (int64_t g = 0; g < groups; ++g) z[g] = read_group_params(params, r, g).zero;
    return z;
}

// Scales finite (non-negative when asymmetric), zero points in [0, Q], zero
// padding bits in the zero-point rows.
void check_group_planes(const PackedView& params, const std::string& tensor, const char* encoding) {
    const QuantScheme& s = params.scheme;
    const int64_t groups = groups_per_row(s, params.cols);
    const int64_t zbytes = zero_row_bytes(s, params.cols);
    for (int64_t r = 0; r < params.rows; ++r) {
        for (int64_t g = 0; g < groups; ++g) {
            const GroupParams p = read_group_params(params, r, g);
            const float d = p.scale_value();
            if (!std::isfinite(d) || (!s.symmetric && d < 0.0f)) {
                fail_in({"", tensor, "scales"}, "corrupt ", encoding, " data at row ", r, ": bad scale of group ", g);
            }
            if (p.zero > max_code(s.bits)) {
                fail_in({"", tensor, "zeros"}, "corrupt ", encoding, " data at row ", r, ": zero point ", p.zero,
                        " of group ", g, " exceeds ", max_code(s.bits));
            }
        }
        if (!s.symmetric && !padding_clear(params.zero_row(r), groups * zero_point_field_bits(s.bits), zbytes)) {
            fail_in({"", tensor, "zeros"}, "corrupt ", encoding, " data at row ", r, ": nonzero padding bits");
        }
    }
}

template <class Tensor>
void copy_group_planes(const PackedView& dense, Tensor& out) {
    const PackedGeometry g = dense.geometry();
    out.scales.resize(g.scale_bytes / 2);
    std::memcpy(out.scales.data(), dense.scales, g.scale_bytes);
    out.zeros.assign(dense.zeros, dense.zeros + g.zero_bytes);
}

template <class Tensor>
void restore_group_planes(const Tensor& sparse, PackedTensor& out) {
    std::memcpy(out.scales.data(), sparse.scales, out.scales.size() * 2);
    if (!out.zeros.empty()) std::memcpy(out.zeros.data(), sparse.zeros, out.zeros.size());
}

}  // namespace

// ---------------------------------------------------------------- nm_sparse

void validate_nm_sparse_scheme(const NmSparseScheme& s) {
    validate_quant_scheme(s.quant);
    if (s.m < 1 || s.m > 256) fail("nm_sparse: m = ", s.m, " must be in [1, 256]");
    if (s.n < 1 || s.n > s.m) fail("nm_sparse: n = ", s.n, " must be in [1, m = ", s.m, "]");
    if (s.quant.group != 0 && s.quant.group % s.m != 0) {
        fail("nm_sparse: group ", s.quant.group, " must be 0 or a multiple of m = ", s.m);
    }
}

int nm_index_field_bits(int m) { return m <= 2 ? 1 : m <= 4 ? 2 : m <= 16 ? 4 : 8; }

NmSparseGeometry nm_sparse_geometry(const NmSparseScheme& s, int64_t rows, int64_t cols) {
    validate_nm_sparse_scheme(s);
    if (rows < 0 || cols < 1 || cols % s.m != 0) {
        fail("nm_sparse: shape [", rows, ", ", cols, "] needs rows >= 0 and cols a positive multiple of m = ", s.m);
    }
    const PackedGeometry dense = packed_geometry(s.quant, rows, cols);
    NmSparseGeometry g;
    g.rows = rows;
    g.cols = cols;
    g.kept_per_row = cols / s.m * s.n;
    g.value_row_bytes = code_row_bytes(s.quant, g.kept_per_row);
    g.index_row_bytes = ceil_div(g.kept_per_row * nm_index_field_bits(s.m), 8);
    g.groups_per_row = dense.groups_per_row;
    g.zero_row_bytes = dense.zero_row_bytes;
    g.value_bytes = checked_bytes(rows, g.value_row_bytes, "values");
    g.index_bytes = checked_bytes(rows, g.index_row_bytes, "indices");
    g.scale_bytes = dense.scale_bytes;
    g.zero_bytes = dense.zero_bytes;
    g.total_bytes = g.value_bytes + g.index_bytes + g.scale_bytes + g.zero_bytes;
    return g;
}

PackedView NmSparseView::group_params() const {
    PackedView v;
    v.scheme = scheme.quant;
    v.rows = rows;
    v.cols = cols;
    v.scales = scales;
    v.zeros = zeros;
    return v;
}

NmSparseView NmSparseTensor::view() const {
    NmSparseView v;
    v.scheme = scheme;
    v.rows = rows;
    v.cols = cols;
    v.values = values.data();
    v.indices = indices.data();
    v.scales = reinterpret_cast<const uint8_t*>(scales.data());
    v.zeros = zeros.empty() ? nullptr : zeros.data();
    return v;
}

NmSparseTensor pack_nm_sparse(const PackedView& dense, int n, int m) {
    NmSparseTensor out;
    out.scheme = NmSparseScheme{n, m, dense.scheme};
    out.rows = dense.rows;
    out.cols = dense.cols;
    const NmSparseGeometry g = nm_sparse_geometry(out.scheme, dense.rows, dense.cols);
    out.values.assign(g.value_bytes, 0);
    out.indices.assign(g.index_bytes, 0);
    copy_group_planes(dense, out);
    const int width = nm_index_field_bits(m);
    const int64_t span = dense.scheme.group_span(dense.cols);
    std::vector<uint8_t> codes(static_cast<size_t>(dense.cols)), kept(static_cast<size_t>(g.kept_per_row));
    std::vector<int> picks;
    for (int64_t r = 0; r < dense.rows; ++r) {
        unpack_code_row(dense.scheme, dense.code_row(r), dense.cols, codes.data());
        const std::vector<int> zero = row_zero_points(dense, r, g.groups_per_row);
        uint8_t* index_row = out.indices.data() + r * g.index_row_bytes;
        for (int64_t run = 0; run < dense.cols / m; ++run) {
            picks.clear();
            for (int i = 0; i < m; ++i) {
                const int64_t c = run * m + i;
                if (codes[c] != zero[c / span]) picks.push_back(i);
            }
            if (static_cast<int>(picks.size()) > n) {
                fail("nm_sparse: row ", r, " columns ", run * m, "..", run * m + m - 1, " hold ", picks.size(),
                     " non-zeros, more than n = ", n);
            }
            for (int i = 0; i < m && static_cast<int>(picks.size()) < n; ++i) {
                if (std::find(picks.begin(), picks.end(), i) == picks.end()) picks.push_back(i);
            }
            std::sort(picks.begin(), picks.end());
            for (int j = 0; j < n; ++j) {
                const int64_t slot = run * n + j;
                kept[slot] = codes[run * m + picks[j]];
                put_field(index_row, width, slot, static_cast<unsigned>(picks[j]));
            }
        }
        pack_code_row(dense.scheme, kept.data(), g.kept_per_row, out.values.data() + r * g.value_row_bytes);
    }
    return out;
}

namespace {

// The 4-bit code at position j of a row in pack_code_row's layout (even
// positions in the low nibble), and setting it.
inline uint8_t get_nibble(const uint8_t* row, int64_t j) { return (row[j / 2] >> (4 * (j & 1))) & 15; }
inline void set_nibble(uint8_t* row, int64_t j, uint8_t v) {
    const int shift = 4 * static_cast<int>(j & 1);
    row[j / 2] = static_cast<uint8_t>((row[j / 2] & ~(15 << shift)) | (v << shift));
}

// Row r of the dense code plane with every weight at its group's zero point
// (8- and 4-bit rows, in their stored byte form: pack_code_row's, whose
// padding nibble of an odd 4-bit row is 0).
void fill_zero_row(const PackedView& params, int64_t r, uint8_t* out) {
    const QuantScheme& s = params.scheme;
    const int64_t span = s.group_span(params.cols);
    const int64_t groups = groups_per_row(s, params.cols);
    const uint8_t flip = s.bits == 8 && s.symmetric ? 0x80 : 0x00;
    if (s.bits == 4) {
        const int64_t bytes = (params.cols + 1) / 2;
        if (s.symmetric) {
            const auto z = static_cast<uint8_t>(implicit_zero_point(s));
            std::memset(out, z | z << 4, static_cast<size_t>(bytes));
            if (params.cols & 1) out[bytes - 1] = z;
            return;
        }
        std::memset(out, 0, static_cast<size_t>(bytes));
    }
    for (int64_t g = 0; g < groups; ++g) {
        const int z = s.symmetric ? implicit_zero_point(s) : read_group_params(params, r, g).zero;
        const int64_t c0 = g * span, c1 = std::min(params.cols, c0 + span);
        if (s.bits == 8) {
            std::memset(out + c0, static_cast<uint8_t>(z) ^ flip, static_cast<size_t>(c1 - c0));
        } else {
            for (int64_t c = c0; c < c1; ++c) set_nibble(out, c, static_cast<uint8_t>(z));
        }
    }
}

}  // namespace

PackedTensor unpack_nm_sparse(const NmSparseView& sparse) {
    PackedTensor out(sparse.scheme.quant, sparse.rows, sparse.cols);
    restore_group_planes(sparse, out);
    unpack_nm_sparse_codes(sparse, 0, sparse.rows, out.codes.data());
    return out;
}

void unpack_nm_sparse_codes(const NmSparseView& sparse, int64_t r0, int64_t r1, uint8_t* out) {
    const NmSparseScheme& s = sparse.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, sparse.rows, sparse.cols);
    const PackedView params = sparse.group_params();
    const int width = nm_index_field_bits(s.m);
    const int64_t span = s.quant.group_span(sparse.cols);
    const int64_t row_bytes = code_row_bytes(s.quant, sparse.cols);
    if (s.quant.bits == 8 || s.quant.bits == 4) {
        // Stored bytes moved as they are (both planes use pack_code_row's form).
        for (int64_t r = r0; r < r1; ++r) {
            uint8_t* row = out + (r - r0) * row_bytes;
            fill_zero_row(params, r, row);
            const uint8_t* values = sparse.values + r * g.value_row_bytes;
            const uint8_t* index_row = sparse.indices + r * g.index_row_bytes;
            // Run by run: kept value j of run `first / m` (no division per value).
            for (int64_t j = 0, first = 0; j < g.kept_per_row; first += s.m) {
                for (int i = 0; i < s.n && j < g.kept_per_row; ++i, ++j) {
                    const int64_t col = first + get_field(index_row, width, j);
                    if (s.quant.bits == 8) {
                        row[col] = values[j];
                    } else {
                        set_nibble(row, col, get_nibble(values, j));
                    }
                }
            }
        }
        return;
    }
    std::vector<uint8_t> codes(static_cast<size_t>(sparse.cols)), kept(static_cast<size_t>(g.kept_per_row));
    for (int64_t r = r0; r < r1; ++r) {
        const std::vector<int> zero = row_zero_points(params, r, g.groups_per_row);
        for (int64_t c = 0; c < sparse.cols; ++c) codes[c] = static_cast<uint8_t>(zero[c / span]);
        unpack_code_row(s.quant, sparse.values + r * g.value_row_bytes, g.kept_per_row, kept.data());
        const uint8_t* index_row = sparse.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) {
            codes[(j / s.n) * s.m + get_field(index_row, width, j)] = kept[j];
        }
        pack_code_row(s.quant, codes.data(), sparse.cols, out + (r - r0) * row_bytes);
    }
}

void check_nm_sparse_contents(const NmSparseView& sparse, const std::string& tensor) {
    const NmSparseScheme& s = sparse.scheme;
    const NmSparseGeometry g = nm_sparse_geometry(s, sparse.rows, sparse.cols);
    const int width = nm_index_field_bits(s.m);
    check_group_planes(sparse.group_params(), tensor, "nm_sparse");
    for (int64_t r = 0; r < sparse.rows; ++r) {
        const uint8_t* index_row = sparse.indices + r * g.index_row_bytes;
        for (int64_t j = 0; j < g.kept_per_row; ++j) {
            const unsigned col = get_field(index_row, width, j);
            const bool ordered = j % s.n == 0 || col > get_field(index_row, width, j - 1);
            if (col >= static_cast<unsigned>(s.m) || !ordered) {
                fail_in({"", tensor, "indices"}, "corrupt nm_sparse data at row ", r, ": index ", col, " of kept value ",
                        j, " is out of order or not below m = ", s.m);
            }
        }
        if (!padding_clear(index_row, g.kept_per_row * width, g.index_row_bytes)) {
            fail_in({"", tensor, "indices"}, "corrupt nm_sparse data at row ", r, ": nonzero padding bits");
        }
    }
    // The values plane is a dense code plane of shape [rows, kept]: reuse
    // the dense checks (int8 -128, padding bits) with neutral scales.
    const PackedGeometry plane = packed_geometry(s.quant, sparse.rows, g.kept_per_row);
    std::vector<uint8_t> neutral_scales(plane.scale_bytes, 0), neutral_zeros(plane.zero_bytes, 0);
    PackedView values;
    values.scheme = s.quant;
    values.rows = sparse.rows;
    values.cols = g.kept_per_row;
    values.codes = sparse.values;
    values.scales = neutral_scales.data();
    values.zeros = neutral_zeros.data();
    check_packed_contents(values, tensor);
}

// ----------------------------------------------------------- bitmask_sparse

uint64_t BitmaskSparseView::row_offset(int64_t r) const {
    uint64_t v;
    std::memcpy(&v, row_offsets + 8 * r, 8);
    return v;
}

PackedView BitmaskSparseView::group_params() const {
    PackedView v;
    v.scheme = scheme;
    v.rows = rows;
    v.cols = cols;
    v.scales = scales;
    v.zeros = zeros;
    return v;
}

BitmaskSparseView BitmaskSparseTensor::view() const {
    BitmaskSparseView v;
    v.scheme = scheme;
    v.rows = rows;
    v.cols = cols;
    v.mask = mask.data();
    v.values = values.data();
    v.row_offsets = reinterpret_cast<const uint8_t*>(row_offsets.data());
    v.scales = reinterpret_cast<const uint8_t*>(scales.data());
    v.zeros = zeros.empty() ? nullptr : zeros.data();
    return v;
}

BitmaskSparseTensor pack_bitmask_sparse(const PackedView& dense) {
    BitmaskSparseTensor out;
    out.scheme = dense.scheme;
    out.rows = dense.rows;
    out.cols = dense.cols;
    const PackedGeometry g = dense.geometry();
    const int64_t mask_row = (dense.cols + 7) / 8;
    out.mask.assign(checked_bytes(dense.rows, mask_row, "mask"), 0);
    out.row_offsets.assign(static_cast<size_t>(dense.rows + 1), 0);
    copy_group_planes(dense, out);
    const int64_t span = dense.scheme.group_span(dense.cols);
    std::vector<uint8_t> codes(static_cast<size_t>(dense.cols)), kept;
    for (int64_t r = 0; r < dense.rows; ++r) {
        unpack_code_row(dense.scheme, dense.code_row(r), dense.cols, codes.data());
        const std::vector<int> zero = row_zero_points(dense, r, g.groups_per_row);
        kept.clear();
        for (int64_t c = 0; c < dense.cols; ++c) {
            if (codes[c] == zero[c / span]) continue;
            out.mask[r * mask_row + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
            kept.push_back(codes[c]);
        }
        const int64_t k = static_cast<int64_t>(kept.size());
        const int64_t bytes = k == 0 ? 0 : code_row_bytes(dense.scheme, k);
        const size_t at = out.values.size();
        out.values.resize(at + static_cast<size_t>(bytes), 0);
        if (k > 0) pack_code_row(dense.scheme, kept.data(), k, out.values.data() + at);
        out.row_offsets[r + 1] = out.values.size();
    }
    return out;
}

PackedTensor unpack_bitmask_sparse(const BitmaskSparseView& sparse) {
    PackedTensor out(sparse.scheme, sparse.rows, sparse.cols);
    restore_group_planes(sparse, out);
    unpack_bitmask_sparse_codes(sparse, 0, sparse.rows, out.codes.data());
    return out;
}

void unpack_bitmask_sparse_codes(const BitmaskSparseView& sparse, int64_t r0, int64_t r1, uint8_t* out) {
    const PackedView params = sparse.group_params();
    const int64_t span = sparse.scheme.group_span(sparse.cols);
    const int64_t groups = groups_per_row(sparse.scheme, sparse.cols);
    const int64_t row_bytes = code_row_bytes(sparse.scheme, sparse.cols);
    const int bits = sparse.scheme.bits;
    if (bits == 8 || bits == 4) {
        // Stored bytes moved as they are, the mask read 64 columns at a time.
        const int64_t mask_bytes = sparse.mask_row_bytes();
        for (int64_t r = r0; r < r1; ++r) {
            uint8_t* row = out + (r - r0) * row_bytes;
            fill_zero_row(params, r, row);
            const uint8_t* values = sparse.values + sparse.row_offset(r);
            const uint8_t* mask = sparse.mask + r * mask_bytes;
            int64_t j = 0;
            for (int64_t byte = 0; byte < mask_bytes; byte += 8) {
                uint64_t word = 0;
                std::memcpy(&word, mask + byte, static_cast<size_t>(std::min<int64_t>(8, mask_bytes - byte)));
                for (; word != 0; word &= word - 1, ++j) {
                    const int64_t col = 8 * byte + std::countr_zero(word);
                    if (bits == 8) {
                        row[col] = values[j];
                    } else {
                        set_nibble(row, col, get_nibble(values, j));
                    }
                }
            }
        }
        return;
    }
    std::vector<uint8_t> codes(static_cast<size_t>(sparse.cols)), kept(static_cast<size_t>(sparse.cols));
    for (int64_t r = r0; r < r1; ++r) {
        const std::vector<int> zero = row_zero_points(params, r, groups);
        const uint8_t* mask = sparse.mask + r * sparse.mask_row_bytes();
        int64_t k = 0;
        for (int64_t c = 0; c < sparse.cols; ++c) k += (mask[c / 8] >> (c % 8)) & 1;
        if (k > 0) unpack_code_row(sparse.scheme, sparse.values + sparse.row_offset(r), k, kept.data());
        for (int64_t c = 0, j = 0; c < sparse.cols; ++c) {
            codes[c] = ((mask[c / 8] >> (c % 8)) & 1) ? kept[j++] : static_cast<uint8_t>(zero[c / span]);
        }
        pack_code_row(sparse.scheme, codes.data(), sparse.cols, out + (r - r0) * row_bytes);
    }
}

void check_bitmask_sparse_contents(const BitmaskSparseView& sparse, size_t values_size, const std::string& tensor) {
    check_group_planes(sparse.group_params(), tensor, "bitmask_sparse");
    const auto bad = [&](int64_t r, const char* field, const std::string& what) {
        fail_in({"", tensor, field}, "corrupt bitmask_sparse data at row ", r, ": ", what);
    };
    if (sparse.rows >= 0 && sparse.row_offset(0) != 0) bad(0, "row_offsets", "row_offsets[0] is not 0");
    for (int64_t r = 0; r < sparse.rows; ++r) {
        const uint8_t* mask = sparse.mask + r * sparse.mask_row_bytes();
        if (!padding_clear(mask, sparse.cols, sparse.mask_row_bytes())) bad(r, "mask", "nonzero padding bits");
        int64_t k = 0;
        for (int64_t c = 0; c < sparse.cols; ++c) k += (mask[c / 8] >> (c % 8)) & 1;
        const uint64_t begin = sparse.row_offset(r), end = sparse.row_offset(r + 1);
        const uint64_t expected = k == 0 ? 0 : static_cast<uint64_t>(code_row_bytes(sparse.scheme, k));
        if (end < begin || end > values_size || end - begin != expected) {
            bad(r, "row_offsets", "row_offsets disagree with the mask (" + std::to_string(k) + " values)");
        }
    }
    if (sparse.row_offset(sparse.rows) != values_size) {
        bad(sparse.rows, "row_offsets", "row_offsets do not end at the values size");
    }
}

}  // namespace sparq
