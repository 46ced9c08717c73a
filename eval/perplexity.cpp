#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/error.h"

namespace sparq {

double log_probability(const float* logits, int64_t vocab, int32_t target) {
    float max_logit = logits[0];
    for (int64_t i = 1; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0;
    for (int64_t i = 0; i < vocab; ++i) sum_exp += std::exp(static_cast<double>(logits[i] - max_logit));
    return static_cast<double>(logits[target] - max_logit) - std::log(sum_exp);
}

namespace {

// log-softmax into a double buffer.
void log_softmax(const float* logits, int64_t vocab, std::vector<double>& out) {
    out.resize(static_cast<size_t>(vocab));
    float max_logit = logits[0];
    for (int64_t i = 1; i < vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0;
    for (int64_t i = 0; i < vocab; ++i) sum_exp += std::exp(static_cast<double>(logits[i] - max_logit));
    const double log_sum = std::log(sum_exp);
    for (int64_t i = 0; i < vocab; ++i) out[i] = static_cast<double>(logits[i] - max_logit) - log_sum;
}

int64_t argmax(const float* logits, int64_t vocab) {
    return std::max_element(logits, logits + vocab) - logits;
}

}  // namespace

double kl_divergence(const float* p_logits, const float* q_logits, int64_t vocab) {
    std::vector<double> lp, lq;
    log_softmax(p_logits, vocab, lp);
    log_softmax(q_logits, vocab, lq);
    double kl = 0;
    for (int64_t i = 0; i < vocab; ++i) kl += std::exp(lp[i]) * (lp[i] - lq[i]);
    return std::max(0.0, kl);
}

PerplexityResult evaluate_perplexity(const CausalLM& model, const std::vector<int32_t>& tokens,
                                     const PerplexityOptions& options, const CausalLM* reference) {
    const int64_t ctx = options.ctx;
    if (ctx < 4) fail("--ctx must be at least 4, got ", ctx);
    const int64_t available = static_cast<int64_t>(tokens.size()) / ctx;
    if (available < 1) {
        fail("the text has ", tokens.size(), " tokens: fewer than one chunk of ctx = ", ctx);
    }
    const int64_t chunks = options.max_chunks < 0 ? available : std::min(options.max_chunks, available);
    if (chunks < 1) fail("--chunks must be at least 1");
    const int64_t vocab = model.config().vocab_size;
    if (reference && reference->config().vocab_size != vocab) {
        fail("the reference model's vocabulary (", reference->config().vocab_size,
             ") differs from the model's (", vocab, ")");
    }
    const int64_t first = ctx / 2;

    PerplexityResult result;
    result.ctx = ctx;
    result.chunks = chunks;
    result.text_tokens = static_cast<int64_t>(tokens.size());
    double nll = 0, nll2 = 0, ref_nll = 0;
    int64_t count = 0, agree = 0;
    std::vector<double> klds;
    std::vector<float> logits(static_cast<size_t>(ctx * vocab));
    std::vector<float> ref_logits(reference ? static_cast<size_t>(ctx * vocab) : 0);
    const auto start = std::chrono::steady_clock::now();
    for (int64_t c = 0; c < chunks; ++c) {
        std::vector<int32_t> chunk(tokens.begin() + c * ctx, tokens.begin() + (c + 1) * ctx);
        if (options.replace_first_with_bos) chunk[0] = options.bos_id;
        auto state = model.new_state(ctx);
        model.forward(*state, chunk, logits.data(), true);
        if (reference) {
            auto ref_state = reference->new_state(ctx);
            reference->forward(*ref_state, chunk, ref_logits.data(), true);
        }
        for (int64_t j = first; j < ctx - 1; ++j) {
            const int32_t target = tokens[static_cast<size_t>(c * ctx + j + 1)];
            const float* row = logits.data() + j * vocab;
            const double lp = log_probability(row, vocab, target);
            nll -= lp;
            nll2 += lp * lp;
            ++count;
            if (reference) {
                const float* ref_row = ref_logits.data() + j * vocab;
                ref_nll -= log_probability(ref_row, vocab, target);
                klds.push_back(kl_divergence(ref_row, row, vocab));
                if (argmax(ref_row, vocab) == argmax(row, vocab)) ++agree;
            }
        }
        if (options.progress) options.progress(c + 1, chunks);
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.tokens_scored = count;
    const double mean = nll / static_cast<double>(count);
    result.ppl = std::exp(mean);
    // llama-perplexity's error estimate: the standard error of the mean
    // negative log-likelihood, propagated through exp().
    const double variance = nll2 / static_cast<double>(count) - mean * mean;
    result.ppl_stderr = (variance > 0 && count > 1)
                            ? std::sqrt(variance / static_cast<double>(count - 1)) * result.ppl
                            : 0.0;
    result.tokens_per_second = result.seconds > 0 ? static_cast<double>(chunks * ctx) / result.seconds : 0;
    if (reference) {
        ReferenceComparison cmp;
        double sum = 0;
        for (double k : klds) sum += k;
        cmp.kld_mean = sum / static_cast<double>(klds.size());
        std::vector<double> sorted = klds;
        std::sort(sorted.begin(), sorted.end());
        const size_t idx = std::min(sorted.size() - 1, static_cast<size_t>(std::ceil(0.99 * sorted.size())) - 1);
        cmp.kld_p99 = sorted[idx];
        cmp.top1_agreement = static_cast<double>(agree) / static_cast<double>(count);
        cmp.ref_ppl = std::exp(ref_nll / static_cast<double>(count));
        result.reference = cmp;
    }
    return result;
}

}  // namespace sparq
