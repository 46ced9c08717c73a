// Which tensors a Llama-family model needs and how they fill LlamaWeights,
// written once for every source of weights. A Loader provides
//   bool has(name);  const float* array(name, shape);
//   std::unique_ptr<Linear> linear(name, rows, cols);
//   std::vector<std::shared_ptr<const void>> keep_alive;  (moved into the result)
// (the dense loader reads a TensorMap, the packed one a .sparq file).
#pragma once

#include <string>

#include "models/llama_reference.h"
#include "models/model_source.h"

namespace sparq {

template <typename Loader>
LlamaWeights build_llama_weights(const ModelConfig& c, Loader& load) {
    LlamaWeights w;
    const int64_t d = c.hidden_size, q = c.q_dim(), kv = c.kv_dim(), ff = c.intermediate_size, vocab = c.vocab_size;
    w.embed = load.linear("model.embed_tokens.weight", vocab, d);
    w.final_norm = load.array("model.norm.weight", {d});
    // A tied model may still ship a separate head; use it when present.
    if (!c.tie_word_embeddings || load.has("lm_head.weight")) w.head = load.linear("lm_head.weight", vocab, d);
    for (int64_t l = 0; l < c.num_layers; ++l) {
        auto name = [&](const std::string& s) { return layer_tensor_name(l, s); };
        LlamaWeights::Layer layer;
        layer.attn_norm = load.array(name("input_layernorm.weight"), {d});
        layer.wq = load.linear(name("self_attn.q_proj.weight"), q, d);
        layer.wk = load.linear(name("self_attn.k_proj.weight"), kv, d);
        layer.wv = load.linear(name("self_attn.v_proj.weight"), kv, d);
        layer.wo = load.linear(name("self_attn.o_proj.weight"), d, q);
        layer.mlp_norm = load.array(name("post_attention_layernorm.weight"), {d});
        layer.w_gate = load.linear(name("mlp.gate_proj.weight"), ff, d);
        layer.w_up = load.linear(name("mlp.up_proj.weight"), ff, d);
        layer.w_down = load.linear(name("mlp.down_proj.weight"), d, ff);
        if (c.attention_bias) {
            layer.bq = load.array(name("self_attn.q_proj.bias"), {q});
            layer.bk = load.array(name("self_attn.k_proj.bias"), {kv});
            layer.bv = load.array(name("self_attn.v_proj.bias"), {kv});
            if (load.has(name("self_attn.o_proj.bias"))) layer.bo = load.array(name("self_attn.o_proj.bias"), {d});
        }
        w.layers.push_back(std::move(layer));
    }
    // The loader kept alive whatever the arrays point into.
    w.keep_alive = std::move(load.keep_alive);
    return w;
}

}  // namespace sparq
