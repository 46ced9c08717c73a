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
// record; the pickle is run by sparq (pickle_reader.h) on a closed set of
// opcodes and globals, and this file checks each tensor against its storage.
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
#include <map>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/pytorch/pickle_reader.h"

namespace sparq {
namespace {

using pickle::Kind;
using pickle::kind_name;
using pickle::Value;

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
    if (pickle_size > pickle::kMaxPickleBytes)
        fail_in({path, "", ""}, "data.pkl is ", pickle_size, " bytes, more than a state dict needs");
    pickle::PickleReader pickle(static_cast<const uint8_t*>(pickle_bytes.get()), pickle_size, path);
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
