// Mixed precision under a size budget (`--target-bpw X`): every quantized
// tensor, embedding and head included, gets the scheme (bits and group) that
// minimizes the model's predicted loss while the file's
// file_bits_per_weight stays <= X.
//
//   1. Candidates per tensor: block linears int2 g32/g64, int3 g32/g64/g128,
//      int4 g32/g64/g128, int8 per channel; the embedding and head int3 g32,
//      int4 g32/g64/g128, int8 per channel and FP16. Groups at least as
//      wide as the row collapse into one candidate.
//   2. Bytes of each candidate exactly as the file counts them
//      (stored_entry_bytes of models/sparq_model.h, planes rounded to 64),
//      plus the tensors kept as they are (norms): the plan's total is the
//      file's weight_bytes, so the budget holds exactly.
//   3. Sensitivity: each candidate's output error in the trace form
//      sum_r (w_r - q_r)^T H (w_r - q_r), H the mean x x^T of the tensor's
//      inputs on the calibration text (full-precision statistics, cached
//      ones when --calib-cache matches); the head's H is that of the final
//      normed hidden states, the embedding's error is each row's squared
//      error weighted by its token's frequency. Without calibration H is the
//      identity (plain weight error; the embedding rows weigh 1/vocab).
//      Candidates are quantized with RTN, or for calibrated methods with the
//      clip search weighted by diag(H) (the final method then does better
//      on every candidate alike).
//   3b. KL gain (mixed_sensitivity "kl", the default, needs calibration
//      text): output errors of different tensors live in different spaces,
//      so each tensor is quantized alone once with its 3-bit candidate, the
//      KL divergence from full precision is measured on a few calibration
//      samples, and its error curve is scaled by KL / output error there:
//      predicted losses in KL units, comparable across tensors.
//   4. Solver: exact dynamic programme over byte units (multiple-choice
//      knapsack), minimizing the summed predicted error under the budget.
//      The unit is 64 bytes (every stored size is a multiple of 64, so the
//      optimum is exact) unless the model is so large that the table would
//      exceed 2^18 units; then sizes are rounded up to a coarser unit that
//      depends on the model only, so the budget still holds and more budget
//      never predicts a worse loss. Ties go to the smaller candidate.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model_source.h"
#include "passes/quantize_model.h"

namespace sparq {

// One way to store one tensor.
struct MixedCandidate {
    TensorAction action = TensorAction::Quantize;  // Quantize or KeepF16
    QuantScheme scheme;                             // when Quantize
    int64_t bytes = 0;                              // as the file stores it
    double output_error = 0;                        // sum_r d_r^T H d_r (see above)
    double error = 0;  // predicted loss: output_error x the tensor's KL gain when probed, else output_error
};

// Candidates of one tensor in increasing bytes (the solver needs no order,
// but ties then go to the smaller one).
struct MixedTensorCandidates {
    std::string name;
    std::vector<MixedCandidate> candidates;
    double energy = 0;  // the same weighted norm of the weight itself (for relative errors)
    double probe_kl = -1;     // KL measured with the probed candidate alone (-1: not probed)
    double probe_error = 0;   // that candidate's output_error
};

// Index of the chosen candidate per tensor minimizing the summed error with
// summed bytes <= budget_bytes; nullopt when even the smallest candidates
// exceed it. `unit` (a multiple of 64; 0: chosen from the sizes as described
// above) is the byte granularity of the programme.
std::optional<std::vector<size_t>> solve_mixed_budget(const std::vector<MixedTensorCandidates>& tensors,
                                                      int64_t budget_bytes, int64_t unit = 0);

struct MixedPrecisionPlan {
    std::vector<PlannedTensor> plan;       // every tensor of the model, as plan_quantization gives
    std::vector<double> predicted_error;   // per plan entry (0 for tensors kept as they are)
    std::vector<double> relative_error;    // predicted_error / the weight's weighted energy
    double target_bpw = 0;
    int64_t budget_bytes = 0;     // floor(target_bpw * params / 8)
    int64_t planned_bytes = 0;    // what the file will count as weight_bytes
    int64_t n_params = 0;
    double file_bits_per_weight = 0;  // of the plan
    double minimum_bpw = 0;           // every tensor at its smallest candidate
    double predicted_loss = 0;        // summed predicted error
    std::string sensitivity;          // "hessian" (calibrated) or "weight" (H = identity)
    std::vector<std::string> warnings;
};

// Plans mixed precision for options.target_bpw. Calibration is used when
// options.calib or options.calib_cache is given. `write_cache` false keeps
// every file untouched (--dry-run): a cache is then only read, and only
// when no calibration text is given. Throws sparq::Error for a budget below
// the smallest plan, naming the minimum achievable bits per weight.
MixedPrecisionPlan plan_mixed_precision(const ModelSource& model, const QuantizeOptions& options,
                                        const std::function<void(const std::string&)>& log = {},
                                        bool write_cache = true);

// plan_to_json's entries with each tensor's predicted and relative error,
// plus the totals: {"target_bpw", "budget_bytes", "planned_bytes",
// "file_bits_per_weight", "minimum_bpw", "predicted_loss", "sensitivity",
// "tensors": [...]}.
nlohmann::json mixed_plan_to_json(const MixedPrecisionPlan& plan);

}  // namespace sparq
