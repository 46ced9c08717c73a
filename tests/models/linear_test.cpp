// forward_same_input: layers that cannot share work (dense FP32 ones) run
// one by one, exactly as their own forward(); mismatched outputs are an
// error.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "random_values.h"
#include "core/error.h"
#include "models/linear.h"

namespace sparq {
namespace {

TEST(ForwardSameInput, LayersThatCannotShareRunOneByOne) {
    const int64_t cols = 40, tokens = 3;
    const auto wq = testing::normal_values(24 * cols, 1), wk = testing::normal_values(8 * cols, 2);
    const DenseLinear q(wq.data(), 24, cols, nullptr), k(wk.data(), 8, cols, nullptr);
    const auto x = testing::normal_values(tokens * cols, 3);
    std::vector<float> yq(tokens * 24), yk(tokens * 10, -1.0f), eq(yq.size()), ek(yk.size(), -1.0f);
    const Linear* const layers[] = {&q, &k};
    const LinearOutput outputs[] = {{yq.data(), 24}, {yk.data(), 10}};
    forward_same_input(layers, x.data(), tokens, outputs);
    q.forward(x.data(), tokens, eq.data(), 24);
    k.forward(x.data(), tokens, ek.data(), 10);
    EXPECT_EQ(0, std::memcmp(yq.data(), eq.data(), yq.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(yk.data(), ek.data(), yk.size() * sizeof(float)));  // stride 10: 2 untouched per token

    const LinearOutput one[] = {{yq.data(), 24}};
    EXPECT_THROW(forward_same_input(layers, x.data(), tokens, one), Error);
}

}  // namespace
}  // namespace sparq
