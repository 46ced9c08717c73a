// Structured pruning of a whole model (CONTRACT.md `sparq sparsify
// --structured mlp=F,heads=F`): removes MLP intermediate channels (rows of
// gate/up, columns of down) and attention heads (rows of q, columns of o;
// rows of k/v too when whole KV groups go), and rewrites the config, so the
// result is a smaller dense model that every later pass and tool reads.
//
// Importance (sparsity/structured.h): with calibration, act x ||column|| of
// the layer reading the space (down_proj for MLP channels, o_proj for
// heads, act = rms of the space's activations); without, the weight norms
// alone. Calibration runs sequentially: block l's choice and reconstruction
// are made on the activations of the already-pruned blocks 0..l-1 (the
// runner's linears are rewritten in place with the pruned columns zeroed,
// which computes exactly what the smaller model computes).
//
// Reconstruction (calibration only, on by default): down_proj / o_proj are
// refit on the kept inputs by least squares against the unpruned layer's
// output; it is kept for a layer only when it lowers that layer's output
// error on the calibration activations.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/model_source.h"
#include "sparsity/structured.h"

namespace sparq {

struct StructuredOptions {
    StructuredSpec spec;
    bool reconstruct = true;
    // Calibration text (empty = weight-only importance, no reconstruction).
    std::string calib;
    // A statistics cache (sparq calibrate) of this model: when given, the
    // full-precision statistics it holds (or computes from `calib` and
    // writes, by calibration/statistics_source.h's rules) drive the scores
    // and the reconstruction instead of the sequential run.
    std::string calib_cache;
    int64_t calib_samples = 128;
    int64_t calib_len = 512;
    uint64_t seed = 0;
    double damp = 0.01;  // reconstruction ridge, x mean diagonal of H_KK
};

struct StructuredLayerReport {
    std::vector<int64_t> kept_channels;  // MLP intermediate channels kept
    std::vector<int64_t> kept_heads;     // query heads kept
    std::vector<int64_t> kept_kv_heads;
    // Output error of down_proj / o_proj on calibration (sum over rows of
    // E||W x - W' x_K||^2); NaN without calibration or without that pruning.
    double mlp_error_pruned = NAN, mlp_error_reconstructed = NAN;
    double attn_error_pruned = NAN, attn_error_reconstructed = NAN;
    bool mlp_reconstructed = false, attn_reconstructed = false;
};

struct StructuredResult {
    ModelSource model;  // the pruned model (pruned tensors owned, in the source dtype)
    HeadPlan heads;
    int64_t intermediate_before = 0, intermediate_after = 0;
    int64_t mlp_weight_bytes_before = 0, mlp_weight_bytes_after = 0;  // gate/up/down, as stored in the source dtype
    int64_t attn_weight_bytes_before = 0, attn_weight_bytes_after = 0;  // q/k/v/o
    bool calibrated = false;
    std::vector<StructuredLayerReport> layers;
};

// Throws sparq::Error for a spec the model cannot take (no multiple of 32
// fits, heads that would leave none) or a tensor of the wrong shape.
StructuredResult prune_structured(const ModelSource& model, const StructuredOptions& options,
                                  const std::function<void(const std::string&)>& log = {});

// The pruned model's config and tensor shapes, for planning (--dry-run)
// without reading or choosing anything: the pruned tensors have the shapes
// and dtypes prune_structured gives them but no data (data null, nbytes of
// the shape); every other tensor is the source's. Same errors as
// prune_structured for a spec the model cannot take.
ModelSource structured_shapes(const ModelSource& model, const StructuredSpec& spec);

}  // namespace sparq
