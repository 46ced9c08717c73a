#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"

#include "core/parallel.h"
#include "models/llama_reference.h"
#include "models/model_source.h"
#include "test_data.h"

namespace sparq {
namespace {

std::vector<float> run_logits(const CausalLM& model, const std::vector<int32_t>& tokens) {
    auto state = model.new_state(static_cast<int64_t>(tokens.size()));
    std::vector<float> logits(tokens.size() * static_cast<size_t>(model.config().vocab_size));
    model.forward(*state, tokens, logits.data(), true);
    return logits;
}

const std::vector<int32_t> kTokens = {1, 403, 407, 261, 378, 365, 431, 271, 273, 394, 317, 390, 500, 13, 42, 7};

TEST(LlamaReference, Stories260KCopiesGiveBitIdenticalLogits) {
    SPARQ_REQUIRE_DATA("stories260K/stories260K.bin");
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    LoadOptions options;
    options.require_tokenizer = false;
    const ModelSource bin = load_model(testing::data_path("stories260K/stories260K.bin"), options);
    const ModelSource hf = load_model(testing::data_path("stories260K/hf"), options);
    const LlamaReference a(bin.config, bin.tensors), b(hf.config, hf.tensors);
    const auto la = run_logits(a, kTokens), lb = run_logits(b, kTokens);
    ASSERT_EQ(la.size(), lb.size());
    EXPECT_EQ(0, std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)));
}

// A straightforward Llama forward written independently of the library:
// double accumulation everywhere and RoPE as Hugging Face writes it
// (x * cos + rotate_half(x) * sin with cos/sin repeated over both halves).
std::vector<double> naive_forward(const ModelConfig& c, const TensorMap& t, const std::vector<int32_t>& tokens) {
    const int64_t n = static_cast<int64_t>(tokens.size()), d = c.hidden_size, hd = c.head_dim;
    auto W = [&](const std::string& name) { return t.get(name).to_f32(); };
    auto linear = [&](const std::vector<double>& x, const std::vector<float>& w, int64_t out, int64_t in) {
        std::vector<double> y(static_cast<size_t>(n * out));
        for (int64_t s = 0; s < n; ++s)
            for (int64_t o = 0; o < out; ++o) {
                double acc = 0;
                for (int64_t i = 0; i < in; ++i) acc += x[s * in + i] * w[o * in + i];
                y[s * out + o] = acc;
            }
        return y;
    };
    auto norm = [&](const std::vector<double>& x, const std::vector<float>& w) {
        std::vector<double> y(x.size());
        for (int64_t s = 0; s < n; ++s) {
            double ss = 0;
            for (int64_t i = 0; i < d; ++i) ss += x[s * d + i] * x[s * d + i];
            const double r = 1.0 / std::sqrt(ss / d + c.rms_norm_eps);
            for (int64_t i = 0; i < d; ++i) y[s * d + i] = x[s * d + i] * r * w[i];
        }
        return y;
    };
    auto rope = [&](std::vector<double>& x, int64_t heads) {
        for (int64_t s = 0; s < n; ++s)
            for (int64_t h = 0; h < heads; ++h) {
                double* v = &x[(s * heads + h) * hd];
                std::vector<double> rotated(static_cast<size_t>(hd)), out(static_cast<size_t>(hd));
                for (int64_t i = 0; i < hd / 2; ++i) {
                    rotated[i] = -v[i + hd / 2];
                    rotated[i + hd / 2] = v[i];
                }
                for (int64_t i = 0; i < hd; ++i) {
                    const double freq = std::pow(c.rope_theta, -2.0 * static_cast<double>(i % (hd / 2)) / hd);
                    out[i] = v[i] * std::cos(s * freq) + rotated[i] * std::sin(s * freq);
                }
                std::copy(out.begin(), out.end(), v);
            }
    };
    const auto embed = W("model.embed_tokens.weight");
    std::vector<double> x(static_cast<size_t>(n * d));
    for (int64_t s = 0; s < n; ++s)
        for (int64_t i = 0; i < d; ++i) x[s * d + i] = embed[tokens[s] * d + i];
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [&](const std::string& suffix) { return layer_tensor_name(l, suffix); };
        auto h = norm(x, W(name("input_layernorm.weight")));
        auto q = linear(h, W(name("self_attn.q_proj.weight")), c.q_dim(), d);
        auto k = linear(h, W(name("self_attn.k_proj.weight")), c.kv_dim(), d);
        auto v = linear(h, W(name("self_attn.v_proj.weight")), c.kv_dim(), d);
        rope(q, c.num_heads);
        rope(k, c.num_kv_heads);
        std::vector<double> att(static_cast<size_t>(n * c.q_dim()), 0.0);
        for (int64_t head = 0; head < c.num_heads; ++head) {
            const int64_t kvh = head / (c.num_heads / c.num_kv_heads);
            for (int64_t s = 0; s < n; ++s) {
                std::vector<double> p(static_cast<size_t>(s + 1));
                double mx = -1e300, sum = 0;
                for (int64_t u = 0; u <= s; ++u) {
                    double dot = 0;
                    for (int64_t i = 0; i < hd; ++i) dot += q[(s * c.num_heads + head) * hd + i] * k[(u * c.num_kv_heads + kvh) * hd + i];
                    p[u] = dot / std::sqrt(static_cast<double>(hd));
                    mx = std::max(mx, p[u]);
                }
                for (auto& e : p) sum += (e = std::exp(e - mx));
                for (int64_t u = 0; u <= s; ++u)
                    for (int64_t i = 0; i < hd; ++i)
                        att[(s * c.num_heads + head) * hd + i] += p[u] / sum * v[(u * c.num_kv_heads + kvh) * hd + i];
            }
        }
        auto o = linear(att, W(name("self_attn.o_proj.weight")), d, c.q_dim());
        for (size_t i = 0; i < x.size(); ++i) x[i] += o[i];
        h = norm(x, W(name("post_attention_layernorm.weight")));
        auto g = linear(h, W(name("mlp.gate_proj.weight")), c.intermediate_size, d);
        auto up = linear(h, W(name("mlp.up_proj.weight")), c.intermediate_size, d);
        for (size_t i = 0; i < g.size(); ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * up[i];
        auto down = linear(g, W(name("mlp.down_proj.weight")), d, c.intermediate_size);
        for (size_t i = 0; i < x.size(); ++i) x[i] += down[i];
    }
    auto h = norm(x, W("model.norm.weight"));
    return linear(h, W(c.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight"), c.vocab_size, d);
}

TEST(LlamaReference, MatchesAnIndependentNaiveForward) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    LoadOptions options;
    options.require_tokenizer = false;
    const ModelSource m = load_model(testing::data_path("stories260K/hf"), options);
    const LlamaReference model(m.config, m.tensors);
    const auto fast = run_logits(model, kTokens);
    const auto slow = naive_forward(m.config, m.tensors, kTokens);
    ASSERT_EQ(fast.size(), slow.size());
    double max_err = 0;
    for (size_t i = 0; i < fast.size(); ++i) max_err = std::max(max_err, std::abs(fast[i] - slow[i]));
    EXPECT_LT(max_err, 2e-3) << "max abs logit difference";
}

TEST(LlamaReference, IncrementalDecodeMatchesPrefill) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/model.safetensors");
    LoadOptions options;
    options.require_tokenizer = false;
    const ModelSource m = load_model(testing::data_path("small-llama-v2/hf"), options);
    const LlamaReference model(m.config, m.tensors);
    const auto prefill = run_logits(model, kTokens);
    auto state = model.new_state(static_cast<int64_t>(kTokens.size()));
    const int64_t vocab = m.config.vocab_size;
    std::vector<float> step(static_cast<size_t>(vocab));
    for (size_t i = 0; i < kTokens.size(); ++i) {
        model.forward(*state, std::span<const int32_t>(&kTokens[i], 1), step.data(), false);
        for (int64_t v = 0; v < vocab; ++v) {
            ASSERT_NEAR(step[v], prefill[i * vocab + v], 1e-3) << "position " << i << " token " << v;
        }
    }
    EXPECT_EQ(state->position(), static_cast<int64_t>(kTokens.size()));
}

TEST(LlamaReference, BitIdenticalForAnyThreadCount) {
    SPARQ_REQUIRE_DATA("small-llama/hf/model.safetensors");
    LoadOptions options;
    options.require_tokenizer = false;
    const ModelSource m = load_model(testing::data_path("small-llama/hf"), options);
    const LlamaReference model(m.config, m.tensors);
    std::vector<float> one, two;
    {
        ThreadLimit limit(1);
        one = run_logits(model, kTokens);
    }
    {
        ThreadLimit limit(2);
        two = run_logits(model, kTokens);
    }
    EXPECT_EQ(one, two);
}

TEST(LlamaReference, RejectsOutOfRangeTokensAndOverflow) {
    SPARQ_REQUIRE_DATA("stories260K/hf/model.safetensors");
    LoadOptions options;
    options.require_tokenizer = false;
    const ModelSource m = load_model(testing::data_path("stories260K/hf"), options);
    const LlamaReference model(m.config, m.tensors);
    auto state = model.new_state(4);
    std::vector<float> logits(512 * 8);
    const std::vector<int32_t> bad = {1, 512};
    EXPECT_THROW(model.forward(*state, bad, logits.data(), true), Error);
    const std::vector<int32_t> many = {1, 2, 3, 4, 5};
    EXPECT_THROW(model.forward(*state, many, logits.data(), true), Error);
}

}  // namespace
}  // namespace sparq
