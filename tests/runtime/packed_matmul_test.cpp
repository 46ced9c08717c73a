// Every dense SIMD kernel against its scalar twin, on every SIMD target the
// kernels were compiled for and this CPU runs: random matrices of every
// scheme at odd shapes, then edge inputs (zero groups and rows, extreme
// scales, NaN/Inf activations), and determinism across thread counts.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "kernel_test_util.h"
#include "quant/reference_codec.h"
#include "runtime/kernels/kernel_args.h"

namespace sparq::testing {
namespace {

class PackedKernels : public PerTarget {};
SPARQ_INSTANTIATE_PER_TARGET(PackedKernels);

TEST_P(PackedKernels, RandomMatricesMatchTwin) {
    int64_t compared = 0;
    for (const QuantScheme& s : all_schemes({0, 32, 64, 128, 512})) {
        for (int64_t rows : {1, 3, 17, 64}) {
            for (int64_t cols : {8, 24, 40, 172, 288, 2048}) {
                const PackedTensor& w = cached_matrix(s, rows, cols);
                for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                    for (int64_t tokens : {1, 2, 7}) {
                        if (tokens == 7 && rows * cols > 40000) continue;  // keeps the twin quick
                        const auto x = normal_values(static_cast<size_t>(tokens * cols), 11 + tokens + cols);
                        std::ostringstream what;
                        what << s.name() << " [" << rows << ", " << cols << "] tokens " << tokens;
                        compared += compare_with_twin(w.view(), x, tokens, mode, what.str());
                        if (HasFailure()) return;
                    }
                }
            }
        }
    }
    EXPECT_GT(compared, 100000);
}

// Decode chunks: whole tiles; a sixteenth of a large matrix; small ones in
// a multiple of four equal chunks where the rows allow (two or four threads
// end together); several tokens about 64 KiB each.
TEST(RowsPerChunk, DecodeChunksSplitEvenly) {
    for (int64_t rows : {1, 4, 8, 52, 256, 333, 2048, 5632, 32000}) {
        for (int64_t row_bytes : {64, 896, 1280, 2304, 6144}) {
            for (int64_t tokens : {1, 7}) {
                const int64_t c = kernels::rows_per_chunk(rows, row_bytes, tokens, 4);
                ASSERT_EQ(0, c % 4) << rows << " " << row_bytes;
                ASSERT_GE(c, 4);
            }
        }
    }
    EXPECT_EQ(32, kernels::rows_per_chunk(256, 1280, 1, 4));   // 2:4 int8 k of 2048 columns: 8 chunks
    EXPECT_EQ(64, kernels::rows_per_chunk(256, 896, 1, 4));    // 2:4 int4 g32 k: 4 chunks
    EXPECT_EQ(128, kernels::rows_per_chunk(2048, 2304, 1, 4)); // q of int8: 16 chunks
    EXPECT_EQ(352, kernels::rows_per_chunk(5632, 1152, 1, 4)); // gate of int4 g32: 16 chunks
    EXPECT_EQ(52, kernels::rows_per_chunk(5632, 1280, 7, 4));  // a prompt: 64 KiB
}

// The byte split of the int4 quad decode rows keeps every level: high byte
// (signed) x 256 + low byte (unsigned), at the columns the layout names.
TEST(QuadBytes, SplitKeepsEveryLevelAtItsColumn) {
    const int64_t cols = 256;
    std::vector<int16_t> x(static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c) x[c] = static_cast<int16_t>((c * 2654435761u) % 65535 - 32767);
    x[5] = 32767;
    x[6] = -32767;
    x[7] = 0;
    x[8] = -1;
    std::vector<uint8_t> bytes(static_cast<size_t>(2 * cols));
    kernels::split_to_quad_bytes(x.data(), cols, bytes.data());
    for (int64_t i = 0; i < cols; i += kernels::kQuadColumns) {
        for (int j = 0; j < 64; ++j) {
            for (int odd = 0; odd < 2; ++odd) {
                const int64_t c = i + 32 * (j / 16) + 2 * (j % 16) + odd;
                const int high = static_cast<int8_t>(bytes[2 * i + 64 * odd + j]);
                const int low = bytes[2 * i + 128 + 64 * odd + j];
                ASSERT_EQ(high * 256 + low, x[c]) << "column " << c;
            }
        }
    }
}

// The per-target byte split and block sums of the quad rows against the
// plain split and a plain sum, on every compiled target.
TEST_P(PackedKernels, QuadActivationPartsMatchPlainLoops) {
    for (int64_t block : {32, 64, 128, 256}) {
        const int64_t cols = 1024;
        std::vector<int16_t> q(static_cast<size_t>(cols));
        for (int64_t c = 0; c < cols; ++c) q[c] = static_cast<int16_t>((c * 2654435761u + block) % 65535 - 32767);
        for (int64_t c = 0; c < block; ++c) q[c] = 0;  // an all-zero block
        q[block] = 32767;
        q[block + 1] = -32767;
        const int64_t blocks = cols / block;
        std::vector<float> dx(static_cast<size_t>(blocks));
        for (int64_t b = 0; b < blocks; ++b) dx[b] = 1e-3f * static_cast<float>(b + 1) / 7.0f;
        dx[blocks - 1] = std::numeric_limits<float>::quiet_NaN();  // a non-finite block's scale
        std::vector<uint8_t> plain(static_cast<size_t>(2 * cols)), simd(plain.size());
        kernels::split_to_quad_bytes(q.data(), cols, plain.data());
        std::vector<float> sums(static_cast<size_t>(blocks));
        quad_activation_parts_simd(q.data(), cols, block, dx.data(), simd.data(), sums.data());
        EXPECT_EQ(plain, simd) << block;
        for (int64_t b = 0; b < blocks; ++b) {
            int64_t sum = 0;
            for (int64_t c = b * block; c < (b + 1) * block; ++c) sum += q[c];
            const float expected = dx[b] * static_cast<float>(sum);
            EXPECT_EQ(0, std::memcmp(&expected, &sums[b], sizeof(float))) << block << " block " << b;
        }
    }
    std::vector<int16_t> q(100);
    std::vector<uint8_t> bytes(200);
    std::vector<float> dx(4), sums(4);
    EXPECT_THROW(quad_activation_parts_simd(q.data(), 100, 32, dx.data(), bytes.data(), sums.data()), Error);
}

// One token on regular shapes takes the wide integer rows on AVX-512
// (int4 in pair order, 32-column groups two per vector; int4 rows of g32
// to g256, either symmetry, and a multiple of 128 columns 128 columns per
// vector from byte-split activations, one row at a time past a 4-row
// tile; groups of 256+ and per-channel rows over several activation
// blocks): every group size, both symmetries, with a zero group, a zero row
// and an outlier activation.
TEST_P(PackedKernels, WideDecodeRowsMatchTwin) {
    int64_t compared = 0;
    for (const QuantScheme& s : all_schemes({0, 32, 64, 128, 256, 512})) {
        if (s.bits != 4 && s.bits != 8) continue;
        for (int64_t cols : {64, 192, 384, 512, 640, 1024 + 512}) {  // 384, 640: a partial vector of scales
            const int64_t rows = 5;
            auto values = random_weights(rows, cols, 31 + static_cast<uint32_t>(cols));
            for (int64_t c = 0; c < cols; ++c) values[2 * cols + c] = 0.0f;  // row 2
            for (int64_t c = 32; c < 64; ++c) values[3 * cols + c] = 0.0f;   // a zero block in row 3
            const PackedTensor w = quantize(values, rows, cols, s);
            auto x = normal_values(static_cast<size_t>(cols), 41 + static_cast<uint32_t>(cols));
            x[static_cast<size_t>(cols / 3)] = 250.0f;  // an outlier takes one block's scale
            for (ActivationMode mode : {ActivationMode::Q8, ActivationMode::Q16}) {
                compared += compare_with_twin(w.view(), x, 1, mode, s.name() + " cols " + std::to_string(cols));
                if (HasFailure()) return;
            }
        }
    }
    EXPECT_GT(compared, 500);
}

// A call's prepared activations are reused by the next call on the same
// input (q, k and v read one vector): an input changed in place at the
// same address, the same input under another scheme or group size, and a
// token count that changes must each be prepared again.
TEST_P(PackedKernels, PreparedActivationsFollowTheInput) {
    const int64_t cols = 2048;
    auto x = normal_values(static_cast<size_t>(2 * cols), 97);
    int64_t compared = 0;
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{4, 128, true}, QuantScheme{8, 0, true},
                                 QuantScheme{4, 32, false}, QuantScheme{4, 32, true}}) {
        const PackedTensor& w = cached_matrix(s, 9, cols);
        for (ActivationMode mode : {ActivationMode::Q16, ActivationMode::Q8, ActivationMode::F32}) {
            compared += compare_with_twin(w.view(), x, 1, mode, s.name() + " first");
            compared += compare_with_twin(w.view(), x, 1, mode, s.name() + " again");
            x[static_cast<size_t>(cols / 2 + 3)] += 0.75f;  // in place: same address, new contents
            x[0] = -x[0];
            compared += compare_with_twin(w.view(), x, 1, mode, s.name() + " changed in place");
            compared += compare_with_twin(w.view(), x, 2, mode, s.name() + " two tokens");
            compared += compare_with_twin(w.view(), x, 1, mode, s.name() + " one token again");
            if (HasFailure()) return;
        }
    }
    EXPECT_EQ(compared, 5 * 3 * 6 * 9);
}

// q, k and v (gate and up) in one call: each output bit-identical to its
// own packed_matmul, with a matrix of no rows in the group, in every mode
// and token count (decode rows, float tiles, integer-dot prefill).
TEST_P(PackedKernels, GroupMatchesSeparateProducts) {
    const int64_t cols = 512;
    int64_t compared = 0;
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{8, 0, true}, QuantScheme{4, 128, false}}) {
        const PackedTensor& q = cached_matrix(s, 96, cols);
        const PackedTensor& k = cached_matrix(s, 24, cols);
        const PackedTensor& v = cached_matrix(s, 17, cols);
        PackedView empty = k.view();
        empty.rows = 0;
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
            for (int64_t tokens : {1, 3, 20}) {
                const auto x = normal_values(static_cast<size_t>(tokens * cols), 7 + tokens);
                const std::vector<PackedView> views = {q.view(), empty, k.view(), v.view()};
                std::vector<std::vector<float>> together(views.size()), alone(views.size());
                std::vector<PackedProduct> products;
                for (size_t i = 0; i < views.size(); ++i) {
                    together[i].assign(static_cast<size_t>(tokens * (views[i].rows + 1)), -3.0f);
                    alone[i] = together[i];
                    products.push_back({views[i], together[i].data(), views[i].rows + 1});
                }
                packed_matmul_group(products, x.data(), tokens, mode);
                for (size_t i = 0; i < views.size(); ++i) {
                    if (views[i].rows > 0) {
                        packed_matmul(views[i], x.data(), tokens, alone[i].data(), views[i].rows + 1, mode);
                    }
                    ASSERT_EQ(0, std::memcmp(together[i].data(), alone[i].data(), together[i].size() * sizeof(float)))
                        << s.name() << " " << mode_name(mode) << " tokens " << tokens << " matrix " << i;
                    compared += static_cast<int64_t>(together[i].size());
                }
            }
        }
    }
    EXPECT_EQ(compared, 3 * 3 * (1 + 3 + 20) * (97 + 1 + 25 + 18));
}

// Matrices of no rows read nothing: not even the input, which may be null.
TEST(PackedGroup, NoRowsReadNoInput) {
    PackedView empty = cached_matrix(QuantScheme{4, 32, true}, 8, 512).view();
    empty.rows = 0;
    const PackedProduct products[] = {{empty, nullptr, 0}, {empty, nullptr, 0}};
    EXPECT_NO_THROW(packed_matmul_group(products, nullptr, 1, ActivationMode::Q16));
    EXPECT_NO_THROW(packed_matmul(empty, nullptr, 1, nullptr, 0, ActivationMode::F32));
}

TEST(PackedGroup, RejectsMatricesOfAnotherInput) {
    const PackedTensor& a = cached_matrix(QuantScheme{4, 32, true}, 8, 512);
    const PackedTensor& b = cached_matrix(QuantScheme{4, 32, true}, 8, 256);
    const PackedTensor& c = cached_matrix(QuantScheme{8, 0, true}, 8, 512);
    const auto x = normal_values(512, 3);
    std::vector<float> y(8), z(8);
    const PackedProduct other_cols[] = {{a.view(), y.data(), 8}, {b.view(), z.data(), 8}};
    const PackedProduct other_scheme[] = {{a.view(), y.data(), 8}, {c.view(), z.data(), 8}};
    EXPECT_THROW(packed_matmul_group(other_cols, x.data(), 1, ActivationMode::Q16), Error);
    EXPECT_THROW(packed_matmul_group(other_scheme, x.data(), 1, ActivationMode::Q16), Error);
}

// The same input prepared on one SIMD target, then read on every other.
TEST(PreparedActivations, FollowTheTarget) {
    const int64_t cols = 2048;
    const auto x = normal_values(static_cast<size_t>(cols), 98);
    const PackedTensor& w = cached_matrix(QuantScheme{4, 32, true}, 9, cols);
    const std::vector<int64_t> targets = kernel_targets();  // before any is forced
    int64_t compared = 0;
    for (int64_t first : targets) {
        for (int64_t second : targets) {
            hwy::SetSupportedTargetsForTest(first);
            compared += compare_with_twin(w.view(), x, 1, ActivationMode::Q16, "first target");
            hwy::SetSupportedTargetsForTest(second);
            compared += compare_with_twin(w.view(), x, 1, ActivationMode::Q16,
                                          std::string("prepared on ") + hwy::TargetName(first) + ", read on " +
                                              hwy::TargetName(second));
        }
    }
    hwy::SetSupportedTargetsForTest(0);
    const auto n = static_cast<int64_t>(targets.size());
    EXPECT_EQ(compared, 2 * 9 * n * n);
}

TEST_P(PackedKernels, SmallGroupsMatchTwin) {
    for (const QuantScheme& s : all_schemes({8, 16})) {
        for (int64_t cols : {8, 24, 172, 288}) {
            const PackedTensor& w = cached_matrix(s, 5, cols);
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                for (int64_t tokens : {1, 4}) {
                    const auto x = normal_values(static_cast<size_t>(tokens * cols), 5 + cols);
                    compare_with_twin(w.view(), x, tokens, mode, s.name() + " cols " + std::to_string(cols));
                    if (HasFailure()) return;
                }
            }
        }
    }
}

// Zero groups get scale 0; whole zero rows must give exact zeros.
TEST_P(PackedKernels, ZeroGroupsAndZeroRows) {
    const int64_t rows = 9, cols = 288;
    auto values = random_weights(rows, cols, 3);
    for (int64_t c = 0; c < cols; ++c) values[4 * cols + c] = 0.0f;                  // row 4
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 64; c < 128; ++c) values[r * cols + c] = 0.0f;              // columns 64..127
    const auto x = normal_values(static_cast<size_t>(3 * cols), 4);
    for (const QuantScheme& s : all_schemes({0, 32, 64})) {
        const PackedTensor w = quantize(values, rows, cols, s);
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
            for (int64_t tokens : {1, 3}) {
                compare_with_twin(w.view(), x, tokens, mode, s.name() + " zero groups");
                std::vector<float> y(static_cast<size_t>(tokens * rows), 1.0f);
                packed_matmul(w.view(), x.data(), tokens, y.data(), rows, mode);
                for (int64_t t = 0; t < tokens; ++t) EXPECT_EQ(y[t * rows + 4], 0.0f) << s.name();
            }
        }
    }
}

// Hand-made planes: random codes with the largest FP16 scale, the smallest
// subnormal one, zero and negative ones (signed sym int4/3/2 scales).
TEST_P(PackedKernels, ExtremeScales) {
    const uint16_t scale_bits[] = {0x7BFF /*65504*/, 0x0001 /*2^-24*/, 0x0000, 0x3C00 /*1*/, 0x03FF,
                                   0xFBFF /*-65504*/, 0x8001};
    std::mt19937 gen(9);
    for (const QuantScheme& s : all_schemes({0, 32, 128})) {
        for (int64_t cols : {40, 288}) {
            PackedTensor w(s, 7, cols);
            std::vector<uint8_t> codes(static_cast<size_t>(cols));
            for (int64_t r = 0; r < w.rows; ++r) {
                for (auto& c : codes) c = static_cast<uint8_t>(min_code(s) + gen() % (max_code(s) - min_code(s) + 1));
                pack_code_row(s, codes.data(), cols, w.codes.data() + r * code_row_bytes(s, cols));
            }
            for (size_t i = 0; i < w.scales.size(); ++i) {
                uint16_t b = scale_bits[(i + gen() % 3) % 7];
                if (!s.symmetric || s.bits == 8) b &= 0x7FFF;  // only sym int4/3/2 scales may be negative
                w.scales[i] = b;
            }
            for (auto& z : w.zeros) z = static_cast<uint8_t>(gen());
            // Zero points must be codes: keep each field within [0, 2^bits - 1].
            std::vector<uint8_t> zeros(static_cast<size_t>(groups_per_row(s, cols)));
            for (int64_t r = 0; r < w.rows && !s.symmetric; ++r) {
                for (auto& z : zeros) z = static_cast<uint8_t>(gen() % (max_code(s) + 1));
                std::fill(w.zeros.begin() + r * zero_row_bytes(s, cols), w.zeros.begin() + (r + 1) * zero_row_bytes(s, cols), 0);
                pack_zero_row(s, zeros.data(), static_cast<int64_t>(zeros.size()), w.zeros.data() + r * zero_row_bytes(s, cols));
            }
            check_packed_contents(w.view(), "extreme");
            const auto x = normal_values(static_cast<size_t>(2 * cols), 21);
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                compare_with_twin(w.view(), x, 1, mode, s.name() + " extreme scales");
                compare_with_twin(w.view(), x, 2, mode, s.name() + " extreme scales");
                if (HasFailure()) return;
            }
        }
    }
}

// NaN and Inf activations reach the outputs they touch, in both paths, and
// nothing crashes. Activations of huge and tiny magnitude quantize sanely.
TEST_P(PackedKernels, NonFiniteActivationsPropagate) {
    const int64_t rows = 6, cols = 172;
    for (const QuantScheme& s : all_schemes({0, 32})) {
        const PackedTensor& w = cached_matrix(s, rows, cols);
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
            auto x = normal_values(static_cast<size_t>(3 * cols), 8);
            x[0 * cols + 5] = bad;     // token 0, first block
            x[2 * cols + 170] = -bad;  // token 2, the short last block
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                std::vector<float> fast(static_cast<size_t>(3 * rows)), ref(fast.size());
                packed_matmul(w.view(), x.data(), 3, fast.data(), rows, mode);
                packed_matmul_scalar(w.view(), x.data(), 3, ref.data(), rows, mode);
                for (size_t i = 0; i < fast.size(); ++i) {
                    EXPECT_EQ(std::isfinite(fast[i]), std::isfinite(ref[i])) << s.name() << " " << mode_name(mode) << " " << i;
                }
                for (int64_t r = 0; r < rows; ++r) {
                    EXPECT_FALSE(std::isfinite(fast[r])) << s.name() << " token 0 row " << r;
                    EXPECT_TRUE(std::isfinite(fast[rows + r])) << s.name() << " token 1 row " << r;
                }
            }
        }
        auto x = normal_values(static_cast<size_t>(cols), 2, 1e-39f);  // subnormal activations
        for (int64_t c = 0; c < 32; ++c) x[c] = 1e30f;
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16})
            compare_with_twin(w.view(), x, 1, mode, s.name() + " huge and subnormal x");
    }
}

TEST_P(PackedKernels, BitIdenticalForAnyThreadCount) {
    const int64_t rows = 300, cols = 2048 + 96;
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{8, 0, true}, QuantScheme{3, 128, false},
                                 QuantScheme{2, 64, true}, QuantScheme{4, 16, false}}) {
        const PackedTensor w = quantize(random_weights(rows, cols, 5), rows, cols, s);
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
            for (int64_t tokens : {1, 9}) {
                const auto x = normal_values(static_cast<size_t>(tokens * cols), 77);
                std::vector<float> one(static_cast<size_t>(tokens * rows)), two(one.size()), all(one.size());
                {
                    ThreadLimit limit(1);
                    packed_matmul(w.view(), x.data(), tokens, one.data(), rows, mode);
                }
                {
                    ThreadLimit limit(2);
                    packed_matmul(w.view(), x.data(), tokens, two.data(), rows, mode);
                }
                packed_matmul(w.view(), x.data(), tokens, all.data(), rows, mode);
                ASSERT_EQ(0, std::memcmp(one.data(), two.data(), one.size() * sizeof(float))) << s.name();
                ASSERT_EQ(0, std::memcmp(one.data(), all.data(), one.size() * sizeof(float))) << s.name();
            }
        }
    }
}

// The SIMD quantizer the kernels run is bit-identical to the definition,
// ties, subnormal blocks, zero and non-finite blocks included.
TEST_P(PackedKernels, SimdActivationQuantIsExact) {
    for (int64_t block : {32, 64, 256}) {
        // Up to several batches of blocks (the quantizer takes 64 at a
        // time), the last one partial.
        for (int64_t cols : {1, 7, 32, 33, 172, 2048, 2080, 5632, 16421}) {
            for (float sigma : {1.0f, 1e-3f, 1e-40f, 3e4f}) {
                auto x = normal_values(static_cast<size_t>(cols), static_cast<uint32_t>(cols + block), sigma);
                if (cols >= 1024) {
                    for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i - 16) + 0.5f;  // ties when scaled by 1
                    x[0] = 127.0f;
                    for (int i = 256; i < 512; ++i) x[i] = 0.0f;
                    x[cols - 1] = std::numeric_limits<float>::quiet_NaN();
                    x[cols / 2] = std::numeric_limits<float>::infinity();
                    x[cols / 3] = -std::numeric_limits<float>::infinity();
                    x[1500] = std::numeric_limits<float>::quiet_NaN();
                    x[cols - 700] = 1e-44f;  // a subnormal maximum only where the block is otherwise tiny
                }
                const size_t blocks = static_cast<size_t>((cols + block - 1) / block);
                std::vector<int8_t> q1(static_cast<size_t>(cols)), q2(q1.size());
                std::vector<float> s1(blocks), s2(blocks);
                quantize_activation_blocks(x.data(), cols, block, q1.data(), s1.data());
                quantize_activation_blocks_simd(x.data(), cols, block, q2.data(), s2.data());
                EXPECT_EQ(q1, q2) << block << " " << cols << " " << sigma;
                EXPECT_EQ(0, std::memcmp(s1.data(), s2.data(), blocks * sizeof(float))) << cols << " " << sigma;
                std::vector<int16_t> w1(static_cast<size_t>(cols)), w2(w1.size());
                quantize_activation_blocks(x.data(), cols, block, w1.data(), s1.data());
                quantize_activation_blocks_simd(x.data(), cols, block, w2.data(), s2.data());
                EXPECT_EQ(w1, w2) << "Q16 " << block << " " << cols << " " << sigma;
                EXPECT_EQ(0, std::memcmp(s1.data(), s2.data(), blocks * sizeof(float))) << "Q16 " << cols;
            }
        }
    }
}

TEST(ActivationQuant, BlocksZeroNonFiniteAndSubnormal) {
    std::vector<float> x(70, 0.0f);
    for (int i = 32; i < 64; ++i) x[i] = static_cast<float>(i - 48) * 0.5f;  // block 1: max 8
    x[65] = std::numeric_limits<float>::infinity();                           // block 2 (short)
    std::vector<int8_t> q(x.size());
    std::vector<float> scales(3);
    quantize_activation_blocks(x.data(), static_cast<int64_t>(x.size()), 32, q.data(), scales.data());
    EXPECT_EQ(scales[0], 0.0f);
    EXPECT_EQ(scales[1], 8.0f / 127.0f);
    EXPECT_TRUE(std::isnan(scales[2]));
    EXPECT_EQ(q[32], -127);
    EXPECT_EQ(q[48], 0);
    for (int i = 64; i < 70; ++i) EXPECT_EQ(q[i], 0);
    std::vector<float> tiny(32, 1e-41f);
    tiny[3] = -3e-41f;
    quantize_activation_blocks(tiny.data(), 32, 32, q.data(), scales.data());
    EXPECT_EQ(q8_block_columns(QuantScheme{4, 32, true}), 32);
    EXPECT_EQ(q8_block_columns(QuantScheme{4, 128, true}), 128);
    EXPECT_EQ(q8_block_columns(QuantScheme{4, 1024, true}), 256);
    EXPECT_EQ(q8_block_columns(QuantScheme{8, 0, true}), 256);
    EXPECT_EQ(q8_block_columns(QuantScheme{4, 8, true}), 32);
    EXPECT_THROW(quantize_activation_blocks(tiny.data(), 32, 48, q.data(), scales.data()), Error);
    EXPECT_EQ(q[3], -127);
    EXPECT_EQ(q[0], 42);
    EXPECT_GT(scales[0], 0.0f);
}

}  // namespace
}  // namespace sparq::testing
