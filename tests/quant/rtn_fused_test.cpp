// The fused SIMD RTN row kernel (quant/rtn_fused.h) against its plain
// per-group twin, on every Highway target compiled in and supported here:
// codes, scales, zero points and the report's error sums must be the same
// bits, for random, all-zero, constant, outlier, exactly representable and
// tiny groups at odd sizes; non-finite values and FP16 overflow must be
// reported the same way.
#include <gtest/gtest.h>
#include <hwy/targets.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <unistd.h>
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "core/memory.h"
#include "core/tensor.h"
#include "quant/quantize_tensor.h"
#include "quant/rtn_fused.h"

namespace sparq {
namespace {

std::vector<int64_t> targets() {
    std::vector<int64_t> out;
    const auto bits = static_cast<uint64_t>(hwy::SupportedTargets() & rtn_row_compiled_targets());
    for (int i = 0; i < 64; ++i) {
        if (bits & (uint64_t{1} << i)) out.push_back(static_cast<int64_t>(uint64_t{1} << i));
    }
    return out;
}

class RtnFused : public ::testing::TestWithParam<int64_t> {
protected:
    void SetUp() override {
        hwy::SetSupportedTargetsForTest(GetParam());
        ASSERT_STREQ(rtn_row_target(), hwy::TargetName(GetParam()));
    }
    void TearDown() override { hwy::SetSupportedTargetsForTest(0); }
};

struct RowResult {
    int64_t status = 0;
    std::vector<uint8_t> codes, zeros;
    std::vector<uint16_t> scales;
    double signal = 0, noise = 0;
    std::string error;
};

RowResult run_row(const QuantScheme& s, const std::vector<float>& row, bool fused) {
    const int64_t cols = static_cast<int64_t>(row.size());
    const int64_t groups = (cols + s.group_span(cols) - 1) / s.group_span(cols);
    RowResult r;
    r.codes.assign(static_cast<size_t>(cols), 0xAB);
    r.zeros.assign(static_cast<size_t>(groups), 0xCD);
    r.scales.assign(static_cast<size_t>(groups), 0xEEEE);
    std::vector<float> scratch(static_cast<size_t>(std::max(cols, rtn_row_scratch_floats(s, cols))));
    RtnRowJob job;
    job.scheme = s;
    job.row = row.data();
    job.cols = cols;
    job.codes = r.codes.data();
    job.scales = r.scales.data();
    job.zeros = r.zeros.data();
    job.signal = &r.signal;
    job.noise = &r.noise;
    job.scratch = scratch.data();
    try {
        r.status = fused ? quantize_row_rtn(job) : quantize_row_rtn_reference(job);
    } catch (const Error& e) {
        r.error = "group " + std::to_string(job.current_group) + ": " + e.message();
    }
    return r;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same(const QuantScheme& s, const std::vector<float>& row, const std::string& what) {
    SCOPED_TRACE(s.name() + " cols " + std::to_string(row.size()) + " " + what);
    const RowResult want = run_row(s, row, false);
    const RowResult got = run_row(s, row, true);
    ASSERT_EQ(got.error, want.error);
    ASSERT_EQ(got.status, want.status);
    if (want.status >= 0 || !want.error.empty()) return;  // only the outcome is defined
    ASSERT_EQ(got.scales, want.scales);
    ASSERT_EQ(got.codes, want.codes);
    if (!s.symmetric) {
        ASSERT_EQ(got.zeros, want.zeros);
    }
    EXPECT_TRUE(same_bits(got.signal, want.signal)) << got.signal << " vs " << want.signal;
    EXPECT_TRUE(same_bits(got.noise, want.noise)) << got.noise << " vs " << want.noise;
}

std::vector<QuantScheme> schemes() {
    std::vector<QuantScheme> out;
    for (int bits : {2, 3, 4, 8}) {
        for (int group : {0, 8, 32, 128}) {
            for (bool symmetric : {true, false}) out.push_back(QuantScheme{bits, group, symmetric});
        }
    }
    return out;
}

std::vector<float> gaussian(size_t n, uint32_t seed, float sigma) {
    std::mt19937 gen(seed);
    std::normal_distribution<float> dist(0.0f, sigma);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen);
    return v;
}

TEST_P(RtnFused, MatchesReferenceOnRandomRowsOfOddSizes) {
    uint32_t seed = 1;
    for (const QuantScheme& s : schemes()) {
        for (size_t cols : {1, 7, 16, 37, 64, 172, 288, 1000}) {
            for (int trial = 0; trial < 3; ++trial) {
                expect_same(s, gaussian(cols, seed++, trial == 2 ? 1e-3f : 0.02f), "gaussian");
            }
        }
    }
}

TEST_P(RtnFused, MatchesReferenceOnEdgeGroups) {
    for (const QuantScheme& s : schemes()) {
        const size_t cols = 200;
        std::vector<float> zeros(cols, 0.0f);
        expect_same(s, zeros, "all zero");
        std::vector<float> negative_zeros(cols, -0.0f);
        expect_same(s, negative_zeros, "all -0");
        expect_same(s, std::vector<float>(cols, 0.37f), "constant");
        expect_same(s, std::vector<float>(cols, -2.5e-3f), "negative constant");
        std::vector<float> outlier = gaussian(cols, 7, 0.01f);
        outlier[5] = 40.0f;
        outlier[150] = -25.0f;
        expect_same(s, outlier, "outliers");
        std::vector<float> half_zero = gaussian(cols, 8, 1.0f);
        std::fill(half_zero.begin(), half_zero.begin() + 100, 0.0f);
        expect_same(s, half_zero, "zero groups then values");
        // FP16 values: the exact (canonical) path.
        std::vector<float> fp16 = gaussian(cols, 9, 0.05f);
        for (float& x : fp16) x = fp16_to_fp32(fp32_to_fp16(x));
        expect_same(s, fp16, "fp16 values");
        // Multiples of a step: levels with a common factor.
        std::vector<float> even(cols);
        for (size_t i = 0; i < cols; ++i) even[i] = 0.01f * static_cast<float>(2 * (static_cast<int>(i % 5) - 2)) + 1e-9f;
        expect_same(s, even, "even levels");
        std::vector<float> tiny = gaussian(cols, 10, 1e-39f);  // subnormal floats
        expect_same(s, tiny, "subnormals");
        std::vector<float> one_sided = gaussian(cols, 11, 1.0f);
        for (float& x : one_sided) x = std::fabs(x);
        expect_same(s, one_sided, "non-negative");
        for (float& x : one_sided) x = -x;
        expect_same(s, one_sided, "non-positive");
    }
}

TEST_P(RtnFused, ReportsTheFirstNonFiniteGroup) {
    const float bad_values[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                                -std::numeric_limits<float>::infinity()};
    for (const float bad : bad_values) {
        for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{8, 0, true}, QuantScheme{3, 128, false}}) {
            std::vector<float> row = gaussian(300, 12, 0.02f);
            row[77] = bad;
            row[250] = bad;
            const RowResult got = run_row(s, row, true);
            EXPECT_EQ(got.status, s.group == 0 ? 0 : 77 / s.group) << s.name();
            expect_same(s, row, "non-finite");
        }
    }
}

TEST_P(RtnFused, ScaleOverflowThrowsLikeTheReference) {
    std::vector<float> row = gaussian(64, 13, 1.0f);
    row[40] = 3.0e38f;
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{2, 32, false}, QuantScheme{8, 0, true}}) {
        const RowResult got = run_row(s, row, true);
        EXPECT_NE(got.error.find("FP16"), std::string::npos) << got.error;
        expect_same(s, row, "overflow");
    }
}

TEST_P(RtnFused, QuantizeTensorNamesTheNonFiniteWeight) {
    std::vector<float> w = gaussian(8 * 96, 14, 0.02f);
    w[3 * 96 + 50] = std::numeric_limits<float>::quiet_NaN();
    const Tensor t = make_f32_tensor({8, 96}, w);
    try {
        quantize_tensor(t, QuantScheme{4, 32, true}, QuantMethod::Rtn, nullptr, "blk.w");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string what = e.what();
        EXPECT_NE(what.find("blk.w"), std::string::npos) << what;
        EXPECT_NE(what.find("row 3, column 50"), std::string::npos) << what;
    }
}

// quantize_tensor reads F32 weights of a file mapping with pread
// (core/memory.h MappedRangeReader): the packed result and the error sums
// must equal those of the same weights in ordinary memory.
TEST(RtnMappedSource, PreadOfAMappingGivesTheSameTensor) {
    const int64_t rows = 96, cols = 4096;  // 1.5 MiB: large enough to be read with pread
    const std::vector<float> w = gaussian(static_cast<size_t>(rows * cols), 15, 0.02f);
    const std::string path =
        (std::filesystem::temp_directory_path() / ("rtn_fused_test_" + std::to_string(::getpid()) + ".bin")).string();
    const size_t header = 64;  // the tensor starts inside the file, as in safetensors
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        const std::vector<uint8_t> pad(header, 0x5A);
        ASSERT_EQ(std::fwrite(pad.data(), 1, header, f), header);
        ASSERT_EQ(std::fwrite(w.data(), sizeof(float), w.size(), f), w.size());
        std::fclose(f);
    }
    const std::shared_ptr<MappedFile> file = MappedFile::open(path);
    Tensor mapped;
    mapped.shape = {rows, cols};
    mapped.data = file->data() + header;
    mapped.nbytes = w.size() * sizeof(float);
    mapped.owner = file;
    ASSERT_TRUE(MappedRangeReader(mapped.data, mapped.nbytes).ok());  // so the pread path is the one tested
    const Tensor owned = make_f32_tensor({rows, cols}, w);
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{8, 0, true}}) {
        QuantizationError e1, e2;
        const PackedTensor a = quantize_tensor(owned, s, QuantMethod::Rtn, nullptr, "w", {}, &e1);
        const PackedTensor b = quantize_tensor(mapped, s, QuantMethod::Rtn, nullptr, "w", {}, &e2);
        EXPECT_EQ(a.codes, b.codes);
        EXPECT_EQ(a.scales, b.scales);
        EXPECT_TRUE(same_bits(e1.noise, e2.noise));
    }
    std::filesystem::remove(path);
}

TEST(RtnMappedSource, ReaderCopiesFileBytesAndDeclinesOtherMemory) {
    const std::string path =
        (std::filesystem::temp_directory_path() / ("rtn_reader_test_" + std::to_string(::getpid()) + ".bin")).string();
    std::vector<uint8_t> bytes(3 * 4096 + 100);
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
    {
        std::FILE* f = std::fopen(path.c_str(), "wb");
        ASSERT_NE(f, nullptr);
        ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
        std::fclose(f);
    }
    const std::shared_ptr<MappedFile> file = MappedFile::open(path);
    const MappedRangeReader reader(file->data() + 10, bytes.size() - 10);
    ASSERT_TRUE(reader.ok());
    std::vector<uint8_t> got(5000);
    ASSERT_TRUE(reader.read(4000, got.size(), got.data()));
    EXPECT_TRUE(std::equal(got.begin(), got.end(), bytes.begin() + 4010));
    EXPECT_FALSE(reader.read(bytes.size() - 20, 20, got.data()));  // past the range
    std::filesystem::remove(path);
    EXPECT_FALSE(MappedRangeReader(file->data(), bytes.size()).ok());  // file deleted
    EXPECT_FALSE(MappedRangeReader(bytes.data(), bytes.size()).ok());   // heap memory
}

INSTANTIATE_TEST_SUITE_P(Targets, RtnFused, ::testing::ValuesIn(targets()),
                         [](const ::testing::TestParamInfo<int64_t>& info) {
                             return std::string(hwy::TargetName(info.param));
                         });

}  // namespace
}  // namespace sparq
