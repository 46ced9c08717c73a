// PyTorch checkpoints through LibTorch (see pytorch_reader.h).
//
// Why sparq interprets data.pkl itself instead of calling torch::pickle_load
// (LibTorch 1.13's torch::jit::Unpickler):
//  - that unpickler trusts its input: an empty mark stack, a DICT with an odd
//    number of items, or a REDUCE on a short stack index out of bounds; a
//    storage's scalar type indexes a table unchecked; and a tensor's
//    size/stride/offset are applied to its storage without comparing them
//    with the bytes actually stored, so a crafted file yields tensors that
//    read past their buffers. None of that is acceptable for hostile files.
//  - it cannot read the most common checkpoint of all, torch.save(
//    model.state_dict()): that pickles a collections.OrderedDict, which the
//    1.13 unpickler turns into None before the items are set.
// So LibTorch's PyTorchStreamReader (miniz) reads the zip container, checks
// it (central directory, record bounds, format version) and reads each
// record; the pickle is run here on a closed set of opcodes and globals.
// LibTorch builds miniz without CRC-32 checks (as torch.load does), so
// flipped bits inside tensor data go unnoticed; everything structural is
// checked.
// LibTorch headers stay inside this file, which is built into the plugin
// libsparq_pytorch_plugin.so (see pytorch_plugin.h); pytorch_loader.cpp
// loads it on first use.

#include "formats/pytorch/pytorch_plugin.h"

#include <caffe2/serialize/inline_container.h>
#include <c10/util/Exception.h>

#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"

namespace sparq {
namespace {

// A state dict pickle costs a few hundred bytes per tensor; these limits are
// far above any real checkpoint and bound what a hostile one can make us
// allocate.
constexpr size_t kMaxPickleBytes = 64u << 20;
constexpr size_t kMaxPickleValues = 1u << 21;
constexpr size_t kMaxDims = 8;

// --- The pickle machine -----------------------------------------------------

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, StorageType, Storage, Tensor };

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::None: return "None";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::Str: return "str";
        case Kind::Tuple: return "tuple";
        case Kind::List: return "list";
        case Kind::Dict: return "dict";
        case Kind::Global: return "global";
        case Kind::StorageType: return "storage type";
        case Kind::Storage: return "storage";
        case Kind::Tensor: return "tensor";
    }
    return "value";
}

enum class Fn { RebuildTensorV2, RebuildParameter, OrderedDict };

struct Value {
    Kind kind = Kind::None;
    int64_t i = 0;                                   // Int, Bool; Storage: numel; Tensor: storage offset (elements)
    double f = 0;                                    // Float
    std::string s;                                   // Str; Storage: record key
    Fn fn = Fn::OrderedDict;                         // Global
    DType dtype = DType::F32;                        // StorageType, Storage, Tensor
    std::vector<Value*> items;                       // Tuple, List
    std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order
    const Value* storage = nullptr;                  // Tensor
    Shape sizes, strides;                            // Tensor
};

// The torch.<Name>Storage classes torch.save names, and the dtype each holds.
bool storage_dtype(std::string_view name, DType& out) {
    static const std::pair<std::string_view, DType> table[] = {
        {"FloatStorage", DType::F32},  {"HalfStorage", DType::F16}, {"BFloat16Storage", DType::BF16},
        {"DoubleStorage", DType::F64}, {"CharStorage", DType::I8},  {"ByteStorage", DType::U8},
        {"ShortStorage", DType::I16},  {"IntStorage", DType::I32},  {"LongStorage", DType::I64},
        {"BoolStorage", DType::Bool}};
    for (const auto& [n, d] : table) {
        if (n == name) {
            out = d;
            return true;
        }
    }
    return false;
}

class PickleReader {
public:
    PickleReader(const uint8_t* data, size_t size, std::string source)
        : p_(data), begin_(data), end_(data + size), source_(std::move(source)) {}

    // Runs the pickle to its STOP and returns the one value it built.
    const Value* run();

private:
    [[noreturn]] void bad(const std::string& what) const {
        fail_in({source_, "", ""}, "data.pkl: ", what, " (at byte ", static_cast<size_t>(op_at_ - begin_), ")");
    }

    Value* make(Kind kind) {
        if (arena_.size() >= kMaxPickleValues) bad("the pickle builds more values than a checkpoint can hold");
        arena_.emplace_back();
        arena_.back().kind = kind;
        return &arena_.back();
    }

    const uint8_t* take(size_t n) {
        if (static_cast<size_t>(end_ - p_) < n) bad("the pickle is truncated");
        const uint8_t* at = p_;
        p_ += n;
        return at;
    }
    uint64_t le(size_t n) {
        const uint8_t* b = take(n);
        uint64_t v = 0;
        for (size_t k = n; k-- > 0;) v = (v << 8) | b[k];
        return v;
    }
    std::string text(uint64_t n) {
        if (n > static_cast<uint64_t>(end_ - p_)) bad("a string runs past the end of the pickle");
        const uint8_t* b = take(static_cast<size_t>(n));
        return std::string(reinterpret_cast<const char*>(b), static_cast<size_t>(n));
    }
    // GLOBAL's newline-terminated module and class names.
    std::string line() {
        std::string out;
        while (true) {
            const char c = static_cast<char>(*take(1));
            if (c == '\n') return out;
            if (out.size() >= 256) bad("a global name is too long");
            out.push_back(c);
        }
    }

    Value* pop() {
        if (stack_.size() <= floor()) bad("the pickle pops an empty stack");
        Value* v = stack_.back();
        stack_.pop_back();
        return v;
    }
    Value* top() {
        if (stack_.size() <= floor()) bad("the pickle reads an empty stack");
        return stack_.back();
    }
    // Values above the innermost mark belong to it: ops other than the ones
    // that consume the mark may not reach below it.
    size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
    // Pops the innermost mark and returns the values above it.
    std::vector<Value*> pop_mark() {
        if (marks_.empty()) bad("the pickle closes a mark it never opened");
        const size_t start = marks_.back();
        marks_.pop_back();
        std::vector<Value*> items(stack_.begin() + static_cast<std::ptrdiff_t>(start), stack_.end());
        stack_.resize(start);
        return items;
    }
    Value* expect(Value* v, Kind kind, const char* what) {
        if (v->kind != kind)
            bad(std::string(what) + " must have type '" + kind_name(kind) + "', found '" + kind_name(v->kind) + "'");
        return v;
    }
    void set_items(Value* dict, const std::vector<Value*>& kv) {
        if (dict->kind != Kind::Dict)
            bad(std::string("items are set on a value of type '") + kind_name(dict->kind) + "', not a dict");
        if (kv.size() % 2 != 0) bad("a dict gets an odd number of keys and values");
        for (size_t k = 0; k < kv.size(); k += 2) dict->entries.emplace_back(kv[k], kv[k + 1]);
    }
    void memo_put(uint64_t id) { memo_[id] = top(); }
    Value* memo_get(uint64_t id) {
        const auto it = memo_.find(id);
        if (it == memo_.end()) bad("the pickle refers to memo entry " + std::to_string(id) + ", never stored");
        return it->second;
    }

    Value* global(const std::string& module, const std::string& name);
    Value* reduce(Value* callable, Value* args);
    Value* persistent_load(Value* pid);

    const uint8_t* p_;
    const uint8_t* begin_;
    const uint8_t* end_;
    const uint8_t* op_at_ = nullptr;
    std::string source_;
    std::deque<Value> arena_;  // owns every value; the stack and memo point in
    std::vector<Value*> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, Value*> memo_;
};

Value* PickleReader::global(const std::string& module, const std::string& name) {
    Value* v = make(Kind::Global);
    if (module == "torch._utils" && name == "_rebuild_tensor_v2") {
        v->fn = Fn::RebuildTensorV2;
    } else if (module == "torch._utils" && name == "_rebuild_parameter") {
        v->fn = Fn::RebuildParameter;
    } else if (module == "collections" && name == "OrderedDict") {
        v->fn = Fn::OrderedDict;
    } else if (module == "torch" && storage_dtype(name, v->dtype)) {
        v->kind = Kind::StorageType;
    } else {
        // Unpicklers resolve a global by importing it and calling it: this is
        // how pickles run code. Only the names above are known here.
        bad("refuses the Python global '" + module + "." + name +
            "': only dicts of tensors are read from PyTorch checkpoints (no code is run)");
    }
    return v;
}

// torch.save writes a storage as the persistent id
//   ("storage", torch.<T>Storage, key, location, numel)
// whose bytes are the zip record data/<key>.
Value* PickleReader::persistent_load(Value* pid) {
    expect(pid, Kind::Tuple, "a persistent id");
    const auto& a = pid->items;
    if (a.size() != 5) bad("a persistent id must have 5 fields, found " + std::to_string(a.size()));
    if (a[0]->kind != Kind::Str || a[0]->s != "storage") bad("a persistent id is not a storage");
    expect(a[1], Kind::StorageType, "a storage's type");
    expect(a[2], Kind::Str, "a storage's key");
    expect(a[3], Kind::Str, "a storage's location");
    expect(a[4], Kind::Int, "a storage's size");
    const std::string& key = a[2]->s;
    if (key.empty() || key.size() > 64) bad("a storage key must have 1 to 64 characters");
    for (const char c : key) {
        const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!ok) bad("storage key '" + key + "' has characters other than letters, digits and '_'");
    }
    const int64_t numel = a[4]->i;
    if (numel < 0) bad("storage '" + key + "' has a negative size");
    if (static_cast<uint64_t>(numel) > std::numeric_limits<uint64_t>::max() / 8 / dtype_size(a[1]->dtype)) {
        bad("storage '" + key + "' is too large");
    }
    Value* v = make(Kind::Storage);
    v->dtype = a[1]->dtype;
    v->s = key;
    v->i = numel;
    return v;
}

Value* PickleReader::reduce(Value* callable, Value* args) {
    if (callable->kind != Kind::Global)
        bad(std::string("the pickle calls a value of type '") + kind_name(callable->kind) + "'");
    expect(args, Kind::Tuple, "call arguments");
    const auto& a = args->items;
    switch (callable->fn) {
        case Fn::OrderedDict:
            if (!a.empty()) bad("OrderedDict() is called with arguments");
            return make(Kind::Dict);
        case Fn::RebuildParameter:
            // (data, requires_grad, backward_hooks): a Parameter is its tensor.
            if (a.size() != 3) bad("_rebuild_parameter takes 3 arguments, found " + std::to_string(a.size()));
            return expect(a[0], Kind::Tensor, "a parameter's data");
        case Fn::RebuildTensorV2: break;
    }
    // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.size() != 6 && a.size() != 7)
        bad("_rebuild_tensor_v2 takes 6 or 7 arguments, found " + std::to_string(a.size()));
    const Value* storage = expect(a[0], Kind::Storage, "a tensor's storage");
    const int64_t offset = expect(a[1], Kind::Int, "a tensor's storage offset")->i;
    const Value* sizes = expect(a[2], Kind::Tuple, "a tensor's size");
    const Value* strides = expect(a[3], Kind::Tuple, "a tensor's stride");
    if (sizes->items.size() != strides->items.size()) bad("a tensor's size and stride have different lengths");
    if (sizes->items.size() > kMaxDims) bad("a tensor has more than " + std::to_string(kMaxDims) + " dimensions");
    if (offset < 0) bad("a tensor has a negative storage offset");
    Value* t = make(Kind::Tensor);
    t->storage = storage;
    t->dtype = storage->dtype;
    t->i = offset;
    for (size_t d = 0; d < sizes->items.size(); ++d) {
        const int64_t size = expect(sizes->items[d], Kind::Int, "a dimension")->i;
        const int64_t stride = expect(strides->items[d], Kind::Int, "a stride")->i;
        if (size < 0) bad("a tensor has a negative dimension");
        if (stride < 0) bad("a tensor has a negative stride");
        t->sizes.push_back(size);
        t->strides.push_back(stride);
    }
    shape_numel(t->sizes);  // throws if the element count overflows
    return t;
}

const Value* PickleReader::run() {
    while (true) {
        op_at_ = p_;
        const uint8_t op = *take(1);
        switch (op) {
            case 0x80: {  // PROTO
                const unsigned proto = *take(1);
                if (op_at_ != begin_) bad("PROTO is not the first opcode");
                if (proto < 2 || proto > 5) bad("unsupported pickle protocol " + std::to_string(proto));
                break;
            }
            case 0x95: take(8); break;  // FRAME: a hint for buffered readers
            case '.': {                 // STOP
                if (!marks_.empty()) bad("the pickle ends with an open mark");
                if (stack_.size() != 1) bad("the pickle ends with " + std::to_string(stack_.size()) + " values, not 1");
                return stack_.back();
            }
            case '(': marks_.push_back(stack_.size()); break;  // MARK
            case '}': stack_.push_back(make(Kind::Dict)); break;
            case ']': stack_.push_back(make(Kind::List)); break;
            case ')': stack_.push_back(make(Kind::Tuple)); break;
            case 'N': stack_.push_back(make(Kind::None)); break;
            case 0x88:
            case 0x89: {
                Value* v = make(Kind::Bool);
                v->i = op == 0x88;
                stack_.push_back(v);
                break;
            }
            case 'K':
            case 'M':
            case 'J': {  // BININT1, BININT2, BININT (signed 32-bit)
                Value* v = make(Kind::Int);
                const uint64_t raw = le(op == 'K' ? 1 : op == 'M' ? 2 : 4);
                v->i = op == 'J' ? static_cast<int64_t>(static_cast<int32_t>(static_cast<uint32_t>(raw)))
                                 : static_cast<int64_t>(raw);
                stack_.push_back(v);
                break;
            }
            case 0x8a: {  // LONG1: little-endian two's complement, up to 8 bytes here
                const size_t n = *take(1);
                if (n > 8) bad("an integer wider than 64 bits");
                uint64_t raw = n ? le(n) : 0;
                if (n > 0 && n < 8 && (raw >> (8 * n - 1)) & 1) raw |= ~uint64_t{0} << (8 * n);
                Value* v = make(Kind::Int);
                v->i = static_cast<int64_t>(raw);
                stack_.push_back(v);
                break;
            }
            case 'G': {  // BINFLOAT, big-endian
                const uint8_t* b = take(8);
                uint64_t bits = 0;
                for (int k = 0; k < 8; ++k) bits = (bits << 8) | b[k];
                Value* v = make(Kind::Float);
                std::memcpy(&v->f, &bits, sizeof bits);
                stack_.push_back(v);
                break;
            }
            case 'X':
            case 0x8c:
            case 0x8d: {  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                const uint64_t n = le(op == 'X' ? 4 : op == 0x8c ? 1 : 8);
                Value* v = make(Kind::Str);
                v->s = text(n);
                stack_.push_back(v);
                break;
            }
            case 'q': memo_put(le(1)); break;                    // BINPUT
            case 'r': memo_put(le(4)); break;                    // LONG_BINPUT
            case 0x94: memo_put(memo_.size()); break;            // MEMOIZE
            case 'h': stack_.push_back(memo_get(le(1))); break;  // BINGET
            case 'j': stack_.push_back(memo_get(le(4))); break;  // LONG_BINGET
            case 't': {                                          // TUPLE
                Value* v = make(Kind::Tuple);
                v->items = pop_mark();
                stack_.push_back(v);
                break;
            }
            case 0x85:
            case 0x86:
            case 0x87: {  // TUPLE1..3
                const size_t n = op - 0x84u;
                Value* v = make(Kind::Tuple);
                v->items.resize(n);
                for (size_t k = n; k-- > 0;) v->items[k] = pop();
                stack_.push_back(v);
                break;
            }
            case 'l': {  // LIST
                Value* v = make(Kind::List);
                v->items = pop_mark();
                stack_.push_back(v);
                break;
            }
            case 'a': {  // APPEND
                Value* item = pop();
                Value* list = top();
                if (list->kind != Kind::List)
                    bad(std::string("APPEND on a value of type '") + kind_name(list->kind) + "'");
                list->items.push_back(item);
                break;
            }
            case 'e': {  // APPENDS
                std::vector<Value*> items = pop_mark();
                Value* list = top();
                if (list->kind != Kind::List)
                    bad(std::string("APPENDS on a value of type '") + kind_name(list->kind) + "'");
                list->items.insert(list->items.end(), items.begin(), items.end());
                break;
            }
            case 'd': {  // DICT
                Value* v = make(Kind::Dict);
                set_items(v, pop_mark());
                stack_.push_back(v);
                break;
            }
            case 's': {  // SETITEM
                Value* value = pop();
                Value* key = pop();
                set_items(top(), {key, value});
                break;
            }
            case 'u': {  // SETITEMS
                std::vector<Value*> kv = pop_mark();
                set_items(top(), kv);
                break;
            }
            case 'c': {  // GLOBAL
                const std::string module = line();
                const std::string name = line();
                stack_.push_back(global(module, name));
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                Value* name = expect(pop(), Kind::Str, "a global's name");
                Value* module = expect(pop(), Kind::Str, "a global's module");
                stack_.push_back(global(module->s, name->s));
                break;
            }
            case 'R': {  // REDUCE
                Value* args = pop();
                Value* callable = pop();
                stack_.push_back(reduce(callable, args));
                break;
            }
            case 'b': {  // BUILD: only an OrderedDict's instance dict (state_dict()._metadata)
                Value* state = pop();
                Value* target = top();
                if (target->kind != Kind::Dict || (state->kind != Kind::Dict && state->kind != Kind::None)) {
                    bad(std::string("BUILD sets the state of a value of type '") + kind_name(target->kind) + "'");
                }
                break;
            }
            case 'Q': stack_.push_back(persistent_load(pop())); break;  // BINPERSID
            default: {
                static const char hex[] = "0123456789abcdef";
                bad(std::string("unsupported pickle opcode 0x") + hex[op >> 4] + hex[op & 15]);
            }
        }
    }
}

// --- Tensors ------------------------------------------------------------------

bool is_contiguous(const Shape& sizes, const Shape& strides) {
    int64_t expected = 1;
    for (size_t d = sizes.size(); d-- > 0;) {
        if (sizes[d] == 1) continue;
        if (strides[d] != expected) return false;
        expected *= sizes[d];
    }
    return true;
}

// One storage record: LibTorch's heap copy of data/<key>, shared by every
// tensor that views it.
struct Record {
    std::shared_ptr<c10::DataPtr> bytes;
    size_t size = 0;
    DType dtype = DType::F32;
    int64_t numel = 0;
};

TensorMap load_checkpoint(const std::string& path) {
    if (!file_exists(path)) fail_in({path, "", ""}, "no such file");
    if (is_directory(path)) fail_in({path, "", ""}, "is a directory, not a PyTorch checkpoint");
    {
        std::FILE* f = std::fopen(path.c_str(), "rb");
        if (!f) fail_in({path, "", ""}, "cannot open");
        unsigned char magic[4] = {};
        const size_t got = std::fread(magic, 1, 4, f);
        std::fclose(f);
        if (got >= 2 && magic[0] == 0x80 && magic[1] <= 5) {
            fail_in({path, "", ""},
                    "is a legacy (pre-zip) torch.save file, which is not supported: re-save it with "
                    "a PyTorch >= 1.6 torch.save, or as safetensors");
        }
        if (got < 4 || std::memcmp(magic, "PK\x03\x04", 4) != 0) {
            fail_in({path, "", ""}, "is not a PyTorch zip checkpoint (no zip signature)");
        }
    }

    caffe2::serialize::PyTorchStreamReader zip(path);
    if (zip.hasRecord("byteorder")) {
        const auto [bytes, size] = zip.getRecord("byteorder");
        const std::string order(static_cast<const char*>(bytes.get()), size);
        if (order != "little")
            fail_in({path, "", ""}, "stores its tensors in '", order, "' byte order, not little-endian");
    }

    auto [pickle_bytes, pickle_size] = zip.getRecord("data.pkl");
    if (pickle_size > kMaxPickleBytes)
        fail_in({path, "", ""}, "data.pkl is ", pickle_size, " bytes, more than a state dict needs");
    PickleReader pickle(static_cast<const uint8_t*>(pickle_bytes.get()), pickle_size, path);
    const Value* root = pickle.run();
    if (root->kind != Kind::Dict) {
        fail_in({path, "", ""}, "holds a pickled '", kind_name(root->kind),
                "', not a state dict (a dict of tensor names to tensors)");
    }

    std::map<std::string, Record> records;
    TensorMap out(path);
    for (const auto& [key, value] : root->entries) {
        if (key->kind != Kind::Str)
            fail_in({path, "", ""}, "the state dict has a key of type '", kind_name(key->kind), "', not a string");
        const std::string& name = key->s;
        if (value->kind != Kind::Tensor)
            fail_in({path, name, ""}, "has type '", kind_name(value->kind), "' in the state dict, not a tensor");
        if (out.has(name)) fail_in({path, name, ""}, "appears twice in the state dict");
        const Value& storage = *value->storage;

        auto [it, fresh] = records.try_emplace(storage.s);
        Record& record = it->second;
        if (fresh) {
            auto [bytes, size] = zip.getRecord("data/" + storage.s);
            record.bytes = std::make_shared<c10::DataPtr>(std::move(bytes));
            record.size = size;
            record.dtype = storage.dtype;
            record.numel = storage.i;
        }
        if (record.dtype != storage.dtype || record.numel != storage.i) {
            fail_in({path, name, ""}, "storage '", storage.s, "' is described twice, differently");
        }
        const size_t element = dtype_size(storage.dtype);
        if (record.size != static_cast<uint64_t>(storage.i) * element) {
            fail_in({path, name, ""}, "storage '", storage.s, "' holds ", record.size, " bytes, but ", storage.i, " ",
                    dtype_name(storage.dtype), " elements need ", static_cast<uint64_t>(storage.i) * element);
        }

        // The view must stay inside its storage: offset + sum((size-1)*stride) < numel.
        Tensor t;
        t.dtype = value->dtype;
        t.shape = value->sizes;
        const int64_t numel = shape_numel(t.shape);
        t.nbytes = static_cast<size_t>(numel) * element;
        if (numel > 0) {
            __int128 last = value->i;
            for (size_t d = 0; d < t.shape.size(); ++d) {
                last += static_cast<__int128>(t.shape[d] - 1) * value->strides[d];
                if (last >= storage.i) break;
            }
            if (last >= storage.i) {
                fail_in({path, name, ""}, "shape ", shape_string(t.shape), " at offset ", value->i,
                        " reaches past the end of its storage '", storage.s, "' (", storage.i, " elements)");
            }
        }
        const uint8_t* base = static_cast<const uint8_t*>(record.bytes->get());
        if (numel == 0) {
            t.data = nullptr;
        } else if (is_contiguous(t.shape, value->strides)) {
            t.data = base + static_cast<size_t>(value->i) * element;
            t.owner = record.bytes;
        } else {
            // Gather a strided view into a contiguous buffer of its own. A
            // view with more elements than its storage (zero strides) would
            // let a small file ask for any amount of memory: refused.
            if (numel > storage.i) {
                fail_in({path, name, ""}, "non-contiguous view ", shape_string(t.shape),
                        " has more elements than its storage '", storage.s, "' (", storage.i, ")");
            }
            auto copy = std::make_shared<std::vector<uint8_t>>(t.nbytes);
            const size_t dims = t.shape.size();
            std::vector<int64_t> index(dims, 0);
            for (int64_t e = 0; e < numel; ++e) {
                int64_t src = value->i;
                for (size_t d = 0; d < dims; ++d) src += index[d] * value->strides[d];
                std::memcpy(copy->data() + static_cast<size_t>(e) * element, base + static_cast<size_t>(src) * element,
                            element);
                for (size_t d = dims; d-- > 0;) {
                    if (++index[d] < t.shape[d]) break;
                    index[d] = 0;
                }
            }
            t.data = copy->data();
            t.owner = std::move(copy);
        }
        out.add(name, std::move(t));
    }
    if (out.size() == 0) fail_in({path, "", ""}, "the state dict holds no tensors");
    return out;
}

}  // namespace

// The plugin's entry points (see pytorch_plugin.h); everything else in the
// plugin is hidden.
extern "C" __attribute__((visibility("default"))) long sparq_pytorch_plugin_abi() { return pytorch_plugin::kAbi; }

extern "C" __attribute__((visibility("default"))) bool sparq_pytorch_plugin_read(const char* path_chars, TensorMap* out,
                                                                                 pytorch_plugin::Failure* failure) {
    const std::string path = path_chars;
    auto failed = [&](const Error& e) {
        *failure = {e.message(), e.context().file, e.context().tensor, e.context().field};
        return false;
    };
    try {
        try {
            *out = load_checkpoint(path);
            return true;
        } catch (const Error& e) {
            return failed(e.with_file(path));
        } catch (const c10::Error& e) {
            fail_in({path, "", ""}, "not a readable PyTorch zip checkpoint: ", e.what_without_backtrace());
        } catch (const std::bad_alloc&) {
            fail_in({path, "", ""}, "out of memory while reading the PyTorch checkpoint");
        } catch (const std::exception& e) {
            fail_in({path, "", ""}, "not a readable PyTorch zip checkpoint: ", e.what());
        }
    } catch (const Error& e) {
        return failed(e);
    } catch (...) {
        *failure = {"unexpected failure while reading the PyTorch checkpoint", path, "", ""};
        return false;
    }
}

}  // namespace sparq
