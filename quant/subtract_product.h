// C -= A B in double, for the rank-k updates of GPTQ's lazy batches and the
// blocked Cholesky factorization (quant/gptq.cpp, quant/hessian.cpp).
//
// Eigen's products are compiled for the portable baseline (SSE2: two
// doubles per vector); this loop is written for the auto-vectorizer and
// cloned for AVX2 and AVX-512 (core/vectorize.h), about 2-4x faster there.
// Every element is summed in one fixed order, t ascending, then subtracted
// once, and nothing is fused (-ffp-contract=off): the same bits on every
// clone, for any tiling of the caller's rows, and so for any thread count.
#pragma once

#include <cstdint>

namespace sparq {

// c[i * ldc + j] -= sum over t < k of a[i * a_row + t * a_col] * b[t * ldb + j]
// for i < m, j < n. B's rows and C's rows are contiguous; A is read through
// strides, so either A or its transpose can be passed.
void subtract_product(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col, const double* b,
                      int64_t ldb, int64_t m, int64_t n, int64_t k);

// The same sum, plain loops: the twin the tests compare against.
void subtract_product_reference(double* c, int64_t ldc, const double* a, int64_t a_row, int64_t a_col,
                                const double* b, int64_t ldb, int64_t m, int64_t n, int64_t k);

}  // namespace sparq
