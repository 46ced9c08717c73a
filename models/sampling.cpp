#include "models/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace sparq {

uint64_t Rng::next_u64() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double Rng::next_unit() { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53; }

int32_t greedy_token(const float* logits, int64_t vocab) {
    return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);
}

int32_t sample_token(const float* logits, int64_t vocab, double temperature, double top_p, Rng& rng) {
    if (temperature <= 0) return greedy_token(logits, vocab);
    const float max_logit = *std::max_element(logits, logits + vocab);
    std::vector<double> probs(static_cast<size_t>(vocab));
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) {
        probs[i] = std::exp((static_cast<double>(logits[i]) - max_logit) / temperature);
        sum += probs[i];
    }
    std::vector<int32_t> order(static_cast<size_t>(vocab));
    std::iota(order.begin(), order.end(), 0);
    // Stable order (probability, then id) so ties never depend on the sort.
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
        return probs[a] != probs[b] ? probs[a] > probs[b] : a < b;
    });
    size_t keep = order.size();
    if (top_p < 1.0) {
        double cumulative = 0;
        for (size_t i = 0; i < order.size(); ++i) {
            cumulative += probs[order[i]] / sum;
            if (cumulative >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    double kept_sum = 0;
    for (size_t i = 0; i < keep; ++i) kept_sum += probs[order[i]];
    double r = rng.next_unit() * kept_sum;
    for (size_t i = 0; i < keep; ++i) {
        r -= probs[order[i]];
        if (r < 0) return order[i];
    }
    return order[keep - 1];
}

}  // namespace sparq
