#include "quant/subtract_product.h"

#include <algorithm>
#include <vector>

#include "core/vectorize.h"

namespace sparq {

namespace {

// Rows of C per register tile and columns per panel: 4 x 16 sums stay in
// vector registers while a panel of B goes by. The sums are GCC vector
// types of 8 doubles: one AVX-512 register, two AVX2 ones, four SSE2 ones
// in the clones (the compiler's own vectorizer mixes up the rows and
// columns of this loop).
//
// B is copied a depth block at a time (256 rows x 16 columns, 32 KB: in
// L1) into a contiguous panel before the row tiles read it. Read in place,
// consecutive rows of one panel sit a whole row of B apart, a new page each
// for H of a wide layer: the refit's 64 x 5632 x 5632 product ran at a
// fifth of the speed of a cache-sized one. Between depth blocks the running
// sums wait in scratch and come back for the next block: the order of the
// sums is unchanged, so are the bits.
constexpr int64_t kTileRows = 4;
constexpr int64_t kPanel = 16;
constexpr int64_t kDepthBlock = 256;
typedef double Lanes8 __attribute__((vector_size(64)));

// Per-thread scratch (a packed panel of B, then the panel's sums for every
// row of C), grown as needed.
double* product_scratch(size_t doubles) {
    thread_local std::vector<double> scratch;
    if (scratch.size() < doubles) scratch.resize(doubles);
    return scratch.data();
}

// sums (Rows x kPanel, contiguous) += A(Rows x depth) packed(depth x kPanel).
// Inlined so that each clone compiles it for its target.
template <int64_t Rows>
__attribute__((always_inline)) inline void tile(double* sums, int64_t ld_sums, const double* a, int64_t a_row,
                                                int64_t a_col, const double* packed, int64_t depth) {
    Lanes8 low[Rows], high[Rows];
    for (int64_t r = 0; r < Rows; ++r) {
        // Unaligned loads and stores: memcpy compiles to one unaligned move.
        __builtin_memcpy(&low[r], sums + r * ld_sums, sizeof low[r]);
        __builtin_memcpy(&high[r], sums + r * ld_sums + 8, sizeof high[r]);
    }
    for (int64_t t = 0; t < depth; ++t) {
        Lanes8 b_low, b_high;
        __builtin_memcpy(&b_low, packed + t * kPanel, sizeof b_low);
        __builtin_memcpy(&b_high, packed + t * kPanel + 8, sizeof b_high);
        for (int64_t r = 0; r < Rows; ++r) {
            const double at = a[r * a_row + t * a_col];
            low[r] += at * b_low;
            high[r] += at * b_high;
        }
    }
    for (int64_t r = 0; r < Rows; ++r) {
        __builtin_memcpy(sums + r * ld_sums, &low[r], sizeof low[r]);
        __builtin_memcpy(sums + r * ld_sums + 8, &high[r], sizeof high[r]);
    }
}

// The plain loops, in the same order of sums: the twin the tests compare
// against, and the columns past the last full panel.
template <bool Subtract>
__attribute__((always_inline)) inline void plain_product(double* c, int64_t ldc, const double* a, int64_t a_row,
                                                         int64_t a_col, const double* b, int64_t ldb, int64_t m,
                                                         int64_t n, int64_t k) {
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double sum = 0;
            for (int64_t t = 0; t < k; ++t) sum += a[i * a_row + t * a_col] * b[t * ldb + j];
            c[i * ldc + j] = Subtract ? c[i * ldc + j] - sum : c[i * ldc + j] + sum;
        }
    }
}

template <bool Subtract>
__attribute__((always_inline)) inline void accumulate_product(double* c, int64_t ldc, const double* a, int64_t a_row,
                                                              int64_t a_col, const double* b, int64_t ldb, int64_t m,
                                                              int64_t n, int64_t k) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    const int64_t full = n / kPanel * kPanel;
    if (full > 0) {
        // Depth blocks outside, panels inside, so that a block of A (m x
        // 256) stays in cache while every panel of B goes by it; the sums
        // of all panels wait in scratch. With one depth block there is
        // nothing to keep: each panel's sums go to C at once.
        const int64_t width = k > kDepthBlock ? full : kPanel;
        double* packed = product_scratch(static_cast<size_t>(kDepthBlock * kPanel + m * width));
        double* sums = packed + kDepthBlock * kPanel;
        for (int64_t first = 0; first < full; first += width) {
            for (int64_t i = 0; i < m * width; ++i) sums[i] = 0.0;
            for (int64_t t0 = 0; t0 < k; t0 += kDepthBlock) {
                const int64_t depth = std::min(kDepthBlock, k - t0);
                const double* a_block = a + t0 * a_col;
                for (int64_t j0 = 0; j0 < width; j0 += kPanel) {
                    const double* b_block = b + t0 * ldb + first + j0;
                    for (int64_t t = 0; t < depth; ++t) {
                        __builtin_memcpy(packed + t * kPanel, b_block + t * ldb, kPanel * sizeof(double));
                    }
                    double* panel_sums = sums + j0;
                    int64_t i = 0;
                    for (; i + kTileRows <= m; i += kTileRows) {
                        tile<kTileRows>(panel_sums + i * width, width, a_block + i * a_row, a_row, a_col, packed,
                                        depth);
                    }
                    for (; i < m; ++i) {
                        tile<1>(panel_sums + i * width, width, a_block + i * a_row, a_row, a_col, packed, depth);
                    }
                }
            }
            for (int64_t i = 0; i < m; ++i) {
                double* c_row = c + i * ldc + first;
                const double* sum_row = sums + i * width;
                for (int64_t j = 0; j < width; ++j) c_row[j] = Subtract ? c_row[j] - sum_row[j] : c_row[j] + sum_row[j];
            }
        }
    }
    if (full < n) plain_product<Subtract>(c + full, ldc, a, a_row, a_col, b + full, ldb, m, n - full, k);
}

}  // namespace

SPARQ_VECTORIZE_CLONES
void subtract_product(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b,
                      int64_t ldb, int64_t m, int64_t n, int64_t k) {
    accumulate_product<true>(c, ldc, a, a_row, a_col, b, ldb, m, n, k);
}

SPARQ_VECTORIZE_CLONES
void add_product(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b, int64_t ldb,
                 int64_t m, int64_t n, int64_t k) {
    accumulate_product<false>(c, ldc, a, a_row, a_col, b, ldb, m, n, k);
}

void subtract_product_reference(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col,
                                const double* b, int64_t ldb, int64_t m, int64_t n, int64_t k) {
    plain_product<true>(c, ldc, a, a_row, a_col, b, ldb, m, n, k);
}

void add_product_reference(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b,
                           int64_t ldb, int64_t m, int64_t n, int64_t k) {
    plain_product<false>(c, ldc, a, a_row, a_col, b, ldb, m, n, k);
}

}  // namespace sparq
