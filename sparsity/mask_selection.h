// Choosing which weights of a matrix [rows, cols] to prune, from a score per
// weight (larger = more important). The selection knows nothing about where
// scores come from: magnitude pruning passes |w| (sparsity/scores.h), Wanda
// |w| * ||x_col||, SparseGPT its own saliency, and all of them get the same
// counts and the same tie rules.
//
// Per-row unstructured: every row keeps exactly cols - round(s * cols) of its
// largest scores (rounding to nearest, so 0.5 of 172 columns prunes 86).
// Pruning per output row, not over the whole matrix, keeps every output
// feature alive and gives each row of a bitmask the same packed size.
// N:M: every run of m consecutive columns keeps its n largest scores; the
// row length must be a multiple of m (the nm_sparse encoding needs it).
//
// Ties are broken by column, the lower column kept first, so a mask never
// depends on the sort algorithm or the thread count. A NaN score is an error
// naming the tensor, row and column (it would otherwise sort arbitrarily).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparq {

// What to prune to: either an unstructured fraction or an N:M pattern.
struct SparsityTarget {
    enum class Kind { Unstructured, NM };
    Kind kind = Kind::Unstructured;
    double sparsity = 0.5;  // Unstructured: fraction pruned, in [0, 1)
    int n = 2;              // NM: kept per run
    int m = 4;              // NM: run length

    static SparsityTarget unstructured(double fraction);
    static SparsityTarget nm(int n, int m);
    // The fraction of weights this target prunes (n:m -> 1 - n/m).
    double nominal_sparsity() const;
    // "0.5" or "2:4", for plans and reports.
    std::string name() const;
    // Throws sparq::Error naming `field`: sparsity in [0, 1), 1 <= n < m <= 256.
    void validate(const char* field) const;
};

// Parses "N:M" (e.g. "2:4"); throws sparq::Error naming `field` otherwise.
SparsityTarget parse_nm_pattern(const std::string& text, const char* field = "pattern");

// Weights a row of `cols` keeps under an unstructured fraction.
int64_t kept_per_row(int64_t cols, double sparsity);

// A mask [rows, cols], row-major, 1 = keep, 0 = prune.
struct PruneMask {
    int64_t rows = 0;
    int64_t cols = 0;
    std::vector<uint8_t> keep;

    bool kept(int64_t r, int64_t c) const { return keep[static_cast<size_t>(r * cols + c)] != 0; }
    int64_t pruned_count() const;
};

// Selects the mask for `scores` (rows x cols, row-major). Throws sparq::Error
// naming `tensor` for a NaN score, a bad target, or (N:M) cols % m != 0.
// Rows run in parallel; the result is the same for any thread count.
PruneMask select_mask(const float* scores, int64_t rows, int64_t cols, const SparsityTarget& target,
                      const std::string& tensor);

// One row's selection with the same order as select_mask (larger score
// first, ties to the lower column): keep[c] = 1 for the keep_count best of
// `cols` scores, 0 for the rest. Solvers that choose masks piece by piece
// (SparseGPT per column block or per N:M run) call it on each piece; the
// scores must not be NaN.
void select_row_keep(const float* scores, int64_t cols, int64_t keep_count, uint8_t* keep);

// Sets pruned weights to 0 in `weights` (rows x cols, row-major F32).
void apply_mask(const PruneMask& mask, float* weights);

}  // namespace sparq
