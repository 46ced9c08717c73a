#include "quant/subtract_product.h"

#include "core/vectorize.h"

namespace sparq {

namespace {

// Rows of C per register tile and columns per panel: 4 x 16 sums stay in
// vector registers, and one panel of B (k x 16 doubles) in L1 while the
// rows go by. The sums are GCC vector types of 8 doubles: one AVX-512
// register, two AVX2 ones, four SSE2 ones in the clones (the compiler's own
// vectorizer mixes up the rows and columns of this loop).
constexpr int64_t kTileRows = 4;
constexpr int64_t kPanel = 16;
typedef double Lanes8 __attribute__((vector_size(64)));

// Both helpers are inlined so that each clone compiles them for its target.
template <bool Subtract, int64_t Rows>
__attribute__((always_inline)) inline void tile(double* c, int64_t ldc, const double* a, int64_t a_row,
                                                int64_t a_col, const double* b, int64_t ldb, int64_t k) {
    Lanes8 low[Rows], high[Rows];
    for (int64_t r = 0; r < Rows; ++r) low[r] = high[r] = Lanes8{};
    for (int64_t t = 0; t < k; ++t) {
        // Unaligned loads: memcpy compiles to one unaligned move.
        Lanes8 b_low, b_high;
        __builtin_memcpy(&b_low, b + t * ldb, sizeof b_low);
        __builtin_memcpy(&b_high, b + t * ldb + 8, sizeof b_high);
        for (int64_t r = 0; r < Rows; ++r) {
            const double at = a[r * a_row + t * a_col];
            low[r] += at * b_low;
            high[r] += at * b_high;
        }
    }
    for (int64_t r = 0; r < Rows; ++r) {
        Lanes8 out_low, out_high;
        __builtin_memcpy(&out_low, c + r * ldc, sizeof out_low);
        __builtin_memcpy(&out_high, c + r * ldc + 8, sizeof out_high);
        if constexpr (Subtract) {
            out_low -= low[r];
            out_high -= high[r];
        } else {
            out_low += low[r];
            out_high += high[r];
        }
        __builtin_memcpy(c + r * ldc, &out_low, sizeof out_low);
        __builtin_memcpy(c + r * ldc + 8, &out_high, sizeof out_high);
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
    for (int64_t j0 = 0; j0 < full; j0 += kPanel) {
        int64_t i = 0;
        for (; i + kTileRows <= m; i += kTileRows) {
            tile<Subtract, kTileRows>(c + i * ldc + j0, ldc, a + i * a_row, a_row, a_col, b + j0, ldb, k);
        }
        for (; i < m; ++i) tile<Subtract, 1>(c + i * ldc + j0, ldc, a + i * a_row, a_row, a_col, b + j0, ldb, k);
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
