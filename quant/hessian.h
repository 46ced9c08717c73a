// What second-order weight solvers (GPTQ here, SparseGPT next) do with the
// Hessian proxy of a linear layer's inputs, H = X^T X / tokens (cols x cols,
// row-major, symmetric): act-order permutations, dead inputs, dampening and
// the upper Cholesky factor of the damped inverse, with a ladder of stronger
// dampening when H is not positive definite; and the H-weighted
// reconstruction error that reports compare methods with. One module, so
// every solver handles singular Hessians the same way. Accumulating H from
// activations lives in calibration/statistics.h.
#pragma once

#include <cstdint>
#include <optional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace sparq {

// lambda = fraction * mean(diag H) is added to the diagonal; when the
// Cholesky still fails, each `fallback` fraction is tried in turn.
struct DampingOptions {
    double fraction = 0.01;
    std::vector<double> fallback = {0.1, 1.0};
    // The fractions in the order they are tried: `fraction`, then `fallback`.
    std::vector<double> ladder() const {
        std::vector<double> all = {fraction};
        all.insert(all.end(), fallback.begin(), fallback.end());
        return all;
    }
};

// An allocator whose resize() leaves doubles uninitialized: the factor's
// n x n buffer (254 MB at width 5632) is then first touched by the parallel
// fill that overwrites it anyway, not zeroed (and page-faulted) serially,
// which was a visible serial slice of a 2-thread GPTQ run.
template <class T>
struct UninitializedAllocator : std::allocator<T> {
    template <class U>
    struct rebind {
        using other = UninitializedAllocator<U>;
    };
    UninitializedAllocator() = default;
    template <class U>
    UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
};

using FactorStorage = std::vector<double, UninitializedAllocator<double>>;

// U with (H + lambda I)^-1 = U^T U, U upper triangular (GPTQ's "Hinv").
struct InverseHessianFactor {
    int64_t n = 0;
    FactorStorage upper;  // n x n row-major; below the diagonal 0
    double damp_fraction = 0;   // the fraction that succeeded
    int attempts = 0;           // Cholesky attempts made (1 = the first worked)
    int64_t dead_columns = 0;   // inputs that were never active (zero diagonal)

    double at(int64_t r, int64_t c) const { return upper[static_cast<size_t>(r * n + c)]; }
};

// Factors P^T H P, H n x n row-major and P the column order `order`
// (empty: as is), so act-order needs no permuted copy. Inputs never active
// in calibration (diagonal 0) get the mean live diagonal and no coupling,
// so their rounding error is not propagated to other columns. Returns
// nullopt, with the reason in `failure`, when H has a non-finite or
// negative diagonal or no damping level gives a positive definite matrix.
// Memory: one n x n working matrix, which becomes the factor (the Cholesky
// of the column-reversed matrix and its triangular inverse, in place:
// U = J M^-1 J where J A J = M M^T and J reverses the order).
// Parallel over fixed tiles (core/parallel.h), bit-identical for any
// thread count.
std::optional<InverseHessianFactor> inverse_hessian_factor(const std::vector<double>& hessian, int64_t n,
                                                           const std::vector<int64_t>& order,
                                                           const DampingOptions& damping,
                                                           std::string* failure = nullptr);

// The same in the given order.
inline std::optional<InverseHessianFactor> inverse_hessian_factor(const std::vector<double>& hessian, int64_t n,
                                                                  const DampingOptions& damping,
                                                                  std::string* failure = nullptr) {
    return inverse_hessian_factor(hessian, n, {}, damping, failure);
}

// Lower Cholesky factor of the symmetric positive definite n x n matrix
// `m`, column-major, in place: only the lower triangle is read, and the
// strict upper one is left as garbage (row-major callers pass a symmetric
// matrix and find L^T in its upper triangle). Blocked, with the tiles in
// parallel (bit-identical for any thread count). Returns false when a
// pivot is not positive.
bool cholesky_lower_in_place(double* m, int64_t n);

// Column order by descending diagonal (GPTQ's act-order); ties keep the
// lower index first, so the order is deterministic.
std::vector<int64_t> descending_diagonal_order(const std::vector<double>& hessian, int64_t n);

// P^T H P for the order (entry (i, j) of the result is H(order[i], order[j])).
std::vector<double> permute_symmetric(const std::vector<double>& hessian, int64_t n,
                                      const std::vector<int64_t>& order);

// sum_r (a_r - b_r)^T H (a_r - b_r) over the rows of a and b ([rows, cols]
// row-major; b may be null for the energy sum_r a_r^T H a_r). Since H is the
// mean of x x^T, this is the mean squared output error per token summed
// over output features. Parallel over fixed row chunks, bit-identical for
// any thread count.
double hessian_weighted_error(const float* a, const float* b, int64_t rows, int64_t cols,
                              const std::vector<double>& hessian);


}  // namespace sparq
