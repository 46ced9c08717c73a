// The pickle machine of a torch.save checkpoint's data.pkl: a closed set of
// opcodes and globals, enough for a state dict of tensors and nothing more
// (see pytorch_reader.h for what is accepted, and pytorch_reader.cpp for why
// sparq runs the pickle itself instead of LibTorch's unpickler). Kept apart
// from the zip and storage handling because it is plain, LibTorch-free
// parsing of a memory buffer: the part of the reader that sees the most
// hostile bytes, readable and testable without the container around it.
// Internal to the plugin (libsparq_pytorch_plugin.so).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/tensor.h"

namespace sparq::pickle {

// A state dict pickle costs a few hundred bytes per tensor; these limits are
// far above any real checkpoint and bound what a hostile one can make us
// allocate.
constexpr size_t kMaxPickleBytes = 64u << 20;
constexpr size_t kMaxPickleValues = 1u << 21;
constexpr size_t kMaxDims = 8;

enum class Kind { None, Bool, Int, Float, Str, Tuple, List, Dict, Global, StorageType, Storage, Tensor };

const char* kind_name(Kind k);

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

}  // namespace sparq::pickle
