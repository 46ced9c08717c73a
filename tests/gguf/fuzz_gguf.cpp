// libFuzzer harness: any byte string given to the GGUF reader must either
// parse into tensor infos whose data lies inside the input, or throw
// sparq::Error. Build with clang (tests/gguf/CMakeLists.txt) and run, e.g.:
//   ./fuzz_gguf -max_total_time=60 corpus/
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "formats/gguf/gguf_reader.h"

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
    } catch (const sparq::Error&) {
    }
    return 0;
}
