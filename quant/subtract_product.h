// C -= A B (and C += A B) in double, for the rank-k updates of GPTQ's and
// SparseGPT's lazy batches, the blocked Cholesky factorization and inverse
// (quant/hessian.cpp) and the refit's products with H (sparsity/mask_refit.cpp).
//
// Eigen's products are compiled for the portable baseline (SSE2: two
// doubles per vector); this loop is written with GCC vector types and
// cloned for AVX2 and AVX-512 (core/vectorize.h): 2.2-2.9x Eigen's product
// on an AVX-512 machine. Every element is summed in one fixed order, t
// ascending, then subtracted (or added) once, and nothing is fused (-ffp-contract=off): the same bits on every
// clone, for any tiling of the caller's rows, and so for any thread count.
#pragma once

#include <cstdint>

namespace sparq {

// c[i * ldc + j] -= sum over t < k of a[i * a_row + t * a_col] * b[t * ldb + j]
// for i < m, j < n. B's rows and C's rows are contiguous; A is read through
// strides, so either A or its transpose can be passed.
void subtract_product(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b,
                      int64_t ldb, int64_t m, int64_t n, int64_t k);

// c += A B: the same sums, added (the refit's products with H).
void add_product(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b, int64_t ldb,
                 int64_t m, int64_t n, int64_t k);

// The same sums, plain loops: the twins the tests compare against.
void subtract_product_reference(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col,
                                const double* b, int64_t ldb, int64_t m, int64_t n, int64_t k);
void add_product_reference(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b,
                           int64_t ldb, int64_t m, int64_t n, int64_t k);

}  // namespace sparq
