// Weight quantization of a whole model: which tensor gets which scheme (the
// plan), the quantization itself (parallel inside each tensor, deterministic),
// and the report the CLI prints. Options are typed and parsed from JSON that
// rejects unknown keys, so the CLI and recipes drive the same code.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model_source.h"
#include "models/sparq_model.h"
#include "quant/quantize_tensor.h"

namespace sparq {

struct QuantizeOptions {
    int bits = 4;
    int64_t group = -1;  // -1: 128 below 8 bits, 0 (per channel) at 8 bits
    bool symmetric = true;
    std::string method = "rtn";
    std::string targets;  // regex on whole names; empty = block linear layers
    std::string ignore;
    int embed_bits = 8;   // 16 keeps FP16
    int head_bits = 8;
    // Calibrated methods (imatrix, gptq; passes/calibrated_quantize.h).
    std::string calib;          // text or JSON-lines file
    int64_t calib_samples = 128;
    int64_t calib_len = 512;
    uint64_t seed = 0;
    std::string calib_cache;    // calibration.h5: used when it matches, else (re)computed and written
    double damp = 0.01;         // GPTQ dampening, x mean diagonal of H
    bool act_order = true;      // GPTQ: columns by descending H diagonal, static groups
    // Sequential runs (gptq, awq, smoothquant without a cache): each linear
    // targets the full-precision model's outputs, not its own on the
    // compressed inputs (calibration/upstream_correction.h).
    bool correct_upstream = false;
    std::string gptq_params = "weighted";  // GPTQ group parameters: rtn, mse, weighted, hessian
    std::string imatrix_score = "block";   // imatrix clip search score: block (group's H block) or diagonal
    // Channel scaling (awq, smoothquant; passes/scaled_quantize.h).
    int awq_grid = 20;          // AWQ: alpha on k / awq_grid, k = 0 .. awq_grid
    // AWQ candidates scored: clip (after the clip search, on the linears'
    // outputs), block (after the clip search, on the attention heads' and
    // the MLP's outputs where the sequential runner offers them) or rtn
    // (after plain RTN, llm-awq's).
    std::string awq_score = "clip";
    double smooth_alpha = 0.5;  // SmoothQuant migration strength in [0, 1]
    // SmoothQuant's weight quantizer on the smoothed basis: "rtn" (the
    // paper's) or "gptq" (quant/gptq.h with the smoothed inputs' Hessian
    // and the GPTQ options above; llm-compressor's W8A8 recipe).
    std::string smooth_weights = "rtn";
    // 8: the runtime runs the quantized block linears with int8 activations
    // (the tensors' act_bits param); 0: float activations. smoothquant implies 8.
    int act_bits = 0;
    int activation_bits() const { return method == "smoothquant" ? 8 : act_bits; }
    // > 0: mixed precision (passes/mixed_precision.h) chooses every quantized
    // tensor's scheme, embedding and head included, so that the file's
    // file_bits_per_weight <= target_bpw; bits, group, embed_bits and
    // head_bits are then not used.
    double target_bpw = 0;
    // Mixed precision's loss per tensor: "kl" (each tensor's output-error
    // curve scaled by the KL measured with it alone quantized; needs --calib
    // text) or "hessian" (the output errors summed as they are).
    std::string mixed_sensitivity = "kl";

    // Throws sparq::Error for an option changed from its default that this
    // run would not read (passes/method_registry.h); the CLI and
    // parse_quantize_options call it after validate().
    void check_options_read() const;
    // Calibrated on the sequential runner (gptq, awq, smoothquant from text,
    // not from a cache): what --correct-upstream needs.
    bool sequential_calibration() const {
        return (method == "gptq" || method == "awq" || method == "smoothquant") && calib_cache.empty();
    }

    QuantScheme linear_scheme() const;
    // Scheme for the embedding/head at `bits` (8: per channel; lower: the
    // linear layers' group, 32 when they are per channel); nullopt for 16.
    std::optional<QuantScheme> table_scheme(int bits) const;
    void validate() const;
};

// Parses options from JSON; an unknown key, a wrong type or a key this run
// would not read is a sparq::Error naming the key.
QuantizeOptions parse_quantize_options(const nlohmann::json& j);

enum class TensorAction { KeepF32, KeepF16, Quantize };

struct PlannedTensor {
    std::string name;
    TensorAction action = TensorAction::KeepF32;
    QuantScheme scheme;
    Shape shape;
    int64_t estimated_bytes = 0;
};

std::vector<PlannedTensor> plan_quantization(const ModelSource& model, const QuantizeOptions& options);

// What a calibrated method reports per tensor. Errors are H-weighted
// (the layer's mean squared output error on the calibration inputs)
// relative to the weight's own weighted energy: "before" is plain RTN of
// the same scheme, "after" the method's result.
struct CalibratedTensorReport {
    double weighted_error_rtn = 0;
    double weighted_error = 0;
    double damp = 0;               // GPTQ dampening used (x mean diagonal)
    int64_t dead_inputs = 0;       // input channels never active in calibration
    bool fell_back_to_rtn = false;
    std::string fallback_reason;
    std::optional<double> scale_alpha;  // awq, smoothquant: the alpha of the tensor's input scales
};

struct QuantizedTensorReport {
    std::string name;
    int bits = 16;
    int64_t group = 0;
    bool symmetric = true;
    double sqnr_db = 0;  // +inf for an exact reconstruction
    std::optional<CalibratedTensorReport> calibration;
};

// How the calibration statistics were obtained.
struct CalibrationSummary {
    int64_t samples = 0;
    int64_t len = 0;
    int64_t tokens = 0;
    bool sequential = false;   // quantized outputs fed forward block by block
    int64_t corrected_linears = 0;  // linears given the upstream correction
    std::string cache;         // "none", "hit", "written", or "recomputed: <why>"
    double seconds = 0;
    std::vector<double> block_seconds;
    std::vector<std::string> warnings;
};

struct QuantizeResult {
    std::vector<ModelTensorEntry> tensors;  // ready for write_sparq_model
    std::vector<QuantizedTensorReport> reports;
    double bits_per_weight = 0;       // block linear layers
    double file_bits_per_weight = 0;  // all stored tensor bytes / all parameters
    int64_t weight_bytes = 0;         // stored bytes of all tensors
    int64_t source_weight_bytes = 0;
    int64_t n_params = 0;
    std::optional<CalibrationSummary> calibration;  // calibrated methods only
    nlohmann::json mixed_plan;  // target_bpw only: mixed_plan_to_json of the plan used, else null
};

// With a `sink`, each finished tensor goes to it at once (in plan order)
// instead of into result.tensors, so its planes can be written and freed.
QuantizeResult quantize_model(const ModelSource& model, const QuantizeOptions& options,
                              const std::function<void(const std::string&)>& log = {},
                              const std::function<void(ModelTensorEntry&&)>& sink = {});

// JSON form of the plan (for --dry-run and the metadata).
nlohmann::json plan_to_json(const std::vector<PlannedTensor>& plan);

}  // namespace sparq
