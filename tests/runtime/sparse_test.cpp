// The sparse layouts (pack, unpack, hostile-input checks) and every sparse
// SIMD kernel against its scalar twin, on every compiled SIMD target.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <algorithm>
#include <sstream>
#include <type_traits>

#include <hwy/targets.h>

#include "core/error.h"
#include "core/parallel.h"
#include "kernel_test_util.h"
#include "runtime/kernels/sparse_matmul.h"
#include "runtime/kernels/sparse_unpacked.h"

namespace sparq::testing {
namespace {

class SparseKernels : public PerTarget {};
SPARQ_INSTANTIATE_PER_TARGET(SparseKernels);

// Random weights with, in every run of m columns, m - n of them zeroed at
// random positions.
std::vector<float> nm_pruned(int64_t rows, int64_t cols, int n, int m, uint32_t seed) {
    auto w = random_weights(rows, cols, seed);
    std::mt19937 gen(seed + 1);
    std::vector<int> order(static_cast<size_t>(m));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t run = 0; run < cols / m; ++run) {
            for (int i = 0; i < m; ++i) order[i] = i;
            std::shuffle(order.begin(), order.end(), gen);
            for (int i = n; i < m; ++i) w[r * cols + run * m + order[i]] = 0.0f;
        }
    }
    return w;
}

std::vector<float> randomly_pruned(int64_t rows, int64_t cols, double sparsity, uint32_t seed) {
    auto w = random_weights(rows, cols, seed);
    std::mt19937 gen(seed + 2);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (auto& v : w) {
        if (u(gen) < sparsity) v = 0.0f;
    }
    return w;
}

std::vector<QuantScheme> sparse_schemes(std::initializer_list<int64_t> groups) {
    std::vector<QuantScheme> out;
    for (int bits : {8, 4, 3, 2})
        for (bool sym : {true, false})
            for (int64_t g : groups) out.push_back(QuantScheme{bits, g, sym});
    return out;
}

// SIMD against the twin, and both against the dense kernel's twin on the
// unpacked matrix (the encodings change bytes, never values).
template <class View, class Fast, class Twin>
void expect_matches(const View& w, const PackedTensor& dense, int64_t tokens, uint32_t seed, Fast fast_fn,
                    Twin twin_fn, const std::string& what) {
    const auto x = normal_values(static_cast<size_t>(tokens * w.cols), seed);
    const int64_t stride = w.rows + 2;
    std::vector<float> fast(static_cast<size_t>(tokens * stride), -3.0f), twin(fast.size(), -3.0f),
        dense_y(fast.size(), -3.0f);
    fast_fn(w, x.data(), tokens, fast.data(), stride);
    twin_fn(w, x.data(), tokens, twin.data(), stride);
    packed_matmul_scalar(dense.view(), x.data(), tokens, dense_y.data(), stride);
    const auto bounds = magnitude_bounds(dense.view(), x.data(), tokens, ActivationMode::F32);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < stride; ++r) {
            const size_t i = static_cast<size_t>(t * stride + r);
            if (r >= w.rows) {
                ASSERT_EQ(fast[i], -3.0f) << what << " wrote past the rows";
                continue;
            }
            const double tol = 1e-5 * bounds[t * w.rows + r] + 1e-30;
            ASSERT_LE(std::fabs(static_cast<double>(fast[i]) - twin[i]), tol)
                << what << " token " << t << " row " << r << " simd " << fast[i] << " twin " << twin[i];
            ASSERT_LE(std::fabs(static_cast<double>(twin[i]) - dense_y[i]), tol) << what << " twin vs dense";
        }
    }
}

const auto nm_fast = [](const NmSparseView& w, const float* x, int64_t t, float* y, int64_t s) {
    if (t == 1 && s == w.rows) return nm_sparse_matvec(w, x, y);
    nm_sparse_matmul(w, x, t, y, s);
};
const auto bm_fast = [](const BitmaskSparseView& w, const float* x, int64_t t, float* y, int64_t s) {
    bitmask_sparse_matmul(w, x, t, y, s);
};

TEST(SparseLayout, NmRoundTripAndChecks) {
    for (const QuantScheme& s : sparse_schemes({0, 32, 8})) {
        for (auto [n, m] : {std::pair{2, 4}, {4, 8}, {1, 4}}) {
            const int64_t rows = 5, cols = 96;
            const PackedTensor dense = quantize(nm_pruned(rows, cols, n, m, 3), rows, cols, s);
            const NmSparseTensor sp = pack_nm_sparse(dense.view(), n, m);
            const NmSparseGeometry g = nm_sparse_geometry(sp.scheme, rows, cols);
            EXPECT_EQ(sp.values.size(), g.value_bytes);
            EXPECT_EQ(sp.indices.size(), g.index_bytes);
            check_nm_sparse_contents(sp.view(), "w");
            const PackedTensor back = unpack_nm_sparse(sp.view());
            EXPECT_EQ(back.codes, dense.codes) << s.name() << " " << n << ":" << m;
            EXPECT_EQ(back.scales, dense.scales);
            EXPECT_EQ(back.zeros, dense.zeros);
        }
    }
    // 2:4 int4 g32: 3 bits per weight of values + indices, plus scales.
    const NmSparseGeometry g = nm_sparse_geometry(NmSparseScheme{2, 4, QuantScheme{4, 32, true}}, 1, 2048);
    EXPECT_EQ(8 * (g.value_bytes + g.index_bytes), 3u * 2048);
    // Too many non-zeros in a run, swapped indices, bad shape.
    const PackedTensor dense = quantize(random_weights(2, 16, 1), 2, 16, QuantScheme{8, 0, true});
    EXPECT_THROW(pack_nm_sparse(dense.view(), 2, 4), Error);
    NmSparseTensor sp = pack_nm_sparse(quantize(nm_pruned(2, 16, 2, 4, 5), 2, 16, QuantScheme{8, 0, true}).view(), 2, 4);
    sp.indices[0] = static_cast<uint8_t>((sp.indices[0] & 0xF0) | 0x01);  // fields 1, 0: out of order
    EXPECT_THROW(check_nm_sparse_contents(sp.view(), "w"), Error);
    EXPECT_THROW(nm_sparse_geometry(NmSparseScheme{2, 4, QuantScheme{4, 32, true}}, 1, 30), Error);
    EXPECT_THROW(validate_nm_sparse_scheme(NmSparseScheme{5, 4, QuantScheme{4, 32, true}}), Error);
}

TEST(SparseLayout, BitmaskRoundTripAndChecks) {
    for (const QuantScheme& s : sparse_schemes({0, 32, 8})) {
        for (double sparsity : {0.0, 0.5, 0.9, 1.0}) {
            const int64_t rows = 6, cols = 172;
            const PackedTensor dense = quantize(randomly_pruned(rows, cols, sparsity, 4), rows, cols, s);
            const BitmaskSparseTensor sp = pack_bitmask_sparse(dense.view());
            check_bitmask_sparse_contents(sp.view(), sp.values.size(), "w");
            const PackedTensor back = unpack_bitmask_sparse(sp.view());
            EXPECT_EQ(back.codes, dense.codes) << s.name() << " sparsity " << sparsity;
            EXPECT_EQ(back.scales, dense.scales);
        }
    }
    const PackedTensor dense = quantize(randomly_pruned(3, 40, 0.5, 9), 3, 40, QuantScheme{8, 32, true});
    BitmaskSparseTensor sp = pack_bitmask_sparse(dense.view());
    sp.row_offsets[1] += 1;
    EXPECT_THROW(check_bitmask_sparse_contents(sp.view(), sp.values.size(), "w"), Error);
    sp = pack_bitmask_sparse(dense.view());
    sp.mask[4] |= 0x80;  // column 39 of row 0 ... and the count no longer matches
    sp.mask[sp.mask.size() - 1] |= 0x80;
    EXPECT_THROW(check_bitmask_sparse_contents(sp.view(), sp.values.size(), "w"), Error);
}

TEST_P(SparseKernels, NmMatchesTwin) {
    for (const QuantScheme& s : sparse_schemes({0, 32, 64, 128})) {
        for (auto [n, m] : {std::pair{2, 4}, {4, 8}, {1, 4}}) {
            for (int64_t rows : {1, 3, 17, 64}) {
                for (int64_t cols : {8, 24, 40, 172, 288, 2048}) {
                    if (cols % m != 0 || (s.group % m != 0)) continue;
                    if ((n != 2 || m != 4) && rows * cols > 5000) continue;  // generic path: smaller
                    const PackedTensor dense = quantize(nm_pruned(rows, cols, n, m, static_cast<uint32_t>(rows + cols)),
                                                        rows, cols, s);
                    const NmSparseTensor sp = pack_nm_sparse(dense.view(), n, m);
                    for (int64_t tokens : {1, 3}) {
                        std::ostringstream what;
                        what << s.name() << " " << n << ":" << m << " [" << rows << ", " << cols << "] tokens " << tokens;
                        expect_matches(sp.view(), dense, tokens, 40 + tokens, nm_fast, nm_sparse_matmul_scalar,
                                       what.str());
                        if (HasFatalFailure()) return;
                    }
                }
            }
        }
    }
}

TEST_P(SparseKernels, BitmaskMatchesTwin) {
    for (const QuantScheme& s : sparse_schemes({0, 16, 32, 128, 8})) {
        for (double sparsity : {0.5, 0.75, 0.95}) {
            for (int64_t rows : {1, 3, 17, 64}) {
                for (int64_t cols : {8, 24, 40, 172, 288, 2048}) {
                    const PackedTensor dense = quantize(
                        randomly_pruned(rows, cols, sparsity, static_cast<uint32_t>(rows * 3 + cols)), rows, cols, s);
                    const BitmaskSparseTensor sp = pack_bitmask_sparse(dense.view());
                    for (int64_t tokens : {1, 3}) {
                        std::ostringstream what;
                        what << s.name() << " sparsity " << sparsity << " [" << rows << ", " << cols << "] tokens "
                             << tokens;
                        expect_matches(sp.view(), dense, tokens, 50 + tokens, bm_fast, bitmask_sparse_matmul_scalar,
                                       what.str());
                        if (HasFatalFailure()) return;
                    }
                }
            }
        }
    }
}

// Zero rows, empty rows (bitmask), extreme scales and non-finite
// activations: the SIMD path agrees with the twin on which outputs are
// finite, and zero rows give exact zeros.
TEST_P(SparseKernels, EdgeInputs) {
    const int64_t rows = 7, cols = 288;
    for (const QuantScheme& s : sparse_schemes({0, 32})) {
        auto values = nm_pruned(rows, cols, 2, 4, 11);
        for (int64_t c = 0; c < cols; ++c) values[2 * cols + c] = 0.0f;  // row 2 all zero
        PackedTensor dense = quantize(values, rows, cols, s);
        for (size_t i = 0; i < dense.scales.size(); i += 3) {
            const bool negative_ok = s.symmetric && s.bits != 8;
            if (i % 2 == 0) dense.scales[i] = negative_ok && i % 4 == 0 ? 0xFBFF : 0x7BFF;  // +-65504
            else dense.scales[i] = 0x0001;                                                 // 2^-24
        }
        const NmSparseTensor nm = pack_nm_sparse(dense.view(), 2, 4);
        const BitmaskSparseTensor bm = pack_bitmask_sparse(dense.view());
        expect_matches(nm.view(), dense, 2, 3, nm_fast, nm_sparse_matmul_scalar, s.name() + " nm extreme");
        expect_matches(bm.view(), dense, 2, 3, bm_fast, bitmask_sparse_matmul_scalar, s.name() + " bitmask extreme");
        auto x = normal_values(static_cast<size_t>(2 * cols), 12);
        x[7] = std::numeric_limits<float>::quiet_NaN();
        x[cols + 100] = std::numeric_limits<float>::infinity();
        std::vector<float> fast(static_cast<size_t>(2 * rows)), twin(fast.size());
        nm_sparse_matmul(nm.view(), x.data(), 2, fast.data(), rows);
        nm_sparse_matmul_scalar(nm.view(), x.data(), 2, twin.data(), rows);
        for (size_t i = 0; i < fast.size(); ++i) EXPECT_EQ(std::isfinite(fast[i]), std::isfinite(twin[i])) << s.name() << " " << i << " " << fast[i] << " " << twin[i];
        bitmask_sparse_matmul(bm.view(), x.data(), 2, fast.data(), rows);
        bitmask_sparse_matmul_scalar(bm.view(), x.data(), 2, twin.data(), rows);
        for (size_t i = 0; i < fast.size(); ++i) EXPECT_EQ(std::isfinite(fast[i]), std::isfinite(twin[i])) << s.name() << " " << i << " " << fast[i] << " " << twin[i];
        EXPECT_EQ(fast[2], 0.0f);  // the empty row stores nothing: NaN never reaches it
    }
}

TEST_P(SparseKernels, BitIdenticalForAnyThreadCount) {
    const int64_t rows = 333, cols = 2048 + 64;
    for (const QuantScheme& s : {QuantScheme{8, 0, true}, QuantScheme{4, 32, false}}) {
        const PackedTensor dense = quantize(nm_pruned(rows, cols, 2, 4, 8), rows, cols, s);
        const NmSparseTensor nm = pack_nm_sparse(dense.view(), 2, 4);
        const BitmaskSparseTensor bm = pack_bitmask_sparse(dense.view());
        const auto x = normal_values(static_cast<size_t>(5 * cols), 13);
        std::vector<float> a(static_cast<size_t>(5 * rows)), b(a.size()), c(a.size()), d(a.size());
        {
            ThreadLimit one(1);
            nm_sparse_matmul(nm.view(), x.data(), 5, a.data(), rows);
            bitmask_sparse_matmul(bm.view(), x.data(), 5, c.data(), rows);
        }
        {
            ThreadLimit two(2);
            nm_sparse_matmul(nm.view(), x.data(), 5, b.data(), rows);
            bitmask_sparse_matmul(bm.view(), x.data(), 5, d.data(), rows);
        }
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << s.name();
        EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(float))) << s.name();
    }
}

// The Q16-activation kernels against their twin (tight: same quantized
// activations, integer block sums), and the twin against the FP32 twin
// within the activation rounding (|x - dx q| <= dx / 2, dx = amax / 32767
// per activation block), so sum |w| dx / 2 bounds the difference.
template <class View, class Fast, class Twin, class F32Twin>
void expect_q16_matches(const View& w, const std::vector<float>& x, int64_t tokens, Fast fast_fn, Twin twin_fn,
                        F32Twin f32_fn, const std::string& what) {
    const int64_t stride = w.rows + 1;
    std::vector<float> fast(static_cast<size_t>(tokens * stride), -3.0f), twin(fast.size(), -3.0f),
        exact(fast.size(), -3.0f);
    fast_fn(w, x.data(), tokens, fast.data(), stride);
    twin_fn(w, x.data(), tokens, twin.data(), stride);
    f32_fn(w, x.data(), tokens, exact.data(), stride);
    const PackedTensor dense = [&] {
        if constexpr (std::is_same_v<View, NmSparseView>) return unpack_nm_sparse(w);
        else return unpack_bitmask_sparse(w);
    }();
    const auto bounds = magnitude_bounds(dense.view(), x.data(), tokens, ActivationMode::F32);
    const int64_t block = q8_block_columns(dense.view().scheme);
    std::vector<float> steps(x.size());
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t b = 0; b * block < w.cols; ++b) {
            const int64_t c0 = b * block, c1 = std::min(w.cols, c0 + block);
            float amax = 0.0f;
            for (int64_t c = c0; c < c1; ++c) amax = std::max(amax, std::fabs(x[t * w.cols + c]));
            for (int64_t c = c0; c < c1; ++c) steps[t * w.cols + c] = amax / 65534.0f;
        }
    }
    const auto rounding = magnitude_bounds(dense.view(), steps.data(), tokens, ActivationMode::F32);
    bool finite = true;
    for (float v : x) finite = finite && std::isfinite(v);
    for (int64_t t = 0; t < tokens; ++t) {
        for (int64_t r = 0; r < stride; ++r) {
            const size_t i = static_cast<size_t>(t * stride + r);
            if (r >= w.rows) {
                ASSERT_EQ(fast[i], -3.0f) << what << " wrote past the rows";
                continue;
            }
            if (!finite) {
                // A non-finite activation reaches every output of its token,
                // as in the FP32 kernels.
                ASSERT_EQ(std::isnan(fast[i]), std::isnan(twin[i])) << what << " token " << t << " row " << r;
                continue;
            }
            const double bound = bounds[t * w.rows + r];
            ASSERT_LE(std::fabs(static_cast<double>(fast[i]) - twin[i]), 1e-5 * bound + 1e-30)
                << what << " token " << t << " row " << r << " simd " << fast[i] << " twin " << twin[i];
            ASSERT_LE(std::fabs(static_cast<double>(twin[i]) - exact[i]),
                      1.001 * rounding[t * w.rows + r] + 1e-5 * bound + 1e-30)
                << what << " token " << t << " row " << r << " q16 twin " << twin[i] << " f32 " << exact[i];
        }
    }
}

// Forces one way of spreading bitmask values (vpexpandb or permutes) for
// its lifetime; the kernels must give the same sums either way.
class ForcedByteExpand {
public:
    explicit ForcedByteExpand(ByteExpand method) { set_bitmask_byte_expand(method); }
    ~ForcedByteExpand() { set_bitmask_byte_expand(ByteExpand::Auto); }
    ForcedByteExpand(const ForcedByteExpand&) = delete;
    ForcedByteExpand& operator=(const ForcedByteExpand&) = delete;
};
constexpr ByteExpand kByteExpands[] = {ByteExpand::Instruction, ByteExpand::Permutes};
const char* expand_name(ByteExpand m) { return m == ByteExpand::Instruction ? " (vpexpandb)" : " (permutes)"; }

void expect_bitmask_q16_matches(const BitmaskSparseView& w, const std::vector<float>& x, int64_t tokens,
                                const std::string& what) {
    for (ByteExpand m : kByteExpands) {
        ForcedByteExpand forced(m);
        expect_q16_matches(w, x, tokens, bitmask_sparse_matmul_q16, bitmask_sparse_matmul_q16_scalar,
                           bitmask_sparse_matmul_scalar, what + expand_name(m));
    }
}

TEST_P(SparseKernels, Q16MatchesTwin) {
    // Asymmetric, 3- and 2-bit schemes and odd widths take the FP32
    // kernels (checked here once; their own tests are above).
    std::vector<QuantScheme> schemes;
    for (int bits : {8, 4})
        for (int64_t g : {0, 32, 64, 128, 512}) schemes.push_back(QuantScheme{bits, g, true});
    schemes.push_back(QuantScheme{4, 32, false});
    schemes.push_back(QuantScheme{3, 64, true});
    for (const QuantScheme& s : schemes) {
        for (int64_t rows : {1, 17, 40}) {
            // 256 and 640: an even number of 64-column chunks (2:4 int4 g32
            // pairs them; 640 has 20 groups: one whole vector of scales and
            // a partial one); 40: not a multiple of 64, the FP32 kernels run.
            for (int64_t cols : {64, 192, 256, 640, 1088, 40}) {
                for (int64_t tokens : {1, 3}) {
                    if (s.group > cols && s.group != 0) continue;
                    std::ostringstream what;
                    what << s.name() << " [" << rows << ", " << cols << "] tokens " << tokens;
                    const auto x = normal_values(static_cast<size_t>(tokens * cols), static_cast<uint32_t>(60 + tokens));
                    const PackedTensor nm_dense =
                        quantize(nm_pruned(rows, cols, 2, 4, static_cast<uint32_t>(rows + cols)), rows, cols, s);
                    const NmSparseTensor nm = pack_nm_sparse(nm_dense.view(), 2, 4);
                    expect_q16_matches(nm.view(), x, tokens, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar,
                                       nm_sparse_matmul_scalar, "nm " + what.str());
                    if (HasFatalFailure()) return;
                    for (double sparsity : {0.5, 0.9}) {
                        const PackedTensor bm_dense = quantize(
                            randomly_pruned(rows, cols, sparsity, static_cast<uint32_t>(rows * 5 + cols)), rows, cols, s);
                        const BitmaskSparseTensor bm = pack_bitmask_sparse(bm_dense.view());
                        expect_bitmask_q16_matches(bm.view(), x, tokens, "bitmask " + what.str());
                        if (HasFatalFailure()) return;
                    }
                }
            }
        }
    }
}

// The activations one call prepares are reused by the next call on the same
// input: an input changed in place (same address) is prepared again, and so
// is the same input for a layout that splits its bytes differently.
TEST_P(SparseKernels, Q16PreparedActivationsFollowTheInput) {
    const int64_t rows = 17, cols = 256;
    auto x = normal_values(static_cast<size_t>(cols), 77);
    const PackedTensor int4 = quantize(nm_pruned(rows, cols, 2, 4, 5), rows, cols, QuantScheme{4, 32, true});
    const PackedTensor int8 = quantize(randomly_pruned(rows, cols, 0.5, 6), rows, cols, QuantScheme{8, 0, true});
    const NmSparseTensor nm = pack_nm_sparse(int4.view(), 2, 4);
    const BitmaskSparseTensor bm = pack_bitmask_sparse(int8.view());
    for (int round = 0; round < 3; ++round) {
        const std::string what = "round " + std::to_string(round);
        expect_q16_matches(nm.view(), x, 1, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar,
                           nm_sparse_matmul_scalar, "nm " + what);
        expect_q16_matches(nm.view(), x, 1, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar,
                           nm_sparse_matmul_scalar, "nm again " + what);
        x[static_cast<size_t>(3 + 50 * round)] *= -4.0f;  // in place
        expect_q16_matches(nm.view(), x, 1, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar,
                           nm_sparse_matmul_scalar, "nm changed in place " + what);
        expect_bitmask_q16_matches(bm.view(), x, 1, "bitmask " + what);
        if (HasFatalFailure()) return;
    }
}

// Edge inputs: all-zero groups and rows, an outlier weight, outlier and
// all-zero activation blocks, NaN and Inf activations, fully pruned and
// fully kept bitmask rows.
TEST_P(SparseKernels, Q16EdgeInputs) {
    const int64_t rows = 19, cols = 512;
    for (const QuantScheme& s : {QuantScheme{8, 0, true}, QuantScheme{4, 32, true}, QuantScheme{8, 32, true},
                                 QuantScheme{4, 128, true}}) {
        auto w = nm_pruned(rows, cols, 2, 4, 5);
        for (int64_t c = 0; c < 64; ++c) w[2 * cols + c] = 0.0f;  // zero groups
        for (int64_t c = 0; c < cols; ++c) w[3 * cols + c] = 0.0f;  // zero row
        w[4 * cols + 9] = w[4 * cols + 9] != 0.0f ? 5e3f : 0.0f;     // outlier weight
        auto u = randomly_pruned(rows, cols, 0.5, 6);
        for (int64_t c = 0; c < cols; ++c) u[5 * cols + c] = 0.0f;                         // all pruned
        for (int64_t c = 0; c < cols; ++c) u[6 * cols + c] = 0.5f + 0.001f * static_cast<float>(c);  // all kept
        const NmSparseTensor nm = pack_nm_sparse(quantize(w, rows, cols, s).view(), 2, 4);
        const BitmaskSparseTensor bm = pack_bitmask_sparse(quantize(u, rows, cols, s).view());
        auto x = normal_values(static_cast<size_t>(2 * cols), 17);
        for (int64_t c = 64; c < 128; ++c) x[c] = 0.0f;  // zero activation blocks
        x[300] = 1e6f;                                  // outlier activation
        expect_q16_matches(nm.view(), x, 2, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar, nm_sparse_matmul_scalar,
                           "nm edge " + s.name());
        if (s.bits == 8) {
            expect_bitmask_q16_matches(bm.view(), x, 2, "bitmask edge " + s.name());
        }
        for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
            auto xb = x;
            xb[cols + 70] = bad;
            expect_q16_matches(nm.view(), xb, 2, nm_sparse_matmul_q16, nm_sparse_matmul_q16_scalar,
                               nm_sparse_matmul_scalar, "nm non-finite " + s.name());
            expect_bitmask_q16_matches(bm.view(), xb, 2, "bitmask non-finite " + s.name());
        }
    }
}

TEST_P(SparseKernels, Q16BitIdenticalForAnyThreadCount) {
    const int64_t rows = 333, cols = 2048 + 64;
    for (const QuantScheme& s : {QuantScheme{8, 0, true}, QuantScheme{4, 32, true}, QuantScheme{8, 128, true}}) {
        const PackedTensor dense = quantize(nm_pruned(rows, cols, 2, 4, 9), rows, cols, s);
        const NmSparseTensor nm = pack_nm_sparse(dense.view(), 2, 4);
        const BitmaskSparseTensor bm = pack_bitmask_sparse(dense.view());
        const auto x = normal_values(static_cast<size_t>(5 * cols), 14);
        std::vector<float> a(static_cast<size_t>(5 * rows)), b(a.size()), c(a.size()), d(a.size());
        {
            ThreadLimit one(1);
            nm_sparse_matmul_q16(nm.view(), x.data(), 5, a.data(), rows);
            bitmask_sparse_matmul_q16(bm.view(), x.data(), 5, c.data(), rows);
        }
        {
            ThreadLimit two(2);
            nm_sparse_matmul_q16(nm.view(), x.data(), 5, b.data(), rows);
            bitmask_sparse_matmul_q16(bm.view(), x.data(), 5, d.data(), rows);
        }
        EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << s.name();
        EXPECT_EQ(0, std::memcmp(c.data(), d.data(), c.size() * sizeof(float))) << s.name();
    }
}

// Both ways of spreading the values give the same integer sums, hence the
// same bits, on random masks of every density and with all-kept and
// all-pruned chunks.
TEST_P(SparseKernels, Q16BitmaskExpandMethodsAgreeBitForBit) {
    const int64_t rows = 37, cols = 1024;
    for (const QuantScheme& s : {QuantScheme{8, 0, true}, QuantScheme{8, 32, true}, QuantScheme{8, 256, true}}) {
        for (double sparsity : {0.0, 0.3, 0.5, 0.75, 0.97}) {
            auto u = randomly_pruned(rows, cols, sparsity, 21);
            for (int64_t c = 0; c < 64; ++c) u[c] = 0.0f;                   // an all-pruned chunk
            for (int64_t c = 64; c < 128; ++c) u[cols + c] = 0.25f;         // an all-kept chunk
            const BitmaskSparseTensor bm = pack_bitmask_sparse(quantize(u, rows, cols, s).view());
            const auto x = normal_values(static_cast<size_t>(3 * cols), 22);
            std::vector<float> by_instruction(static_cast<size_t>(3 * rows)), by_permutes(by_instruction.size());
            {
                ForcedByteExpand forced(ByteExpand::Instruction);
                bitmask_sparse_matmul_q16(bm.view(), x.data(), 3, by_instruction.data(), rows);
            }
            {
                ForcedByteExpand forced(ByteExpand::Permutes);
                bitmask_sparse_matmul_q16(bm.view(), x.data(), 3, by_permutes.data(), rows);
            }
            EXPECT_EQ(0, std::memcmp(by_instruction.data(), by_permutes.data(), by_instruction.size() * sizeof(float)))
                << s.name() << " sparsity " << sparsity;
        }
    }
}

TEST(SparseQ16, NativeWhereTheCpuHasVbmiVbmi2AndVnni) {
    // Reports which path ran; on this project's AVX3_DL machines the
    // kernels must be native, elsewhere the twin runs and that is allowed.
    const bool dl = (hwy::SupportedTargets() & HWY_AVX3_DL) != 0;
    EXPECT_EQ(sparse_q16_native(), dl);
}

}  // namespace
}  // namespace sparq::testing

namespace sparq::testing {
namespace {

// The prefill path of sparse layers: the rows unpacked to the dense code
// plane and run on packed_matmul equal packed_matmul on the dense tensor the
// sparse one was packed from, bit for bit, in every mode and for any
// thread count; it applies from kSparseUnpackTokens finite tokens on.
TEST(SparseUnpacked, EqualsTheDenseProductBitForBit) {
    const int64_t rows = 37, cols = 320, tokens = kSparseUnpackTokens + 3;
    const auto x = normal_values(static_cast<size_t>(tokens * cols), 21);
    for (const QuantScheme& s : sparse_schemes({0, 32})) {
        const PackedTensor nm_dense = quantize(nm_pruned(rows, cols, 2, 4, 22), rows, cols, s);
        const PackedTensor bm_dense = quantize(randomly_pruned(rows, cols, 0.6, 23), rows, cols, s);
        const NmSparseTensor nm = pack_nm_sparse(nm_dense.view(), 2, 4);
        const BitmaskSparseTensor bm = pack_bitmask_sparse(bm_dense.view());
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
            for (int threads : {1, 2}) {
                ThreadLimit limit(threads);
                std::vector<float> expected(static_cast<size_t>(tokens * rows)), actual(expected.size(), -1.0f);
                packed_matmul(nm_dense.view(), x.data(), tokens, expected.data(), rows, mode);
                nm_sparse_matmul_unpacked(nm.view(), x.data(), tokens, actual.data(), rows, mode);
                EXPECT_EQ(0, std::memcmp(expected.data(), actual.data(), expected.size() * sizeof(float)))
                    << s.name() << " 2:4, mode " << static_cast<int>(mode) << ", threads " << threads;
                packed_matmul(bm_dense.view(), x.data(), tokens, expected.data(), rows, mode);
                bitmask_sparse_matmul_unpacked(bm.view(), x.data(), tokens, actual.data(), rows, mode);
                EXPECT_EQ(0, std::memcmp(expected.data(), actual.data(), expected.size() * sizeof(float)))
                    << s.name() << " bitmask, mode " << static_cast<int>(mode) << ", threads " << threads;
            }
        }
    }
}

// Odd widths (a 4-bit row's padding nibble, a partial last group) and
// empty rows: the unpacked plane is the dense tensor's, byte for byte.
TEST(SparseUnpacked, CodePlaneEqualsTheDenseOne) {
    for (const QuantScheme& s : sparse_schemes({0, 32})) {
        for (int64_t cols : {63, 172, 321}) {
            const int64_t rows = 5;
            std::vector<float> values = randomly_pruned(rows, cols, 0.5, static_cast<uint32_t>(cols));
            for (int64_t c = 0; c < cols; ++c) values[static_cast<size_t>(cols + c)] = 0.0f;  // row 1 empty
            const PackedTensor dense = quantize(values, rows, cols, s);
            const BitmaskSparseTensor bm = pack_bitmask_sparse(dense.view());
            // Rows 1..4 into a buffer with stale bytes, as the reused plane has.
            std::vector<uint8_t> plane(static_cast<size_t>((rows - 1) * code_row_bytes(s, cols)), 0x5A);
            unpack_bitmask_sparse_codes(bm.view(), 1, rows, plane.data());
            const std::vector<uint8_t> expected(dense.codes.begin() + code_row_bytes(s, cols), dense.codes.end());
            EXPECT_EQ(plane, expected) << s.name() << " cols " << cols;
            if (cols % 4 == 0) {
                const PackedTensor nm_dense = quantize(nm_pruned(rows, cols, 2, 4, 5), rows, cols, s);
                const NmSparseTensor nm = pack_nm_sparse(nm_dense.view(), 2, 4);
                std::vector<uint8_t> nm_plane(nm_dense.codes.size(), 0xA5);
                unpack_nm_sparse_codes(nm.view(), 0, rows, nm_plane.data());
                EXPECT_EQ(nm_plane, nm_dense.codes) << s.name() << " 2:4 cols " << cols;
            }
        }
    }
}

TEST(SparseUnpacked, AppliesToManyFiniteTokensOnly) {
    const int64_t cols = 64;
    std::vector<float> x(static_cast<size_t>(kSparseUnpackTokens * cols), 0.5f);
    EXPECT_TRUE(sparse_unpacked_applies(x.data(), kSparseUnpackTokens, cols));
    EXPECT_FALSE(sparse_unpacked_applies(x.data(), kSparseUnpackTokens - 1, cols));
    x[x.size() - 1] = std::numeric_limits<float>::infinity();
    EXPECT_FALSE(sparse_unpacked_applies(x.data(), kSparseUnpackTokens, cols));
    x[x.size() - 1] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_FALSE(sparse_unpacked_applies(x.data(), kSparseUnpackTokens, cols));
}

}  // namespace
}  // namespace sparq::testing
