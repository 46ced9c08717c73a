// GGUF writer -> reader round trips, the exact bytes the spec prescribes,
// and hostile files that the reader must refuse with a specific sparq::Error.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "core/mapped_file.h"
#include "formats/error_matchers.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_writer.h"
#include "gguf/gguf_bytes.h"
#include "test_data.h"

namespace sparq::gguf {
namespace {

using sparq::testing::GgufBytes;
using sparq::testing::read_bytes;
using sparq::testing::temp_dir;
using sparq::testing::write_bytes;

GgufFile parse_bytes(const std::string& bytes, const std::string& name = "test.gguf") {
    return GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), name);
}

TEST(GgufValue, TypedAccessChecksTheType) {
    const Value v = Value::scalar<uint32_t>(7);
    EXPECT_EQ(v.get<uint32_t>(), 7u);
    EXPECT_EQ(v.to_int64(), 7);
    EXPECT_SPARQ_ERROR(v.get<int32_t>(), "expected a int32 value, found uint32");
    EXPECT_SPARQ_ERROR(v.get_string(), "expected a string value, found uint32");
    const Value a = Value::array(std::vector<float>{1.5f, -2.0f});
    EXPECT_SPARQ_ERROR(a.get_array<int32_t>(), "expected an array of int32, found an array of float32");
    EXPECT_SPARQ_ERROR(a.get<float>(), "found array");
    EXPECT_EQ(a.to_display(), "[float32 x 2: 1.5, -2]");
}

TEST(GgufRoundTrip, EveryValueType) {
    GgufWriter w;
    w.set_scalar<uint8_t>("t.u8", 250);
    w.set_scalar<int8_t>("t.i8", -120);
    w.set_scalar<uint16_t>("t.u16", 65000);
    w.set_scalar<int16_t>("t.i16", -32000);
    w.set_scalar<uint32_t>("t.u32", 4000000000u);
    w.set_scalar<int32_t>("t.i32", -2000000000);
    w.set_scalar<float>("t.f32", 3.25f);
    w.set_scalar<bool>("t.bool_true", true);
    w.set_scalar<bool>("t.bool_false", false);
    w.set_string("t.string", std::string("h\xc3\xa9llo\0world", 12));
    w.set_string("t.empty_string", "");
    w.set_scalar<uint64_t>("t.u64", std::numeric_limits<uint64_t>::max());
    w.set_scalar<int64_t>("t.i64", std::numeric_limits<int64_t>::min());
    w.set_scalar<double>("t.f64", -1.0 / 3.0);
    w.set("t.arr_u8", Value::array(std::vector<uint8_t>{0, 1, 255}));
    w.set("t.arr_i8", Value::array(std::vector<int8_t>{-128, 0, 127}));
    w.set("t.arr_u16", Value::array(std::vector<uint16_t>{1, 65535}));
    w.set("t.arr_i16", Value::array(std::vector<int16_t>{-32768, 32767}));
    w.set("t.arr_u32", Value::array(std::vector<uint32_t>{1, 2, 3}));
    w.set("t.arr_i32", Value::array(std::vector<int32_t>{-1, 6, 3}));
    w.set("t.arr_f32", Value::array(std::vector<float>{0.5f, -0.0f, INFINITY}));
    w.set("t.arr_bool", Value::array(std::vector<bool>{true, false, true}));
    w.set("t.arr_string", Value::string_array({"a", "", "\xe2\x96\x81the"}));
    w.set("t.arr_u64", Value::array(std::vector<uint64_t>{1ull << 40}));
    w.set("t.arr_i64", Value::array(std::vector<int64_t>{-(1ll << 40)}));
    w.set("t.arr_f64", Value::array(std::vector<double>{1e300, -1e-300}));
    w.set("t.arr_empty", Value::array(std::vector<uint32_t>{}));
    w.set("t.arr_nested", Value::array_of_arrays({Value::array(std::vector<int32_t>{1, 2}),
                                                   Value::string_array({"x", "y", "z"})}));
    // Setting a key again replaces it in place.
    w.set_scalar<uint32_t>("t.replaced", 1);
    w.set_scalar<uint32_t>("t.replaced", 2);

    const std::string path = temp_dir("gguf-kv") + "/kv.gguf";
    w.write(path);
    const GgufFile f = GgufFile::open(path);
    EXPECT_EQ(f.version(), 3u);
    EXPECT_EQ(f.alignment(), 32u);
    EXPECT_TRUE(f.tensors().empty());
    ASSERT_EQ(f.kvs().size(), w.kvs().size());
    for (size_t i = 0; i < w.kvs().size(); ++i) {
        EXPECT_EQ(f.kvs()[i].first, w.kvs()[i].first);
        EXPECT_TRUE(f.kvs()[i].second == w.kvs()[i].second) << f.kvs()[i].first;
    }
    EXPECT_EQ(f.get_scalar<uint8_t>("t.u8"), 250);
    EXPECT_EQ(f.get_scalar<int8_t>("t.i8"), -120);
    EXPECT_EQ(f.get_scalar<uint16_t>("t.u16"), 65000);
    EXPECT_EQ(f.get_scalar<int16_t>("t.i16"), -32000);
    EXPECT_EQ(f.get_scalar<uint32_t>("t.u32"), 4000000000u);
    EXPECT_EQ(f.get_scalar<int32_t>("t.i32"), -2000000000);
    EXPECT_EQ(f.get_scalar<float>("t.f32"), 3.25f);
    EXPECT_TRUE(f.get_scalar<bool>("t.bool_true"));
    EXPECT_FALSE(f.get_scalar<bool>("t.bool_false"));
    EXPECT_EQ(f.get_string("t.string"), std::string("h\xc3\xa9llo\0world", 12));
    EXPECT_EQ(f.get_string("t.empty_string"), "");
    EXPECT_EQ(f.get_scalar<uint64_t>("t.u64"), std::numeric_limits<uint64_t>::max());
    EXPECT_EQ(f.get_scalar<int64_t>("t.i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(f.get_scalar<double>("t.f64"), -1.0 / 3.0);
    EXPECT_EQ(f.get("t.arr_u8").get_array<uint8_t>(), (std::vector<uint8_t>{0, 1, 255}));
    EXPECT_EQ(f.get("t.arr_i8").get_array<int8_t>(), (std::vector<int8_t>{-128, 0, 127}));
    EXPECT_EQ(f.get("t.arr_u16").get_array<uint16_t>(), (std::vector<uint16_t>{1, 65535}));
    EXPECT_EQ(f.get("t.arr_i16").get_array<int16_t>(), (std::vector<int16_t>{-32768, 32767}));
    EXPECT_EQ(f.get("t.arr_u32").get_array<uint32_t>(), (std::vector<uint32_t>{1, 2, 3}));
    EXPECT_EQ(f.get("t.arr_i32").get_array<int32_t>(), (std::vector<int32_t>{-1, 6, 3}));
    const auto floats = f.get("t.arr_f32").get_array<float>();
    ASSERT_EQ(floats.size(), 3u);
    EXPECT_EQ(floats[0], 0.5f);
    EXPECT_TRUE(std::signbit(floats[1]));
    EXPECT_TRUE(std::isinf(floats[2]));
    EXPECT_EQ(f.get("t.arr_bool").get_array<bool>(), (std::vector<bool>{true, false, true}));
    EXPECT_EQ(f.get("t.arr_string").get_strings(), (std::vector<std::string>{"a", "", "\xe2\x96\x81the"}));
    EXPECT_EQ(f.get("t.arr_u64").get_array<uint64_t>(), (std::vector<uint64_t>{1ull << 40}));
    EXPECT_EQ(f.get("t.arr_i64").get_array<int64_t>(), (std::vector<int64_t>{-(1ll << 40)}));
    EXPECT_EQ(f.get("t.arr_f64").get_array<double>(), (std::vector<double>{1e300, -1e-300}));
    EXPECT_EQ(f.get("t.arr_empty").size(), 0u);
    EXPECT_EQ(f.get("t.arr_empty").element_type(), ValueType::UInt32);
    const auto& nested = f.get("t.arr_nested").get_arrays();
    ASSERT_EQ(nested.size(), 2u);
    EXPECT_EQ(nested[0].get_array<int32_t>(), (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(nested[1].get_strings(), (std::vector<std::string>{"x", "y", "z"}));
    EXPECT_EQ(f.get_scalar<uint32_t>("t.replaced"), 2u);
    EXPECT_EQ(f.find("t.absent"), nullptr);
    EXPECT_SPARQ_ERROR(f.get("t.absent"), "kv.gguf", "t.absent", "missing metadata key");
    EXPECT_SPARQ_ERROR(f.get_scalar<int32_t>("t.u32"), "kv.gguf", "field 't.u32'", "expected a int32 value, found uint32");
}

TEST(GgufRoundTrip, TensorDataShapesAndAlignment) {
    for (uint32_t alignment : {32u, 64u, 8u}) {
        GgufWriter w;
        if (alignment != 32) w.set_scalar<uint32_t>("general.alignment", alignment);
        std::vector<float> a(3 * 5);
        for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i) * 0.25f - 1.0f;
        std::vector<uint16_t> b(2 * 7);
        for (size_t i = 0; i < b.size(); ++i) b[i] = fp32_to_fp16(static_cast<float>(i) / 3.0f);
        std::vector<float> c = {1, 2, 3};
        std::vector<float> d(2 * 3 * 4);
        for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<float>(i);
        w.add_tensor_data("a", {3, 5}, GgmlType::F32, a.data(), a.size() * 4);
        w.add_tensor("b", {2, 7}, GgmlType::F16,
                     [&](uint8_t* out) { std::memcpy(out, b.data(), b.size() * 2); });
        w.add_tensor_data("c", {3}, GgmlType::F32, c.data(), c.size() * 4);
        w.add_tensor_data("d.3d", {2, 3, 4}, GgmlType::F32, d.data(), d.size() * 4);
        const std::string path = temp_dir("gguf-tensors") + "/t.gguf";
        const uint64_t written = w.write(path);

        const GgufFile f = GgufFile::open(path);
        EXPECT_EQ(f.file_size(), written);
        EXPECT_EQ(f.alignment(), alignment);
        EXPECT_EQ(f.data_offset() % alignment, 0u);
        ASSERT_EQ(f.tensors().size(), 4u);
        const TensorInfo& ta = f.tensors()[0];
        EXPECT_EQ(ta.name, "a");
        EXPECT_EQ(ta.dims, (std::vector<uint64_t>{5, 3}));  // GGUF order: row length first
        EXPECT_EQ(ta.shape(), (Shape{3, 5}));
        EXPECT_EQ(ta.type, GgmlType::F32);
        EXPECT_EQ(ta.offset, 0u);
        EXPECT_EQ(ta.nbytes, 60u);
        const TensorInfo& tb = *f.find_tensor("b");
        EXPECT_EQ(tb.dims, (std::vector<uint64_t>{7, 2}));
        EXPECT_EQ(tb.type, GgmlType::F16);
        EXPECT_EQ(tb.nbytes, 28u);
        for (const TensorInfo& t : f.tensors()) {
            EXPECT_EQ(t.offset % alignment, 0u) << t.name;
            EXPECT_EQ((f.data_offset() + t.offset) % alignment, 0u) << t.name;
        }
        EXPECT_EQ(f.find_tensor("d.3d")->dims, (std::vector<uint64_t>{4, 3, 2}));

        const Tensor ra = f.tensor(ta);
        EXPECT_EQ(ra.dtype, DType::F32);
        EXPECT_EQ(ra.shape, (Shape{3, 5}));
        EXPECT_EQ(ra.to_f32(), a);
        const Tensor rb = f.tensor(tb);
        EXPECT_EQ(rb.dtype, DType::F16);
        ASSERT_EQ(rb.nbytes, b.size() * 2);
        EXPECT_EQ(std::memcmp(rb.data, b.data(), rb.nbytes), 0);
        EXPECT_EQ(f.tensor(*f.find_tensor("c")).to_f32(), c);
        EXPECT_EQ(f.tensor(*f.find_tensor("d.3d")).to_f32(), d);
        // Padding bytes are zeros and the file ends on the alignment.
        EXPECT_EQ(written % alignment, 0u);
    }
}

// The writer's bytes match the spec's layout, built field by field by hand.
TEST(GgufRoundTrip, ExactBytesOfATinyFile) {
    GgufWriter w;
    w.set_scalar<uint32_t>("x.n", 7);
    w.set_string("x.s", "ab");
    const std::vector<float> v = {1.0f, -2.0f};
    w.add_tensor_data("w", {2}, GgmlType::F32, v.data(), 8);
    const std::string path = temp_dir("gguf-exact") + "/x.gguf";
    w.write(path);

    GgufBytes expected;
    expected.header(1, 2).kv_u32("x.n", 7).kv_string("x.s", "ab").tensor_info("w", {2}, 0, 0).pad_to(32);
    expected.f32(1.0f).f32(-2.0f).pad_to(32);
    EXPECT_EQ(read_bytes(path), expected.bytes());
}

TEST(GgufWriter, RejectsBadInput) {
    GgufWriter w;
    EXPECT_SPARQ_ERROR(w.set_scalar<uint64_t>("general.alignment", 32), "general.alignment", "must be a uint32");
    EXPECT_SPARQ_ERROR(w.set_scalar<uint32_t>("general.alignment", 24), "power of two");
    EXPECT_SPARQ_ERROR(w.set_scalar<uint32_t>("", 1), "must not be empty");
    EXPECT_SPARQ_ERROR(w.set("k", Value()), "field 'k'", "value holds 0 bytes, a uint8 needs 1");
    std::vector<float> x(30);
    EXPECT_SPARQ_ERROR(w.add_tensor_data("x", {30}, GgmlType::F32, x.data(), 100), "tensor 'x'", "needs 120");
    w.add_tensor_data("x", {30}, GgmlType::F32, x.data(), 120);
    EXPECT_SPARQ_ERROR(w.add_tensor_data("x", {30}, GgmlType::F32, x.data(), 120), "added twice");
    EXPECT_SPARQ_ERROR(w.add_tensor("q", {2, 30}, GgmlType::Q8_0, [](uint8_t*) {}), "tensor 'q'",
                       "multiple of 32");
    EXPECT_SPARQ_ERROR(w.add_tensor(std::string(64, 'n'), {1}, GgmlType::F32, [](uint8_t*) {}), "at most 63");
    EXPECT_SPARQ_ERROR(w.add_tensor("five", {1, 1, 1, 1, 1}, GgmlType::F32, [](uint8_t*) {}), "more than 4");
    EXPECT_EQ(ggml_tensor_bytes(GgmlType::Q8_0, {2, 64}), 2u * 2u * 34u);
    EXPECT_EQ(ggml_tensor_bytes(GgmlType::Q4_K, {3, 512}), 3u * 2u * 144u);
}

TEST(GgufWriter, FailedWriteLeavesNothingBehind) {
    const std::string dir = temp_dir("gguf-atomic");
    GgufWriter w;
    w.set_string("general.name", "x");
    w.add_tensor("t", {4}, GgmlType::F32, [](uint8_t*) { fail("conversion failed"); });
    EXPECT_SPARQ_ERROR(w.write(dir + "/out.gguf"), "out.gguf", "tensor 't'", "conversion failed");
    EXPECT_TRUE(std::filesystem::is_empty(dir));
    EXPECT_SPARQ_ERROR(w.write(dir + "/no/such/dir/out.gguf"), "out.gguf");
}

// ---------------------------------------------------------------------------
// Hostile input.

// A small valid file: 2 KVs, 2 tensors.
GgufBytes valid_file() {
    GgufBytes b;
    b.header(2, 2).kv_string("general.architecture", "llama").kv_u32("general.alignment", 32);
    b.tensor_info("a", {4, 2}, 0, 0).tensor_info("b", {8}, 1, 32).pad_to(32);
    for (int i = 0; i < 8; ++i) b.f32(static_cast<float>(i));
    for (int i = 0; i < 8; ++i) b.raw("\x00\x3c", 2);  // fp16 1.0
    b.pad_to(32);
    return b;
}

TEST(GgufReader, ReadsTheHandMadeFile) {
    const GgufFile f = parse_bytes(valid_file().bytes());
    ASSERT_EQ(f.tensors().size(), 2u);
    EXPECT_EQ(f.get_string("general.architecture"), "llama");
    EXPECT_EQ(f.tensor(f.tensors()[0]).to_f32()[7], 7.0f);
    EXPECT_EQ(f.tensor(f.tensors()[1]).to_f32(), std::vector<float>(8, 1.0f));
}

TEST(GgufReader, EveryTruncationIsAnError) {
    const std::string full = valid_file().bytes();
    // The last tensor's data ends before the final padding; cutting the
    // padding still leaves a complete file.
    const GgufFile whole = parse_bytes(full);
    const TensorInfo& last = whole.tensors().back();
    const size_t needed = static_cast<size_t>(whole.data_offset() + last.offset + last.nbytes);
    ASSERT_LT(needed, full.size());
    for (size_t n = needed; n <= full.size(); ++n) EXPECT_NO_THROW(parse_bytes(full.substr(0, n))) << n;
    for (size_t n = 0; n < needed; ++n) {
        const std::string cut = full.substr(0, n);
        try {
            parse_bytes(cut);
            ADD_FAILURE() << "a file cut to " << n << " bytes parsed";
        } catch (const Error& e) {
            const std::string what = e.what();
            const bool specific = what.find("truncated") != std::string::npos ||
                                  what.find("past the end of the file") != std::string::npos ||
                                  what.find("cannot fit") != std::string::npos ||
                                  what.find("too short") != std::string::npos;
            EXPECT_TRUE(specific) << n << ": " << what;
        }
    }
}

TEST(GgufReader, BadMagic) {
    std::string bytes = valid_file().bytes();
    bytes[3] = 'L';
    EXPECT_SPARQ_ERROR(parse_bytes(bytes, "m.gguf"), "m.gguf", "header.magic", "not a GGUF file",
                       "47 47 55 4c");
    EXPECT_SPARQ_ERROR(parse_bytes("GG"), "too short");
}

TEST(GgufReader, BadVersion) {
    EXPECT_SPARQ_ERROR(parse_bytes(GgufBytes().header(0, 0, 1).bytes()), "header.version",
                       "GGUF version 1 is not supported");
    EXPECT_SPARQ_ERROR(parse_bytes(GgufBytes().header(0, 0, 99).bytes()), "unsupported GGUF version 99");
    EXPECT_SPARQ_ERROR(parse_bytes(GgufBytes().header(0, 0, 0x03000000u).bytes()), "big-endian");
    // Version 2 has the same little-endian layout and is accepted.
    EXPECT_EQ(parse_bytes(GgufBytes().header(0, 0, 2).bytes()).version(), 2u);
}

TEST(GgufReader, AbsurdCounts) {
    EXPECT_SPARQ_ERROR(parse_bytes(GgufBytes().header(0, 1ull << 60).bytes()), "header.metadata_kv_count",
                       "claims 1152921504606846976 key-value pairs");
    EXPECT_SPARQ_ERROR(parse_bytes(GgufBytes().header(~0ull, 0).bytes()), "header.tensor_count",
                       "claims 18446744073709551615 tensors");
    // Plausible against the whole file, impossible once the KVs are read.
    GgufBytes b;
    b.header(3, 1).kv_string("k", std::string(60, 'x'));
    b.raw(std::string(20, '\0').data(), 20);
    EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "header.tensor_count", "left after the metadata");
}

TEST(GgufReader, AbsurdLengths) {
    {  // key length
        GgufBytes b;
        b.header(0, 1).u64(1ull << 62).u32(4).u32(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "kv[0]", "key claims 4611686018427387904 bytes");
    }
    {  // string value length
        GgufBytes b;
        b.header(0, 1).str("general.name").u32(8).u64(~0ull);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "general.name", "string value claims 18446744073709551615 bytes");
    }
    {  // fixed-size array length (count * 4 would overflow 64 bits)
        GgufBytes b;
        b.header(0, 1).str("tokenizer.ggml.scores").u32(9).u32(6).u64(1ull << 62).f32(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "tokenizer.ggml.scores",
                           "array of 4611686018427387904 float32 values");
    }
    {  // string array length
        GgufBytes b;
        b.header(0, 1).str("tokenizer.ggml.tokens").u32(9).u32(8).u64(1000000).str("a");
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "tokenizer.ggml.tokens", "array of 1000000 string values",
                           "cannot fit");
    }
    {  // tensor name length
        GgufBytes b;
        b.header(1, 0).u64(1ull << 40).u32(1).u64(1).u32(0).u64(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "tensor_info[0]", "tensor name claims 1099511627776 bytes");
    }
}

TEST(GgufReader, BadValueTypes) {
    {
        GgufBytes b;
        b.header(0, 1).str("k").u32(13).u32(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "field 'k'", "unknown GGUF value type 13");
    }
    {
        GgufBytes b;
        b.header(0, 1).str("k").u32(9).u32(0xffffffffu).u64(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "unknown GGUF value type 4294967295");
    }
    {  // arrays of arrays nested past the limit
        GgufBytes b;
        b.header(0, 1).str("deep").u32(9);
        for (int i = 0; i < 100; ++i) b.u32(9).u64(1);
        b.u32(4).u64(0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "field 'deep'", "arrays nested more than 4 deep");
    }
    {
        GgufBytes b;
        b.header(0, 2).kv_u32("k", 1).kv_u32("k", 2);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "field 'k'", "duplicate metadata key");
    }
    {
        GgufBytes b;
        b.header(0, 1).str("general.alignment").u32(10).u64(32);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "general.alignment", "must be a uint32, found uint64");
    }
    {
        GgufBytes b;
        b.header(0, 1).kv_u32("general.alignment", 0);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "general.alignment", "must be a power of two, found 0");
    }
}

TEST(GgufReader, BadTensorInfos) {
    auto one_tensor = [](const std::string& name, std::initializer_list<uint64_t> dims, uint32_t type,
                         uint64_t offset, size_t data_bytes) {
        GgufBytes b;
        b.header(1, 0).tensor_info(name, dims, type, offset).pad_to(32);
        b.raw(std::string(data_bytes, '\0').data(), data_bytes);
        return b.bytes();
    };
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {1, 1, 1, 1, 1}, 0, 0, 64)), "tensor 't'",
                       "has 5 dimensions; GGUF allows 1 to 4");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {}, 0, 0, 64)), "tensor 't'", "has 0 dimensions");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {4}, 4, 0, 64)), "tensor 't'", "unknown ggml type id 4");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {4}, 99, 0, 64)), "unknown ggml type id 99");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {4}, 0, 8, 64)), "tensor 't'",
                       "data offset 8 is not a multiple of the alignment 32");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {40}, 8, 0, 64)), "tensor 't'",
                       "not a multiple of the Q8_0 block size 32");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {17}, 0, 0, 64)), "tensor 't'", "extends past the end of the file");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {4}, 0, ~0ull - 31, 64)), "tensor 't'",
                       "extends past the end of the file");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {1ull << 63}, 0, 0, 64)), "beyond int64");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {1ull << 32, 1ull << 32}, 0, 0, 64)), "element count overflows");
    EXPECT_SPARQ_ERROR(parse_bytes(one_tensor("t", {1ull << 62}, 0, 0, 64)), "byte size overflows");
    {
        GgufBytes b;
        b.header(2, 0).tensor_info("t", {4}, 0, 0).tensor_info("t", {4}, 0, 32).pad_to(32);
        b.raw(std::string(64, '\0').data(), 64);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "tensor 't'", "duplicate tensor name");
    }
    {
        GgufBytes b;
        b.header(2, 0).tensor_info("a", {16}, 0, 0).tensor_info("b", {4}, 0, 32).pad_to(32);
        b.raw(std::string(64, '\0').data(), 64);
        EXPECT_SPARQ_ERROR(parse_bytes(b.bytes()), "tensor 'b'", "overlaps tensor 'a'");
    }
}

TEST(GgufReader, ErrorsNameTheFile) {
    const std::string path = temp_dir("gguf-hostile") + "/bad.gguf";
    write_bytes(path, GgufBytes().header(0, 0, 7).bytes());
    EXPECT_SPARQ_ERROR(GgufFile::open(path), "bad.gguf: ", "unsupported GGUF version 7");
    EXPECT_SPARQ_ERROR(GgufFile::open(path + ".missing"), "bad.gguf.missing", "cannot open");
    EXPECT_FALSE(looks_like_gguf(path + ".missing"));
    EXPECT_TRUE(looks_like_gguf(path));
}

// Random corruption of a valid file: the reader either parses it or throws
// sparq::Error, never anything else, and tensors stay inside the buffer.
TEST(GgufReader, RandomCorruptionNeverEscapes) {
    GgufWriter w;
    w.set_string("general.architecture", "llama");
    w.set("tokenizer.ggml.tokens", Value::string_array({"<unk>", "<s>", "</s>", "a", "b"}));
    w.set("tokenizer.ggml.scores", Value::array(std::vector<float>{0, 0, 0, -1, -2}));
    w.set("nested", Value::array_of_arrays({Value::array(std::vector<uint8_t>{1, 2})}));
    std::vector<float> x(16, 1.0f);
    w.add_tensor_data("x", {4, 4}, GgmlType::F32, x.data(), 64);
    w.add_tensor_data("y", {16}, GgmlType::F32, x.data(), 64);
    const std::string path = temp_dir("gguf-fuzz") + "/f.gguf";
    w.write(path);
    const std::string original = read_bytes(path);
    std::mt19937 rng(1234);
    int parsed = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        std::string bytes = original;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) {
            const size_t at = rng() % bytes.size();
            switch (rng() % 3) {
                case 0: bytes[at] = static_cast<char>(rng()); break;
                case 1: bytes[at] = static_cast<char>(0xff); break;
                default: bytes[at] ^= static_cast<char>(1u << (rng() % 8)); break;
            }
        }
        if (rng() % 8 == 0) bytes.resize(rng() % bytes.size());
        try {
            const GgufFile f = parse_bytes(bytes);
            for (const TensorInfo& t : f.tensors()) {
                ASSERT_LE(f.data_offset() + t.offset + t.nbytes, bytes.size());
            }
            ++parsed;
        } catch (const Error&) {
        } catch (const std::exception& e) {
            FAIL() << "iteration " << iter << ": non-sparq exception " << e.what();
        }
    }
    EXPECT_GT(parsed, 0);
}

}  // namespace
}  // namespace sparq::gguf
