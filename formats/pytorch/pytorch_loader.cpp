// The LibTorch-free half of the PyTorch reader: loads the plugin
// libsparq_pytorch_plugin.so (pytorch_reader.cpp, linked with LibTorch) the
// first time a checkpoint is read, and turns its answers back into
// TensorMaps and sparq::Errors. See pytorch_plugin.h for why.

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/mapped_file.h"
#include "formats/pytorch/pytorch_plugin.h"
#include "formats/pytorch/pytorch_reader.h"
#include "formats/sharded_safetensors.h"

#ifndef SPARQ_PYTORCH_PLUGIN_PATH
#define SPARQ_PYTORCH_PLUGIN_PATH ""
#endif

namespace sparq {
namespace {

constexpr const char* kPluginFile = "libsparq_pytorch_plugin.so";

std::string executable_dir() {
    std::vector<char> buf(4096);
    const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
    if (n <= 0) return "";
    const std::string exe(buf.data(), static_cast<size_t>(n));
    const size_t slash = exe.rfind('/');
    return slash == std::string::npos ? "" : exe.substr(0, slash);
}

// Where the plugin may be: $SPARQ_PYTORCH_PLUGIN, where this build tree put
// it, beside the executable, and in ../lib from it.
std::vector<std::string> plugin_candidates() {
    std::vector<std::string> out;
    if (const char* env = std::getenv("SPARQ_PYTORCH_PLUGIN"); env && *env) {
        out.push_back(env);
        return out;
    }
    if (*SPARQ_PYTORCH_PLUGIN_PATH) out.push_back(SPARQ_PYTORCH_PLUGIN_PATH);
    const std::string dir = executable_dir();
    if (!dir.empty()) {
        out.push_back(dir + "/" + kPluginFile);
        out.push_back(dir + "/../lib/" + kPluginFile);
    }
    return out;
}

struct Plugin {
    pytorch_plugin::ReadFn read = nullptr;
    std::string error;  // why it could not be loaded
};

// Loaded once, never unloaded: tensors it returns are owned through
// shared_ptr control blocks whose code lives in the plugin.
const Plugin& plugin() {
    static const Plugin loaded = [] {
        Plugin p;
        std::string tried;
        for (const std::string& path : plugin_candidates()) {
            if (!file_exists(path)) {
                tried += "\n  " + path + " (not found)";
                continue;
            }
            void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
            if (!handle) {
                const char* why = ::dlerror();
                tried += "\n  " + path + " (" + (why ? why : "dlopen failed") + ")";
                continue;
            }
            auto abi = reinterpret_cast<pytorch_plugin::AbiFn>(::dlsym(handle, pytorch_plugin::kAbiSymbol));
            auto read = reinterpret_cast<pytorch_plugin::ReadFn>(::dlsym(handle, pytorch_plugin::kReadSymbol));
            if (!abi || !read || abi() != pytorch_plugin::kAbi) {
                tried += "\n  " + path + " (from another build of sparq: rebuild it)";
                continue;  // handle stays open: harmless, and never reused
            }
            p.read = read;
            return p;
        }
        p.error =
            "cannot load the LibTorch plugin that reads PyTorch checkpoints (set SPARQ_PYTORCH_PLUGIN "
            "to its path); tried:" +
            tried;
        return p;
    }();
    return loaded;
}

}  // namespace

TensorMap read_pytorch_checkpoint(const std::string& path) {
    const Plugin& p = plugin();
    if (!p.read) fail_in({path, "", ""}, p.error);
    TensorMap out;
    pytorch_plugin::Failure failure;
    if (!p.read(path.c_str(), &out, &failure)) {
        throw Error(failure.message, {failure.file, failure.tensor, failure.field});
    }
    return out;
}

TensorMap read_pytorch_sharded(const std::string& index_json_path) {
    return read_sharded_checkpoint(index_json_path,
                                   [](const std::string& shard) { return read_pytorch_checkpoint(shard); });
}

}  // namespace sparq
