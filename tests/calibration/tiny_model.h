// A tiny in-memory Llama model and a byte tokenizer for calibration tests,
// so they run without the shared data.
#pragma once

#include <cmath>
#include <cstdint>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "models/model_source.h"
#include "test_data.h"
#include "tokenizer/tokenizer.h"

namespace sparq::testing {

// One token per byte: id = byte + 3; 0 unk, 1 BOS, 2 EOS.
class ByteTokenizer : public Tokenizer {
public:
    ByteTokenizer() {
        vocab_.pieces.resize(259);
        vocab_.scores.assign(259, 0.0f);
        vocab_.kinds.assign(259, TokenKind::Byte);
        for (int i = 0; i < 256; ++i) vocab_.pieces[i + 3] = std::string(1, static_cast<char>(i));
        vocab_.pieces[0] = "<unk>";
        vocab_.pieces[1] = "<s>";
        vocab_.pieces[2] = "</s>";
    }
    std::vector<int32_t> encode(std::string_view text, bool add_bos) const override {
        std::vector<int32_t> ids;
        if (add_bos) ids.push_back(1);
        for (unsigned char c : text) ids.push_back(static_cast<int32_t>(c) + 3);
        return ids;
    }
    std::string token_bytes(int32_t id) const override {
        return id >= 3 && id < 259 ? std::string(1, static_cast<char>(id - 3)) : std::string();
    }
    const Vocabulary& vocabulary() const override { return vocab_; }
    const std::string& source_bytes() const override { return source_; }
    std::string source_kind() const override { return "test-bytes"; }

private:
    Vocabulary vocab_;
    std::string source_ = "byte tokenizer";
};

inline ModelConfig tiny_config() {
    ModelConfig c;
    c.hidden_size = 32;
    c.intermediate_size = 48;
    c.num_layers = 2;
    c.num_heads = 4;
    c.num_kv_heads = 2;
    c.head_dim = 8;
    c.vocab_size = 259;
    c.max_position_embeddings = 256;
    return c;
}

inline Tensor random_tensor(Shape shape, std::mt19937& rng, float scale, float offset = 0.0f) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
    for (float& x : v) x = offset + scale * normal(rng);
    return make_f32_tensor(std::move(shape), std::move(v));
}

// Random weights scaled like a trained model's (unit-ish activations).
inline ModelSource tiny_model(uint32_t seed = 1, ModelConfig c = tiny_config()) {
    std::mt19937 rng(seed);
    ModelSource m;
    m.path = "tiny";
    m.format = "test";
    m.config = c;
    m.tokenizer = std::make_shared<ByteTokenizer>();
    const int64_t d = c.hidden_size, ff = c.intermediate_size;
    const float sd = 1.0f / std::sqrt(static_cast<float>(d)), sf = 1.0f / std::sqrt(static_cast<float>(ff));
    m.tensors.add("model.embed_tokens.weight", random_tensor({c.vocab_size, d}, rng, 1.0f));
    m.tensors.add("lm_head.weight", random_tensor({c.vocab_size, d}, rng, sd));
    m.tensors.add("model.norm.weight", random_tensor({d}, rng, 0.1f, 1.0f));
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [&](const std::string& s) { return layer_tensor_name(l, s); };
        m.tensors.add(name("input_layernorm.weight"), random_tensor({d}, rng, 0.3f, 1.0f));
        m.tensors.add(name("post_attention_layernorm.weight"), random_tensor({d}, rng, 0.3f, 1.0f));
        m.tensors.add(name("self_attn.q_proj.weight"), random_tensor({c.q_dim(), d}, rng, sd));
        m.tensors.add(name("self_attn.k_proj.weight"), random_tensor({c.kv_dim(), d}, rng, sd));
        m.tensors.add(name("self_attn.v_proj.weight"), random_tensor({c.kv_dim(), d}, rng, sd));
        m.tensors.add(name("self_attn.o_proj.weight"), random_tensor({d, c.q_dim()}, rng, sd));
        m.tensors.add(name("mlp.gate_proj.weight"), random_tensor({ff, d}, rng, sd));
        m.tensors.add(name("mlp.up_proj.weight"), random_tensor({ff, d}, rng, sd));
        m.tensors.add(name("mlp.down_proj.weight"), random_tensor({d, ff}, rng, sf));
    }
    return m;
}

// A text of varied bytes (words from a small alphabet), long enough for
// `tokens` byte tokens.
inline std::string tiny_text(size_t bytes, uint32_t seed = 7) {
    std::mt19937 rng(seed);
    const std::string words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "Then ", "it ", "ran ", "away!\n"};
    std::string text;
    while (text.size() < bytes) text += words[rng() % 10];
    text.resize(bytes);
    return text;
}

inline void write_file(const std::string& path, const std::string& contents) {
    std::ofstream(path, std::ios::binary) << contents;
}

}  // namespace sparq::testing
