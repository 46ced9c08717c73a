// What evaluation and generation need from a model: feed tokens, get
// next-token logits. The FP32 reference forward and the packed runtime both
// implement it, so `sparq eval` and `sparq generate` run either.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "models/config.h"

namespace sparq {

// Per-sequence state (KV cache and position).
class InferenceState {
public:
    virtual ~InferenceState() = default;
    int64_t position() const { return position_; }
    int64_t capacity() const { return capacity_; }

protected:
    int64_t position_ = 0;
    int64_t capacity_ = 0;
    friend class CausalLM;
};

class CausalLM {
public:
    virtual ~CausalLM() = default;
    virtual const ModelConfig& config() const = 0;
    // A fresh state for sequences of up to max_tokens tokens.
    virtual std::unique_ptr<InferenceState> new_state(int64_t max_tokens) const = 0;
    // Appends tokens at the state's position and writes next-token logits:
    // for every token (tokens.size() x vocab) when all_logits, else for the
    // last token only (vocab floats).
    virtual void forward(InferenceState& state, std::span<const int32_t> tokens, float* logits,
                         bool all_logits) const = 0;
    // "reference", or the runtime kernel that ran.
    virtual std::string path_name() const = 0;

protected:
    static void advance(InferenceState& state, int64_t n) { state.position_ += n; }
    static void set_capacity(InferenceState& state, int64_t n) { state.capacity_ = n; }
};

}  // namespace sparq
