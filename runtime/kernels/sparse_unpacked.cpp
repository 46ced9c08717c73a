#include "runtime/kernels/sparse_unpacked.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "quant/layout.h"

namespace sparq {

namespace {

// Unpacks the code plane in parallel (fixed chunks of about 64 KiB), then
// runs the dense product. The plane is reused from call to call on this
// thread: a prefill makes hundreds of calls of megabytes each.
template <typename View, typename UnpackRows>
void unpacked_matmul(const View& w, const float* x, int64_t tokens, float* y, int64_t y_stride, ActivationMode mode,
                     const UnpackRows& unpack_rows) {
    PackedView dense = w.group_params();
    if (dense.rows == 0 || tokens == 0) return;
    const int64_t row_bytes = code_row_bytes(dense.scheme, dense.cols);
    thread_local std::vector<uint8_t> plane;
    const size_t size = static_cast<size_t>(dense.rows * row_bytes);
    if (plane.size() < size) plane.resize(size);
    // The calling thread's buffer: inside the loop `plane` would name each
    // worker's own.
    uint8_t* const codes = plane.data();
    const int64_t grain = std::max<int64_t>(1, (int64_t{64} * 1024) / std::max<int64_t>(row_bytes, 1));
    parallel_for(0, dense.rows, grain, [&](int64_t r0, int64_t r1) { unpack_rows(w, r0, r1, codes + r0 * row_bytes); });
    dense.codes = codes;
    packed_matmul(dense, x, tokens, y, y_stride, mode);
}

}  // namespace

bool sparse_unpacked_applies(const float* x, int64_t tokens, int64_t cols) {
    if (tokens < kSparseUnpackTokens) return false;
    const int64_t n = tokens * cols;
    for (int64_t i = 0; i < n; ++i) {
        if (!std::isfinite(x[i])) return false;
    }
    return true;
}

void nm_sparse_matmul_unpacked(const NmSparseView& w, const float* x, int64_t tokens, float* y, int64_t y_stride,
                               ActivationMode mode) {
    unpacked_matmul(w, x, tokens, y, y_stride, mode, unpack_nm_sparse_codes);
}

void bitmask_sparse_matmul_unpacked(const BitmaskSparseView& w, const float* x, int64_t tokens, float* y,
                                    int64_t y_stride, ActivationMode mode) {
    unpacked_matmul(w, x, tokens, y, y_stride, mode, unpack_bitmask_sparse_codes);
}

}  // namespace sparq
