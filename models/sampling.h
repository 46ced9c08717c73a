// Next-token choice for generation. Temperature 0 is greedy (argmax, lowest
// id on ties). Sampling uses the project's own RNG so a seed gives the same
// text on every platform and standard library.
#pragma once

#include <cstdint>

namespace sparq {

// SplitMix64: tiny, fast, and fully specified.
class Rng {
public:
    explicit Rng(uint64_t seed) : state_(seed) {}
    uint64_t next_u64();
    // Uniform in [0, 1) with 53 random bits.
    double next_unit();

private:
    uint64_t state_;
};

int32_t greedy_token(const float* logits, int64_t vocab);

// Samples from softmax(logits / temperature), restricted to the smallest set
// of tokens whose probability reaches top_p (1.0 = no restriction).
int32_t sample_token(const float* logits, int64_t vocab, double temperature, double top_p, Rng& rng);

}  // namespace sparq
