#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "eval/perplexity.h"

namespace sparq {
namespace {

// A model whose logits are a fixed function of the token it sees, so the
// expected perplexity can be computed by hand.
class TableModel : public CausalLM {
public:
    explicit TableModel(int64_t vocab, float bias = 0) : bias_(bias) {
        config_.vocab_size = vocab;
    }
    const ModelConfig& config() const override { return config_; }
    std::unique_ptr<InferenceState> new_state(int64_t max_tokens) const override {
        auto s = std::make_unique<InferenceState>();
        set_capacity(*s, max_tokens);
        return s;
    }
    void forward(InferenceState& state, std::span<const int32_t> tokens, float* logits, bool all) const override {
        const int64_t v = config_.vocab_size;
        seen_first.push_back(tokens[0]);
        for (size_t t = all ? 0 : tokens.size() - 1; t < tokens.size(); ++t) {
            float* row = logits + (all ? t : 0) * v;
            for (int64_t i = 0; i < v; ++i) row[i] = 0;
            row[(tokens[t] + 1) % v] = bias_;  // favours "next id"
        }
        advance(state, static_cast<int64_t>(tokens.size()));
    }
    std::string path_name() const override { return "table"; }
    mutable std::vector<int32_t> seen_first;

private:
    ModelConfig config_;
    float bias_;
};

TEST(Perplexity, UniformModelHasPerplexityEqualToVocab) {
    const TableModel model(50);
    std::vector<int32_t> tokens(1000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 7) % 50);
    PerplexityOptions o;
    o.ctx = 64;
    const auto r = evaluate_perplexity(model, tokens, o);
    EXPECT_EQ(r.chunks, 1000 / 64);
    EXPECT_EQ(r.tokens_scored, r.chunks * (64 / 2 - 1));
    EXPECT_NEAR(r.ppl, 50.0, 1e-9);
    EXPECT_NEAR(r.ppl_stderr, 0.0, 1e-9);
    EXPECT_EQ(r.text_tokens, 1000);
}

TEST(Perplexity, ScoresTheSecondHalfAgainstTheNextToken) {
    const float bias = 3.0f;
    const TableModel model(10, bias);
    // Tokens count up, so the model's favourite ("next id") is always right.
    std::vector<int32_t> tokens(200);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i % 10);
    PerplexityOptions o;
    o.ctx = 20;
    o.max_chunks = 3;
    o.bos_id = 9;
    const auto r = evaluate_perplexity(model, tokens, o);
    const double p_right = std::exp(bias) / (std::exp(bias) + 9);
    EXPECT_NEAR(r.ppl, 1.0 / p_right, 1e-6);
    EXPECT_EQ(r.chunks, 3);
    EXPECT_EQ(r.tokens_scored, 3 * 9);
    // Every chunk started with BOS instead of its own first token.
    ASSERT_EQ(model.seen_first.size(), 3u);
    for (int32_t first : model.seen_first) EXPECT_EQ(first, 9);
}

TEST(Perplexity, ComparisonWithItselfHasZeroDivergence) {
    const TableModel model(10, 2.0f), other(10, 1.0f);
    std::vector<int32_t> tokens(100);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>(i % 10);
    PerplexityOptions o;
    o.ctx = 10;
    const auto same = evaluate_perplexity(model, tokens, o, &model);
    ASSERT_TRUE(same.reference.has_value());
    EXPECT_NEAR(same.reference->kld_mean, 0.0, 1e-12);
    EXPECT_EQ(same.reference->top1_agreement, 1.0);
    EXPECT_NEAR(same.reference->ref_ppl, same.ppl, 1e-9);
    const auto diff = evaluate_perplexity(model, tokens, o, &other);
    EXPECT_GT(diff.reference->kld_mean, 0.0);
    EXPECT_EQ(diff.reference->top1_agreement, 1.0);  // same argmax, different confidence
}

TEST(Perplexity, KlDivergenceMatchesHandComputation) {
    const float p[2] = {0.0f, 0.0f};               // (1/2, 1/2)
    const float q[2] = {0.0f, std::log(3.0f)};     // (1/4, 3/4)
    const double expected = 0.5 * std::log(0.5 / 0.25) + 0.5 * std::log(0.5 / 0.75);
    EXPECT_NEAR(kl_divergence(p, q, 2), expected, 1e-7);  // log(3) is rounded to float
    EXPECT_NEAR(log_probability(q, 2, 1), std::log(0.75), 1e-7);
}

TEST(Perplexity, TooShortTextIsAClearError) {
    const TableModel model(10);
    std::vector<int32_t> tokens(30, 1);
    PerplexityOptions o;
    o.ctx = 64;
    try {
        evaluate_perplexity(model, tokens, o);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("fewer than one chunk"), std::string::npos);
    }
}

}  // namespace
}  // namespace sparq
