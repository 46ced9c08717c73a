// Dispatch for the dense packed kernels: checks the call, prepares the
// activations once (block order, Q8 quantization), cuts the rows into fixed
// chunks and runs each chunk on the best SIMD target the CPU has.

#include "runtime/kernels/packed_matmul.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/kernels/packed_matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "runtime/kernels/activation_kernels-inl.h"
#include "runtime/kernels/dense_rows-inl.h"

HWY_BEFORE_NAMESPACE();
namespace sparq::kernels::HWY_NAMESPACE {

int64_t CompiledTarget() { return HWY_TARGET; }

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"

namespace sparq {
namespace kernels {

HWY_EXPORT(DenseRows);
HWY_EXPORT(QuantizeActivationBlocks);
HWY_EXPORT(CompiledTarget);

namespace {

// Rows per parallel chunk: about 64 KiB of packed weights, a multiple of the
// row tile. Depends only on the shape, never on the thread count.
int64_t rows_per_chunk(const DenseWeights& w) {
    const int64_t row_bytes = w.code_row_bytes + 2 * w.groups_per_row + w.zero_row_bytes;
    const int64_t rows = std::clamp<int64_t>((int64_t{64} * 1024) / std::max<int64_t>(row_bytes, 1),
                                             kMaxTileRows, 1024);
    return (rows + kMaxTileRows - 1) / kMaxTileRows * kMaxTileRows;
}

void check_call(const PackedView& w, const float* x, int64_t tokens, const float* y, int64_t y_stride) {
    validate_quant_scheme(w.scheme);
    if (w.rows < 0 || w.cols < 1) fail("packed matmul: bad weight shape [", w.rows, ", ", w.cols, "]");
    if (tokens < 0) fail("packed matmul: negative token count ", tokens);
    if (y_stride < w.rows) fail("packed matmul: output stride ", y_stride, " < rows ", w.rows);
    if (w.rows > 0 && tokens > 0 &&
        (!x || !y || !w.codes || !w.scales || (!w.scheme.symmetric && !w.zeros))) {
        fail("packed matmul: null pointer in a call with data");
    }
}

// Activations in the order and type the kernels read, owned for one call.
struct ActivationBuffers {
    std::vector<float> xf;
    std::vector<int16_t> xq;
    std::vector<float> block_scales;
    std::vector<float> group_sums;
    PreparedActivations view;

    ActivationBuffers(const DenseWeights& w, const float* x, int64_t tokens, ActivationMode mode,
                      bool small_groups) {
        const int64_t cols = w.view.cols;
        const int64_t stride = w.blocks * kBlock;
        view.tokens = tokens;
        view.stride = stride;
        // Small groups are dequantized to plain column order, so their
        // activations stay in column order too.
        const int order_bits = small_groups ? 8 : w.view.scheme.bits;
        if (mode == ActivationMode::F32) {
            xf.resize(static_cast<size_t>(tokens * stride));
            for (int64_t t = 0; t < tokens; ++t)
                permute_to_block_order(x + t * cols, cols, order_bits, xf.data() + t * stride);
            view.xf = xf.data();
            return;
        }
        std::vector<int8_t> q(static_cast<size_t>(cols));
        const int64_t act = q8_block_columns(w.view.scheme);
        const int64_t act_blocks = (cols + act - 1) / act;
        // One vector of slack: kernels read block scales a vector at a time.
        block_scales.resize(static_cast<size_t>(tokens * act_blocks + 16));
        view.act_block = act;
        view.act_blocks = act_blocks;
        if (small_groups) {
            // Dequantized Q8 activations: the same values the twin's integer
            // sums see, multiplied as floats.
            std::vector<float> xhat(static_cast<size_t>(cols));
            xf.resize(static_cast<size_t>(tokens * stride));
            for (int64_t t = 0; t < tokens; ++t) {
                float* scales = block_scales.data() + t * act_blocks;
                HWY_DYNAMIC_DISPATCH(QuantizeActivationBlocks)(x + t * cols, cols, act, q.data(), scales);
                for (int64_t c = 0; c < cols; ++c) xhat[c] = static_cast<float>(q[c]) * scales[c / act];
                permute_to_block_order(xhat.data(), cols, 8, xf.data() + t * stride);
            }
            view.xf = xf.data();
            return;
        }
        xq.resize(static_cast<size_t>(tokens * stride));
        group_sums.resize(static_cast<size_t>(tokens * w.groups_per_row));
        // Activation blocks per weight group (groups of a whole row hold all).
        const int64_t acts_per_group = w.view.scheme.group == 0 ? act_blocks : w.group_span / act;
        for (int64_t t = 0; t < tokens; ++t) {
            const float* dx = block_scales.data() + t * act_blocks;
            HWY_DYNAMIC_DISPATCH(QuantizeActivationBlocks)(x + t * cols, cols, act, q.data(),
                                                           block_scales.data() + t * act_blocks);
            permute_to_block_order(q.data(), cols, order_bits, xq.data() + t * stride);
            for (int64_t g = 0; g < w.groups_per_row; ++g) {
                float sum = 0.0f;
                const int64_t end = std::min(act_blocks, (g + 1) * acts_per_group);
                for (int64_t a = g * acts_per_group; a < end; ++a) {
                    int32_t qsum = 0;
                    for (int64_t c = a * act; c < std::min(cols, (a + 1) * act); ++c) qsum += q[c];
                    sum += dx[a] * static_cast<float>(qsum);
                }
                group_sums[t * w.groups_per_row + g] = sum;
            }
        }
        view.xq = xq.data();
        view.block_scales = block_scales.data();
        view.group_sums = group_sums.data();
    }
};

}  // namespace

}  // namespace kernels

void packed_matmul(const PackedView& w, const float* x, int64_t tokens, float* y, int64_t y_stride,
                   ActivationMode mode) {
    using namespace kernels;
    check_call(w, x, tokens, y, y_stride);
    if (w.rows == 0 || tokens == 0) return;
    DenseCall call;
    call.w = dense_weights(w);
    call.mode = mode;
    call.small_groups = has_small_groups(w.scheme);
    call.y = y;
    call.y_stride = y_stride;
    const ActivationBuffers buffers(call.w, x, tokens, mode, call.small_groups);
    call.x = buffers.view;
    const size_t scratch_floats =
        static_cast<size_t>(call.w.groups_per_row + 16 + kMaxTileRows * call.x.stride);
    parallel_for(0, w.rows, rows_per_chunk(call.w), [&](int64_t r0, int64_t r1) {
        // Chunks never nest parallel loops, so a per-thread buffer is safe.
        thread_local std::vector<float> scratch;
        if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
        KernelScratch s;
        s.row_scales = scratch.data();
        s.weight_tile = scratch.data() + call.w.groups_per_row + 16;
        HWY_DYNAMIC_DISPATCH(DenseRows)(call, r0, r1, s);
    });
}

void packed_matvec(const PackedView& w, const float* x, float* y, ActivationMode mode) {
    packed_matmul(w, x, 1, y, w.rows, mode);
}

const char* packed_kernel_target() {
    return hwy::TargetName(HWY_DYNAMIC_DISPATCH(kernels::CompiledTarget)());
}

int64_t packed_kernel_compiled_targets() { return HWY_TARGETS; }

void quantize_activation_blocks_simd(const float* x, int64_t cols, int64_t block, int8_t* q, float* scales) {
    if (block < kActivationBlock || block % kActivationBlock != 0) {
        fail("activation block of ", block, " columns: must be a positive multiple of ", kActivationBlock);
    }
    HWY_DYNAMIC_DISPATCH(kernels::QuantizeActivationBlocks)(x, cols, block, q, scales);
}

}  // namespace sparq
#endif  // HWY_ONCE
