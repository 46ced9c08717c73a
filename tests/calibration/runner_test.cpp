// The layer-sequential runner: forward_block chains to exactly forward();
// statistics equal a direct computation from the block inputs; the
// sequential mode sees rewritten weights and, without rewrites, gives the
// statistics mode's numbers; results do not depend on the thread count.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "calibration/block_runner.h"
#include "core/error.h"
#include "core/parallel.h"
#include "models/llama_reference.h"
#include "tiny_model.h"

namespace sparq {
namespace {

CalibrationSamples tiny_samples(const Tokenizer& tokenizer, int64_t samples, int64_t len) {
    const std::string dir = testing::temp_dir("runner-samples");
    testing::write_file(dir + "/t.txt", testing::tiny_text(static_cast<size_t>(samples * len * 2)));
    return draw_calibration_samples({dir + "/t.txt", samples, len, 5}, tokenizer);
}

using StatisticsMap = std::map<std::pair<int64_t, int>, ActivationStatistics>;

StatisticsMap run(const ModelSource& model, const CalibrationSamples& samples, bool sequential,
                  const SpaceCallback& extra = {}) {
    StatisticsMap out;
    RunnerOptions options;
    options.sequential = sequential;
    run_calibration(model, samples, options, [&](InputSpace space, const ActivationStatistics& s, BlockWeights& b) {
        out[{b.layer(), static_cast<int>(space)}] = s;
        if (extra) extra(space, s, b);
    });
    return out;
}

TEST(Runner, ForwardBlockChainsToForward) {
    const ModelSource model = testing::tiny_model();
    const LlamaReference reference(model.config, model.tensors);
    const std::vector<int32_t> tokens = model.tokenizer->encode("the cat sat on the mat", true);
    const int64_t n = static_cast<int64_t>(tokens.size()), d = model.config.hidden_size, v = model.config.vocab_size;
    std::vector<float> expected(static_cast<size_t>(n * v)), actual(static_cast<size_t>(n * v));
    auto state = reference.new_state(n);
    reference.forward(*state, tokens, expected.data(), true);

    auto block_state = reference.new_state(n);
    std::vector<float> x(static_cast<size_t>(n * d));
    for (int64_t t = 0; t < n; ++t) reference.weights().embed->row(tokens[t], x.data() + t * d);
    for (size_t l = 0; l < reference.weights().layers.size(); ++l) {
        reference.forward_block(reference.weights().layers[l], l, *block_state, n, x.data());
    }
    std::vector<float> xn(x.size());
    rms_norm(x.data(), reference.weights().final_norm, n, d, model.config.rms_norm_eps, xn.data());
    reference.weights().output().forward(xn.data(), n, actual.data(), v);
    EXPECT_EQ(actual, expected);
}

TEST(Runner, StatisticsEqualADirectComputation) {
    const ModelSource model = testing::tiny_model();
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 3, 20);
    const StatisticsMap stats = run(model, samples, false);
    ASSERT_EQ(stats.size(), 8u);
    const LlamaReference reference(model.config, model.tensors);
    const int64_t d = model.config.hidden_size, len = samples.len;
    // Inputs of q/k/v in both blocks, from the reference's own block code.
    std::vector<std::vector<double>> h(2, std::vector<double>(static_cast<size_t>(d * d), 0.0));
    std::vector<double> mean_abs(static_cast<size_t>(d), 0.0), max_abs(static_cast<size_t>(d), 0.0);
    auto state = reference.new_state(len);
    for (int64_t s = 0; s < samples.samples; ++s) {
        std::vector<float> x(static_cast<size_t>(len * d)), xn(x.size());
        for (int64_t t = 0; t < len; ++t) reference.weights().embed->row(samples.sample(s)[t], x.data() + t * d);
        for (int64_t l = 0; l < 2; ++l) {
            rms_norm(x.data(), reference.weights().layers[l].attn_norm, len, d, model.config.rms_norm_eps, xn.data());
            for (int64_t t = 0; t < len; ++t) {
                for (int64_t i = 0; i < d; ++i) {
                    const double xi = xn[t * d + i];
                    if (l == 1) {
                        mean_abs[i] += std::fabs(xi);
                        max_abs[i] = std::max(max_abs[i], std::fabs(xi));
                    }
                    for (int64_t j = 0; j < d; ++j) h[l][i * d + j] += xi * xn[t * d + j];
                }
            }
            reference.forward_block(reference.weights().layers[l], static_cast<size_t>(l), *state, len, x.data());
        }
    }
    const double tokens = static_cast<double>(samples.samples * len);
    for (int64_t l = 0; l < 2; ++l) {
        const ActivationStatistics& a = stats.at({l, static_cast<int>(InputSpace::AttnInput)});
        EXPECT_EQ(a.tokens, samples.samples * len);
        ASSERT_EQ(a.hessian.size(), h[l].size());
        for (size_t i = 0; i < a.hessian.size(); ++i) {
            const double expected = h[l][i] / tokens;
            EXPECT_NEAR(a.hessian[i], expected, 1e-5 * (1 + std::fabs(expected))) << "layer " << l << " entry " << i;
        }
        for (int64_t i = 0; i < d; ++i) EXPECT_NEAR(a.mean_square[i], h[l][i * d + i] / tokens, 1e-9);
    }
    const ActivationStatistics& a1 = stats.at({1, static_cast<int>(InputSpace::AttnInput)});
    for (int64_t i = 0; i < d; ++i) {
        EXPECT_NEAR(a1.mean_abs[i], mean_abs[i] / tokens, 1e-9);
        EXPECT_DOUBLE_EQ(a1.max_abs[i], max_abs[i]);
    }
    // Widths of the other spaces.
    EXPECT_EQ(stats.at({0, static_cast<int>(InputSpace::AttnOutput)}).dim, model.config.q_dim());
    EXPECT_EQ(stats.at({0, static_cast<int>(InputSpace::MlpHidden)}).dim, model.config.intermediate_size);
}

TEST(Runner, SequentialModeWithoutRewritesMatchesStatisticsMode) {
    const ModelSource model = testing::tiny_model();
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 2, 24);
    const StatisticsMap a = run(model, samples, false);
    const StatisticsMap b = run(model, samples, true);
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [key, s] : a) {
        EXPECT_EQ(s.hessian, b.at(key).hessian);
        EXPECT_EQ(s.mean_square, b.at(key).mean_square);
        EXPECT_EQ(s.max_abs, b.at(key).max_abs);
    }
}

TEST(Runner, SequentialModeSeesRewrittenWeights) {
    const ModelSource model = testing::tiny_model();
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 2, 24);
    const StatisticsMap plain = run(model, samples, true);
    // Zeroing v_proj once q/k/v are "done" makes the attention output, hence
    // o_proj's input, exactly zero; the next block then sees other inputs.
    const StatisticsMap rewritten = run(model, samples, true, [](InputSpace space, const ActivationStatistics&, BlockWeights& b) {
        if (space == InputSpace::AttnInput && b.layer() == 0) {
            std::vector<float>& v = b.weight("self_attn.v_proj.weight");
            std::fill(v.begin(), v.end(), 0.0f);
        }
    });
    const ActivationStatistics& o = rewritten.at({0, static_cast<int>(InputSpace::AttnOutput)});
    for (double m : o.max_abs) EXPECT_EQ(m, 0.0);
    EXPECT_GT(plain.at({0, static_cast<int>(InputSpace::AttnOutput)}).max_abs[0], 0.0);
    EXPECT_EQ(rewritten.at({0, static_cast<int>(InputSpace::AttnInput)}).hessian,
              plain.at({0, static_cast<int>(InputSpace::AttnInput)}).hessian);
    EXPECT_NE(rewritten.at({1, static_cast<int>(InputSpace::AttnInput)}).hessian,
              plain.at({1, static_cast<int>(InputSpace::AttnInput)}).hessian);
}

TEST(Runner, SameStatisticsForAnyThreadCount) {
    ModelConfig c = testing::tiny_config();
    c.hidden_size = 96;  // wide enough for the products to split into chunks
    c.num_heads = 12;
    c.num_kv_heads = 4;
    c.intermediate_size = 160;
    const ModelSource model = testing::tiny_model(3, c);
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 2, 40);
    StatisticsMap one, many;
    {
        ThreadLimit limit(1);
        one = run(model, samples, true);
    }
    {
        ThreadLimit limit(3);
        many = run(model, samples, true);
    }
    for (const auto& [key, s] : one) {
        EXPECT_EQ(s.hessian, many.at(key).hessian);
        EXPECT_EQ(s.mean_abs, many.at(key).mean_abs);
    }
}

TEST(Statistics, AccumulatorMatchesADirectSumAcrossBands) {
    const int64_t dim = 300, n = 37;  // two bands of the product, the last short
    std::mt19937 rng(4);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    StatisticsAccumulator acc(dim, true);
    std::vector<double> h(static_cast<size_t>(dim * dim), 0.0);
    for (int batch = 0; batch < 3; ++batch) {
        std::vector<float> x(static_cast<size_t>(n * dim));
        for (float& v : x) v = normal(rng);
        acc.add(x.data(), n);
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < dim; ++i)
                for (int64_t j = 0; j < dim; ++j) h[i * dim + j] += static_cast<double>(x[t * dim + i]) * x[t * dim + j];
    }
    const ActivationStatistics s = acc.finish();
    EXPECT_EQ(s.tokens, 3 * n);
    for (size_t i = 0; i < h.size(); ++i) EXPECT_NEAR(s.hessian[i], h[i] / (3 * n), 1e-5);
    for (int64_t i = 0; i < dim; ++i) EXPECT_EQ(s.hessian[i * dim + 7], s.hessian[7 * dim + i]);  // symmetric
    EXPECT_EQ(acc.tokens(), 0);  // emptied by finish
}

TEST(Runner, TokensOutsideTheVocabularyAreErrors) {
    const ModelSource model = testing::tiny_model();
    CalibrationSamples samples;
    samples.samples = 1;
    samples.len = 4;
    samples.tokens = {1, 5, 999, 7};
    EXPECT_THROW(run(model, samples, false), Error);
}

}  // namespace
}  // namespace sparq

namespace sparq {
namespace {

// The block-output probe: offered for q/k/v and gate/up in sequential mode
// only; zero error for a copy of the current weights, positive for a
// changed linear, an error for a linear the module does not read.
TEST(Runner, OutputProbeComparesTheModuleWithItsCurrentWeights) {
    const ModelSource model = testing::tiny_model();
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 2, 24);
    int offered = 0;
    std::map<int, double> copy_error, changed_error;
    RunnerOptions options;
    options.sequential = true;
    run_calibration(model, samples, options, [&](InputSpace space, const ActivationStatistics&, BlockWeights& b) {
        const BlockOutputProbe* probe = b.output_probe();
        const bool expected = space == InputSpace::AttnInput || space == InputSpace::MlpInput;
        EXPECT_EQ(probe != nullptr, expected) << input_space_name(space);
        if (!probe || b.layer() != 0) return;
        ++offered;
        const int s = static_cast<int>(space);
        const std::string changed = space == InputSpace::AttnInput ? "self_attn.v_proj.weight" : "mlp.gate_proj.weight";
        const std::string kept = space == InputSpace::AttnInput ? "self_attn.k_proj.weight" : "mlp.up_proj.weight";
        const std::vector<float> copy = b.weight(kept);
        copy_error[s] = probe->output_error({{kept, copy.data()}});
        std::vector<float> w = b.weight(changed);
        for (int64_t col = 0; col < b.cols(changed); ++col) w[static_cast<size_t>(col)] += 0.05f;
        changed_error[s] = probe->output_error({{kept, copy.data()}, {changed, w.data()}});
        const std::string o = "self_attn.o_proj.weight";
        EXPECT_THROW(probe->output_error({{o, b.weight(o).data()}}), Error);
    });
    EXPECT_EQ(offered, 2);
    for (InputSpace space : {InputSpace::AttnInput, InputSpace::MlpInput}) {
        const int s = static_cast<int>(space);
        EXPECT_EQ(copy_error[s], 0.0) << input_space_name(space);
        EXPECT_GT(changed_error[s], 0.0) << input_space_name(space);
    }
    RunnerOptions statistics_mode;
    run_calibration(model, samples, statistics_mode, [&](InputSpace, const ActivationStatistics&, BlockWeights& b) {
        EXPECT_EQ(b.output_probe(), nullptr);
    });
}

}  // namespace
}  // namespace sparq

namespace sparq {
namespace {

// The upstream correction in the runner: nothing changes while no callback
// changes the model (the compressed and full-precision inputs agree); once
// a callback does, the later spaces' weights are replaced before their
// callbacks (the same bits for any thread count), and the full-precision
// run is unaffected by the rewrites.
TEST(Runner, UpstreamCorrectionFollowsTheRewrites) {
    const ModelSource model = testing::tiny_model();
    const CalibrationSamples samples = tiny_samples(*model.tokenizer, 3, 16);
    using Seen = std::map<std::pair<int64_t, std::string>, std::vector<float>>;
    const auto run_corrected = [&](bool rewrite, int threads, RunnerReport* report) {
        const ThreadLimit limit(threads);
        Seen seen;
        RunnerOptions options;
        options.sequential = true;
        options.correct_upstream = true;
        *report = run_calibration(model, samples, options,
                                  [&](InputSpace space, const ActivationStatistics&, BlockWeights& b) {
                                      for (const std::string& suffix : input_space_linears(space)) {
                                          seen[{b.layer(), suffix}] = b.weight(suffix);
                                      }
                                      if (rewrite && b.layer() == 0 && space == InputSpace::AttnOutput) {
                                          for (float& w : b.weight("self_attn.o_proj.weight")) w *= 0.5f;
                                      }
                                  });
        return seen;
    };
    RunnerReport plain_report, rewritten_report, other_threads_report;
    const Seen plain = run_corrected(false, 0, &plain_report);
    EXPECT_EQ(plain_report.corrected_linears, 0);
    EXPECT_TRUE(plain_report.warnings.empty());
    Seen original;
    RunnerOptions uncorrected;
    uncorrected.sequential = true;
    run_calibration(model, samples, uncorrected, [&](InputSpace space, const ActivationStatistics&, BlockWeights& b) {
        for (const std::string& suffix : input_space_linears(space)) original[{b.layer(), suffix}] = b.weight(suffix);
    });
    EXPECT_EQ(plain, original);

    const Seen rewritten = run_corrected(true, 1, &rewritten_report);
    // Block 0: q/k/v and o_proj come before the rewrite; gate/up, down and
    // all of block 1 read inputs it changed.
    EXPECT_EQ(rewritten_report.corrected_linears, 3 + 7);
    for (const auto& [key, weights] : rewritten) {
        const bool before = key.first == 0 && (key.second.find("self_attn") != std::string::npos);
        EXPECT_EQ(weights == original.at(key), before) << key.first << " " << key.second;
    }
    EXPECT_EQ(run_corrected(true, 2, &other_threads_report), rewritten);
}

}  // namespace
}  // namespace sparq

