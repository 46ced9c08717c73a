// libFuzzer harness: any byte string given to the .sparq reader must either
// parse into planes and blobs that lie inside the input, or throw
// sparq::Error. The header checksum is recomputed over the input first (when
// its sections are in bounds), so mutations reach the JSON and table checks
// instead of stopping at the checksum. Build with clang
// (tests/sparq_format/CMakeLists.txt) and run, e.g.:
//   ./fuzz_sparq -max_total_time=60 corpus/
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "formats/sparq/sparq_file.h"
#include "formats/sparq/sparq_format.h"

namespace {

void reseal(std::vector<uint8_t>& bytes) {
    if (bytes.size() < sparq::kSparqHeaderBytes) return;
    const sparq::SparqHeader h = sparq::decode_sparq_header(bytes.data());
    const uint64_t size = bytes.size();
    const auto in_bounds = [&](uint64_t offset, uint64_t n) { return offset <= size && n <= size - offset; };
    if (!in_bounds(h.metadata_offset, h.metadata_size) || !in_bounds(h.table_offset, h.table_size)) return;
    const uint64_t sum = sparq::sparq_header_checksum(
        bytes.data(), {bytes.data() + h.metadata_offset, static_cast<size_t>(h.metadata_size)},
        {bytes.data() + h.table_offset, static_cast<size_t>(h.table_size)});
    for (int i = 0; i < 8; ++i) bytes[sparq::sparq_header_offset::kHeaderChecksum + i] = static_cast<uint8_t>(sum >> (8 * i));
}

void touch(const uint8_t* begin, const uint8_t* p, uint64_t n, size_t size) {
    if (n == 0) return;
    if (p < begin || p > begin + size || n > static_cast<uint64_t>(begin + size - p)) std::abort();
    // Reading both ends lets AddressSanitizer catch a view outside the input.
    volatile uint8_t first = p[0], last = p[n - 1];
    (void)first;
    (void)last;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::vector<uint8_t> bytes(data, data + size);
    reseal(bytes);
    try {
        const auto file = sparq::SparqFile::parse(nullptr, bytes.data(), bytes.size(), "fuzz");
        for (const sparq::SparqBlob& b : file->blobs()) touch(bytes.data(), b.data, b.size, bytes.size());
        for (const sparq::SparqTensor& t : file->tensors()) {
            for (const sparq::SparqPlane& p : t.planes) {
                if (p.offset % sparq::kSparqAlignment != 0) std::abort();
                touch(bytes.data(), p.data, p.size, bytes.size());
            }
            file->verify_tensor(t);
            if (sparq::sparq_dense_element_size(t.encoding) != 0) {
                try {
                    const sparq::Tensor dense = file->dense_tensor(t);
                    touch(bytes.data(), dense.data, dense.nbytes, bytes.size());
                } catch (const sparq::Error&) {
                }
            }
        }
    } catch (const sparq::Error&) {
    }
    return 0;
}
