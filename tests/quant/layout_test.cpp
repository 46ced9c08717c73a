// Scheme names, the byte layout of quant/layout.h (checked against bytes
// worked out by hand), bits per weight and the checks on packed data read
// from files.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/bits.h"
#include "quant/layout.h"
#include "quant/reference_codec.h"
#include "quant/scheme.h"

namespace sparq {
namespace {

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(QuantScheme, NamesRoundTripAndBadNamesSayWhatIsExpected) {
    for (int bits : {8, 4, 3, 2}) {
        for (int64_t group : {0, 8, 32, 64, 128, 4096}) {
            for (bool sym : {true, false}) {
                const QuantScheme s{bits, group, sym};
                EXPECT_EQ(parse_quant_scheme(s.name()), s) << s.name();
            }
        }
    }
    EXPECT_EQ((QuantScheme{4, 128, true}).name(), "int4_g128_sym");
    EXPECT_EQ((QuantScheme{8, 0, false}).name(), "int8_ch_asym");
    EXPECT_NE(error_of([] { parse_quant_scheme("int5_g128_sym"); }).find("bit width 5"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_quant_scheme("int4_g96_sym"); }).find("power of two"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_quant_scheme("int4_g4_sym"); }).find("power of two >= 8"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_quant_scheme("int4_g-128_sym"); }).find("group size -128"),
              std::string::npos);
    for (const char* bad : {"int4_g128_foo", "int4_g0_sym", "int4_g0128_sym", "q4_0", "int4_g128",
                            "int4__sym", "int_g128_sym", "int4_g+128_sym"}) {
        EXPECT_NE(error_of([&] { parse_quant_scheme(bad); }).find("expected int<bits>"),
                  std::string::npos)
            << bad;
    }
}

TEST(QuantLayout, BytesMatchTheDocumentedLayout) {
    // int4: element 2i in the low nibble.
    const uint8_t four[3] = {1, 2, 3};
    uint8_t row[4] = {0xff, 0xff, 0xff, 0xff};
    pack_code_row({4, 32, false}, four, 3, row);
    EXPECT_EQ(row[0], 0x21);
    EXPECT_EQ(row[1], 0x03);  // unused high nibble is zero
    // int2: element 4i+j at bits 2j.
    const uint8_t two[5] = {1, 2, 3, 0, 3};
    pack_code_row({2, 32, false}, two, 5, row);
    EXPECT_EQ(row[0], 0x39);  // 0b00'11'10'01
    EXPECT_EQ(row[1], 0x03);
    // int3 over 9 columns: low plane ceil(9/4) = 3 bytes, high plane 2 bytes.
    const uint8_t three[9] = {7, 0, 5, 2, 4, 1, 6, 3, 7};
    uint8_t row3[5];
    pack_code_row({3, 32, false}, three, 9, row3);
    EXPECT_EQ(code_row_bytes({3, 32, false}, 9), 5);
    EXPECT_EQ(row3[0], 0x93);  // low bits 3,0,1,2 -> 0b10'01'00'11
    EXPECT_EQ(row3[1], 0xe4);  // low bits 0,1,2,3 -> 0b11'10'01'00
    EXPECT_EQ(row3[2], 0x03);  // low bits of element 8
    EXPECT_EQ(row3[3], 0x55);  // high bits 1,0,1,0,1,0,1,0
    EXPECT_EQ(row3[4], 0x01);  // high bit of element 8
    // int8 symmetric stores the two's-complement level q = u - 128.
    const uint8_t eight[3] = {1, 128, 255};
    pack_code_row({8, 0, true}, eight, 3, row);
    EXPECT_EQ(static_cast<int8_t>(row[0]), -127);
    EXPECT_EQ(static_cast<int8_t>(row[1]), 0);
    EXPECT_EQ(static_cast<int8_t>(row[2]), 127);
    // int3 zero points use nibbles; int2 zero points 2-bit fields.
    const uint8_t zeros[3] = {5, 7, 2};
    pack_zero_row({3, 8, false}, zeros, 3, row);
    EXPECT_EQ(row[0], 0x75);
    EXPECT_EQ(row[1], 0x02);
    pack_zero_row({2, 8, false}, zeros + 2, 1, row);
    EXPECT_EQ(row[0], 0x02);
}

TEST(QuantLayout, RandomCodesRoundTripThroughEveryPacking) {
    std::mt19937 rng(3);
    for (int bits : {8, 4, 3, 2}) {
        for (bool sym : {true, false}) {
            const QuantScheme s{bits, 32, sym};
            std::uniform_int_distribution<int> code(min_code(s), max_code(s));
            for (int64_t cols : {1, 7, 8, 9, 31, 32, 33, 64, 172, 288}) {
                std::vector<uint8_t> codes(cols), back(cols);
                for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
                std::vector<uint8_t> row(code_row_bytes(s, cols));
                pack_code_row(s, codes.data(), cols, row.data());
                unpack_code_row(s, row.data(), cols, back.data());
                EXPECT_EQ(codes, back) << s.name() << " cols " << cols;

                const int64_t groups = groups_per_row(s, cols);
                std::vector<uint8_t> zeros(groups), zeros_back(groups);
                std::uniform_int_distribution<int> zero(0, max_code(bits));
                for (auto& z : zeros) z = static_cast<uint8_t>(zero(rng));
                std::vector<uint8_t> zrow(zero_row_bytes({bits, 32, false}, cols));
                pack_zero_row(s, zeros.data(), groups, zrow.data());
                unpack_zero_row(s, zrow.data(), groups, zeros_back.data());
                EXPECT_EQ(zeros, zeros_back) << s.name() << " cols " << cols;
            }
        }
    }
}

TEST(QuantBits, BitsPerWeightCountEveryStoredByte) {
    EXPECT_EQ(packed_bits_per_weight({4, 128, true}, 256, 512), 4.125);
    EXPECT_EQ(packed_bytes({4, 128, true}, 256, 512), 256u * (256 + 4 * 2));
    EXPECT_EQ(packed_bits_per_weight({3, 128, true}, 8, 256), 3.125);
    EXPECT_EQ(packed_bits_per_weight({2, 64, true}, 8, 256), 2.25);
    EXPECT_EQ(packed_bits_per_weight({8, 0, true}, 8, 4096), 8.0 + 16.0 / 4096);
    // Zero points: 4 bits per group for int4 and int3.
    EXPECT_EQ(packed_bits_per_weight({4, 128, false}, 8, 256), 4.0 + 20.0 / 128);
    EXPECT_EQ(packed_bits_per_weight({3, 128, false}, 8, 256), 3.0 + 20.0 / 128);
    // A row of 172 at g128: 172 values and 2 scales (groups of 128 and 44).
    EXPECT_EQ(groups_per_row({4, 128, true}, 172), 2);
    EXPECT_EQ(packed_bits_per_weight({4, 128, true}, 4, 172), (172.0 * 4 + 2 * 16) / 172);
    // Odd rows round up to a whole byte per row: 171 int4 values use 86 bytes.
    EXPECT_EQ(packed_bits_per_weight({4, 128, true}, 4, 171), (86.0 * 8 + 2 * 16) / 171);
    // int3 planes: ceil(172/4) + ceil(172/8) = 43 + 22 bytes.
    EXPECT_EQ(packed_bytes({3, 128, true}, 1, 172), 43u + 22 + 4);
    // int2 asym per channel: 43 code bytes, one scale, one byte of zero point.
    EXPECT_EQ(packed_bits_per_weight({2, 0, false}, 3, 172), (43.0 + 2 + 1) * 8 / 172);
    EXPECT_EQ(packed_bits_per_weight({4, 128, true}, 0, 172), 0.0);
    EXPECT_NE(error_of([] { packed_bytes({4, 128, true}, int64_t{1} << 62, 1 << 20); })
                  .find("overflows"),
              std::string::npos);
}

PackedTensor sample_packed(const QuantScheme& s, int64_t rows, int64_t cols) {
    PackedTensor t(s, rows, cols);
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> code(min_code(s), max_code(s));
    std::vector<uint8_t> codes(cols);
    const PackedGeometry g = t.view().geometry();
    for (int64_t r = 0; r < rows; ++r) {
        for (auto& c : codes) c = static_cast<uint8_t>(code(rng));
        pack_code_row(s, codes.data(), cols, t.codes.data() + r * g.code_row_bytes);
    }
    for (size_t i = 0; i < t.scales.size(); ++i) t.scales[i] = fp32_to_fp16(0.01f * (i + 1));
    std::vector<uint8_t> zeros(g.groups_per_row, static_cast<uint8_t>(max_code(s.bits) / 2));
    for (int64_t r = 0; r < rows && !s.symmetric; ++r) {
        pack_zero_row(s, zeros.data(), g.groups_per_row, t.zeros.data() + r * g.zero_row_bytes);
    }
    return t;
}

TEST(QuantLayout, BlobViewReadsTheSameTensorAndRejectsWrongSizes) {
    for (const QuantScheme& s : {QuantScheme{4, 32, false}, QuantScheme{3, 64, true},
                                 QuantScheme{8, 0, true}, QuantScheme{2, 8, false}}) {
        const PackedTensor t = sample_packed(s, 5, 77);
        const std::vector<uint8_t> blob = t.blob();
        ASSERT_EQ(blob.size(), packed_bytes(s, 5, 77));
        const PackedView view = view_packed_blob(s, 5, 77, blob.data(), blob.size(), "w");
        std::vector<float> from_blob(5 * 77), from_tensor(5 * 77);
        dequantize_rows(view, 0, 5, from_blob.data());
        dequantize_rows(t.view(), 0, 5, from_tensor.data());
        EXPECT_EQ(from_blob, from_tensor) << s.name();
        EXPECT_NO_THROW(check_packed_contents(view, "w"));
        const std::string message = error_of(
            [&] { view_packed_blob(s, 5, 77, blob.data(), blob.size() - 1, "layers.0.q_proj"); });
        EXPECT_NE(message.find("layers.0.q_proj"), std::string::npos) << message;
        EXPECT_NE(message.find("needs " + std::to_string(blob.size()) + " bytes"), std::string::npos);
    }
}

TEST(QuantLayout, CorruptContentsAreReportedWithTensorAndRow) {
    const auto message_for = [](PackedTensor t) {
        return error_of([&] { check_packed_contents(t.view(), "model.w"); });
    };
    PackedTensor zero_point = sample_packed({3, 32, false}, 4, 40);
    zero_point.zeros[2 * zero_row_bytes({3, 32, false}, 40)] = 0x09;  // row 2, z = 9 > 7
    EXPECT_NE(message_for(zero_point).find("row 2: zero point 9"), std::string::npos)
        << message_for(zero_point);
    PackedTensor minus_128 = sample_packed({8, 0, true}, 3, 16);
    minus_128.codes[16 + 5] = 0x80;
    EXPECT_NE(message_for(minus_128).find("row 1: int8 code -128 at column 5"), std::string::npos);
    PackedTensor padding = sample_packed({4, 32, true}, 3, 33);
    padding.codes[code_row_bytes({4, 32, true}, 33) - 1] |= 0x10;  // row 0, past column 32
    EXPECT_NE(message_for(padding).find("row 0: nonzero padding bits"), std::string::npos);
    PackedTensor padding3 = sample_packed({3, 32, true}, 2, 9);
    padding3.codes[5 + 4] |= 0x02;  // row 1 high plane, bit of column 9
    EXPECT_NE(message_for(padding3).find("row 1: nonzero padding bits"), std::string::npos);
    PackedTensor infinite = sample_packed({4, 32, true}, 2, 64);
    infinite.scales[3] = 0x7c00;
    EXPECT_NE(message_for(infinite).find("row 1: scale 1 is not finite"), std::string::npos);
    PackedTensor negative = sample_packed({4, 32, false}, 2, 64);
    negative.scales[0] = 0xbc00;  // -1 in an asymmetric scheme
    EXPECT_NE(message_for(negative).find("model.w"), std::string::npos);
}

}  // namespace
}  // namespace sparq
