// PyTorch checkpoints through LibTorch: the real pytorch_model.bin files are
// bit-identical to their safetensors twins, hand-made pickles cover what
// torch.save writes (OrderedDict state dicts, shared and strided storages),
// and hostile files (bad zips, bad pickles, lying tensor views) are
// sparq::Errors, never crashes. Zips are written with LibTorch's own
// PyTorchStreamWriter, so only the pickle inside is hand-made.
#include <gtest/gtest.h>

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "error_matchers.h"
#include "formats/pytorch/pytorch_reader.h"
#include "formats/safetensors.h"
#include "models/model_source.h"
#include "test_data.h"

namespace sparq {
namespace {

namespace fs = std::filesystem;
using testing::error_text;
using testing::read_bytes;
using testing::write_bytes;

void expect_same_tensors(const TensorMap& expected, const TensorMap& actual) {
    ASSERT_EQ(expected.names(), actual.names());
    for (const auto& [name, e] : expected.all()) {
        const Tensor& a = actual.get(name);
        EXPECT_EQ(e.dtype, a.dtype) << name;
        EXPECT_EQ(e.shape, a.shape) << name;
        ASSERT_EQ(e.nbytes, a.nbytes) << name;
        EXPECT_EQ(0, std::memcmp(e.data, a.data, e.nbytes)) << name;
    }
}

// --- Pickle pieces (protocol 2, as torch.save writes them) -------------------

std::string u32le(uint32_t v) {
    std::string s(4, '\0');
    for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
    return s;
}
std::string str(const std::string& s) {
    std::string out = "X";
    return out.append(u32le(static_cast<uint32_t>(s.size()))).append(s);
}
std::string integer(int32_t v) {
    std::string out = "J";
    return out.append(u32le(static_cast<uint32_t>(v)));
}
std::string int_tuple(const std::vector<int32_t>& v) {
    std::string out = "(";
    for (int32_t x : v) out += integer(x);
    return out + "t";
}
std::string global(const std::string& module, const std::string& name) { return "c" + module + "\n" + name + "\n"; }

// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())
std::string tensor(const std::string& key, int32_t numel, const std::vector<int32_t>& sizes,
                   const std::vector<int32_t>& strides, int32_t offset = 0,
                   const std::string& storage_type = "FloatStorage") {
    const std::string pid =
        "(" + str("storage") + global("torch", storage_type) + str(key) + str("cpu") + integer(numel) + "tQ";
    return global("torch._utils", "_rebuild_tensor_v2") + "(" + pid + integer(offset) + int_tuple(sizes) +
           int_tuple(strides) + "\x89" + global("collections", "OrderedDict") + ")Rt" + "R";
}

// {name: value, ...} as EMPTY_DICT MARK ... SETITEMS.
std::string state_dict(const std::vector<std::pair<std::string, std::string>>& items) {
    std::string out = "\x80\x02}(";
    for (const auto& [name, value] : items) out += str(name) + value;
    return out + "u.";
}

std::string floats(const std::vector<float>& v) {
    return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

// A zip as torch.save writes it: <archive>/data.pkl, <archive>/data/<key>,
// <archive>/version.
void write_torch_zip(const std::string& path, const std::string& pickle,
                     const std::map<std::string, std::string>& records) {
    caffe2::serialize::PyTorchStreamWriter writer(path);
    writer.writeRecord("data.pkl", pickle.data(), pickle.size());
    for (const auto& [key, bytes] : records) writer.writeRecord("data/" + key, bytes.data(), bytes.size());
    writer.writeEndOfFile();
}

class PytorchFiles : public ::testing::Test {
protected:
    void SetUp() override { dir_ = testing::temp_dir("pytorch-reader"); }
    std::string zip(const std::string& pickle, const std::map<std::string, std::string>& records = {}) {
        const std::string path = dir_ + "/case" + std::to_string(count_++) + ".pt";
        write_torch_zip(path, pickle, records);
        return path;
    }
    std::string file(const std::string& bytes, const std::string& ext = ".pt") {
        const std::string path = dir_ + "/raw" + std::to_string(count_++) + ext;
        write_bytes(path, bytes);
        return path;
    }
    std::string dir_;
    int count_ = 0;
};

// --- The real checkpoints ----------------------------------------------------

void expect_matches_safetensors(const std::string& model, DType dtype) {
    const std::string bin = testing::data_path(model + "/hf/pytorch_model.bin");
    const TensorMap from_torch = read_pytorch_checkpoint(bin);
    const TensorMap from_safetensors = read_safetensors(testing::data_path(model + "/hf/model.safetensors"));
    EXPECT_EQ(from_torch.source(), bin);
    expect_same_tensors(from_safetensors, from_torch);
    for (const auto& [name, t] : from_torch.all()) EXPECT_EQ(t.dtype, dtype) << name;
}

TEST(PytorchCheckpoint, Stories260KMatchesSafetensors) {
    SPARQ_REQUIRE_DATA("stories260K/hf/pytorch_model.bin");
    expect_matches_safetensors("stories260K", DType::F32);
}

TEST(PytorchCheckpoint, SmallLlamaMatchesSafetensorsInF16) {
    SPARQ_REQUIRE_DATA("small-llama/hf/pytorch_model.bin");
    expect_matches_safetensors("small-llama", DType::F16);
}

TEST(PytorchCheckpoint, SmallLlamaV2MatchesSafetensorsInF16) {
    SPARQ_REQUIRE_DATA("small-llama-v2/hf/pytorch_model.bin");
    expect_matches_safetensors("small-llama-v2", DType::F16);
}

TEST(PytorchCheckpoint, TensorsAreAlignedAndOutliveTheReader) {
    SPARQ_REQUIRE_DATA("small-llama/hf/pytorch_model.bin");
    Tensor kept;
    {
        const TensorMap m = read_pytorch_checkpoint(testing::data_path("small-llama/hf/pytorch_model.bin"));
        for (const auto& [name, t] : m.all()) {
            EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype), 0u) << name;
        }
        kept = m.get("model.embed_tokens.weight");
    }
    const std::vector<float> values = kept.to_f32();
    ASSERT_EQ(values.size(), static_cast<size_t>(kept.numel()));
    const TensorMap st = read_safetensors(testing::data_path("small-llama/hf/model.safetensors"));
    EXPECT_EQ(values, st.get("model.embed_tokens.weight").to_f32());
}

// --- What torch.save writes, made by hand ------------------------------------

TEST_F(PytorchFiles, PlainDictOfTensors) {
    const std::string path = zip(state_dict({{"a", tensor("0", 6, {2, 3}, {3, 1})}, {"b", tensor("1", 2, {2}, {1})}}),
                                 {{"0", floats({1, 2, 3, 4, 5, 6})}, {"1", floats({7, 8})}});
    const TensorMap m = read_pytorch_checkpoint(path);
    ASSERT_EQ(m.size(), 2u);
    EXPECT_EQ(m.get("a").shape, (Shape{2, 3}));
    EXPECT_EQ(m.get("a").to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
    EXPECT_EQ(m.get("b").to_f32(), (std::vector<float>{7, 8}));
}

TEST_F(PytorchFiles, OrderedDictStateDictWithMetadata) {
    // torch.save(model.state_dict()): an OrderedDict, its items, then BUILD
    // with the instance dict {"_metadata": OrderedDict({"": {"version": 1}})}.
    const std::string od = global("collections", "OrderedDict") + ")R";
    const std::string metadata =
        "}(" + str("_metadata") + od + "(" + str("") + "}(" + str("version") + integer(1) + "u" + "u" + "u";
    const std::string pickle =
        "\x80\x02" + od + std::string("q\x00(", 3) + str("w") + tensor("0", 4, {4}, {1}) + "u" + metadata + "b.";
    const TensorMap m = read_pytorch_checkpoint(zip(pickle, {{"0", floats({1, 2, 3, 4})}}));
    ASSERT_EQ(m.size(), 1u);
    EXPECT_EQ(m.get("w").to_f32(), (std::vector<float>{1, 2, 3, 4}));
}

TEST_F(PytorchFiles, SharedStorageAndMemoizedTensor) {
    // "tied" is the memoized tensor object again (BINGET); "half" views the
    // second half of the same storage.
    const std::string pickle = "\x80\x02}(" + str("a") + tensor("0", 4, {4}, {1}) + "q\x01" + str("tied") + "h\x01" +
                               str("half") + tensor("0", 4, {2}, {1}, 2) + "u.";
    const TensorMap m = read_pytorch_checkpoint(zip(pickle, {{"0", floats({1, 2, 3, 4})}}));
    EXPECT_EQ(m.get("tied").to_f32(), (std::vector<float>{1, 2, 3, 4}));
    EXPECT_EQ(m.get("half").to_f32(), (std::vector<float>{3, 4}));
    EXPECT_EQ(m.get("a").data, m.get("tied").data);
    EXPECT_EQ(m.get("a").data + 2 * sizeof(float), m.get("half").data);
}

TEST_F(PytorchFiles, NonContiguousTensorIsMadeContiguous) {
    // The transpose of [[1,2,3],[4,5,6]]: shape (3, 2), strides (1, 3).
    const TensorMap m = read_pytorch_checkpoint(
        zip(state_dict({{"t", tensor("0", 6, {3, 2}, {1, 3})}}), {{"0", floats({1, 2, 3, 4, 5, 6})}}));
    EXPECT_EQ(m.get("t").shape, (Shape{3, 2}));
    EXPECT_EQ(m.get("t").to_f32(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST_F(PytorchFiles, HalfAndBFloat16KeepTheirDtype) {
    const std::string f16 = std::string("\x00\x3c\x00\x40", 4);   // 1.0, 2.0
    const std::string bf16 = std::string("\x80\x3f\x40\x40", 4);  // 1.0, 3.0
    const TensorMap m = read_pytorch_checkpoint(zip(state_dict({{"h", tensor("0", 2, {2}, {1}, 0, "HalfStorage")},
                                                                {"b", tensor("1", 2, {2}, {1}, 0, "BFloat16Storage")}}),
                                                    {{"0", f16}, {"1", bf16}}));
    EXPECT_EQ(m.get("h").dtype, DType::F16);
    EXPECT_EQ(m.get("b").dtype, DType::BF16);
    EXPECT_EQ(m.get("h").to_f32(), (std::vector<float>{1, 2}));
    EXPECT_EQ(m.get("b").to_f32(), (std::vector<float>{1, 3}));
}

TEST_F(PytorchFiles, ParameterAndEmptyTensor) {
    const std::string param = global("torch._utils", "_rebuild_parameter") + "(" + tensor("0", 2, {2}, {1}) + "\x89" +
                              global("collections", "OrderedDict") + ")R" + "tR";
    const TensorMap m = read_pytorch_checkpoint(
        zip(state_dict({{"p", param}, {"empty", tensor("1", 0, {0, 4}, {4, 1})}}), {{"0", floats({5, 6})}, {"1", ""}}));
    EXPECT_EQ(m.get("p").to_f32(), (std::vector<float>{5, 6}));
    EXPECT_EQ(m.get("empty").shape, (Shape{0, 4}));
    EXPECT_EQ(m.get("empty").nbytes, 0u);
}

// --- Hostile files -------------------------------------------------------------

TEST_F(PytorchFiles, TruncatedZip) {
    SPARQ_REQUIRE_DATA("stories260K/hf/pytorch_model.bin");
    const std::string whole = read_bytes(testing::data_path("stories260K/hf/pytorch_model.bin"));
    for (size_t keep : {size_t{4}, size_t{100}, whole.size() / 2, whole.size() - 30, whole.size() - 1}) {
        const std::string path = file(whole.substr(0, keep));
        EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(path), path, "not a readable PyTorch zip checkpoint");
    }
}

TEST_F(PytorchFiles, RandomBytesWithAZipSignature) {
    std::mt19937 rng(7);
    std::string bytes = "PK\x03\x04";
    for (int i = 0; i < 4096; ++i) bytes.push_back(static_cast<char>(rng()));
    const std::string path = file(bytes, ".bin");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(path), path, "not a readable PyTorch zip checkpoint");
}

TEST_F(PytorchFiles, CorruptCentralDirectory) {
    SPARQ_REQUIRE_DATA("stories260K/hf/pytorch_model.bin");
    const std::string whole = read_bytes(testing::data_path("stories260K/hf/pytorch_model.bin"));
    const size_t eocd = whole.rfind("PK\x05\x06");
    ASSERT_NE(eocd, std::string::npos);
    const size_t central = whole.find("PK\x01\x02");
    ASSERT_NE(central, std::string::npos);
    {
        std::string bad = whole;  // the first central directory entry's signature
        bad[central + 2] = 'X';
        const std::string path = file(bad);
        EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(path), path, "not a readable PyTorch zip checkpoint");
    }
    {
        // The directory's offset points elsewhere: in the end record and in
        // the zip64 end record (torch.save writes zip64, whose offset wins).
        std::string bad = whole;
        bad[eocd + 16] ^= 0x55;
        bad[eocd + 17] ^= 0x55;
        const size_t eocd64 = whole.rfind("PK\x06\x06");
        if (eocd64 != std::string::npos) {
            bad[eocd64 + 48] ^= 0x55;
            bad[eocd64 + 49] ^= 0x55;
        }
        EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file(bad)), "not a readable PyTorch zip checkpoint");
    }
    {
        std::string bad = whole;  // the directory claims more entries than it holds
        bad[eocd + 10] = '\x7f';
        const size_t eocd64 = whole.rfind("PK\x06\x06");
        if (eocd64 != std::string::npos) bad[eocd64 + 32] = '\x7f';
        EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file(bad)), "not a readable PyTorch zip checkpoint");
    }
    {
        std::string bad = whole;  // a record's size in the directory lies
        bad[central + 24] ^= 0x10;
        EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file(bad)), "not a readable PyTorch zip checkpoint");
    }
}

TEST_F(PytorchFiles, NotAZipAtAll) {
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file(std::string("\x80\x02}q\x00.", 6))), "legacy");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file("hello")), "no zip signature");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(file("")), "no zip signature");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(dir_ + "/absent.pt"), "no such file");
}

TEST_F(PytorchFiles, ListInsteadOfDict) {
    const std::string path = zip("\x80\x02](" + integer(1) + integer(2) + "e.");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(path), path, "pickled 'list'", "not a state dict");
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip("\x80\x02](" + tensor("0", 1, {1}, {1}) + "e.", {{"0", floats({1})}})),
        "pickled 'list'");
}

TEST_F(PytorchFiles, DictWithNonTensorValuesOrKeys) {
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"epoch", integer(3)}}))), "tensor 'epoch'",
                       "has type 'int'", "not a tensor");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"opt", "}"}}))), "tensor 'opt'", "has type 'dict'");
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip("\x80\x02}(" + integer(1) + tensor("0", 1, {1}, {1}) + "u.", {{"0", floats({1})}})),
        "key of type 'int'");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({}))), "holds no tensors");
}

TEST_F(PytorchFiles, ArbitraryGlobalsAreRefused) {
    // What a malicious pickle runs: os.system("..."), builtins.eval, ...
    const std::string system = "\x80\x02" + global("os", "system") + "(" + str("touch /tmp/pwned") + "tR.";
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(system)), "refuses the Python global 'os.system'", "no code is run");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip("\x80\x02" + global("builtins", "eval") + ".")), "'builtins.eval'");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip("\x80\x02" + global("torch", "load") + ".")), "'torch.load'");
    // STACK_GLOBAL (protocol 4) is resolved the same way.
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip("\x80\x04" + str("subprocess") + str("Popen") + "\x93.")),
                       "'subprocess.Popen'");
    EXPECT_FALSE(fs::exists("/tmp/pwned"));
}

TEST_F(PytorchFiles, MalformedPickles) {
    const std::map<std::string, std::string> cases = {
        {"\x80\x02t.", "closes a mark it never opened"},
        {"\x80\x02R.", "pops an empty stack"},
        {"\x80\x02\x86.", "pops an empty stack"},
        {"\x80\x02}(" + str("a") + "u" + ".", "odd number"},
        {"\x80\x02" + integer(1) + "(" + integer(2) + "e.", "APPENDS on a value of type 'int'"},
        {"\x80\x02h\x05.", "memo entry 5"},
        {"\x80\x02X\xff\xff\xff\x7f", "runs past the end"},
        {"\x80\x02}(", "truncated"},
        {"\x80\x02}(.", "open mark"},
        {"\x80\x02}}.", "ends with 2 values"},
        {"\x80\x02.", "ends with 0 values"},
        {"\x80\x09}.", "protocol 9"},
        {"\x80\x02\xff.", "opcode 0xff"},
        {"\x80\x02" + global("collections", "OrderedDict") + integer(1) + "R.", "call arguments"},
        {"\x80\x02" + integer(1) + ")R.", "calls a value of type 'int'"},
        {"\x80\x02" + integer(1) + "}b.", "BUILD sets the state of a value of type 'int'"},
        {"\x80\x02(" + str("storage") + integer(6) + str("0") + str("cpu") + integer(1) + "tQ.", "storage's type"},
        {"\x80\x02(" + str("module") + global("torch", "FloatStorage") + str("0") + str("cpu") + integer(1) + "tQ.",
         "not a storage"},
        {"\x80\x02(" + str("storage") + global("torch", "FloatStorage") + str("../0") + str("cpu") + integer(1) + "tQ.",
         "storage key '../0'"},
        {"\x80\x02(" + str("storage") + global("torch", "FloatStorage") + str("0") + str("cpu") + integer(-1) + "tQ.",
         "negative size"},
        {"\x80\x02" + global("torch", "QInt8Storage") + ".", "'torch.QInt8Storage'"},
        {"\x80\x02"
         "c" +
             std::string(300, 'a') + "\n",
         "too long"},
        {"\x80\x02\x8a\x09" + std::string(9, '\x01') + ".", "wider than 64 bits"},
    };
    for (const auto& [pickle, expected] : cases) {
        const std::string text = error_text([&] { read_pytorch_checkpoint(zip(pickle)); });
        EXPECT_NE(text.find(expected), std::string::npos) << "error: " << text << "\nlacks: " << expected;
        EXPECT_NE(text.find("data.pkl"), std::string::npos) << text;
    }
}

TEST_F(PytorchFiles, TensorViewsMustStayInsideTheirStorage) {
    const std::map<std::string, std::string> four = {{"0", floats({1, 2, 3, 4})}};
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {100}, {1})}}), four)),
                       "tensor 'w'", "reaches past the end of its storage '0' (4 elements)");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {2}, {1}, 3)}}), four)),
                       "tensor 'w'", "reaches past the end");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {2, 2}, {4, 1})}}), four)),
                       "reaches past the end");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {-1}, {1})}}), four)),
                       "negative dimension");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {2}, {-1})}}), four)),
                       "negative stride");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {2}, {1}, -1)}}), four)),
                       "negative storage offset");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {2, 2}, {1})}}), four)),
                       "different lengths");
    // A zero stride makes a huge tensor out of one element: refused, not allocated.
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {1 << 30, 1 << 30}, {0, 0})}}), four)),
        "tensor 'w'", "more elements than its storage");
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip(state_dict({{"w", tensor("0", 4, {1 << 30, 1 << 30, 1 << 30}, {0, 0, 0})}}), four)),
        "more elements than fit in 64 bits");
}

TEST_F(PytorchFiles, StorageRecordsMustMatchTheirDescription) {
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(
                           zip(state_dict({{"w", tensor("0", 1000000, {4}, {1})}}), {{"0", floats({1, 2, 3, 4})}})),
                       "tensor 'w'", "storage '0' holds 16 bytes", "1000000 F32 elements need 4000000");
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip(state_dict({{"w", tensor("7", 4, {4}, {1})}}), {{"0", floats({1, 2, 3, 4})}})),
        "not a readable PyTorch zip checkpoint", "data/7");
    EXPECT_SPARQ_ERROR(read_pytorch_checkpoint(zip(state_dict({{"a", tensor("0", 4, {4}, {1})},
                                                               {"b", tensor("0", 2, {2}, {1}, 0, "DoubleStorage")}}),
                                                   {{"0", floats({1, 2, 3, 4})}})),
                       "storage '0' is described twice");
    EXPECT_SPARQ_ERROR(
        read_pytorch_checkpoint(zip(state_dict({{"a", tensor("0", 4, {4}, {1})}, {"a", tensor("0", 4, {4}, {1})}}),
                                    {{"0", floats({1, 2, 3, 4})}})),
        "tensor 'a'", "twice");
}

// Every truncation and many random byte flips of a small checkpoint's pickle,
// and random damage to the whole zip: each read succeeds or is a
// sparq::Error, never a crash (run under ASan/UBSan to catch memory errors).
TEST_F(PytorchFiles, MutatedCheckpointsNeverCrash) {
    const std::string pickle = state_dict({{"a", tensor("0", 6, {2, 3}, {3, 1})},
                                           {"t", tensor("0", 6, {3, 2}, {1, 3})},
                                           {"h", tensor("1", 2, {2}, {1}, 0, "HalfStorage")}});
    const std::map<std::string, std::string> records = {{"0", floats({1, 2, 3, 4, 5, 6})},
                                                        {"1", std::string("\x00\x3c\x00\x40", 4)}};
    auto survives = [&](const std::string& path) {
        try {
            read_pytorch_checkpoint(path);
        } catch (const Error&) {
        }
    };
    for (size_t n = 0; n < pickle.size(); ++n) survives(zip(pickle.substr(0, n), records));
    std::mt19937 rng(1234);
    for (int round = 0; round < 600; ++round) {
        std::string mutated = pickle;
        const int flips = 1 + static_cast<int>(rng() % 3);
        for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
        survives(zip(mutated, records));
    }
    const std::string whole = read_bytes(zip(pickle, records));
    for (int round = 0; round < 600; ++round) {
        std::string mutated = whole;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) mutated[rng() % mutated.size()] = static_cast<char>(rng());
        survives(file(mutated));
    }
}

// --- Sharded PyTorch checkpoints ------------------------------------------------

TEST_F(PytorchFiles, ShardedCheckpoint) {
    write_torch_zip(dir_ + "/pytorch_model-00001-of-00002.bin", state_dict({{"a", tensor("0", 2, {2}, {1})}}),
                    {{"0", floats({1, 2})}});
    write_torch_zip(dir_ + "/pytorch_model-00002-of-00002.bin", state_dict({{"b", tensor("0", 1, {1}, {1})}}),
                    {{"0", floats({3})}});
    const nlohmann::json index = {
        {"metadata", {{"total_size", 12}}},
        {"weight_map", {{"a", "pytorch_model-00001-of-00002.bin"}, {"b", "pytorch_model-00002-of-00002.bin"}}}};
    write_bytes(dir_ + "/pytorch_model.bin.index.json", index.dump());
    const TensorMap m = read_pytorch_sharded(dir_ + "/pytorch_model.bin.index.json");
    EXPECT_EQ(m.get("a").to_f32(), (std::vector<float>{1, 2}));
    EXPECT_EQ(m.get("b").to_f32(), (std::vector<float>{3}));

    nlohmann::json bad = index;
    bad["weight_map"]["b"] = "pytorch_model-00001-of-00002.bin";
    write_bytes(dir_ + "/bad.index.json", bad.dump());
    EXPECT_SPARQ_ERROR(read_pytorch_sharded(dir_ + "/bad.index.json"), "tensor 'b'", "does not hold it");
    bad["weight_map"]["b"] = "../pytorch_model-00002-of-00002.bin";
    write_bytes(dir_ + "/bad.index.json", bad.dump());
    EXPECT_SPARQ_ERROR(read_pytorch_sharded(dir_ + "/bad.index.json"), "plain file name");
}

// --- load_model picks the weights of a Hugging Face directory -------------------

class HfDirectory : public ::testing::Test {
protected:
    void SetUp() override {
        SPARQ_REQUIRE_DATA("stories260K/hf/pytorch_model.bin");
        src_ = testing::data_path("stories260K/hf");
        dir_ = testing::temp_dir("hf-pytorch-dir");
        for (const char* f : {"config.json", "tokenizer.model"}) fs::create_symlink(src_ + "/" + f, dir_ + "/" + f);
    }
    void link(const std::string& from, const std::string& to) {
        fs::create_symlink(src_ + "/" + from, dir_ + "/" + to);
    }
    std::string src_;
    std::string dir_;
};

TEST_F(HfDirectory, PytorchModelBin) {
    link("pytorch_model.bin", "pytorch_model.bin");
    const ModelSource m = load_model(dir_);
    EXPECT_EQ(m.format, "hf-pytorch");
    expect_same_tensors(read_safetensors(src_ + "/model.safetensors"), m.tensors);
}

TEST_F(HfDirectory, SafetensorsComesFirst) {
    link("pytorch_model.bin", "pytorch_model.bin");
    link("model.safetensors", "model.safetensors");
    EXPECT_EQ(load_model(dir_).format, "hf-safetensors");
}

TEST_F(HfDirectory, ShardedSafetensorsThenShardedPytorch) {
    link("pytorch_model.bin", "pytorch_model-00001-of-00001.bin");
    link("model.safetensors", "model-00001-of-00001.safetensors");
    const TensorMap all = read_safetensors(src_ + "/model.safetensors");
    nlohmann::json bin_map, st_map;
    for (const std::string& name : all.names()) {
        bin_map[name] = "pytorch_model-00001-of-00001.bin";
        st_map[name] = "model-00001-of-00001.safetensors";
    }
    write_bytes(dir_ + "/pytorch_model.bin.index.json", nlohmann::json({{"weight_map", bin_map}}).dump());
    ModelSource m = load_model(dir_);
    EXPECT_EQ(m.format, "hf-pytorch-sharded");
    expect_same_tensors(all, m.tensors);

    write_bytes(dir_ + "/model.safetensors.index.json", nlohmann::json({{"weight_map", st_map}}).dump());
    m = load_model(dir_);
    EXPECT_EQ(m.format, "hf-safetensors-sharded");
    expect_same_tensors(all, m.tensors);
}

TEST_F(HfDirectory, CheckpointFilesNamedDirectly) {
    link("pytorch_model.bin", "weights.pt");
    link("pytorch_model.bin", "renamed.bin");
    ModelSource m = load_model(dir_ + "/weights.pt");
    EXPECT_EQ(m.format, "hf-pytorch");
    EXPECT_EQ(m.path, dir_ + "/weights.pt");
    EXPECT_EQ(m.tensors.size(), 47u);
    m = load_model(dir_ + "/renamed.bin");  // a zip, so not a llama2.c checkpoint
    EXPECT_EQ(m.format, "hf-pytorch");
    // Without config.json beside it, a checkpoint is not a model.
    const std::string lone = testing::temp_dir("lone-pt");
    fs::create_symlink(src_ + "/pytorch_model.bin", lone + "/model.pt");
    EXPECT_SPARQ_ERROR(load_model(lone + "/model.pt"), "config.json is missing");
}

TEST_F(HfDirectory, NoWeights) { EXPECT_SPARQ_ERROR(load_model(dir_), "no weights found", "pytorch_model.bin"); }

}  // namespace
}  // namespace sparq
