// libFuzzer harness: any byte string given to the safetensors parser must
// either parse into tensors that lie inside the input, or throw sparq::Error.
// Build with clang (tests/formats/CMakeLists.txt) and run, e.g.:
//   ./fuzz_safetensors -max_total_time=60 corpus/
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const sparq::SafetensorsFile f = sparq::parse_safetensors(nullptr, data, size, "fuzz");
        for (const auto& [name, t] : f.tensors.all()) {
            // Copied (misaligned) tensors live elsewhere; views must lie in the input.
            const bool view = t.data >= data && t.data <= data + size;
            if (view && t.data + t.nbytes > data + size) std::abort();
            if (t.nbytes != static_cast<size_t>(t.numel()) * sparq::dtype_size(t.dtype)) std::abort();
            // Touching both ends lets AddressSanitizer catch a view outside the input.
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
