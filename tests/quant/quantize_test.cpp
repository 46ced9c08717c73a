// Whole-tensor quantization over every scheme: the error bound, canonical
// idempotency, the reference codec agreeing with the quantizer, edge values,
// errors that name the tensor, and thread-count determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "core/parallel.h"
#include "quant/bits.h"
#include "quant/quantize_tensor.h"
#include "quant/reference_codec.h"

namespace sparq {
namespace {

std::vector<QuantScheme> all_schemes(std::initializer_list<int64_t> groups) {
    std::vector<QuantScheme> out;
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            for (int64_t g : groups) out.push_back({bits, g, sym});
        }
    }
    return out;
}

// Row 0 normal, row 1 small-scale Student-t (heavy tails), row 2 on a
// coarse grid (exact ties and already-representable values).
std::vector<float> mixed_rows(int64_t rows, int64_t cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::student_t_distribution<float> heavy(3.0f);
    std::uniform_int_distribution<int> grid(-12, 12);
    std::vector<float> v(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
            float& x = v[static_cast<size_t>(r * cols + c)];
            x = r % 3 == 0 ? normal(rng) : r % 3 == 1 ? 0.02f * heavy(rng) : 0.125f * grid(rng);
        }
    }
    return v;
}

PackedTensor quantize(const std::vector<float>& values, int64_t rows, int64_t cols,
                      const QuantScheme& s, QuantMethod method,
                      const std::vector<float>* importance = nullptr) {
    return quantize_tensor(make_f32_tensor({rows, cols}, values), s, method, importance, "w");
}

void expect_same_bytes(const PackedTensor& a, const PackedTensor& b, const std::string& what) {
    EXPECT_EQ(a.codes, b.codes) << what;
    EXPECT_EQ(a.scales, b.scales) << what;
    EXPECT_EQ(a.zeros, b.zeros) << what;
}

// Calls fn(row, group, first column, length, params) for every group.
void for_each_group(const PackedTensor& t,
                    const std::function<void(int64_t, int64_t, int64_t, int64_t, GroupParams)>& fn) {
    const int64_t span = t.scheme.group_span(t.cols);
    for (int64_t r = 0; r < t.rows; ++r) {
        for (int64_t k = 0; k < groups_per_row(t.scheme, t.cols); ++k) {
            const int64_t first = k * span;
            fn(r, k, first, std::min(span, t.cols - first), read_group_params(t.view(), r, k));
        }
    }
}

// Every element within half a step of its value (plus float rounding). A
// group stored with scale 0 had values below 2^-25 (quant/rtn.h).
void expect_within_half_step(const PackedTensor& t, const std::vector<float>& x,
                             const std::vector<float>& dq, const std::string& what) {
    for_each_group(t, [&](int64_t r, int64_t k, int64_t first, int64_t n, GroupParams p) {
        const double half_step =
            p.scale == 0 ? std::ldexp(1.0, -25) : 0.5 * std::fabs(p.scale_value()) * (1 + 1e-6);
        for (int64_t c = first; c < first + n; ++c) {
            const size_t i = static_cast<size_t>(r * t.cols + c);
            ASSERT_TRUE(std::isfinite(dq[i])) << what;
            ASSERT_LE(std::fabs(static_cast<double>(x[i]) - dq[i]), half_step)
                << what << " row " << r << " group " << k << " col " << c << " x " << x[i];
        }
    });
}

TEST(QuantizeTensor, EverySchemeOnOddShapesKeepsItsGuarantees) {
    const std::vector<int64_t> widths = {1, 7, 31, 32, 33, 64, 172, 288};
    for (const QuantScheme& s : all_schemes({0, 32, 64, 128})) {
        for (int64_t cols : widths) {
            const std::string what = s.name() + " cols " + std::to_string(cols);
            const int64_t rows = 6;
            const std::vector<float> x = mixed_rows(rows, cols, static_cast<uint32_t>(cols));
            const PackedTensor rtn = quantize(x, rows, cols, s, QuantMethod::Rtn);
            ASSERT_EQ(rtn.blob().size(), packed_bytes(s, rows, cols)) << what;
            EXPECT_NO_THROW(check_packed_contents(rtn.view(), "w")) << what;
            const std::vector<float> dq = dequantize_tensor(rtn);
            expect_within_half_step(rtn, x, dq, what);
            std::vector<float> tail_rows(static_cast<size_t>(3 * cols));
            dequantize_rows(rtn.view(), 3, 6, tail_rows.data());
            EXPECT_TRUE(std::equal(tail_rows.begin(), tail_rows.end(), dq.begin() + 3 * cols)) << what;

            // The reference encoder with the stored scales reproduces the codes.
            PackedTensor encoded = rtn;
            std::fill(encoded.codes.begin(), encoded.codes.end(), 0xa5);
            quantize_rows(x.data(), 0, rows, encoded);
            EXPECT_EQ(encoded.codes, rtn.codes) << what;

            // Dequantized values are representable: quantizing them again
            // reproduces the same bytes, with either method.
            expect_same_bytes(quantize(dq, rows, cols, s, QuantMethod::Rtn), rtn, what + " rtn");
            expect_same_bytes(quantize(dq, rows, cols, s, QuantMethod::Mse), rtn, what + " mse");

            // The clipping search never loses to RTN on any group.
            const PackedTensor mse = quantize(x, rows, cols, s, QuantMethod::Mse);
            const std::vector<float> dq_mse = dequantize_tensor(mse);
            for_each_group(mse, [&](int64_t r, int64_t k, int64_t first, int64_t n, GroupParams p) {
                const float* group = x.data() + r * cols + first;
                const double e_mse = group_squared_error(s, group, n, nullptr, p);
                const double e_rtn = group_squared_error(s, group, n, nullptr,
                                                         read_group_params(rtn.view(), r, k));
                EXPECT_LE(e_mse, e_rtn) << what << " row " << r << " group " << k;
            });
            expect_same_bytes(quantize(dq_mse, rows, cols, s, QuantMethod::Mse), mse, what + " mse2");
            expect_same_bytes(quantize(dq_mse, rows, cols, s, QuantMethod::Rtn), mse, what + " mse3");
        }
    }
}

TEST(QuantizeTensor, ZeroConstantOutlierAndDenormalRows) {
    const int64_t cols = 96;
    std::vector<float> x(5 * cols, 0.0f);
    std::mt19937 rng(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t c = 0; c < cols; ++c) {
        x[1 * cols + c] = 0.3f;
        x[2 * cols + c] = -2.5f;
        x[3 * cols + c] = normal(rng);
        x[4 * cols + c] = c % 3 == 0 ? 0.0f : (c % 2 ? 1e-40f : -1e-40f);
    }
    x[3 * cols + 17] = 1e4f;
    x[4 * cols + 5] = 1.4e-45f;  // smallest float subnormal
    for (const QuantScheme& s : all_schemes({0, 32, 64, 128})) {
        for (QuantMethod method : {QuantMethod::Rtn, QuantMethod::Mse}) {
            const std::string what = s.name() + " " + std::string(quant_method_name(method));
            const PackedTensor t = quantize(x, 5, cols, s, method);
            const std::vector<float> dq = dequantize_tensor(t);
            for (float v : dq) ASSERT_TRUE(std::isfinite(v)) << what;
            // All-zero row: exact zeros and zero scales.
            for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(dq[c], 0.0f) << what;
            for_each_group(t, [&](int64_t r, int64_t, int64_t first, int64_t n, GroupParams p) {
                if (r == 0) {
                    EXPECT_EQ(p.scale_value(), 0.0f) << what;
                }
                // Constant rows come back nearly exact, one code per group.
                if (r == 1 || r == 2) {
                    for (int64_t c = first; c < first + n; ++c) {
                        const float v = x[r * cols + c];
                        EXPECT_EQ(dq[r * cols + c], dq[r * cols + first]) << what;
                        EXPECT_LE(std::fabs(dq[r * cols + c] - v), std::fabs(v) * 1e-3) << what;
                    }
                }
            });
            if (method == QuantMethod::Rtn) {
                expect_within_half_step(t, x, dq, what);  // includes the outlier and denormals
                const GroupParams p = read_group_params(t.view(), 3, 17 / s.group_span(cols));
                EXPECT_LE(std::fabs(dq[3 * cols + 17] - 1e4f), 0.5f * std::fabs(p.scale_value()))
                    << what;
                // The outlier sets the step.
                EXPECT_GE(std::fabs(p.scale_value()), 1e4f / (max_code(s.bits) + 1)) << what;
            }
        }
    }
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(QuantizeTensor, NonFiniteValuesAreErrorsNamingTensorAndPosition) {
    const float bad_values[] = {std::nanf(""), INFINITY, -INFINITY};
    const char* names[] = {"NaN", "+Inf", "-Inf"};
    for (int b = 0; b < 3; ++b) {
        std::vector<float> x = mixed_rows(4, 40, 1);
        x[2 * 40 + 5] = bad_values[b];
        x[3 * 40 + 1] = bad_values[b];  // only the first one is reported
        for (QuantMethod m : {QuantMethod::Rtn, QuantMethod::Mse}) {
            const std::string message = error_of([&] {
                quantize_tensor(make_f32_tensor({4, 40}, x), {4, 32, true}, m, nullptr,
                                "model.layers.3.mlp.down_proj.weight");
            });
            EXPECT_NE(message.find("tensor 'model.layers.3.mlp.down_proj.weight'"), std::string::npos)
                << message;
            EXPECT_NE(message.find(std::string("non-finite value ") + names[b] + " at row 2, column 5"),
                      std::string::npos)
                << message;
        }
    }
}

TEST(QuantizeTensor, NonFiniteValuesAreReportedBeforeOtherFailures) {
    // 8192 columns: 8 rows per chunk. An FP16-overflowing group in chunk 0,
    // the NaN in chunk 2: the NaN is what the user must fix first.
    std::vector<float> x(20 * 8192, 0.5f);
    x[3] = 1e6f;
    x[17 * 8192 + 100] = std::nanf("");
    const std::string message = error_of([&] {
        quantize_tensor(make_f32_tensor({20, 8192}, x), {2, 32, true}, QuantMethod::Rtn, nullptr, "w");
    });
    EXPECT_NE(message.find("NaN at row 17, column 100"), std::string::npos) << message;
}

TEST(QuantizeTensor, BadInputsAreErrorsNamingTheTensor) {
    const Tensor ok = make_f32_tensor({2, 16}, std::vector<float>(32, 1.0f));
    const auto expect_error = [](const std::function<void()>& fn, const std::string& part) {
        const std::string message = error_of(fn);
        EXPECT_NE(message.find("tensor 'lm.w'"), std::string::npos) << message;
        EXPECT_NE(message.find(part), std::string::npos) << message;
    };
    expect_error([&] { quantize_tensor(make_f32_tensor({2, 2, 4}, std::vector<float>(16)),
                                       {4, 32, true}, QuantMethod::Rtn, nullptr, "lm.w"); },
                 "2-D weight");
    Tensor ints = ok;
    ints.dtype = DType::I32;
    expect_error([&] { quantize_tensor(ints, {4, 32, true}, QuantMethod::Rtn, nullptr, "lm.w"); },
                 "I32");
    expect_error([&] { quantize_tensor(ok, {5, 32, true}, QuantMethod::Rtn, nullptr, "lm.w"); },
                 "bit width 5");
    Tensor truncated = ok;
    truncated.nbytes -= 4;
    expect_error([&] { quantize_tensor(truncated, {4, 32, true}, QuantMethod::Rtn, nullptr, "lm.w"); },
                 "holds 124 bytes, expected 128");
    std::vector<float> short_importance(15, 1.0f), negative(16, 1.0f);
    negative[3] = -1.0f;
    expect_error([&] { quantize_tensor(ok, {4, 32, true}, QuantMethod::Mse, &short_importance, "lm.w"); },
                 "expected one per column (16)");
    expect_error([&] { quantize_tensor(ok, {4, 32, true}, QuantMethod::Mse, &negative, "lm.w"); },
                 "importance of column 3");
    // int2 symmetric: 1e6 needs a step of 5e5, beyond FP16.
    std::vector<float> huge(32, 0.0f);
    huge[16 + 9] = 1e6f;
    expect_error([&] { quantize_tensor(make_f32_tensor({2, 16}, huge), {2, 8, true},
                                       QuantMethod::Rtn, nullptr, "lm.w"); },
                 "row 1, group 1: a group with values up to 1e+06");
}

TEST(QuantizeTensor, BytesAreIdenticalForAnyThreadCount) {
    const int64_t rows = 300, cols = 1000;  // 65 rows per chunk: 5 chunks
    const std::vector<float> x = mixed_rows(rows, cols, 9);
    std::vector<float> importance(cols);
    for (int64_t c = 0; c < cols; ++c) importance[c] = 0.5f + static_cast<float>(c % 7);
    for (const QuantScheme& s : {QuantScheme{4, 128, true}, QuantScheme{3, 64, false}}) {
        for (QuantMethod m : {QuantMethod::Rtn, QuantMethod::Mse}) {
            PackedTensor one, two;
            {
                ThreadLimit limit(1);
                one = quantize(x, rows, cols, s, m, &importance);
            }
            {
                ThreadLimit limit(2);
                two = quantize(x, rows, cols, s, m, &importance);
            }
            expect_same_bytes(one, two, s.name());
            EXPECT_EQ(dequantize_tensor(one), dequantize_tensor(two));
        }
    }
}

TEST(QuantizeTensor, HalfPrecisionInputsQuantizeLikeTheirFloatValues) {
    const std::vector<float> x = mixed_rows(3, 72, 4);
    std::vector<uint16_t> f16(x.size()), bf16(x.size());
    std::vector<float> f16_values(x.size()), bf16_values(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
        f16[i] = fp32_to_fp16(x[i]);
        bf16[i] = fp32_to_bf16(x[i]);
        f16_values[i] = fp16_to_fp32(f16[i]);
        bf16_values[i] = bf16_to_fp32(bf16[i]);
    }
    const auto tensor_of = [](DType dtype, const std::vector<uint16_t>& bits) {
        Tensor t;
        t.dtype = dtype;
        t.shape = {3, 72};
        t.data = reinterpret_cast<const uint8_t*>(bits.data());
        t.nbytes = bits.size() * 2;
        return t;
    };
    const QuantScheme s{4, 32, false};
    expect_same_bytes(quantize_tensor(tensor_of(DType::F16, f16), s, QuantMethod::Rtn, nullptr, "w"),
                      quantize(f16_values, 3, 72, s, QuantMethod::Rtn), "f16");
    expect_same_bytes(quantize_tensor(tensor_of(DType::BF16, bf16), s, QuantMethod::Rtn, nullptr, "w"),
                      quantize(bf16_values, 3, 72, s, QuantMethod::Rtn), "bf16");
}

TEST(QuantizeTensor, ErrorSumsGatheredWhileQuantizingMatchSqnr) {
    const int64_t rows = 300, cols = 1000;
    const std::vector<float> x = mixed_rows(rows, cols, 12);
    for (const QuantScheme& s : {QuantScheme{4, 32, true}, QuantScheme{3, 64, false}, QuantScheme{8, 0, true}}) {
        for (QuantMethod m : {QuantMethod::Rtn, QuantMethod::Mse}) {
            QuantizationError one, two;
            PackedTensor packed;
            {
                ThreadLimit limit(1);
                packed = quantize_tensor(make_f32_tensor({rows, cols}, x), s, m, nullptr, "w", {}, &one);
            }
            {
                ThreadLimit limit(2);
                quantize_tensor(make_f32_tensor({rows, cols}, x), s, m, nullptr, "w", {}, &two);
            }
            EXPECT_EQ(one.signal, two.signal) << s.name();  // bit-identical for any thread count
            EXPECT_EQ(one.noise, two.noise) << s.name();
            EXPECT_NEAR(one.sqnr_db(), sqnr_db(x, dequantize_tensor(packed)), 1e-9) << s.name();
        }
    }
    EXPECT_EQ((QuantizationError{1.0, 0.0}.sqnr_db()), INFINITY);
    EXPECT_EQ((QuantizationError{0.0, 1.0}.sqnr_db()), -INFINITY);
}

TEST(QuantizeTensor, SqnrMatchesItsDefinition) {
    EXPECT_NEAR(sqnr_db({1.0f, 1.0f}, {1.0f, 0.0f}), 10 * std::log10(2.0), 1e-12);
    EXPECT_EQ(sqnr_db({1.0f, -2.0f}, {1.0f, -2.0f}), INFINITY);
    EXPECT_EQ(sqnr_db({0.0f}, {1.0f}), -INFINITY);
    EXPECT_THROW(sqnr_db({1.0f}, {}), Error);
    // int8 on N(0,1) rows of 4096 per channel: about 6 dB per bit.
    const std::vector<float> x = mixed_rows(1, 4096, 2);
    const double db = sqnr_db(x, dequantize_tensor(quantize(x, 1, 4096, {8, 0, true}, QuantMethod::Rtn)));
    EXPECT_GT(db, 38.0);
    EXPECT_LT(db, 45.0);
}

}  // namespace
}  // namespace sparq
