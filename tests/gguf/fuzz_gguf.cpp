// libFuzzer harness: any byte string given to the GGUF reader must either
// parse into tensor infos whose data lies inside the input, or throw
// sparq::Error; so must the vocabulary reader and the block dequantizer run
// on what it parsed. Build with clang (tests/gguf/CMakeLists.txt) and run, e.g.:
//   ./fuzz_gguf -max_total_time=60 corpus/
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include <vector>

#include "formats/gguf/ggml_blocks.h"
#include "formats/gguf/gguf_reader.h"
#include "formats/gguf/gguf_vocabulary.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const sparq::gguf::GgufFile f = sparq::gguf::GgufFile::parse(data, size, "fuzz");
        for (const auto& t : f.tensors()) {
            const auto bytes = f.tensor_bytes(t);
            if (bytes.data() < data || bytes.data() + bytes.size() > data + size) std::abort();
            if (!bytes.empty()) {
                volatile uint8_t first = bytes.front(), last = bytes.back();
                (void)first;
                (void)last;
            }
        }
        for (const auto& kv : f.kvs()) (void)kv.second.to_display();
        for (const auto& t : f.tensors()) {
            if (!sparq::gguf::can_dequantize_ggml(t.type) || t.n_elements > (1u << 20)) continue;
            std::vector<float> out(static_cast<size_t>(t.n_elements));
            const auto bytes = f.tensor_bytes(t);
            try {
                sparq::gguf::dequantize_ggml(t.type, bytes.data(), bytes.size(), static_cast<int64_t>(t.n_elements),
                                             out.data(), t.name);
            } catch (const sparq::Error&) {
            }
        }
        (void)sparq::gguf::read_gguf_vocabulary(f);
    } catch (const sparq::Error&) {
    }
    return 0;
}
