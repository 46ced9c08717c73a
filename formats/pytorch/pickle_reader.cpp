#include "formats/pytorch/pickle_reader.h"

#include <cstring>
#include <limits>
#include <string_view>

namespace sparq::pickle {

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

namespace {

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

}  // namespace

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

}  // namespace sparq::pickle
