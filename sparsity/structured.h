// Structured pruning math (no model needed): which MLP intermediate channels
// and attention heads to keep, cutting the matrices down to them, and the
// least-squares reconstruction of the layer that reads the pruned space.
//
// The pruned model must stay a valid dense model, so every block keeps the
// same number of channels / heads (config.json states one number for all):
//   - MLP: kept = round(intermediate x (1 - f)) rounded to a multiple of 32,
//     so packed layouts (groups of 32) stay whole.
//   - Heads, with G = heads / kv_heads query heads per KV group: drop
//     round(f x G) query heads from every group (k/v untouched); when that
//     rounds to 0 (small groups, or no GQA: G = 1), drop round(f x kv_heads)
//     whole groups (their query heads and their k/v head).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sparq {

struct StructuredSpec {
    double mlp = 0;    // fraction of MLP intermediate channels to remove, [0, 1)
    double heads = 0;  // fraction of attention heads to remove, [0, 1)
    bool empty() const { return mlp == 0 && heads == 0; }
};

// Parses "mlp=F,heads=F" (either key optional, at least one). Throws
// sparq::Error naming `flag` for an unknown key, a bad number or a fraction
// outside [0, 1).
StructuredSpec parse_structured_spec(const std::string& text, const std::string& flag = "--structured");

// Channels kept of `intermediate` after removing `fraction`: a multiple of
// 32, at least 32, at most intermediate (the rounding may undo a tiny
// fraction). fraction 0 keeps all. Throws when intermediate < 32 and a
// fraction is given (no multiple of 32 fits).
int64_t kept_mlp_channels(int64_t intermediate, double fraction);

struct HeadPlan {
    int64_t num_heads = 0;     // after pruning
    int64_t num_kv_heads = 0;  // after pruning
    bool whole_groups = false;
    int64_t removed_per_group = 0;  // query heads removed per group (!whole_groups)
    int64_t removed_groups = 0;     // whole groups removed (whole_groups)
};

// Throws sparq::Error naming `flag` when the fraction removes no head or
// would leave none.
HeadPlan plan_head_pruning(int64_t num_heads, int64_t num_kv_heads, double fraction,
                           const std::string& flag = "--structured heads");

struct KeptHeads {
    std::vector<int64_t> query;  // kept query heads, ascending
    std::vector<int64_t> kv;     // kept KV heads, ascending
};

// Applies the plan to one block's per-query-head importance (num_heads
// values): the least important heads of each group (or the least important
// groups, by summed importance) go. Ties keep the lower index.
KeptHeads select_kept_heads(const HeadPlan& plan, int64_t num_heads, int64_t num_kv_heads,
                            const std::vector<double>& head_importance);

// The `kept` most important indices, ascending; ties keep the lower index.
std::vector<int64_t> top_indices(const std::vector<double>& importance, int64_t kept);

// Channel indices of whole heads: head h -> [h x head_dim, (h + 1) x head_dim).
std::vector<int64_t> head_channels(const std::vector<int64_t>& heads, int64_t head_dim);

// w is [rows, cols] row-major.
std::vector<float> take_rows(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& kept);
std::vector<float> take_cols(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& kept);

// Importance of each input channel c of a layer w [rows, cols] that reads a
// space with per-channel activation scale `act` (mean |x| or rms; empty =
// all ones, the weight-only fallback): act[c] x ||w[:, c]||.
std::vector<double> input_channel_importance(const std::vector<float>& w, int64_t rows, int64_t cols,
                                             const std::vector<double>& act);
// Per head: the summed squared channel importance over its head_dim input
// channels of o_proj (its output contribution's energy under a diagonal
// activation model).
std::vector<double> head_importance(const std::vector<double>& channel_importance, int64_t head_dim);

// Output error E||W x - W' x_K||^2 summed over rows, with H = E[x x^T]
// (cols x cols, row-major): w_kept is [rows, kept.size()].
double restricted_output_error(const std::vector<float>& w, int64_t rows, int64_t cols,
                               const std::vector<double>& hessian, const std::vector<int64_t>& kept,
                               const std::vector<float>& w_kept);

// Least-squares W' = argmin E||W x - W' x_K||^2 = W H[:, K] (H[K, K] + damp
// mean(diag H[K,K]) I)^-1, rows x kept. Deterministic (Eigen LDLT, fixed
// order).
std::vector<float> reconstruct_restricted(const std::vector<float>& w, int64_t rows, int64_t cols,
                                          const std::vector<double>& hessian, const std::vector<int64_t>& kept,
                                          double damp);

}  // namespace sparq
