// Pruning of a whole model, alone or jointly with quantization (CONTRACT.md
// `sparq sparsify`). The plan reuses the quantize pass's (which tensor gets
// which scheme, targets/ignore, embedding and head bits); the mask comes from
// sparsity/ (scores + per-row or N:M selection), so the calibrated methods
// plug in by providing scores.
//
// Joint mode (bits given): the mask is chosen on the FP32 weights, the pruned
// weights are set to 0, the tensor is quantized (the zeros cost nothing in
// the group's range or error, so the scale fits the kept weights), and every
// pruned position is then forced to its group's zero point, an exact zero.
// Then the encoding: an N:M pattern -> `nm_sparse`; an unstructured fraction
// -> `bitmask_sparse` when that stores fewer bytes than dense `quant`, else
// dense `quant` with zero-point codes. Without bits, pruned layers stay dense
// in their source dtype with the zeros stored.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "passes/quantize_model.h"
#include "passes/structured_prune.h"
#include "sparsity/mask_selection.h"

namespace sparq {

struct SparsifyOptions {
    std::optional<double> sparsity;  // unstructured fraction per row, or
    std::string pattern;             // "N:M"; exactly one of the two
    std::string method = "magnitude";
    std::string layer_ratios = "uniform";
    // Regexes on whole names (empty targets = block linear layers): the
    // tensors the pass acts on, i.e. pruned and, in joint mode, quantized.
    // The rest are left as `quantize` leaves them (embedding and head at
    // embed_bits/head_bits in joint mode, everything else as stored).
    std::string targets;
    std::string ignore;
    // Joint quantization: bits 0 = none. The rest mean what they mean in
    // QuantizeOptions (quant_method is its `method`).
    int bits = 0;
    int64_t group = -1;
    bool symmetric = true;
    std::string quant_method = "rtn";
    int embed_bits = 8;
    int head_bits = 8;
    // Calibration (wanda, sparsegpt, owl ratios, quant_method gptq):
    // meaning as in QuantizeOptions (passes/calibrated_sparsify.h).
    std::string calib;
    int64_t calib_samples = 128;
    int64_t calib_len = 512;
    uint64_t seed = 0;
    std::string calib_cache;
    double damp = 0.01;           // SparseGPT/GPTQ dampening, x mean diagonal of H
    int64_t block_size = 128;     // SparseGPT columns per block (mask choice and lazy updates)
    // Conjugate-gradient steps refitting the kept weights of every pruned
    // linear to its mask on H (sparsity/mask_refit.h); 0 = off.
    int refit_iterations = 0;
    // Each linear targets the full-precision model's outputs, not its own on
    // the pruned inputs (calibration/upstream_correction.h); sequential
    // calibration only (not with calib_cache).
    bool correct_upstream = false;
    double owl_m = 5.0;           // OWL outlier multiple M (paper default)
    double owl_lambda = 0.08;     // OWL sparsity spread lambda (paper default)
    // Structured pruning "mlp=F,heads=F" (passes/structured_prune.h), run
    // first; --sparsity / --pattern then optional. --calib (if given) drives
    // its importance scores and reconstruction too.
    std::string structured;
    bool structured_reconstruct = true;

    // Unstructured or N:M pruning requested (else structured only).
    bool prunes_weights() const { return sparsity.has_value() || !pattern.empty(); }

    bool quantizes() const { return bits != 0; }
    // Wanda, SparseGPT, OWL ratios or GPTQ: statistics from calibration.
    bool calibrated() const;
    SparsityTarget target() const;
    // The quantize pass's options for the joint mode (bits must be set).
    QuantizeOptions quantize_options() const;
    // Throws sparq::Error naming the CLI flag at fault.
    void validate() const;
    // Throws sparq::Error for an option changed from its default that this
    // run would not read (passes/method_registry.h); the CLI and
    // parse_sparsify_options call it after validate().
    void check_options_read() const;
};

// From JSON (recipes): keys sparsity, pattern, method, layer_ratios, targets,
// ignore, bits, group, symmetric, quant_method, embed_bits, head_bits, calib,
// calib_samples, calib_len, seed, calib_cache, damp, block_size, refit_iterations, owl_m,
// owl_lambda, structured, structured_reconstruct. An
// unknown key or a wrong type is a sparq::Error naming the key.
SparsifyOptions parse_sparsify_options(const nlohmann::json& j);

struct SparsePlannedTensor {
    PlannedTensor tensor;  // the quantize plan's entry (KeepF32 for every tensor without bits)
    bool prune = false;
    // "quant", "nm_sparse", "bitmask_sparse" or the dense dtype ("f32", ...).
    // For an unstructured target the plan estimates bitmask_sparse at the
    // nominal sparsity; the pass decides from the real bytes.
    std::string encoding;
};

std::vector<SparsePlannedTensor> plan_sparsification(const ModelSource& model, const SparsifyOptions& options);
// JSON form of the plan (--dry-run): plan_to_json's fields plus encoding and
// the planned sparsity.
nlohmann::json sparse_plan_to_json(const std::vector<SparsePlannedTensor>& plan, const SparsifyOptions& options);

struct SparsifiedTensorReport {
    QuantizedTensorReport quant;  // bits 16/32 for dense tensors; sqnr_db against the unpruned source
    std::string encoding;
    bool pruned = false;
    double sparsity = 0;  // fraction of stored weights that are exact zeros
    std::optional<CalibratedTensorReport> calibration;  // calibrated methods: H-weighted errors (before = magnitude)
};

struct SparsifyResult {
    std::vector<ModelTensorEntry> tensors;  // ready for write_sparq_model
    std::vector<SparsifiedTensorReport> reports;
    double bits_per_weight = 0;       // block linear layers, indices/masks included, over dense counts
    double file_bits_per_weight = 0;  // all stored tensor bytes / all parameters
    double sparsity = 0;              // zeros / weights over the block linear layers
    int64_t weight_bytes = 0;
    int64_t source_weight_bytes = 0;
    int64_t n_params = 0;
    // Calibrated runs: how the statistics were obtained, and the sparsity
    // each block got (uniform: the target; OWL: its plan, with the blocks'
    // outlier ratios).
    std::optional<CalibrationSummary> calibration;
    std::vector<double> layer_sparsity;
    std::vector<double> outlier_ratios;
    // Structured pruning (options.structured): what was cut; its model's
    // config is the one to write.
    std::shared_ptr<const StructuredResult> structured;
};

SparsifyResult sparsify_model(const ModelSource& model, const SparsifyOptions& options,
                              const std::function<void(const std::string&)>& log = {});

// Bytes of the planes of a sparse tensor (no container padding), as
// bits_per_weight counts them.
size_t sparse_tensor_bytes(const NmSparseTensor& t);
size_t sparse_tensor_bytes(const BitmaskSparseTensor& t);

}  // namespace sparq
