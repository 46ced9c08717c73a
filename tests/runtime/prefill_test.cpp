// Many-token products (prefill) against the scalar twins, on every SIMD
// target: with Q8 and Q16 activations they take integer dot products where
// the target has them (AVX3_DL: vpdpbusd / vpdpwssd over token lanes) and
// dequantized float tiles elsewhere. Token counts straddle the 16-token vectors and the
// 2-vector register tiles; shapes leave short last blocks and row tiles.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/half.h"
#include "core/parallel.h"
#include "kernel_test_util.h"
#include "quant/reference_codec.h"

namespace sparq::testing {
namespace {

class Prefill : public PerTarget {};
SPARQ_INSTANTIATE_PER_TARGET(Prefill);

bool target_has_int_dot() { return std::strcmp(packed_kernel_target(), "AVX3_DL") == 0; }

const ActivationMode kIntegerModes[] = {ActivationMode::Q8, ActivationMode::Q16};

TEST_P(Prefill, IntegerDotsOnlyWhereTheTargetHasThem) {
    EXPECT_EQ(packed_int_dot_is_faster(1), false);
    EXPECT_EQ(packed_int_dot_is_faster(7), false);
    EXPECT_EQ(packed_int_dot_is_faster(8), target_has_int_dot());
    EXPECT_EQ(packed_int_dot_is_faster(128), target_has_int_dot());
}

TEST_P(Prefill, RandomMatricesMatchTwin) {
    int64_t compared = 0;
    for (const QuantScheme& s : all_schemes({0, 32, 64, 128, 512})) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5, 40}, {9, 172}, {6, 288}, {3, 1100}}) {
            const PackedTensor& w = cached_matrix(s, rows, cols);
            for (int64_t tokens : {8, 16, 17, 33, 50}) {
                const auto x = normal_values(static_cast<size_t>(tokens * cols), 3 + tokens + cols);
                std::ostringstream what;
                what << s.name() << " [" << rows << ", " << cols << "] tokens " << tokens;
                for (ActivationMode mode : {ActivationMode::Q8, ActivationMode::Q16, ActivationMode::F32})
                    compared += compare_with_twin(w.view(), x, tokens, mode, what.str());
                if (HasFailure()) return;
            }
        }
    }
    EXPECT_GT(compared, 50000);
}

// Zero rows give exact zeros; groups of zero weights and zero activation
// blocks (scale 0) add nothing.
TEST_P(Prefill, ZeroRowsGroupsAndActivationBlocks) {
    const int64_t rows = 7, cols = 300, tokens = 20;
    auto values = random_weights(rows, cols, 12);
    for (int64_t c = 0; c < cols; ++c) values[2 * cols + c] = 0.0f;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 128; c < 256; ++c) values[r * cols + c] = 0.0f;
    auto x = normal_values(static_cast<size_t>(tokens * cols), 13);
    for (int64_t c = 0; c < cols; ++c) x[5 * cols + c] = 0.0f;  // token 5: all zero
    for (int64_t c = 0; c < 64; ++c) x[9 * cols + c] = 0.0f;    // token 9: zero first blocks
    for (const QuantScheme& s : all_schemes({0, 32, 128})) {
        const PackedTensor w = quantize(values, rows, cols, s);
        for (ActivationMode mode : kIntegerModes) {
            compare_with_twin(w.view(), x, tokens, mode, s.name() + " zeros");
            std::vector<float> y(static_cast<size_t>(tokens * rows), 1.0f);
            packed_matmul(w.view(), x.data(), tokens, y.data(), rows, mode);
            for (int64_t t = 0; t < tokens; ++t) EXPECT_EQ(y[t * rows + 2], 0.0f) << s.name() << " token " << t;
            for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(y[5 * rows + r], 0.0f) << s.name() << " row " << r;
            if (HasFailure()) return;
        }
    }
}

// The largest FP16 scales with codes at both ends of their range: the
// integer sums (u * q up to 255 * 127 per term) and the per-block float
// work must neither overflow nor lose the twin's precision.
TEST_P(Prefill, ExtremeCodesAndScales) {
    std::mt19937 gen(31);
    for (const QuantScheme& s : all_schemes({0, 32, 256})) {
        const int64_t rows = 6, cols = 520, tokens = 18;
        PackedTensor w(s, rows, cols);
        std::vector<uint8_t> codes(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
            for (int64_t c = 0; c < cols; ++c) {
                const int pick = static_cast<int>(gen() % 3);
                codes[c] = static_cast<uint8_t>(pick == 0 ? min_code(s) : pick == 1 ? max_code(s) : gen() % (max_code(s) + 1));
                if (codes[c] < min_code(s)) codes[c] = static_cast<uint8_t>(min_code(s));
            }
            pack_code_row(s, codes.data(), cols, w.codes.data() + r * code_row_bytes(s, cols));
        }
        for (size_t i = 0; i < w.scales.size(); ++i) w.scales[i] = i % 2 ? 0x7BFF : 0x0400;  // 65504, 2^-14
        std::vector<uint8_t> zeros(static_cast<size_t>(groups_per_row(s, cols)));
        for (int64_t r = 0; r < rows && !s.symmetric; ++r) {
            for (size_t g = 0; g < zeros.size(); ++g) zeros[g] = static_cast<uint8_t>((r + g) % 2 ? 0 : max_code(s));
            pack_zero_row(s, zeros.data(), static_cast<int64_t>(zeros.size()),
                          w.zeros.data() + r * zero_row_bytes(s, cols));
        }
        auto x = normal_values(static_cast<size_t>(tokens * cols), 32, 100.0f);
        for (int64_t c = 0; c < cols; c += 3) x[c] = 1e4f;  // blocks whose levels hit the ends
        for (ActivationMode mode : kIntegerModes) compare_with_twin(w.view(), x, tokens, mode, s.name() + " extreme");
        if (HasFailure()) return;
    }
}

TEST_P(Prefill, NonFiniteActivationsStayInTheirToken) {
    const int64_t rows = 5, cols = 172, tokens = 19;
    for (const QuantScheme& s : all_schemes({0, 32})) {
        const PackedTensor& w = cached_matrix(s, rows, cols);
        auto x = normal_values(static_cast<size_t>(tokens * cols), 8);
        x[3 * cols + 7] = std::numeric_limits<float>::quiet_NaN();
        x[17 * cols + 170] = -std::numeric_limits<float>::infinity();  // the short last block
        for (ActivationMode mode : kIntegerModes) {
            std::vector<float> y(static_cast<size_t>(tokens * rows));
            packed_matmul(w.view(), x.data(), tokens, y.data(), rows, mode);
            for (int64_t t = 0; t < tokens; ++t)
                for (int64_t r = 0; r < rows; ++r)
                    EXPECT_EQ(std::isfinite(y[t * rows + r]), t != 3 && t != 17) << s.name() << " token " << t;
            if (HasFailure()) return;
        }
    }
}

// Each output is computed the same way whatever token vector, register
// tile, chunk or thread computes it: a token's outputs do not depend on the
// other tokens in the call, and a row's not on the rows around it.
TEST_P(Prefill, OutputsIndependentOfBatchAndThreads) {
    const int64_t rows = 70, cols = 2048 + 96, tokens = 45;
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{8, 0, true}, QuantScheme{4, 128, false},
                                 QuantScheme{8, 64, false}, QuantScheme{3, 128, true}}) {
        const PackedTensor w = quantize(random_weights(rows, cols, 6), rows, cols, s);
        const auto x = normal_values(static_cast<size_t>(tokens * cols), 66);
        for (ActivationMode mode : kIntegerModes) {
            std::vector<float> one(static_cast<size_t>(tokens * rows)), two(one.size());
            {
                ThreadLimit limit(1);
                packed_matmul(w.view(), x.data(), tokens, one.data(), rows, mode);
            }
            {
                ThreadLimit limit(2);
                packed_matmul(w.view(), x.data(), tokens, two.data(), rows, mode);
            }
            ASSERT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << s.name();
            // Tokens 20..35 alone (another token vector, another tile), rows
            // 13..49 alone (other row tiles and chunks).
            const int64_t t0 = 20, nt = 16, r0 = 13, nr = 37;
            PackedView sub = w.view();
            const PackedGeometry g = sub.geometry();
            sub.rows = nr;
            sub.codes += r0 * g.code_row_bytes;
            sub.scales += r0 * 2 * g.groups_per_row;
            if (sub.zeros) sub.zeros += r0 * g.zero_row_bytes;
            std::vector<float> part(static_cast<size_t>(nt * nr));
            packed_matmul(sub, x.data() + t0 * cols, nt, part.data(), nr, mode);
            for (int64_t t = 0; t < nt; ++t)
                for (int64_t r = 0; r < nr; ++r)
                    ASSERT_EQ(part[t * nr + r], one[(t0 + t) * rows + r0 + r])
                        << s.name() << " " << mode_name(mode) << " token " << t0 + t << " row " << r0 + r;
        }
    }
}

}  // namespace
}  // namespace sparq::testing
