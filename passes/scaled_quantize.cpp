#include "passes/scaled_quantize.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "passes/float_output_error.h"
#include "quant/awq.h"
#include "quant/gptq.h"
#include "quant/quantize_tensor.h"
#include "quant/smoothquant.h"

namespace sparq {

bool is_channel_scaling_method(const std::string& method) { return method == "awq" || method == "smoothquant"; }

namespace {

const std::string kV = "self_attn.v_proj.weight";
const std::string kUp = "mlp.up_proj.weight";

std::vector<float>& named(std::map<std::string, std::vector<float>>& tensors, const std::string& name, size_t size) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) fail_in({"", name, ""}, "the fold needs this tensor");
    if (it->second.size() != size) fail_in({"", name, "shape"}, "has ", it->second.size(), " values, expected ", size);
    return it->second;
}

int64_t linear_rows(const ModelConfig& c, const std::string& suffix) {
    if (suffix == "self_attn.q_proj.weight") return c.q_dim();
    if (suffix == "self_attn.k_proj.weight" || suffix == kV) return c.kv_dim();
    if (suffix == "mlp.gate_proj.weight" || suffix == kUp) return c.intermediate_size;
    return c.hidden_size;
}

}  // namespace

SpaceFoldNames space_fold_names(const ModelConfig& config, InputSpace space) {
    SpaceFoldNames n;
    n.successors = input_space_linears(space);
    switch (space) {
        case InputSpace::AttnInput: n.predecessor = "input_layernorm.weight"; break;
        case InputSpace::MlpInput: n.predecessor = "post_attention_layernorm.weight"; break;
        case InputSpace::AttnOutput:
            n.predecessor = kV;
            n.predecessor_is_norm = false;
            n.shared_heads = true;
            if (config.attention_bias) n.predecessor_bias = "self_attn.v_proj.bias";
            break;
        case InputSpace::MlpHidden:
            n.predecessor = kUp;
            n.predecessor_is_norm = false;
            break;
    }
    return n;
}

HeadSharing head_sharing(const ModelConfig& config) {
    return {config.num_heads, config.num_kv_heads, config.head_dim};
}

ScaleFold make_space_fold(const ModelConfig& config, int64_t layer, InputSpace space,
                          std::map<std::string, std::vector<float>>& tensors) {
    const SpaceFoldNames names = space_fold_names(config, space);
    const int64_t cols = input_space_dim(config, space);
    ScaleFold fold;
    for (const std::string& suffix : names.successors) {
        const int64_t rows = linear_rows(config, suffix);
        std::vector<float>& w = named(tensors, layer_tensor_name(layer, suffix), static_cast<size_t>(rows * cols));
        fold.successors.push_back({w.data(), rows, cols});
    }
    const std::string pred = layer_tensor_name(layer, names.predecessor);
    if (names.predecessor_is_norm) {
        fold.predecessor = {named(tensors, pred, static_cast<size_t>(cols)).data(), cols, 1};
    } else {
        const int64_t rows = linear_rows(config, names.predecessor);
        std::vector<float>& w = named(tensors, pred, static_cast<size_t>(rows * config.hidden_size));
        fold.predecessor = {w.data(), rows, config.hidden_size};
    }
    if (!names.predecessor_bias.empty()) {
        fold.predecessor_bias = named(tensors, layer_tensor_name(layer, names.predecessor_bias),
                                      static_cast<size_t>(fold.predecessor.rows))
                                    .data();
    }
    fold.shared_heads = names.shared_heads;
    fold.sharing = head_sharing(config);
    return fold;
}

ScaledBlockQuantizer::ScaledBlockQuantizer(const ModelSource& model, const QuantizeOptions& options,
                                           std::map<std::string, QuantScheme> planned,
                                           std::function<void(const std::string&)> log)
    : model_(model), options_(options), planned_(std::move(planned)), log_(std::move(log)) {
    if (!is_channel_scaling_method(options.method)) {
        fail_in({"", "", "--method"}, "'", options.method, "' does not scale channels");
    }
}

void ScaledBlockQuantizer::start_block(BlockWeights& block) {
    layer_ = block.layer();
    stored_.clear();
    original_.clear();
    column_scales_.clear();
    row_scales_.clear();
    shapes_.clear();
    alpha_of_.clear();
    touched_.clear();
    const ModelConfig& c = model_.config;
    for (InputSpace space : kInputSpaces) {
        for (const std::string& suffix : input_space_linears(space)) {
            const std::string name = block.tensor_name(suffix);
            stored_[name] = block.weight(suffix);
            if (planned_.count(name)) original_[name] = stored_[name];
            shapes_[name] = {block.rows(suffix), block.cols(suffix)};
        }
    }
    auto vector_of = [&](const std::string& suffix, int64_t n) {
        const std::string name = block.tensor_name(suffix);
        stored_[name] = model_.tensors.get(name, {n}).to_f32();
        shapes_[name] = {n, 1};
    };
    vector_of("input_layernorm.weight", c.hidden_size);
    vector_of("post_attention_layernorm.weight", c.hidden_size);
    if (c.attention_bias) vector_of("self_attn.v_proj.bias", c.kv_dim());
}

std::vector<float> ScaledBlockQuantizer::choose_scales(InputSpace space, const SpaceFoldNames& names,
                                                       const ActivationStatistics& statistics,
                                                       const BlockOutputProbe* probe, double& alpha) {
    const ModelConfig& c = model_.config;
    const int64_t cols = input_space_dim(c, space);
    const bool tie = names.shared_heads && c.num_heads != c.num_kv_heads;
    const std::string first = layer_tensor_name(layer_, names.successors.front());
    if (options_.method == "awq") {
        if (statistics.mean_abs.size() != static_cast<size_t>(cols)) {
            fail_in({"", first, "mean_abs"}, "AWQ needs the mean |x| of ", cols, " input channels, got ",
                    statistics.mean_abs.size());
        }
        std::vector<double> statistic = statistics.mean_abs;
        double top = 0;
        for (double m : statistic) top = std::max(top, std::isfinite(m) ? m : 0.0);
        if (tie && top > 0) {
            // Tying takes logs: raise dead channels to the floor awq_scales uses.
            for (double& m : statistic) m = std::max(m, top * 1e-5);
            statistic = tie_shared_heads(statistic, head_sharing(c));
        }
        std::vector<AwqLinear> linears;
        std::vector<std::string> suffixes;
        for (const std::string& suffix : names.successors) {
            const std::string name = layer_tensor_name(layer_, suffix);
            if (!planned_.count(name)) continue;
            linears.push_back({stored_.at(name).data(), shapes_.at(name).first, planned_.at(name), name});
            suffixes.push_back(suffix);
        }
        AwqGrid grid;
        grid.intervals = options_.awq_grid;
        grid.refine = options_.awq_score == "rtn" ? 0 : AwqGrid{}.refine;
        std::vector<double> wstat = awq_weight_statistic(linears, cols);
        if (tie) wstat = tie_shared_heads(wstat, head_sharing(c));
        // --awq-score block: the finalists scored on the output of the module
        // reading this space, where the runner offers it (sequential mode,
        // q/k/v and gate/up); elsewhere on the linears' own outputs.
        AwqModuleError module_error;
        const bool module_space = space == InputSpace::AttnInput || space == InputSpace::MlpInput;
        if (options_.awq_score == "block" && module_space && !probe && log_) {
            log_(std::string("layer ") + std::to_string(layer_) + " " + input_space_name(space) +
                 ": no block output without the sequential runner (--calib-cache); scored on the linears' outputs");
        }
        if (options_.awq_score == "block" && probe) {
            module_error = [&](const std::vector<std::vector<float>>& effective) {
                std::map<std::string, const float*> replaced;
                for (size_t i = 0; i < effective.size(); ++i) replaced[suffixes[i]] = effective[i].data();
                return probe->output_error(replaced);
            };
        }
        const AwqChoice choice = awq_search(linears, cols, statistics.hessian, statistic, grid, &wstat, module_error);
        alpha = choice.alpha;
        if (log_) {
            char line[256];
            const std::string sampled =
                choice.row_stride > 1 ? ", scored on 1 row in " + std::to_string(choice.row_stride) : "";
            std::snprintf(line, sizeof line, "layer %lld %s: awq alpha %.2f%s, output error %.4g (rtn, alpha 0: %.4g%s)",
                          static_cast<long long>(layer_), input_space_name(space), choice.alpha,
                          choice.duo ? " (duo)" : "", choice.error, choice.errors.front(), sampled.c_str());
            log_(line);
        }
        return choice.scales;
    }
    std::vector<MatrixRef> successors;
    for (const std::string& suffix : names.successors) {
        const std::string name = layer_tensor_name(layer_, suffix);
        successors.push_back({stored_.at(name).data(), shapes_.at(name).first, cols});
    }
    std::vector<double> s;
    try {
        s = smoothquant_scales(statistics.max_abs, column_abs_max(successors), options_.smooth_alpha);
        if (tie) s = tie_shared_heads(s, head_sharing(c));
    } catch (const Error& e) {
        throw e.with_tensor(first);
    }
    alpha = options_.smooth_alpha;
    return std::vector<float>(s.begin(), s.end());
}

std::vector<float> ScaledBlockQuantizer::quantize_linear(const std::string& name, const std::vector<double>& hessian,
                                                         bool final, double alpha) {
    const QuantScheme& scheme = planned_.at(name);
    const auto [rows, cols] = shapes_.at(name);
    const std::vector<float>& w = stored_.at(name);
    const auto col = column_scales_.find(name);
    const std::vector<float> ones(static_cast<size_t>(cols), 1.0f);
    const std::vector<float>& s = col == column_scales_.end() ? ones : col->second;
    PackedTensor packed;
    if (options_.method == "awq") {
        packed = quantize_scaled_clip_search(w.data(), rows, cols, hessian, s, scheme, name);
    } else if (options_.smooth_weights == "gptq") {
        GptqResult r = gptq_quantize(w.data(), rows, cols, scaled_basis_hessian(hessian, s, cols, name), scheme,
                                     gptq_options_of(options_), name);
        if (r.fell_back_to_rtn && log_) log_(name + ": GPTQ fell back to RTN: " + r.fallback_reason);
        packed = std::move(r.packed);
    } else {
        packed = quantize_tensor(borrowed_f32_tensor(w.data(), rows, cols), scheme, QuantMethod::Rtn, nullptr, name);
    }
    std::vector<float> effective = dequantize_tensor(packed);
    unscale_columns({effective.data(), rows, cols}, s);
    if (const auto r = row_scales_.find(name); r != row_scales_.end()) multiply_rows({effective.data(), rows, cols}, r->second);
    if (!final) return effective;

    CalibratedTensor result;
    const std::vector<float>& original = original_.at(name);
    result.sqnr_db = sqnr_db(original, effective);
    if (hessian.size() == static_cast<size_t>(cols * cols)) {
        const std::vector<float> rtn = dequantize_tensor(
            quantize_tensor(borrowed_f32_tensor(original.data(), rows, cols), scheme, QuantMethod::Rtn, nullptr, name));
        const RelativeOutputErrors errors =
            relative_output_errors(original.data(), rtn.data(), effective.data(), rows, cols, hessian);
        result.report.weighted_error_rtn = errors.baseline;
        result.report.weighted_error = errors.result;
    }
    result.report.scale_alpha = alpha;
    if (log_) {
        char line[320];
        std::snprintf(line, sizeof line, "%s %s %s (alpha %.2f): weighted error %.3g (rtn %.3g), sqnr %.2f dB",
                      name.c_str(), scheme.name().c_str(), options_.method.c_str(), alpha,
                      result.report.weighted_error, result.report.weighted_error_rtn, result.sqnr_db);
        log_(line);
    }
    result.packed = std::move(packed);
    if (sink_) {
        sink_(name, std::move(result));
    } else {
        tensors_[name] = std::move(result);
    }
    return effective;
}

void ScaledBlockQuantizer::on_space(InputSpace space, const ActivationStatistics& statistics, BlockWeights& block) {
    if (space == InputSpace::AttnInput) start_block(block);
    if (block.layer() != layer_) {
        fail_in({"", block.tensor_name(input_space_linears(space).front()), ""},
                "statistics arrived out of order: block ", block.layer(), " before block ", layer_, "'s attn_input");
    }
    const ModelConfig& c = model_.config;
    const SpaceFoldNames names = space_fold_names(c, space);
    const std::string predecessor = layer_tensor_name(layer_, names.predecessor);
    bool any_planned = false;
    for (const std::string& suffix : names.successors) any_planned |= planned_.count(layer_tensor_name(layer_, suffix)) != 0;

    double alpha = 0;
    if (any_planned) {
        const std::vector<float> s = choose_scales(space, names, statistics, block.output_probe(), alpha);
        ScaleFold fold = make_space_fold(c, layer_, space, stored_);
        fold_channel_scales(fold, s, layer_tensor_name(layer_, names.successors.front()));
        for (const std::string& suffix : names.successors) {
            const std::string name = layer_tensor_name(layer_, suffix);
            column_scales_[name] = s;
            touched_.insert(name);
        }
        touched_.insert(predecessor);
        if (!names.predecessor_bias.empty()) touched_.insert(layer_tensor_name(layer_, names.predecessor_bias));
        if (!names.predecessor_is_norm) row_scales_[predecessor] = predecessor_scales(fold, s);
    }
    // v_proj / up_proj: final now that their rows are scaled.
    if (!names.predecessor_is_norm && planned_.count(predecessor)) {
        const std::vector<double>& h = space == InputSpace::AttnOutput ? attn_input_hessian_ : mlp_input_hessian_;
        const std::vector<float> effective = quantize_linear(predecessor, h, true, alpha_of_[predecessor]);
        std::copy(effective.begin(), effective.end(), block.weight(names.predecessor).begin());
    }
    for (const std::string& suffix : names.successors) {
        const std::string name = layer_tensor_name(layer_, suffix);
        alpha_of_[name] = alpha;
        if (!planned_.count(name)) continue;
        const bool final = suffix != kV && suffix != kUp;
        const std::vector<float> effective = quantize_linear(name, statistics.hessian, final, alpha);
        std::copy(effective.begin(), effective.end(), block.weight(suffix).begin());
    }
    if (space == InputSpace::AttnInput) attn_input_hessian_ = statistics.hessian;
    if (space == InputSpace::MlpInput) mlp_input_hessian_ = statistics.hessian;
    if (space == InputSpace::MlpHidden) {
        for (const std::string& name : touched_) {
            if (!planned_.count(name)) rescaled_[name] = std::move(stored_.at(name));
        }
        std::vector<double>().swap(attn_input_hessian_);
        std::vector<double>().swap(mlp_input_hessian_);
    }
}

}  // namespace sparq
