// OWL layer ratios (Yin et al., 2024, "Outlier Weighed Layerwise
// sparsity"): blocks whose Wanda scores hold more outliers keep more
// weights, under the same mean sparsity.
//   - a block's outlier ratio D_l is the fraction of its Wanda scores
//     |w_ij| * ||x_j|| (all its linears together) above M times their mean;
//   - the ratios are scaled to [0, 2 lambda], shifted to mean 1 - s, and
//     block l prunes 1 - that: sparsity in [s - lambda, s + lambda], the
//     block with the most outliers pruned least.
// The paper's defaults (and the reference code's) are M = 5, lambda = 0.08.
// Since every Llama block has the same parameter count, the mean of the
// per-block sparsities is the global sparsity.
#pragma once

#include <cstdint>
#include <vector>

namespace sparq {

struct OwlOptions {
    double outlier_multiple = 5.0;  // M
    double lambda = 0.08;
    // Throws sparq::Error naming the field: M > 0, 0 <= lambda < 0.5.
    void validate() const;
};

// Counts one block's scores in two passes (mean first, then the outliers):
// add every matrix, then count every matrix again.
class OutlierRatio {
public:
    void add_to_mean(const float* scores, int64_t n);
    void count(const float* scores, int64_t n, double outlier_multiple);
    double ratio() const;  // outliers / scores (0 for none)

private:
    double sum_ = 0;
    int64_t n_ = 0;
    int64_t outliers_ = 0;
    int64_t counted_ = 0;
};

// Per-block sparsity from the blocks' outlier ratios and the global target
// (0 <= target < 1). Equal ratios give the uniform target. Throws
// sparq::Error when a block would leave [0, 1).
std::vector<double> owl_layer_sparsities(const std::vector<double>& outlier_ratios, double target,
                                         const OwlOptions& options);

}  // namespace sparq
