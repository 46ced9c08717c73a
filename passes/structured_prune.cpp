#include "passes/structured_prune.h"

#include <cmath>
#include <cstdio>
#include <optional>

#include "calibration/block_runner.h"
#include "calibration/calibration_data.h"
#include "calibration/statistics_source.h"
#include "core/error.h"
#include "core/half.h"

namespace sparq {

namespace {

const std::string kDown = "mlp.down_proj.weight";
const std::string kOut = "self_attn.o_proj.weight";

// Pruned values keep the source's dtype, so pruning alone never grows the
// file (an F16 model stays F16); anything else is stored as F32.
DType pruned_dtype(DType source) { return source == DType::F16 || source == DType::BF16 ? source : DType::F32; }

Tensor in_dtype(const Shape& shape, std::vector<float> values, DType dtype) {
    return make_tensor_from_f32(shape, std::move(values), pruned_dtype(dtype));
}

// What one block keeps: chosen on calibration activations or weights alone.
struct BlockChoice {
    std::vector<int64_t> channels;
    KeptHeads heads;
    std::vector<float> down;  // [hidden, channels.size()]
    std::vector<float> out;   // [hidden, heads.query.size() x head_dim]
};

// Rms of each channel (empty without statistics: weight-only importance).
std::vector<double> activation_scale(const ActivationStatistics* stats) {
    std::vector<double> out;
    if (!stats) return out;
    out.reserve(stats->mean_square.size());
    for (double v : stats->mean_square) out.push_back(std::sqrt(v));
    return out;
}

// Restricts w [rows, cols] to `kept` columns, refitting them when the
// statistics carry a Hessian and the refit lowers the output error.
std::vector<float> restrict_columns(const std::vector<float>& w, int64_t rows, int64_t cols,
                                    const std::vector<int64_t>& kept, const ActivationStatistics* stats,
                                    const StructuredOptions& options, double& error_pruned, double& error_refit,
                                    bool& refit) {
    std::vector<float> pruned = take_cols(w, rows, cols, kept);
    if (!stats || stats->hessian.empty()) return pruned;
    error_pruned = restricted_output_error(w, rows, cols, stats->hessian, kept, pruned);
    if (!options.reconstruct) return pruned;
    std::vector<float> solved = reconstruct_restricted(w, rows, cols, stats->hessian, kept, options.damp);
    error_refit = restricted_output_error(w, rows, cols, stats->hessian, kept, solved);
    refit = error_refit < error_pruned;
    return refit ? solved : pruned;
}

// Writes the restricted matrix back at its columns, zeros elsewhere: the
// full-size layer then computes exactly what the pruned one will.
void embed_columns(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& kept,
                   const std::vector<float>& restricted) {
    std::fill(w.begin(), w.end(), 0.0f);
    const auto k = static_cast<int64_t>(kept.size());
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < k; ++j) w[static_cast<size_t>(r * cols + kept[static_cast<size_t>(j)])] = restricted[static_cast<size_t>(r * k + j)];
    }
}

class BlockChooser {
public:
    BlockChooser(const ModelConfig& c, const StructuredOptions& o, int64_t kept_channels, const HeadPlan& plan)
        : config_(c), options_(o), kept_channels_(kept_channels), plan_(plan) {}

    // down: [hidden, intermediate] of the block.
    void choose_channels(const std::vector<float>& down, const ActivationStatistics* stats, BlockChoice& choice,
                         StructuredLayerReport& report) const {
        const int64_t rows = config_.hidden_size, cols = config_.intermediate_size;
        if (static_cast<int64_t>(down.size()) != rows * cols) fail_in({"", kDown, "shape"}, "expected [", rows, ", ", cols, "]");
        const std::vector<double> importance = input_channel_importance(down, rows, cols, activation_scale(stats));
        choice.channels = top_indices(importance, kept_channels_);
        choice.down = restrict_columns(down, rows, cols, choice.channels, stats, options_, report.mlp_error_pruned,
                                       report.mlp_error_reconstructed, report.mlp_reconstructed);
        report.kept_channels = choice.channels;
    }

    // out: [hidden, q_dim] o_proj of the block.
    void choose_heads(const std::vector<float>& out, const ActivationStatistics* stats, BlockChoice& choice,
                      StructuredLayerReport& report) const {
        const int64_t rows = config_.hidden_size, cols = config_.q_dim();
        if (static_cast<int64_t>(out.size()) != rows * cols) fail_in({"", kOut, "shape"}, "expected [", rows, ", ", cols, "]");
        const std::vector<double> channel = input_channel_importance(out, rows, cols, activation_scale(stats));
        choice.heads = select_kept_heads(plan_, config_.num_heads, config_.num_kv_heads,
                                         head_importance(channel, config_.head_dim));
        const std::vector<int64_t> kept = head_channels(choice.heads.query, config_.head_dim);
        choice.out = restrict_columns(out, rows, cols, kept, stats, options_, report.attn_error_pruned,
                                      report.attn_error_reconstructed, report.attn_reconstructed);
        report.kept_heads = choice.heads.query;
        report.kept_kv_heads = choice.heads.kv;
    }

private:
    const ModelConfig& config_;
    const StructuredOptions& options_;
    int64_t kept_channels_;
    HeadPlan plan_;
};

int64_t stored_bytes(const TensorMap& tensors, int64_t layers, const std::vector<std::string>& suffixes) {
    int64_t bytes = 0;
    for (int64_t l = 0; l < layers; ++l) {
        for (const auto& s : suffixes) bytes += static_cast<int64_t>(tensors.get(layer_tensor_name(l, s)).nbytes);
    }
    return bytes;
}

const std::vector<std::string> kMlpLinears = {"mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight"};
const std::vector<std::string> kAttnLinears = {"self_attn.q_proj.weight", "self_attn.k_proj.weight",
                                               "self_attn.v_proj.weight", "self_attn.o_proj.weight"};

// Which axis of a tensor the pruning cuts, decided by name alone, so the
// pruning and the shape-only plan (structured_shapes) cannot disagree.
enum class PrunedAxis { None, MlpRows, MlpCols, QueryRows, KvRows, QueryCols };
struct PrunedPart {
    PrunedAxis axis = PrunedAxis::None;
    int64_t layer = -1;
    bool bias = false;  // a 1-D bias: its one axis follows its weight's rows
};

PrunedPart pruned_part(const std::string& name, bool prune_mlp, bool prune_heads) {
    PrunedPart part;
    std::optional<LinearLocation> at = locate_block_linear(name);
    part.bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    // q/k/v biases (Qwen2) follow their weight's rows.
    if (!at && part.bias) at = locate_block_linear(name.substr(0, name.size() - 5) + ".weight");
    if (!at) return part;
    const std::string& suffix = at->suffix;
    if (prune_mlp && (suffix == "mlp.gate_proj.weight" || suffix == "mlp.up_proj.weight")) {
        part.axis = PrunedAxis::MlpRows;
    } else if (prune_mlp && suffix == kDown && !part.bias) {
        part.axis = PrunedAxis::MlpCols;
    } else if (prune_heads && suffix == "self_attn.q_proj.weight") {
        part.axis = PrunedAxis::QueryRows;
    } else if (prune_heads && (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight")) {
        part.axis = PrunedAxis::KvRows;
    } else if (prune_heads && suffix == kOut && !part.bias) {
        part.axis = PrunedAxis::QueryCols;
    }
    if (part.axis != PrunedAxis::None) part.layer = at->layer;
    return part;
}

ModelConfig pruned_config(const ModelSource& model, int64_t intermediate, const HeadPlan& heads) {
    ModelConfig config = model.config;
    config.intermediate_size = intermediate;
    config.num_heads = heads.num_heads;
    config.num_kv_heads = heads.num_kv_heads;
    config.validate(model.path + " (after structured pruning)");
    return config;
}

void check_removes_something(const StructuredSpec& spec) {
    if (!(spec.mlp > 0) && !(spec.heads > 0)) fail_in({"", "", "--structured"}, "removes nothing: give mlp=F and/or heads=F above 0");
}

}  // namespace

StructuredResult prune_structured(const ModelSource& model, const StructuredOptions& options,
                                  const std::function<void(const std::string&)>& log) {
    const ModelConfig& c = model.config;
    const bool prune_mlp = options.spec.mlp > 0, prune_heads = options.spec.heads > 0;
    check_removes_something(options.spec);
    StructuredResult result;
    result.intermediate_before = c.intermediate_size;
    result.intermediate_after = kept_mlp_channels(c.intermediate_size, options.spec.mlp);
    result.heads = plan_head_pruning(c.num_heads, c.num_kv_heads, options.spec.heads);
    result.layers.resize(static_cast<size_t>(c.num_layers));
    std::vector<BlockChoice> choices(static_cast<size_t>(c.num_layers));
    const BlockChooser chooser(c, options, result.intermediate_after, result.heads);

    if (!options.calib_cache.empty()) {
        result.calibrated = true;
        StatisticsRequest request;
        if (!options.calib.empty()) {
            request.data = CalibrationDataOptions{options.calib, options.calib_samples, options.calib_len, options.seed};
        }
        request.cache_path = options.calib_cache;
        visit_statistics(
            model, request,
            [&](int64_t layer, InputSpace space, const ActivationStatistics& stats) {
                const auto l = static_cast<size_t>(layer);
                if (space == InputSpace::AttnOutput && prune_heads) {
                    chooser.choose_heads(model.tensors.get(layer_tensor_name(layer, kOut)).to_f32(), &stats, choices[l],
                                         result.layers[l]);
                } else if (space == InputSpace::MlpHidden && prune_mlp) {
                    chooser.choose_channels(model.tensors.get(layer_tensor_name(layer, kDown)).to_f32(), &stats,
                                            choices[l], result.layers[l]);
                }
            },
            log);
    } else if (!options.calib.empty()) {
        if (!model.tokenizer) fail_in({model.path, "", "--calib"}, "calibration needs the model's tokenizer");
        result.calibrated = true;
        const CalibrationSamples samples =
            draw_calibration_samples({options.calib, options.calib_samples, options.calib_len, options.seed}, *model.tokenizer);
        for (const auto& w : samples.warnings) {
            if (log) log("warning: " + w);
        }
        RunnerOptions runner;
        runner.sequential = true;
        runner.collect_hessian = options.reconstruct;
        runner.log = log;
        run_calibration(model, samples, runner, [&](InputSpace space, const ActivationStatistics& stats, BlockWeights& block) {
            const auto l = static_cast<size_t>(block.layer());
            const std::string& suffix = space == InputSpace::AttnOutput ? kOut : kDown;
            if (space == InputSpace::AttnOutput && prune_heads) {
                std::vector<float>& w = block.weight(suffix);
                chooser.choose_heads(w, &stats, choices[l], result.layers[l]);
                embed_columns(w, block.rows(suffix), block.cols(suffix),
                              head_channels(choices[l].heads.query, c.head_dim), choices[l].out);
            } else if (space == InputSpace::MlpHidden && prune_mlp) {
                std::vector<float>& w = block.weight(suffix);
                chooser.choose_channels(w, &stats, choices[l], result.layers[l]);
                embed_columns(w, block.rows(suffix), block.cols(suffix), choices[l].channels, choices[l].down);
            }
        });
    } else {
        for (int64_t l = 0; l < c.num_layers; ++l) {
            const auto i = static_cast<size_t>(l);
            if (prune_heads) chooser.choose_heads(model.tensors.get(layer_tensor_name(l, kOut)).to_f32(), nullptr, choices[i], result.layers[i]);
            if (prune_mlp) chooser.choose_channels(model.tensors.get(layer_tensor_name(l, kDown)).to_f32(), nullptr, choices[i], result.layers[i]);
        }
    }

    // The smaller model: the same tensors, cut to the kept rows / columns.
    result.model.path = model.path;
    result.model.format = model.format;
    result.model.tokenizer = model.tokenizer;
    result.model.config = pruned_config(model, result.intermediate_after, result.heads);
    result.model.tensors = TensorMap(model.tensors.source());
    for (const auto& [name, t] : model.tensors.all()) {
        const PrunedPart part = pruned_part(name, prune_mlp, prune_heads);
        if (part.axis == PrunedAxis::None) {
            result.model.tensors.add(name, t);
            continue;
        }
        const BlockChoice& choice = choices[static_cast<size_t>(part.layer)];
        const int64_t rows = part.bias ? 1 : t.shape[0], cols = part.bias ? t.shape[0] : t.shape[1];
        const auto cut_rows = [&](const std::vector<int64_t>& kept) {
            std::vector<float> v = part.bias ? take_cols(t.to_f32(), 1, cols, kept) : take_rows(t.to_f32(), rows, cols, kept);
            Shape shape = part.bias ? Shape{static_cast<int64_t>(kept.size())} : Shape{static_cast<int64_t>(kept.size()), cols};
            result.model.tensors.add(name, in_dtype(shape, std::move(v), t.dtype));
        };
        const auto put_cols = [&](const std::vector<float>& values, int64_t kept_cols) {
            result.model.tensors.add(name, in_dtype(Shape{rows, kept_cols}, values, t.dtype));
        };
        switch (part.axis) {
            case PrunedAxis::MlpRows: cut_rows(choice.channels); break;
            case PrunedAxis::MlpCols: put_cols(choice.down, static_cast<int64_t>(choice.channels.size())); break;
            case PrunedAxis::QueryRows: cut_rows(head_channels(choice.heads.query, c.head_dim)); break;
            case PrunedAxis::KvRows: cut_rows(head_channels(choice.heads.kv, c.head_dim)); break;
            case PrunedAxis::QueryCols:
                put_cols(choice.out, static_cast<int64_t>(choice.heads.query.size()) * c.head_dim);
                break;
            case PrunedAxis::None: break;
        }
    }
    result.mlp_weight_bytes_before = stored_bytes(model.tensors, c.num_layers, kMlpLinears);
    result.mlp_weight_bytes_after = stored_bytes(result.model.tensors, c.num_layers, kMlpLinears);
    result.attn_weight_bytes_before = stored_bytes(model.tensors, c.num_layers, kAttnLinears);
    result.attn_weight_bytes_after = stored_bytes(result.model.tensors, c.num_layers, kAttnLinears);
    if (log) {
        char line[256];
        std::snprintf(line, sizeof line, "structured: intermediate %lld -> %lld, heads %lld/%lld kv -> %lld/%lld",
                      static_cast<long long>(c.intermediate_size), static_cast<long long>(result.intermediate_after),
                      static_cast<long long>(c.num_heads), static_cast<long long>(c.num_kv_heads),
                      static_cast<long long>(result.heads.num_heads), static_cast<long long>(result.heads.num_kv_heads));
        log(line);
    }
    return result;
}

ModelSource structured_shapes(const ModelSource& model, const StructuredSpec& spec) {
    check_removes_something(spec);
    const ModelConfig& c = model.config;
    const bool prune_mlp = spec.mlp > 0, prune_heads = spec.heads > 0;
    const int64_t intermediate = kept_mlp_channels(c.intermediate_size, spec.mlp);
    const HeadPlan heads = plan_head_pruning(c.num_heads, c.num_kv_heads, spec.heads);
    ModelSource out;
    out.path = model.path;
    out.format = model.format;
    out.tokenizer = model.tokenizer;
    out.config = pruned_config(model, intermediate, heads);
    out.tensors = TensorMap(model.tensors.source());
    for (const auto& [name, t] : model.tensors.all()) {
        const PrunedPart part = pruned_part(name, prune_mlp, prune_heads);
        if (part.axis == PrunedAxis::None) {
            out.tensors.add(name, t);
            continue;
        }
        int64_t kept = 0;
        switch (part.axis) {
            case PrunedAxis::MlpRows:
            case PrunedAxis::MlpCols: kept = intermediate; break;
            case PrunedAxis::QueryRows:
            case PrunedAxis::QueryCols: kept = heads.num_heads * c.head_dim; break;
            case PrunedAxis::KvRows: kept = heads.num_kv_heads * c.head_dim; break;
            case PrunedAxis::None: break;
        }
        Tensor shaped;
        shaped.dtype = pruned_dtype(t.dtype);
        if (part.bias) {
            shaped.shape = {kept};
        } else if (part.axis == PrunedAxis::MlpCols || part.axis == PrunedAxis::QueryCols) {
            shaped.shape = {t.shape.at(0), kept};
        } else {
            shaped.shape = {kept, t.shape.at(1)};
        }
        shaped.nbytes = static_cast<size_t>(shaped.numel()) * dtype_size(shaped.dtype);
        out.tensors.add(name, shaped);  // no data: planning reads names, shapes and dtypes only
    }
    return out;
}

}  // namespace sparq
