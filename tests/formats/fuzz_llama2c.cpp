// libFuzzer harness: any byte string given to the llama2.c parser must either
// parse into tensors of the advertised sizes or throw sparq::Error.
// Build with clang (tests/formats/CMakeLists.txt) and run, e.g.:
//   ./fuzz_llama2c -max_total_time=60 corpus/
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "formats/llama2c.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const sparq::Llama2cCheckpoint ck = sparq::parse_llama2c(nullptr, data, size, "fuzz");
        for (const auto& [name, t] : ck.tensors.all()) {
            if (t.nbytes != static_cast<size_t>(t.numel()) * sizeof(float)) std::abort();
            if (t.nbytes) {
                volatile uint8_t first = t.data[0], last = t.data[t.nbytes - 1];
                (void)first;
                (void)last;
            }
        }
    } catch (const sparq::Error&) {
    }
    return 0;
}
