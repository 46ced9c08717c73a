#include "calibration/block_runner.h"

#include "core/memory.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "calibration/upstream_correction.h"
#include "core/error.h"
#include "models/linear.h"
#include "models/llama_reference.h"

namespace sparq {

namespace {

std::vector<float> to_f32(const Tensor& t) { return t.to_f32(); }

// Thrown by an observer once the stage has what it needs, so the block does
// not compute what nobody reads; caught in run_stage on the calling thread
// (linears are called from it, never from inside a parallel loop).
struct StopBlock {};

// Passes the products through to the dense weights, showing the inputs to
// an accumulator first.
class ObservedLinear : public Linear {
public:
    ObservedLinear(const DenseLinear& inner, RowObserver* accumulator, bool stop_after)
        : inner_(inner), accumulator_(accumulator), stop_after_(stop_after) {}
    int64_t rows() const override { return inner_.rows(); }
    int64_t cols() const override { return inner_.cols(); }
    void forward(const float* x, int64_t tokens, float* y, int64_t y_stride) const override {
        if (accumulator_) accumulator_->add(x, tokens);
        if (stop_after_) throw StopBlock{};
        inner_.forward(x, tokens, y, y_stride);
    }
    void row(int64_t r, float* out) const override { inner_.row(r, out); }
    int64_t weight_bytes() const override { return inner_.weight_bytes(); }
    std::string kernel_name() const override { return inner_.kernel_name(); }

private:
    const DenseLinear& inner_;
    RowObserver* accumulator_;
    bool stop_after_;
};

}  // namespace

BlockWeights::BlockWeights(const ModelSource& model, int64_t layer) : layer_(layer) {
    const ModelConfig& c = model.config;
    const int64_t d = c.hidden_size;
    for (InputSpace space : kInputSpaces) {
        const int64_t cols = input_space_dim(c, space);
        for (const std::string& suffix : input_space_linears(space)) {
            int64_t rows = d;
            if (suffix == "self_attn.q_proj.weight") rows = c.q_dim();
            if (suffix == "self_attn.k_proj.weight" || suffix == "self_attn.v_proj.weight") rows = c.kv_dim();
            if (suffix == "mlp.gate_proj.weight" || suffix == "mlp.up_proj.weight") rows = c.intermediate_size;
            const Tensor& t = model.tensors.get(tensor_name(suffix), {rows, cols});
            Matrix m;
            m.rows = rows;
            m.cols = cols;
            m.values.resize(static_cast<size_t>(rows * cols));
            t.rows_to_f32(0, rows, m.values.data());
            // The block works on its F32 copy: the mapped source pages of a
            // finished block would otherwise stay resident, and peak memory
            // would grow by every block's weights (docs/calibration.md).
            release_read_pages(t.data, t.nbytes);
            linears_[suffix] = std::move(m);
        }
    }
    attn_norm_ = to_f32(model.tensors.get(tensor_name("input_layernorm.weight"), {d}));
    mlp_norm_ = to_f32(model.tensors.get(tensor_name("post_attention_layernorm.weight"), {d}));
    if (c.attention_bias) {
        bq_ = to_f32(model.tensors.get(tensor_name("self_attn.q_proj.bias"), {c.q_dim()}));
        bk_ = to_f32(model.tensors.get(tensor_name("self_attn.k_proj.bias"), {c.kv_dim()}));
        bv_ = to_f32(model.tensors.get(tensor_name("self_attn.v_proj.bias"), {c.kv_dim()}));
        if (model.tensors.has(tensor_name("self_attn.o_proj.bias"))) {
            bo_ = to_f32(model.tensors.get(tensor_name("self_attn.o_proj.bias"), {d}));
        }
    }
}

const BlockWeights::Matrix& BlockWeights::find(const std::string& suffix) const {
    const auto it = linears_.find(suffix);
    if (it == linears_.end()) fail("block ", layer_, " has no linear '", suffix, "'");
    return it->second;
}

std::vector<float>& BlockWeights::weight(const std::string& suffix) {
    return const_cast<Matrix&>(find(suffix)).values;
}
int64_t BlockWeights::rows(const std::string& suffix) const { return find(suffix).rows; }
int64_t BlockWeights::cols(const std::string& suffix) const { return find(suffix).cols; }
std::string BlockWeights::tensor_name(const std::string& suffix) const { return layer_tensor_name(layer_, suffix); }

// The block as the transformer runs it, over the current weights, with an
// observer on the first linear of each space that has an accumulator.
struct BlockAssembly {
    std::map<std::string, std::unique_ptr<DenseLinear>> dense;

    explicit BlockAssembly(BlockWeights& block) {
        for (auto& [suffix, m] : block.linears_) {
            dense[suffix] = std::make_unique<DenseLinear>(m.values.data(), m.rows, m.cols, nullptr);
        }
    }

    LlamaWeights::Layer layer(BlockWeights& block, const std::array<RowObserver*, 4>& observe,
                              bool stop_after_observed) {
        LlamaWeights::Layer l;
        auto make = [&](const std::string& suffix) -> std::unique_ptr<Linear> {
            RowObserver* acc = nullptr;
            for (size_t s = 0; s < kInputSpaces.size(); ++s) {
                if (input_space_linears(kInputSpaces[s]).front() == suffix) acc = observe[s];
            }
            return std::make_unique<ObservedLinear>(*dense.at(suffix), acc, acc && stop_after_observed);
        };
        l.attn_norm = block.attn_norm_.data();
        l.mlp_norm = block.mlp_norm_.data();
        l.wq = make("self_attn.q_proj.weight");
        l.wk = make("self_attn.k_proj.weight");
        l.wv = make("self_attn.v_proj.weight");
        l.wo = make("self_attn.o_proj.weight");
        l.w_gate = make("mlp.gate_proj.weight");
        l.w_up = make("mlp.up_proj.weight");
        l.w_down = make("mlp.down_proj.weight");
        if (!block.bq_.empty()) {
            l.bq = block.bq_.data();
            l.bk = block.bk_.data();
            l.bv = block.bv_.data();
        }
        if (!block.bo_.empty()) l.bo = block.bo_.data();
        return l;
    }
};

// Offers a probe to the callbacks of one stage.
struct ProbeScope {
    BlockWeights& block;
    ProbeScope(BlockWeights& b, const BlockOutputProbe* probe) : block(b) { block.probe_ = probe; }
    ~ProbeScope() { block.probe_ = nullptr; }
};

namespace {

// BlockOutputProbe over the hidden states entering the stage: the
// attention heads (AttnInput) or the MLP (MlpInput) of this block. The
// reference outputs (current weights) are computed on first use.
class ModuleProbe : public BlockOutputProbe {
public:
    ModuleProbe(const LlamaTransformer& transformer, BlockWeights& block, BlockAssembly& assembly, size_t layer_index,
                InferenceState& state, const std::vector<float>& hidden, int64_t samples, int64_t len, InputSpace space)
        : transformer_(transformer), block_(block), assembly_(assembly), layer_index_(layer_index), state_(state),
          hidden_(hidden), len_(len), space_(space) {
        probed_ = std::clamp<int64_t>(kProbeTokens / std::max<int64_t>(len, 1), 1, samples);
    }

    double output_error(const std::map<std::string, const float*>& replaced) const override {
        if (reference_.empty()) reference_ = run({});
        const std::vector<float> out = run(replaced);
        double error = 0;
        for (size_t i = 0; i < out.size(); ++i) {
            const double d = static_cast<double>(out[i]) - static_cast<double>(reference_[i]);
            error += d * d;
        }
        return error;
    }

private:
    std::vector<float> run(const std::map<std::string, const float*>& replaced) const {
        LlamaWeights::Layer layer = assembly_.layer(block_, {}, false);
        for (const auto& [suffix, weights] : replaced) {
            auto linear = std::make_unique<DenseLinear>(weights, block_.rows(suffix), block_.cols(suffix), nullptr);
            if (suffix == "self_attn.q_proj.weight") layer.wq = std::move(linear);
            else if (suffix == "self_attn.k_proj.weight") layer.wk = std::move(linear);
            else if (suffix == "self_attn.v_proj.weight") layer.wv = std::move(linear);
            else if (suffix == "mlp.gate_proj.weight") layer.w_gate = std::move(linear);
            else if (suffix == "mlp.up_proj.weight") layer.w_up = std::move(linear);
            else fail("block output probe: ", suffix, " is not read by the probed module");
        }
        const ModelConfig& c = transformer_.config();
        const int64_t d = c.hidden_size;
        const int64_t width = space_ == InputSpace::AttnInput ? c.q_dim() : d;
        std::vector<float> out(static_cast<size_t>(probed_ * len_ * width));
        for (int64_t s = 0; s < probed_; ++s) {
            const float* x = hidden_.data() + s * len_ * d;
            float* o = out.data() + s * len_ * width;
            if (space_ == InputSpace::AttnInput) {
                transformer_.forward_attention_heads(layer, layer_index_, state_, len_, x, o);
            } else {
                // forward_mlp adds its output to x in place; the residual is
                // the same for every candidate, so it cancels in the error.
                std::copy(x, x + len_ * d, o);
                transformer_.forward_mlp(layer, len_, o);
            }
        }
        return out;
    }

    const LlamaTransformer& transformer_;
    BlockWeights& block_;
    BlockAssembly& assembly_;
    size_t layer_index_;
    InferenceState& state_;
    const std::vector<float>& hidden_;
    int64_t len_;
    InputSpace space_;
    int64_t probed_ = 1;
    mutable std::vector<float> reference_;
};

// Feeds one observed stage: runs `step` for every sample, tolerating the
// observer's early stop.
template <typename Step>
void for_each_sample(int64_t samples, const Step& step) {
    for (int64_t s = 0; s < samples; ++s) {
        try {
            step(s);
        } catch (const StopBlock&) {
        }
    }
}

// The rows of one sample that reach an observed linear.
class RowCapture final : public RowObserver {
public:
    void add(const float* x, int64_t n) override { rows.insert(rows.end(), x, x + n * width); }
    int64_t width = 0;
    std::vector<float> rows;
};

// Shows rows to two observers.
class RowTee final : public RowObserver {
public:
    RowTee(RowObserver& a, RowObserver* b) : a_(a), b_(b) {}
    void add(const float* x, int64_t n) override {
        a_.add(x, n);
        if (b_) b_->add(x, n);
    }

private:
    RowObserver& a_;
    RowObserver* b_;
};

// The full-precision model beside the compressed one, for the upstream
// correction: the block's original weights and the full-precision hidden
// states entering it (all samples).
struct ReferenceBlock {
    BlockWeights& weights;
    BlockAssembly& assembly;
    std::vector<float>& hidden;
};

// The sequential mode for one block (see block_runner.h). Attention runs
// once: the heads' output (o_proj's input) is kept for all samples, so the
// later stages need only o_proj and the MLP. `hidden` leaves as the block's
// output. With a reference, every stage also runs the same step of the
// unmodified block on the full-precision hidden states, sample by sample
// and just before the compressed one, to pair the two runs' inputs token by
// token (calibration/upstream_correction.h); `reference->hidden` leaves as
// the full-precision block's output.
void run_sequential_block(const LlamaTransformer& transformer, BlockWeights& block, BlockAssembly& assembly,
                          size_t layer_index, InferenceState& state, const CalibrationSamples& samples,
                          std::vector<float>& hidden, ReferenceBlock* reference, const RunnerOptions& options,
                          const SpaceCallback& callback, RunnerReport& report) {
    const ModelConfig& c = transformer.config();
    const int64_t d = c.hidden_size, qd = c.q_dim(), len = samples.len, n_samples = samples.samples;
    const auto x = [&](int64_t s) { return hidden.data() + s * len * d; };
    std::vector<float> reference_scratch(reference ? static_cast<size_t>(len * d) : 0);
    // The full-precision side of a stage for sample s: shows the space's
    // inputs to `observer` and advances reference->hidden like the
    // compressed side advances `hidden` (attention once, then the MLP).
    std::vector<float> reference_attended(reference ? static_cast<size_t>(len * qd) : 0);
    const auto reference_step = [&](InputSpace space, const LlamaWeights::Layer& layer, RowObserver& observer,
                                    int64_t s) {
        float* fp = reference->hidden.data() + s * len * d;
        switch (space) {
            case InputSpace::AttnInput:
                transformer.forward_attention_heads(layer, layer_index, state, len, fp, reference_attended.data());
                break;
            case InputSpace::AttnOutput:
                // The heads' output, then the residual in place: from here
                // on the sample's hidden state is the MLP's input.
                transformer.forward_attention_heads(layer, layer_index, state, len, fp, reference_attended.data());
                observer.add(reference_attended.data(), len);
                transformer.forward_attention_residual(layer, len, reference_attended.data(), fp);
                break;
            case InputSpace::MlpInput:
            case InputSpace::MlpHidden:
                std::copy(fp, fp + len * d, reference_scratch.begin());
                transformer.forward_mlp(layer, len, reference_scratch.data());
                break;
        }
    };
    const auto stage = [&](InputSpace space, const auto& step) {
        const int64_t dim = input_space_dim(c, space);
        StatisticsAccumulator accumulator(dim, options.collect_hessian || reference);
        RowCapture compressed_rows, reference_rows;
        compressed_rows.width = reference_rows.width = dim;
        RowTee observer(accumulator, reference ? &compressed_rows : nullptr);
        std::array<RowObserver*, 4> observe{}, observe_reference{};
        for (size_t i = 0; i < kInputSpaces.size(); ++i) {
            if (kInputSpaces[i] != space) continue;
            if (space != InputSpace::AttnOutput) {
                observe[i] = &observer;
                observe_reference[i] = &reference_rows;
            }
        }
        const LlamaWeights::Layer layer = assembly.layer(block, observe, true);
        std::optional<CrossProductAccumulator> cross;
        bool inputs_differ = false;
        if (!reference) {
            for_each_sample(n_samples, [&](int64_t s) { step(layer, observer, s); });
        } else {
            cross.emplace(dim);
            const LlamaWeights::Layer reference_layer = reference->assembly.layer(reference->weights, observe_reference, true);
            for (int64_t s = 0; s < n_samples; ++s) {
                reference_rows.rows.clear();
                compressed_rows.rows.clear();
                try {
                    reference_step(space, reference_layer, reference_rows, s);
                } catch (const StopBlock&) {
                }
                try {
                    step(layer, observer, s);
                } catch (const StopBlock&) {
                }
                if (reference_rows.rows.size() != compressed_rows.rows.size() ||
                    compressed_rows.rows.size() != static_cast<size_t>(len * dim)) {
                    fail("upstream correction: block ", layer_index, " ", input_space_name(space), " saw ",
                         compressed_rows.rows.size(), " and ", reference_rows.rows.size(), " values for ", len,
                         " tokens of width ", dim);
                }
                inputs_differ = inputs_differ || compressed_rows.rows != reference_rows.rows;
                cross->add(compressed_rows.rows.data(), reference_rows.rows.data(), len);
            }
        }
        ActivationStatistics statistics = accumulator.finish();
        if (cross && inputs_differ) {
            std::vector<CorrectedLinear> linears;
            for (const std::string& suffix : input_space_linears(space)) {
                linears.push_back({block.weight(suffix).data(), block.rows(suffix)});
            }
            const UpstreamCorrection done =
                correct_upstream(linears, dim, statistics.hessian, cross->finish(), options.correction_damping);
            if (done.applied) {
                report.corrected_linears += static_cast<int64_t>(linears.size());
            } else {
                report.warnings.push_back("block " + std::to_string(layer_index) + " " + input_space_name(space) +
                                          ": no upstream correction: " + done.failure);
                if (options.log) options.log("warning: " + report.warnings.back());
            }
        }
        if (!options.collect_hessian) statistics.hessian.clear();
        if (space == InputSpace::AttnInput || space == InputSpace::MlpInput) {
            const ModuleProbe probe(transformer, block, assembly, layer_index, state, hidden, n_samples, len, space);
            const ProbeScope scope(block, &probe);
            callback(space, statistics, block);
        } else {
            callback(space, statistics, block);
        }
    };
    std::vector<float> scratch(static_cast<size_t>(len * qd));
    stage(InputSpace::AttnInput, [&](const LlamaWeights::Layer& layer, RowObserver&, int64_t s) {
        transformer.forward_attention_heads(layer, layer_index, state, len, x(s), scratch.data());
    });
    std::vector<float> attended(static_cast<size_t>(n_samples * len * qd));
    stage(InputSpace::AttnOutput, [&](const LlamaWeights::Layer& layer, RowObserver& observer, int64_t s) {
        float* a = attended.data() + s * len * qd;
        transformer.forward_attention_heads(layer, layer_index, state, len, x(s), a);
        observer.add(a, len);
    });
    {
        // o_proj is final now: hidden becomes the attention residual.
        const LlamaWeights::Layer layer = assembly.layer(block, {}, false);
        for (int64_t s = 0; s < n_samples; ++s) {
            transformer.forward_attention_residual(layer, len, attended.data() + s * len * qd, x(s));
        }
        std::vector<float>().swap(attended);
    }
    // The observers stop the MLP before its residual add, so hidden stays
    // the MLP's input through both stages.
    for (InputSpace space : {InputSpace::MlpInput, InputSpace::MlpHidden}) {
        stage(space, [&](const LlamaWeights::Layer& layer, RowObserver&, int64_t s) {
            transformer.forward_mlp(layer, len, x(s));
        });
    }
    const LlamaWeights::Layer layer = assembly.layer(block, {}, false);
    for (int64_t s = 0; s < n_samples; ++s) transformer.forward_mlp(layer, len, x(s));
    if (reference) {
        const LlamaWeights::Layer full = reference->assembly.layer(reference->weights, {}, false);
        for (int64_t s = 0; s < n_samples; ++s) transformer.forward_mlp(full, len, reference->hidden.data() + s * len * d);
    }
}

}  // namespace

RunnerReport run_calibration(const ModelSource& model, const CalibrationSamples& samples,
                             const RunnerOptions& options, const SpaceCallback& callback) {
    const ModelConfig& c = model.config;
    const int64_t d = c.hidden_size, len = samples.len, n_samples = samples.samples;
    if (n_samples < 1 || len < 1 || static_cast<int64_t>(samples.tokens.size()) != n_samples * len) {
        fail("calibration samples are inconsistent: ", samples.tokens.size(), " tokens for ", n_samples, " x ", len);
    }
    const auto start = std::chrono::steady_clock::now();
    // The transformer's block code only; its own weights stay empty.
    const LlamaTransformer transformer(c, LlamaWeights{}, "calibration");
    std::unique_ptr<InferenceState> state = transformer.new_state(len);

    // Hidden states entering the current block, all samples.
    std::vector<float> hidden(static_cast<size_t>(n_samples * len * d));
    const Tensor& embed = model.tensors.get("model.embed_tokens.weight", {c.vocab_size, d});
    const float multiplier = static_cast<float>(c.embedding_multiplier());
    for (int64_t i = 0; i < n_samples * len; ++i) {
        const int32_t id = samples.tokens[static_cast<size_t>(i)];
        if (id < 0 || id >= c.vocab_size) {
            fail("calibration token id ", id, " is outside the vocabulary (", c.vocab_size, ")");
        }
        float* row = hidden.data() + i * d;
        embed.rows_to_f32(id, id + 1, row);
        if (multiplier != 1.0f) {
            for (int64_t k = 0; k < d; ++k) row[k] *= multiplier;
        }
    }

    RunnerReport report;
    if (len > c.max_position_embeddings) {
        report.warnings.push_back("calibration samples of " + std::to_string(len) +
                                  " tokens exceed the model's max_position_embeddings " +
                                  std::to_string(c.max_position_embeddings));
        if (options.log) options.log("warning: " + report.warnings.back());
    }
    report.samples = n_samples;
    report.tokens = n_samples * len;
    if (options.correct_upstream && !options.sequential) {
        fail("the upstream correction needs the sequential calibration runner");
    }
    // The full-precision hidden states, for the upstream correction.
    std::vector<float> reference_hidden;
    if (options.correct_upstream) reference_hidden = hidden;
    for (int64_t l = 0; l < c.num_layers; ++l) {
        const auto block_start = std::chrono::steady_clock::now();
        BlockWeights block(model, l);
        BlockAssembly assembly(block);
        const size_t layer_index = static_cast<size_t>(l);
        if (!options.sequential) {
            std::vector<StatisticsAccumulator> accumulators;
            std::array<RowObserver*, 4> observe{};
            accumulators.reserve(kInputSpaces.size());
            for (InputSpace space : kInputSpaces) {
                accumulators.emplace_back(input_space_dim(c, space), options.collect_hessian);
            }
            for (size_t s = 0; s < kInputSpaces.size(); ++s) observe[s] = &accumulators[s];
            const LlamaWeights::Layer layer = assembly.layer(block, observe, false);
            for (int64_t s = 0; s < n_samples; ++s) {
                transformer.forward_block(layer, layer_index, *state, len, hidden.data() + s * len * d);
            }
            for (size_t s = 0; s < kInputSpaces.size(); ++s) {
                callback(kInputSpaces[s], accumulators[s].finish(), block);
            }
        } else {
            if (options.correct_upstream) {
                BlockWeights original(model, l);
                BlockAssembly original_assembly(original);
                ReferenceBlock reference{original, original_assembly, reference_hidden};
                run_sequential_block(transformer, block, assembly, layer_index, *state, samples, hidden, &reference,
                                     options, callback, report);
            } else {
                run_sequential_block(transformer, block, assembly, layer_index, *state, samples, hidden, nullptr,
                                     options, callback, report);
            }
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - block_start).count();
        report.block_seconds.push_back(seconds);
        if (options.log) {
            char line[160];
            std::snprintf(line, sizeof line, "calibration: block %lld/%lld in %.2f s (%lld samples x %lld tokens%s)",
                          static_cast<long long>(l + 1), static_cast<long long>(c.num_layers), seconds,
                          static_cast<long long>(n_samples), static_cast<long long>(len),
                          options.sequential ? ", sequential" : "");
            options.log(line);
        }
    }
    report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return report;
}

}  // namespace sparq
