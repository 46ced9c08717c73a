// The input a thread last prepared activations from, and the key of the
// layout it prepared them for, so that the next product on the same bytes
// and layout (q, k and v; gate and up read one vector) reuses them. Shared
// by the dense (packed_matmul.cpp) and the sparse Q16 (sparse_matmul.cpp)
// preparations: what each prepares depends only on its key and the input's
// bytes. Inputs of more than kMaxFloats are not kept (long prompts), and
// are prepared every time.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

namespace sparq::kernels {

template <class Key>
class KeptInput {
public:
    static constexpr int64_t kMaxFloats = int64_t{1} << 18;

    // Whether the last kept input had this key and these n floats.
    bool same(const Key& key, const float* x, int64_t n) const {
        return kept_ && key == key_ && static_cast<int64_t>(input_.size()) == n &&
               std::memcmp(input_.data(), x, static_cast<size_t>(n) * sizeof(float)) == 0;
    }
    // Call before preparing afresh (a failed preparation keeps nothing).
    void forget() { kept_ = false; }
    // After preparing: the input and key the prepared activations belong to.
    void keep(const Key& key, const float* x, int64_t n) {
        if (n > kMaxFloats) return;
        input_.assign(x, x + n);
        key_ = key;
        kept_ = true;
    }

private:
    Key key_{};
    std::vector<float> input_;
    bool kept_ = false;
};

}  // namespace sparq::kernels
