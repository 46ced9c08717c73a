#include "passes/sparsify_model.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "calibration/calibration_data.h"
#include "calibration/statistics.h"
#include "passes/calibrated_sparsify.h"
#include "passes/method_registry.h"
#include "passes/tensor_selection.h"
#include "sparsity/owl.h"
#include "quant/reference_codec.h"
#include "sparsity/scores.h"

namespace sparq {

SparsityTarget SparsifyOptions::target() const {
    if (!pattern.empty()) return parse_nm_pattern(pattern, "--pattern");
    return SparsityTarget::unstructured(sparsity.value_or(0.0));
}

QuantizeOptions SparsifyOptions::quantize_options() const {
    QuantizeOptions q;
    q.bits = bits;
    q.group = group;
    q.symmetric = symmetric;
    q.method = quant_method;
    q.targets = targets;
    q.ignore = ignore;
    q.embed_bits = embed_bits;
    q.head_bits = head_bits;
    q.calib = calib;
    q.calib_samples = calib_samples;
    q.calib_len = calib_len;
    q.seed = seed;
    q.calib_cache = calib_cache;
    q.damp = damp;
    return q;
}

bool SparsifyOptions::calibrated() const {
    const MethodInfo* m = find_method(PassKind::Sparsify, method);
    return (m && m->calibrated) || layer_ratios == "owl" || refit_iterations > 0 ||
           (quantizes() && quant_method == "gptq") || correct_upstream;
}

void SparsifyOptions::check_options_read() const {
    const SparsifyOptions d;
    const MethodInfo& m = require_method(PassKind::Sparsify, method, "--method");
    const bool structured_calibration = !structured.empty() && (!calib.empty() || !calib_cache.empty());
    const bool reads_text = (calibrated() || !structured.empty()) && !calib.empty();
    const bool joint_gptq = quantizes() && quant_method == "gptq";
    const std::string text_readers =
        "--calib FILE with --method wanda or sparsegpt, --layer-ratios owl, --refit, --quant-method gptq or --structured";
    std::string run = "--method " + method;
    if (layer_ratios != "uniform") run += " --layer-ratios " + layer_ratios;
    if (quantizes()) run += " --quant-method " + quant_method;
    if (!structured.empty()) run += " --structured";
    refuse_unread_options(
        {{"--calib-samples", calib_samples != d.calib_samples, reads_text, text_readers},
         {"--calib-len", calib_len != d.calib_len, reads_text, text_readers},
         {"--seed", seed != d.seed, reads_text, text_readers},
         {"--block-size", block_size != d.block_size, m.reads("block-size") && prunes_weights(),
          methods_reading(PassKind::Sparsify, "block-size")},
         {"--damp", damp != d.damp,
          (m.reads("damp") && prunes_weights()) || joint_gptq || refit_iterations > 0 || structured_calibration ||
              correct_upstream,
          methods_reading(PassKind::Sparsify, "damp") +
              ", --quant-method gptq, --refit, --correct-upstream or --structured with --calib"},
         {"--correct-upstream", correct_upstream != d.correct_upstream, prunes_weights() && calib_cache.empty(),
          "--sparsity or --pattern with --calib (the sequential runner; not --calib-cache)"},
         {"--owl-m", owl_m != d.owl_m, layer_ratios == "owl", "--layer-ratios owl"},
         {"--owl-lambda", owl_lambda != d.owl_lambda, layer_ratios == "owl", "--layer-ratios owl"}},
        run);
}

void SparsifyOptions::validate() const {
    if (sparsity && !pattern.empty()) fail_in({"", "", "--pattern"}, "give either --sparsity S or --pattern N:M, not both");
    if (!sparsity && pattern.empty() && structured.empty()) {
        fail_in({"", "", "--sparsity"}, "give --sparsity S, --pattern N:M or --structured mlp=F,heads=F");
    }
    if (!structured.empty()) {
        parse_structured_spec(structured, "--structured");
        // Without unstructured pruning these would be silently ignored.
        if (!prunes_weights() && method != "magnitude") {
            fail_in({"", "", "--method"}, "applies to --sparsity / --pattern; structured pruning scores with --calib");
        }
        if (!prunes_weights() && layer_ratios != "uniform") {
            fail_in({"", "", "--layer-ratios"}, "applies to --sparsity / --pattern");
        }
        if (!calib.empty()) {
            if (calib_samples < 1) fail_in({"", "", "--calib-samples"}, "must be >= 1, got ", calib_samples);
            if (calib_len < 2) fail_in({"", "", "--calib-len"}, "must be >= 2, got ", calib_len);
            if (!(damp > 0) || !std::isfinite(damp)) fail_in({"", "", "--damp"}, "must be > 0, got ", damp);
        }
    } else if (!structured_reconstruct) {
        fail_in({"", "", "--no-reconstruct"}, "applies to --structured");
    }
    const SparsityTarget t = target();
    t.validate(sparsity ? "--sparsity" : "--pattern");
    require_method(PassKind::Sparsify, method, "--method");
    if (layer_ratios != "uniform" && layer_ratios != "owl") {
        fail_in({"", "", "--layer-ratios"}, "must be uniform or owl, got '", layer_ratios, "'");
    }
    if (layer_ratios == "owl") {
        if (t.kind == SparsityTarget::Kind::NM) {
            fail_in({"", "", "--layer-ratios"}, "owl allocates unstructured fractions; it does not apply to ", t.name());
        }
        OwlOptions{owl_m, owl_lambda}.validate();
    }
    if (refit_iterations < 0) fail_in({"", "", "--refit"}, "must be >= 0, got ", refit_iterations);
    if (calibrated()) {
        if (!structured.empty() && !calib_cache.empty() && calib.empty()) {
            // The cache describes the model before the cut; the pruned model's
            // statistics can only come from text.
            fail_in({"", "", "--calib"}, "after --structured, the pruning and quantization that follow read the "
                    "smaller model's statistics, which --calib-cache (of the model as given) does not hold: give --calib FILE");
        }
        if (calib.empty() && calib_cache.empty()) {
            fail_in({"", "", "--calib"}, "method '", method, "'", layer_ratios == "owl" ? " with owl ratios" : "",
                    quantizes() && quant_method == "gptq" ? " with gptq" : "",
                    refit_iterations > 0 ? " with --refit" : "", correct_upstream ? " with --correct-upstream" : "",
                    " needs calibration data: give --calib FILE", correct_upstream ? "" : " (or --calib-cache FILE)");
        }
        if (calib_samples < 1) fail_in({"", "", "--calib-samples"}, "must be >= 1, got ", calib_samples);
        if (calib_len < 2) fail_in({"", "", "--calib-len"}, "must be >= 2, got ", calib_len);
        if (!(damp > 0) || !std::isfinite(damp)) fail_in({"", "", "--damp"}, "must be > 0, got ", damp);
        if (block_size < 1 || (t.kind == SparsityTarget::Kind::NM && block_size % t.m != 0)) {
            fail_in({"", "", "block_size"}, "must be >= 1 and a multiple of M for N:M, got ", block_size);
        }
    } else if (!structured.empty()) {
        // --calib / --calib-cache drive the structured importance scores and reconstruction.
    } else if (!calib.empty() || !calib_cache.empty()) {
        // Calibration that nothing reads would be silently ignored.
        fail_in({"", "", calib.empty() ? "--calib-cache" : "--calib"},
                "magnitude pruning with uniform ratios reads no calibration; use --method wanda or sparsegpt, "
                "--layer-ratios owl or --quant-method gptq");
    }
    if (!quantizes()) {
        // Quantization flags without --bits would be silently ignored.
        if (group != -1) fail_in({"", "", "--group"}, "applies to joint quantization: give --bits too");
        if (!symmetric) fail_in({"", "", "--asym"}, "applies to joint quantization: give --bits too");
        if (quant_method != "rtn") fail_in({"", "", "--quant-method"}, "applies to joint quantization: give --bits too");
        if (embed_bits != 8 || head_bits != 8) {
            fail_in({"", "", embed_bits != 8 ? "--embed-bits" : "--head-bits"},
                    "applies to joint quantization: give --bits too");
        }
        return;
    }
    if (quant_method != "rtn" && quant_method != "mse" && quant_method != "gptq") {
        fail_in({"", "", "--quant-method"}, "must be rtn, mse or gptq for joint sparsity, got '", quant_method, "'");
    }
    const QuantizeOptions q = quantize_options();
    q.validate();
    const int64_t g = q.linear_scheme().group;
    if (t.kind == SparsityTarget::Kind::NM && g != 0 && g % t.m != 0) {
        fail_in({"", "", "--group"}, "group ", g, " must be 0 or a multiple of M = ", t.m, " for the ", t.name(),
                " pattern (groups count dense columns)");
    }
}

SparsifyOptions parse_sparsify_options(const nlohmann::json& j) {
    static const std::set<std::string> known = {
        "sparsity",   "pattern",   "method",      "layer_ratios", "targets",   "ignore",    "bits",
        "group",      "symmetric", "quant_method", "embed_bits",  "head_bits", "calib",     "calib_samples",
        "calib_len",  "seed",      "calib_cache", "damp",         "block_size", "owl_m",    "owl_lambda",
        "structured", "structured_reconstruct", "refit_iterations", "correct_upstream"};
    if (!j.is_object()) fail_in({"", "", "sparsify"}, "options must be an object");
    for (const auto& [key, value] : j.items()) {
        if (!known.count(key)) fail_in({"", "", key}, "unknown option of the sparsify pass");
    }
    SparsifyOptions o;
    try {
        if (j.contains("sparsity")) o.sparsity = j["sparsity"].get<double>();
        if (j.contains("pattern")) o.pattern = j["pattern"].get<std::string>();
        if (j.contains("method")) o.method = j["method"].get<std::string>();
        if (j.contains("layer_ratios")) o.layer_ratios = j["layer_ratios"].get<std::string>();
        if (j.contains("targets")) o.targets = j["targets"].get<std::string>();
        if (j.contains("ignore")) o.ignore = j["ignore"].get<std::string>();
        if (j.contains("bits")) o.bits = j["bits"].get<int>();
        if (j.contains("group")) o.group = j["group"].get<int64_t>();
        if (j.contains("symmetric")) o.symmetric = j["symmetric"].get<bool>();
        if (j.contains("quant_method")) o.quant_method = j["quant_method"].get<std::string>();
        if (j.contains("embed_bits")) o.embed_bits = j["embed_bits"].get<int>();
        if (j.contains("head_bits")) o.head_bits = j["head_bits"].get<int>();
        if (j.contains("calib")) o.calib = j["calib"].get<std::string>();
        if (j.contains("calib_samples")) o.calib_samples = calibration_samples_from_json(j["calib_samples"], "calib_samples");
        if (j.contains("calib_len")) o.calib_len = j["calib_len"].get<int64_t>();
        if (j.contains("seed")) o.seed = j["seed"].get<uint64_t>();
        if (j.contains("calib_cache")) o.calib_cache = j["calib_cache"].get<std::string>();
        if (j.contains("damp")) o.damp = j["damp"].get<double>();
        if (j.contains("block_size")) o.block_size = j["block_size"].get<int64_t>();
        if (j.contains("refit_iterations")) o.refit_iterations = j["refit_iterations"].get<int>();
        if (j.contains("correct_upstream")) o.correct_upstream = j["correct_upstream"].get<bool>();
        if (j.contains("owl_m")) o.owl_m = j["owl_m"].get<double>();
        if (j.contains("owl_lambda")) o.owl_lambda = j["owl_lambda"].get<double>();
        if (j.contains("structured")) o.structured = j["structured"].get<std::string>();
        if (j.contains("structured_reconstruct")) o.structured_reconstruct = j["structured_reconstruct"].get<bool>();
    } catch (const nlohmann::json::exception& e) {
        fail_in({"", "", "sparsify"}, "an option has the wrong type: ", e.what());
    }
    o.validate();
    o.check_options_read();
    return o;
}

size_t sparse_tensor_bytes(const NmSparseTensor& t) {
    return t.values.size() + t.indices.size() + t.scales.size() * 2 + t.zeros.size();
}

size_t sparse_tensor_bytes(const BitmaskSparseTensor& t) {
    return t.mask.size() + t.values.size() + t.row_offsets.size() * 8 + t.scales.size() * 2 + t.zeros.size();
}

namespace {

std::string dense_encoding(DType dtype) {
    switch (dtype) {
        case DType::F16:
            return "f16";
        case DType::BF16:
            return "bf16";
        default:
            return "f32";
    }
}

// Bytes of a bitmask_sparse tensor in which every row keeps `kept` values.
size_t estimated_bitmask_bytes(const QuantScheme& s, int64_t rows, int64_t cols, int64_t kept) {
    const PackedGeometry g = packed_geometry(s, rows, cols);
    const int64_t value_row = kept == 0 ? 0 : code_row_bytes(s, kept);
    return static_cast<size_t>(rows * ((cols + 7) / 8 + value_row) + 8 * (rows + 1)) + g.scale_bytes + g.zero_bytes;
}

void check_prunable(const SparsePlannedTensor& p, const SparsityTarget& target) {
    if (target.kind != SparsityTarget::Kind::NM) return;
    const int64_t cols = p.tensor.shape[1];
    if (cols % target.m != 0) {
        fail_in({"", p.tensor.name, "shape"}, "rows of ", cols, " columns cannot be cut into runs of ", target.m,
                " for the ", target.name(), " pattern (leave this tensor out with --ignore)");
    }
    if (p.tensor.action == TensorAction::Quantize && p.tensor.scheme.group % target.m != 0) {
        fail_in({"", p.tensor.name, "group"}, "group ", p.tensor.scheme.group, " of scheme ", p.tensor.scheme.name(),
                " is not a multiple of M = ", target.m);
    }
}

}  // namespace

std::vector<SparsePlannedTensor> plan_sparsification(const ModelSource& model, const SparsifyOptions& options) {
    options.validate();
    const SparsityTarget target = options.target();
    const TensorSelection selection(options.targets, options.ignore);
    std::vector<PlannedTensor> base;
    if (options.quantizes()) {
        base = plan_quantization(model, options.quantize_options());
    } else {
        for (const auto& [name, t] : model.tensors.all()) {
            PlannedTensor p;
            p.name = name;
            p.shape = t.shape;
            p.action = t.dtype == DType::F32 ? TensorAction::KeepF32 : TensorAction::KeepF16;
            p.estimated_bytes = static_cast<int64_t>(t.nbytes);
            base.push_back(std::move(p));
        }
    }
    std::vector<SparsePlannedTensor> plan;
    for (PlannedTensor& b : base) {
        SparsePlannedTensor p;
        const DType source_dtype = model.tensors.get(b.name).dtype;
        const std::string b_name = b.name;
        p.prune = options.prunes_weights() && b.shape.size() == 2 && selection.selected(b.name);
        p.tensor = std::move(b);
        const PlannedTensor& t = p.tensor;
        if (t.action == TensorAction::Quantize) {
            p.encoding = "quant";
        } else if (options.quantizes()) {
            p.encoding = t.action == TensorAction::KeepF16 ? "f16" : "f32";
        } else {
            p.encoding = dense_encoding(source_dtype);
        }
        if (p.prune && (options.method == "wanda" || options.method == "sparsegpt") && !locate_block_linear(b_name)) {
            fail_in({"", b_name, "method"}, "'", options.method,
                    "' needs activation statistics, which only block linear layers have (leave this tensor out "
                    "with --ignore)");
        }
        if (p.prune) {
            check_prunable(p, target);
            if (t.action == TensorAction::Quantize) {
                const int64_t rows = t.shape[0], cols = t.shape[1];
                if (target.kind == SparsityTarget::Kind::NM) {
                    p.encoding = "nm_sparse";
                    p.tensor.estimated_bytes = static_cast<int64_t>(
                        nm_sparse_geometry(NmSparseScheme{target.n, target.m, t.scheme}, rows, cols).total_bytes);
                } else {
                    const size_t bitmask =
                        estimated_bitmask_bytes(t.scheme, rows, cols, kept_per_row(cols, target.sparsity));
                    if (bitmask < static_cast<size_t>(t.estimated_bytes)) {
                        p.encoding = "bitmask_sparse";
                        p.tensor.estimated_bytes = static_cast<int64_t>(bitmask);
                    }
                }
            }
        }
        plan.push_back(std::move(p));
    }
    return plan;
}

nlohmann::json sparse_plan_to_json(const std::vector<SparsePlannedTensor>& plan, const SparsifyOptions& options) {
    std::vector<PlannedTensor> base;
    for (const auto& p : plan) base.push_back(p.tensor);
    nlohmann::json out = plan_to_json(base);
    const SparsityTarget target = options.target();
    for (size_t i = 0; i < plan.size(); ++i) {
        nlohmann::json& e = out[i];
        e["encoding"] = plan[i].encoding;
        e["pruned"] = plan[i].prune;
        e["sparsity"] = plan[i].prune ? target.nominal_sparsity() : 0.0;
        if (plan[i].prune) e["target"] = target.name();
        if (plan[i].tensor.action != TensorAction::Quantize) {
            e["scheme"] = plan[i].encoding;
            e["bits"] = plan[i].encoding == "f32" ? 32 : 16;
        }
    }
    return out;
}

namespace {

// Error and zeros of a stored tensor against the original weights.
struct StoredStats {
    double sqnr_db = INFINITY;
    int64_t zeros = 0;
};

// `restore(r0, r1, out)` writes rows [r0, r1) as stored. Fixed row chunks,
// each summed in order, then the chunks in order: the same for any thread
// count.
StoredStats compare_rows(const std::vector<float>& original, int64_t rows, int64_t cols,
                         const std::function<void(int64_t, int64_t, float*)>& restore) {
    const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, cols));
    const size_t chunks = static_cast<size_t>((rows + grain - 1) / grain);
    std::vector<double> signal(chunks), noise(chunks);
    std::vector<int64_t> zeros(chunks);
    parallel_for(0, rows, grain, [&](int64_t b, int64_t e) {
        std::vector<float> stored(static_cast<size_t>((e - b) * cols));
        restore(b, e, stored.data());
        const float* w = original.data() + b * cols;
        double s = 0, n = 0;
        int64_t z = 0;
        for (size_t i = 0; i < stored.size(); ++i) {
            const double d = static_cast<double>(w[i]) - stored[i];
            s += static_cast<double>(w[i]) * w[i];
            n += d * d;
            z += stored[i] == 0.0f;
        }
        const size_t chunk = static_cast<size_t>(b / grain);
        signal[chunk] = s;
        noise[chunk] = n;
        zeros[chunk] = z;
    });
    double s = 0, n = 0;
    StoredStats out;
    for (size_t i = 0; i < chunks; ++i) {
        s += signal[i];
        n += noise[i];
        out.zeros += zeros[i];
    }
    out.sqnr_db = n == 0 ? INFINITY : s == 0 ? -INFINITY : 10.0 * std::log10(s / n);
    return out;
}

StoredStats compare_packed(const std::vector<float>& original, const PackedTensor& packed) {
    const PackedView view = packed.view();
    return compare_rows(original, packed.rows, packed.cols,
                        [&](int64_t b, int64_t e, float* out) { dequantize_rows(view, b, e, out); });
}

StoredStats compare_dense(const std::vector<float>& original, const std::vector<float>& stored, int64_t rows,
                          int64_t cols) {
    return compare_rows(original, rows, cols, [&](int64_t b, int64_t e, float* out) {
        std::copy(stored.begin() + b * cols, stored.begin() + e * cols, out);
    });
}

// Pruned positions get their group's zero point: an exact zero whatever the
// quantizer did with the 0 it was given.
void force_pruned_to_zero_point(PackedTensor& packed, const PruneMask& mask) {
    const PackedView view = packed.view();
    const int64_t cols = packed.cols, span = packed.scheme.group_span(cols);
    const int64_t row_bytes = code_row_bytes(packed.scheme, cols);
    parallel_for(0, packed.rows, std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(1, cols)),
                 [&](int64_t b, int64_t e) {
                     std::vector<uint8_t> codes(static_cast<size_t>(cols));
                     for (int64_t r = b; r < e; ++r) {
                         uint8_t* row = packed.codes.data() + r * row_bytes;
                         unpack_code_row(packed.scheme, row, cols, codes.data());
                         for (int64_t c = 0; c < cols; ++c) {
                             if (!mask.kept(r, c)) {
                                 codes[c] = static_cast<uint8_t>(read_group_params(view, r, c / span).zero);
                             }
                         }
                         pack_code_row(packed.scheme, codes.data(), cols, row);
                     }
                 });
}

Tensor dense_in_dtype(const Shape& shape, std::vector<float> values, DType dtype) {
    const DType stored = dtype == DType::F32 || dtype == DType::BF16 ? dtype : DType::F16;
    return make_tensor_from_f32(shape, std::move(values), stored);
}

int64_t count_zeros(const std::vector<float>& values) {
    int64_t z = 0;
    for (float v : values) z += v == 0.0f;
    return z;
}

std::vector<float> prune_scores(PruneMethod method, const Tensor& weight, const std::string& name) {
    switch (method) {
        case PruneMethod::Magnitude:
            return magnitude_scores(weight, name);
        case PruneMethod::Wanda:
        case PruneMethod::SparseGPT:
            // Only block linears have activation statistics; the plan
            // selects nothing else for a calibrated method (see plan_sparsification).
            fail_in({"", name, "method"}, "'", prune_method_name(method),
                    "' needs activation statistics, which only block linear layers have (leave this tensor out "
                    "with --ignore)");
    }
    fail_in({"", name, "method"}, "unknown pruning method");
}

}  // namespace

namespace {

// The unstructured / N:M / joint pass on `model` (already cut when --structured is given).
SparsifyResult sparsify_source(const ModelSource& model, const SparsifyOptions& options,
                               const std::function<void(const std::string&)>& log) {
    const auto plan = plan_sparsification(model, options);
    const SparsityTarget target = options.target();
    const PruneMethod prune_method = parse_prune_method(options.method, "--method");
    // GPTQ runs in the calibrated pass for the block linears; whatever else
    // the plan quantizes (embedding, head) gets RTN, as `quantize` does.
    const QuantMethod quant_method =
        parse_quant_method(options.quantizes() && options.quant_method != "gptq" ? options.quant_method : "rtn");
    SparsifyResult result;
    std::optional<CalibratedSparsification> calibrated;
    if (options.calibrated()) {
        calibrated = sparsify_calibrated(model, options, plan, log);
        result.calibration = calibrated->summary;
        result.layer_sparsity = calibrated->layer_sparsity;
        result.outlier_ratios = calibrated->outlier_ratios;
    }
    int64_t linear_params = 0, linear_bytes = 0, linear_zeros = 0;
    size_t done = 0;
    const auto start = std::chrono::steady_clock::now();
    for (const SparsePlannedTensor& p : plan) {
        const std::string& name = p.tensor.name;
        const Tensor& source = model.tensors.get(name);
        result.n_params += source.numel();
        result.source_weight_bytes += stored_tensor_bytes(model, name);
        ModelTensorEntry entry;
        entry.name = name;
        SparsifiedTensorReport report;
        report.quant.name = name;
        report.pruned = p.prune;
        report.encoding = p.encoding;
        const bool quantize = p.tensor.action == TensorAction::Quantize;
        if (quantize) {
            report.quant.bits = p.tensor.scheme.bits;
            report.quant.group = p.tensor.scheme.group;
            report.quant.symmetric = p.tensor.scheme.symmetric;
        } else {
            report.quant.bits = p.encoding == "f32" ? 32 : 16;
        }
        const DType stored_dtype = options.quantizes()
                                       ? (p.tensor.action == TensorAction::KeepF16 ? DType::F16 : DType::F32)
                                       : source.dtype;
        int64_t stored_bytes = 0;
        StoredStats stats;
        if (!p.prune && !quantize) {
            // Untouched: the source itself (zero-copy) or converted.
            entry.dense = source.dtype == stored_dtype ? source : dense_in_dtype(source.shape, source.to_f32(), stored_dtype);
            stats.zeros = count_zeros(source.to_f32());
            stored_bytes = static_cast<int64_t>(entry.dense.nbytes);
        } else {
            const std::vector<float> original = source.to_f32();
            const int64_t rows = source.shape[0], cols = source.shape[1];
            std::vector<float> kept;
            std::optional<PruneMask> mask;
            std::optional<PackedTensor> solved;
            const auto found = calibrated ? calibrated->tensors.find(name) : decltype(calibrated->tensors.end()){};
            if (calibrated && found != calibrated->tensors.end()) {
                // Pruned (and, with gptq, quantized) by the calibrated pass.
                CalibratedPrunedTensor& c = found->second;
                kept = std::move(c.weights);
                if (p.prune) mask = std::move(c.mask);
                solved = std::move(c.packed);
                report.calibration = c.report;
                calibrated->tensors.erase(found);
            } else {
                kept = original;
                if (p.prune) {
                    mask = select_mask(prune_scores(prune_method, source, name).data(), rows, cols, target, name);
                    apply_mask(*mask, kept.data());
                }
            }
            if (quantize) {
                PackedTensor packed = solved ? std::move(*solved)
                                             : quantize_tensor(make_f32_tensor(source.shape, std::move(kept)),
                                                               p.tensor.scheme, quant_method, nullptr, name);
                if (mask) force_pruned_to_zero_point(packed, *mask);
                stats = compare_packed(original, packed);
                stored_bytes = static_cast<int64_t>(packed_geometry(packed.scheme, rows, cols).total_bytes);
                if (p.prune && target.kind == SparsityTarget::Kind::NM) {
                    entry.nm_sparse = pack_nm_sparse(packed.view(), target.n, target.m);
                    stored_bytes = static_cast<int64_t>(sparse_tensor_bytes(*entry.nm_sparse));
                    report.encoding = "nm_sparse";
                } else if (p.prune) {
                    BitmaskSparseTensor bitmask = pack_bitmask_sparse(packed.view());
                    const auto bitmask_bytes = static_cast<int64_t>(sparse_tensor_bytes(bitmask));
                    if (bitmask_bytes < stored_bytes) {
                        entry.bitmask_sparse = std::move(bitmask);
                        stored_bytes = bitmask_bytes;
                        report.encoding = "bitmask_sparse";
                    } else {
                        report.encoding = "quant";
                    }
                }
                if (!entry.nm_sparse && !entry.bitmask_sparse) entry.packed = std::move(packed);
            } else {
                stats = compare_dense(original, kept, rows, cols);
                entry.dense = dense_in_dtype(source.shape, std::move(kept), stored_dtype);
                stored_bytes = static_cast<int64_t>(entry.dense.nbytes);
            }
        }
        report.quant.sqnr_db = stats.sqnr_db;
        report.sparsity = source.numel() ? static_cast<double>(stats.zeros) / static_cast<double>(source.numel()) : 0;
        if (is_block_linear(name)) {
            linear_params += source.numel();
            linear_bytes += stored_bytes;
            linear_zeros += stats.zeros;
        }
        result.weight_bytes += static_cast<int64_t>(stored_entry_bytes(entry));
        result.tensors.push_back(std::move(entry));
        result.reports.push_back(report);
        ++done;
        if (log && (p.prune || quantize)) {
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            char line[320];
            std::snprintf(line, sizeof line, "[%.1fs] %zu/%zu %s %s sparsity %.3f sqnr %.2f dB", s, done, plan.size(),
                          name.c_str(), report.encoding.c_str(), report.sparsity, report.quant.sqnr_db);
            log(line);
        }
    }
    const auto ratio = [](int64_t a, int64_t b) { return b ? static_cast<double>(a) / static_cast<double>(b) : 0.0; };
    result.bits_per_weight = 8.0 * ratio(linear_bytes, linear_params);
    result.file_bits_per_weight = 8.0 * ratio(result.weight_bytes, result.n_params);
    result.sparsity = ratio(linear_zeros, linear_params);
    return result;
}

}  // namespace

SparsifyResult sparsify_model(const ModelSource& model, const SparsifyOptions& options,
                              const std::function<void(const std::string&)>& log) {
    if (options.structured.empty()) return sparsify_source(model, options, log);
    options.validate();
    StructuredOptions s;
    s.spec = parse_structured_spec(options.structured, "--structured");
    s.reconstruct = options.structured_reconstruct;
    s.calib = options.calib;
    s.calib_samples = options.calib_samples;
    s.calib_len = options.calib_len;
    s.seed = options.seed;
    s.damp = options.damp;
    s.calib_cache = options.calib_cache;
    auto pruned = std::make_shared<StructuredResult>(prune_structured(model, s, log));
    // The cache belongs to the model as given: the smaller model's
    // statistics come from --calib, and the cache is neither read nor
    // rewritten for it.
    SparsifyOptions after = options;
    after.calib_cache.clear();
    SparsifyResult result = sparsify_source(pruned->model, after, log);
    // Bytes the output is compared with: the model as given, before any cut.
    result.source_weight_bytes = 0;
    for (const auto& [name, t] : model.tensors.all()) result.source_weight_bytes += stored_tensor_bytes(model, name);
    result.structured = std::move(pruned);
    return result;
}

}  // namespace sparq
