// Perplexity exactly as llama.cpp's llama-perplexity computes it (see
// CONTRACT.md): non-overlapping chunks of ctx tokens, the first token of
// each replaced by BOS, each chunk evaluated on its own, positions
// ctx/2 .. ctx-2 scored on the next token. Optionally compares the
// next-token distributions with a reference model (KL divergence, top-1).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "models/causal_lm.h"

namespace sparq {

struct PerplexityOptions {
    int64_t ctx = 512;
    int64_t max_chunks = -1;  // -1: every chunk the text holds
    bool replace_first_with_bos = true;
    int32_t bos_id = 1;
    // Called after each chunk with (chunks done, chunks total).
    std::function<void(int64_t, int64_t)> progress;
};

struct ReferenceComparison {
    double kld_mean = 0;
    double kld_p99 = 0;
    double top1_agreement = 0;
    double ref_ppl = 0;
};

struct PerplexityResult {
    double ppl = 0;
    double ppl_stderr = 0;
    int64_t chunks = 0;
    int64_t ctx = 0;
    int64_t text_tokens = 0;
    int64_t tokens_scored = 0;
    double seconds = 0;
    double tokens_per_second = 0;  // chunks x ctx evaluated per second
    std::optional<ReferenceComparison> reference;
};

// `tokens` is the whole text tokenized once (BOS included where the model
// adds one). With `reference`, both models see the same chunks.
PerplexityResult evaluate_perplexity(const CausalLM& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& options, const CausalLM* reference = nullptr);

// log softmax(logits)[target] computed as llama.cpp does (max-shifted, sum
// of exponentials in double).
double log_probability(const float* logits, int64_t vocab, int32_t target);

// KL(P || Q) for logits p (reference) and q (model), in nats.
double kl_divergence(const float* p_logits, const float* q_logits, int64_t vocab);

}  // namespace sparq
