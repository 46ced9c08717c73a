#include "quant/hessian.h"

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/parallel.h"
#include "quant/subtract_product.h"

namespace sparq {

namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

void check_size(const std::vector<double>& hessian, int64_t n) {
    if (n < 0 || hessian.size() != static_cast<size_t>(n) * static_cast<size_t>(n)) {
        fail("a Hessian of ", n, " columns needs ", n, " x ", n, " values, got ", hessian.size());
    }
}

using ColMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::ColMajor>;

// Inverts the lower triangle of an n x n block (column-major, leading
// dimension ld) in place, LAPACK's unblocked dtrti2: column j of L^-1 is
// -L^-1[j+1:, j+1:] L[j+1:, j] / L_jj, the trailing block being already
// inverted. The strict upper triangle is left alone.
void invert_lower_unblocked(double* m, int64_t n, int64_t ld) {
    for (int64_t j = n - 1; j >= 0; --j) {
        double* column = m + j * ld;
        column[j] = 1.0 / column[j];
        const double scale = -column[j];
        // x = T x with T = the inverted trailing block (lower): columns of T
        // are contiguous; going from the last column up, each x_k is read
        // before it is overwritten.
        for (int64_t k = n - 1; k > j; --k) {
            const double* t = m + k * ld;
            const double xk = column[k];
            column[k] = t[k] * xk;
            for (int64_t i = k + 1; i < n; ++i) column[i] += t[i] * xk;
        }
        for (int64_t i = j + 1; i < n; ++i) column[i] *= scale;
    }
}

// Tile edge of the blocked factorizations: panels, and the square tiles
// their updates are cut into. Fixed, so the tiles, and with them every
// product's summation order, depend only on n (core/parallel.h's rule:
// bit-identical for any thread count). 128 keeps each tile's product a
// real matrix product and gives a 2048-wide Hessian 120 tiles to share.
constexpr int64_t kTile = 128;

int64_t tile_count(int64_t n) { return (n + kTile - 1) / kTile; }

}  // namespace

// Right-looking and blocked: factor the diagonal block, solve the panel
// below it, then subtract the panel's outer product from the trailing
// matrix, tile by tile in parallel; nearly all the n^3 / 3 flops are in
// those tiles.
bool cholesky_lower_in_place(double* m, int64_t n) {
    Eigen::Map<ColMatrix> a(m, n, n);
    std::vector<std::pair<int64_t, int64_t>> tiles;  // (row tile, column tile), column <= row
    for (int64_t k = 0; k < n; k += kTile) {
        const int64_t kb = std::min(kTile, n - k), first = k + kb, rest = n - first;
        Eigen::Ref<ColMatrix> diagonal(a.block(k, k, kb, kb));
        const Eigen::LLT<Eigen::Ref<ColMatrix>> llt(diagonal);
        if (llt.info() != Eigen::Success) return false;
        for (int64_t i = k; i < first; ++i) {
            if (!(m[i * n + i] > 0.0)) return false;
        }
        if (rest == 0) break;
        const int64_t row_tiles = tile_count(rest);
        // L21 = A21 L11^-T; rows are independent.
        parallel_for(0, row_tiles, 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t r = first + t * kTile, rb = std::min(kTile, n - r);
                a.block(k, k, kb, kb).transpose().triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(
                    a.block(r, k, rb, kb));
            }
        });
        // A22 -= L21 L21^T on the tiles on or below the diagonal. A diagonal
        // tile is done whole; its strict upper half is garbage nobody reads.
        tiles.clear();
        for (int64_t i = 0; i < row_tiles; ++i)
            for (int64_t j = 0; j <= i; ++j) tiles.emplace_back(i, j);
        parallel_for(0, static_cast<int64_t>(tiles.size()), 1, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t) {
                const int64_t r = first + tiles[static_cast<size_t>(t)].first * kTile;
                const int64_t c = first + tiles[static_cast<size_t>(t)].second * kTile;
                const int64_t rb = std::min(kTile, n - r), cb = std::min(kTile, n - c);
                // a(r.., c..) -= a(r.., k..) a(c.., k..)^T, written for the
                // row-major kernel as its transpose: the tile's columns are
                // contiguous in this column-major storage.
                subtract_product(m + c * n + r, n, m + k * n + c, 1, n, m + k * n + r, n, cb, rb, kb);
            }
        });
    }
    return true;
}

namespace {

// The same for the whole matrix, blocked as LAPACK's dtrtri so the bulk of
// the work is matrix products: with L = [D 0; B T] and T^-1 already in
// place, the block column below D becomes -T^-1 B D^-1, computed in row
// tiles in parallel (row tile i needs T^-1's rows of tile i: a rectangle
// left of the diagonal and a triangle on it, since the strict upper
// triangle of the storage holds garbage).
void invert_lower_in_place(double* m, int64_t n) {
    Eigen::Map<ColMatrix> a(m, n, n);
    ColMatrix below;
    for (int64_t j = ((n - 1) / kTile) * kTile; j >= 0; j -= kTile) {
        const int64_t jb = std::min(kTile, n - j), first = j + jb, rest = n - first;
        if (rest > 0) {
            below.resize(rest, jb);
            parallel_for(0, tile_count(rest), 1, [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t) {
                    const int64_t r = t * kTile, rb = std::min(kTile, rest - r);
                    // Negated as it is built, so the rectangle's product is a
                    // subtract_product: out = -(T^-1 B) for this tile.
                    auto out = below.middleRows(r, rb);
                    out.noalias() = a.block(first + r, first + r, rb, rb).triangularView<Eigen::Lower>() *
                                    a.block(first + r, j, rb, jb);
                    out = -out;
                    if (r > 0) {
                        // out -= a(first + r.., first..) a(first.., j..), as its
                        // transpose for the row-major kernel (columns are contiguous).
                        subtract_product(below.data() + r, rest, m + j * n + first, n, 1, m + first * n + first + r, n,
                                         jb, rb, r);
                    }
                    a.block(j, j, jb, jb).triangularView<Eigen::Lower>().solveInPlace<Eigen::OnTheRight>(out);
                }
            });
            // Only now: every tile above read this block column's old values.
            a.block(first, j, rest, jb) = below;
        }
        invert_lower_unblocked(m + j * n + j, jb, n);
    }
}

// U(r, c) = M^-1(n-1-r, n-1-c) for c >= r and 0 below the diagonal, row-major,
// from M^-1 in the lower triangle of the column-major `m`: that storage
// index of U(r, c) holds M^-1's (n-1-c, n-1-r), so it is an in-place swap
// of mirror pairs across the anti-diagonal. Each pair belongs to the row
// of its upper-left member, so row chunks run in parallel on disjoint pairs.
void reverse_transpose_to_upper(double* m, int64_t n) {
    parallel_for(0, n, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            for (int64_t c = 0; c + r <= n - 1; ++c) {
                const size_t p = static_cast<size_t>(r * n + c);
                const size_t q = static_cast<size_t>((n - 1 - c) * n + (n - 1 - r));
                // The mirror of (r, c) is (n-1-c, n-1-r): below the diagonal
                // exactly when (r, c) is.
                const bool lower = c < r;
                const double at_p = m[p], at_q = m[q];
                m[p] = lower ? 0.0 : at_q;
                m[q] = lower ? 0.0 : at_p;
            }
        }
    });
}

// Whether every value is finite; chunks in parallel (an n^2 scan per
// factor would otherwise be serial).
bool all_finite(const double* v, size_t count) {
    constexpr int64_t kChunk = int64_t{1} << 18;
    const int64_t total = static_cast<int64_t>(count);
    std::vector<uint8_t> bad(static_cast<size_t>((total + kChunk - 1) / kChunk), 0);
    parallel_for(0, total, kChunk, [&](int64_t b, int64_t e) {
        bool finite = true;
        for (int64_t i = b; i < e; ++i) finite = finite && std::isfinite(v[i]);
        bad[static_cast<size_t>(b / kChunk)] = !finite;
    });
    return std::find(bad.begin(), bad.end(), uint8_t{1}) == bad.end();
}

// Fills `work` (column-major) with J P^T H P J: the reordered H with its
// order reversed, dead inputs decoupled, dampening added.
void fill_reversed(const std::vector<double>& h, int64_t n, const std::vector<int64_t>& order,
                   const std::vector<uint8_t>& dead, double dead_diagonal, double damp, FactorStorage& work) {
    const auto source = [&](int64_t i) { return order.empty() ? i : order[static_cast<size_t>(i)]; };
    // Columns in parallel: the strided reads of H dominate at width 5632.
    parallel_for(0, n, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, n)), [&](int64_t j0, int64_t j1) {
        for (int64_t j = j0; j < j1; ++j) {
            const int64_t sj = source(n - 1 - j);
            double* column = work.data() + j * n;
            for (int64_t i = 0; i < n; ++i) {
                const int64_t si = source(n - 1 - i);
                column[i] = dead[static_cast<size_t>(si)] || dead[static_cast<size_t>(sj)] ? 0.0 : h[static_cast<size_t>(si * n + sj)];
            }
            column[j] = (dead[static_cast<size_t>(sj)] ? dead_diagonal : h[static_cast<size_t>(sj * n + sj)]) + damp;
        }
    });
}

}  // namespace

std::optional<InverseHessianFactor> inverse_hessian_factor(const std::vector<double>& hessian, int64_t n,
                                                           const std::vector<int64_t>& order,
                                                           const DampingOptions& damping, std::string* failure) {
    check_size(hessian, n);
    if (!order.empty() && static_cast<int64_t>(order.size()) != n) fail("a column order of ", order.size(), " for ", n);
    auto failed = [&](const std::string& why) -> std::optional<InverseHessianFactor> {
        if (failure) *failure = why;
        return std::nullopt;
    };
    if (!all_finite(hessian.data(), hessian.size())) return failed("the Hessian has non-finite entries");
    double live_sum = 0;
    int64_t live = 0;
    std::vector<uint8_t> dead(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
        const double d = hessian[static_cast<size_t>(i * n + i)];
        if (d < 0) return failed("the Hessian has a negative diagonal entry at column " + std::to_string(i));
        if (d > 0) {
            live_sum += d;
            ++live;
        } else {
            dead[static_cast<size_t>(i)] = 1;
        }
    }
    InverseHessianFactor out;
    out.n = n;
    out.dead_columns = n - live;
    const double mean_diagonal = live > 0 ? live_sum / static_cast<double>(live) : 1.0;
    FactorStorage work(static_cast<size_t>(n * n));  // uninitialized: fill_reversed writes it all
    std::ostringstream tried;
    for (const double fraction : damping.ladder()) {
        ++out.attempts;
        fill_reversed(hessian, n, order, dead, mean_diagonal, fraction * mean_diagonal, work);
        bool ok = cholesky_lower_in_place(work.data(), n);  // M in the lower triangle
        if (ok) {
            invert_lower_in_place(work.data(), n);
            reverse_transpose_to_upper(work.data(), n);  // U = J M^-1 J, row-major
            ok = all_finite(work.data(), work.size());
            for (int64_t i = 0; ok && i < n; ++i) ok = work[static_cast<size_t>(i * n + i)] > 0.0;
        }
        if (ok) {
            out.damp_fraction = fraction;
            out.upper = std::move(work);
            return out;
        }
        tried << (out.attempts > 1 ? ", " : "") << fraction;
    }
    return failed("the Hessian is not positive definite even with dampening " + tried.str() +
                  " x mean diagonal");
}

std::vector<int64_t> descending_diagonal_order(const std::vector<double>& hessian, int64_t n) {
    check_size(hessian, n);
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return hessian[static_cast<size_t>(a * n + a)] > hessian[static_cast<size_t>(b * n + b)];
    });
    return order;
}

std::vector<double> permute_symmetric(const std::vector<double>& hessian, int64_t n,
                                      const std::vector<int64_t>& order) {
    check_size(hessian, n);
    if (static_cast<int64_t>(order.size()) != n) fail("a permutation of ", n, " columns has ", order.size());
    std::vector<double> out(hessian.size());
    for (int64_t i = 0; i < n; ++i) {
        const double* src = hessian.data() + order[i] * n;
        double* dst = out.data() + i * n;
        for (int64_t j = 0; j < n; ++j) dst[j] = src[order[j]];
    }
    return out;
}

double hessian_weighted_error(const float* a, const float* b, int64_t rows, int64_t cols,
                              const std::vector<double>& hessian) {
    check_size(hessian, cols);
    // 64 rows per product: H (cols x cols) streams from memory once per
    // chunk, so small chunks would read it hundreds of times on a wide layer.
    // Fixed chunks and one partial sum each: the same total for any thread count.
    constexpr int64_t kRowsPerChunk = 64;
    const size_t chunks = static_cast<size_t>((rows + kRowsPerChunk - 1) / kRowsPerChunk);
    std::vector<double> partial(chunks, 0.0);
    parallel_for(0, static_cast<int64_t>(chunks), 1, [&](int64_t chunk_begin, int64_t chunk_end) {
        for (int64_t chunk = chunk_begin; chunk < chunk_end; ++chunk) {
            const int64_t begin = chunk * kRowsPerChunk, n = std::min(kRowsPerChunk, rows - begin);
            std::vector<double> d(static_cast<size_t>(n * cols)), dh(static_cast<size_t>(n * cols), 0.0);
            for (int64_t i = 0; i < n * cols; ++i) {
                const size_t at = static_cast<size_t>(begin * cols + i);
                d[static_cast<size_t>(i)] = static_cast<double>(a[at]) - (b ? static_cast<double>(b[at]) : 0.0);
            }
            add_product(dh.data(), cols, d.data(), cols, 1, hessian.data(), cols, n, cols, cols);
            double sum = 0;
            for (int64_t i = 0; i < n * cols; ++i) sum += dh[static_cast<size_t>(i)] * d[static_cast<size_t>(i)];
            partial[static_cast<size_t>(chunk)] = sum;
        }
    });
    double total = 0;
    for (double p : partial) total += p;
    return total;
}

}  // namespace sparq
