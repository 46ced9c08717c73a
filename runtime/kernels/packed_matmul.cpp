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

bool HasIntDot() { return kHasIntDot; }

bool UsesWideRows(const DenseWeights& w, int64_t act_block) { return WideRowsApply(w, act_block); }

}  // namespace sparq::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <algorithm>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "core/parallel.h"
#include "runtime/kernels/kept_input.h"

namespace sparq {
namespace kernels {

HWY_EXPORT(DenseRows);
HWY_EXPORT(QuantizeActivationBlocks);
HWY_EXPORT(CompiledTarget);
HWY_EXPORT(HasIntDot);
HWY_EXPORT(UsesWideRows);
HWY_EXPORT(QuantizeActivationBlocks16);
HWY_EXPORT(QuadActivationParts);

namespace {

// Rows per parallel chunk: a multiple of the row tile (kernel_args.h).
int64_t dense_rows_per_chunk(const DenseWeights& w, int64_t tokens) {
    const int64_t row_bytes = w.code_row_bytes + 2 * w.groups_per_row + w.zero_row_bytes;
    return rows_per_chunk(w.view.rows, row_bytes, tokens, kMaxTileRows);
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

// One token's activations quantized per block: int8 (Q8) or int16 (Q16).
void quantize_token(const float* x, int64_t cols, int64_t block, int8_t* q, float* scales) {
    HWY_DYNAMIC_DISPATCH(QuantizeActivationBlocks)(x, cols, block, q, scales);
}
void quantize_token(const float* x, int64_t cols, int64_t block, int16_t* q, float* scales) {
    HWY_DYNAMIC_DISPATCH(QuantizeActivationBlocks16)(x, cols, block, q, scales);
}

// Activations in the order and type the kernels read. Reused from call to
// call on the calling thread (see packed_matmul): a prefill makes hundreds
// of calls with megabytes of activations each, and allocations that large
// would come fresh from mmap and page-fault on every call. Every element a
// kernel reads is written by prepare, so nothing depends on older contents.
struct ActivationBuffers {
    std::vector<float> xf;
    std::vector<int16_t> xq;
    std::vector<uint8_t> quad_bytes;
    std::vector<float> block_scales;
    std::vector<float> group_sums;
    std::vector<uint8_t> dot_q;
    std::vector<float> dot_scales;
    std::vector<int32_t> dot_sums;
    PreparedActivations view;
    IntDotActivations dot;
    // The mode the row kernels run in: F32 where integer activations arrive
    // dequantized to floats.
    ActivationMode kernel_mode = ActivationMode::F32;
    bool in_use = false;

    // What prepare() derives depends only on these fields and on the input's
    // bytes, so the next product of the same input (q, k and v; gate and up)
    // reuses it (kept_input.h). Decode spent ~4% of its time preparing
    // activations, three of every seven times for an input it had just
    // prepared (1B synth, int4 g32).
    struct Key {
        int64_t target = 0;  // the SIMD target preparing (tests switch targets)
        int64_t cols = 0, blocks = 0, groups_per_row = 0, group_span = 0, group = 0, tokens = 0;
        int bits = 0;
        bool symmetric = false, small_groups = false;
        ActivationMode mode = ActivationMode::F32;
        bool operator==(const Key&) const = default;
    };
    KeptInput<Key> kept;

    void prepare(const DenseWeights& w, const float* x, int64_t tokens, ActivationMode mode, bool small_groups) {
        const Key k{HWY_DYNAMIC_DISPATCH(CompiledTarget)(),
                    w.view.cols,
                    w.blocks,
                    w.groups_per_row,
                    w.group_span,
                    w.view.scheme.group,
                    tokens,
                    w.view.scheme.bits,
                    w.view.scheme.symmetric,
                    small_groups,
                    mode};
        const int64_t n = tokens * w.view.cols;
        if (kept.same(k, x, n)) return;
        kept.forget();
        prepare_fresh(w, x, tokens, mode, small_groups);
        kept.keep(k, x, n);
    }

    void prepare_fresh(const DenseWeights& w, const float* x, int64_t tokens, ActivationMode mode,
                       bool small_groups) {
        view = PreparedActivations{};
        dot = IntDotActivations{};
        kernel_mode = mode;
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
        const int64_t act = q8_block_columns(w.view.scheme);
        const int64_t act_blocks = (cols + act - 1) / act;
        view.act_block = act;
        view.act_blocks = act_blocks;
        if (!small_groups && tokens >= kMinIntDotTokens && HWY_DYNAMIC_DISPATCH(HasIntDot)()) {
            if (mode == ActivationMode::Q16) {
                prepare_dot<int16_t>(w, x, tokens, act, act_blocks);
            } else {
                prepare_dot<int8_t>(w, x, tokens, act, act_blocks);
            }
            return;
        }
        if (small_groups || tokens >= kMinTileTokens) {
            if (mode == ActivationMode::Q16) {
                prepare_dequantized<int16_t>(w, x, tokens, act, act_blocks, order_bits);
            } else {
                prepare_dequantized<int8_t>(w, x, tokens, act, act_blocks, order_bits);
            }
            return;
        }
        if (mode == ActivationMode::Q16) {
            prepare_levels<int16_t>(w, x, tokens, act, act_blocks, order_bits);
        } else {
            prepare_levels<int8_t>(w, x, tokens, act, act_blocks, order_bits);
        }
    }

    // Levels (int8 or int16 values, held as int16) in block order for the
    // integer row drivers, with each group's sum of dx * sum q for the zero
    // points.
    template <typename T>
    void prepare_levels(const DenseWeights& w, const float* x, int64_t tokens, int64_t act, int64_t act_blocks,
                        int order_bits) {
        const int64_t cols = w.view.cols;
        const int64_t stride = view.stride;
        std::vector<T>& q = levels_of<T>();
        q.resize(static_cast<size_t>(cols));
        // One vector of slack: kernels read block scales a vector at a time.
        block_scales.resize(static_cast<size_t>(tokens * act_blocks + 16));
        xq.resize(static_cast<size_t>(tokens * stride));
        group_sums.resize(static_cast<size_t>(tokens * w.groups_per_row));
        // Activation blocks per weight group (groups of a whole row hold all).
        const int64_t acts_per_group = w.view.scheme.group == 0 ? act_blocks : w.group_span / act;
        view.wide = tokens == 1 && HWY_DYNAMIC_DISPATCH(UsesWideRows)(w, act);
        const bool pair_order = view.wide && w.view.scheme.bits == 4;
        // int4 rows (either symmetry) whose groups are their activation
        // blocks (32 to 256 columns), of whole 128-column quads, take
        // byte-split levels instead (every row of them: wide_rows-inl.h).
        const bool quad_order = pair_order && sizeof(T) == 2 && w.group_span == act && cols % kQuadColumns == 0 &&
                                cols % act == 0;
        if (quad_order) quad_bytes.resize(static_cast<size_t>(2 * cols));
        for (int64_t t = 0; t < tokens; ++t) {
            const float* dx = block_scales.data() + t * act_blocks;
            quantize_token(x + t * cols, cols, act, q.data(), block_scales.data() + t * act_blocks);
            if (quad_order) {
                // Groups of one activation block each (quad_order's condition).
                if constexpr (sizeof(T) == 2) {
                    HWY_DYNAMIC_DISPATCH(QuadActivationParts)(q.data(), cols, act, dx, quad_bytes.data(),
                                                              group_sums.data() + t * w.groups_per_row);
                }
                continue;
            }
            if (pair_order) {
                permute_to_pair_order(q.data(), cols, xq.data() + t * stride);
            } else {
                permute_to_block_order(q.data(), cols, order_bits, xq.data() + t * stride);
            }
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
        view.quad_bytes = quad_order ? quad_bytes.data() : nullptr;
        view.xq = quad_order ? nullptr : xq.data();
        view.block_scales = block_scales.data();
        view.group_sums = group_sums.data();
        kernel_mode = ActivationMode::Q8;  // the integer row drivers take int8 and int16 levels alike
    }

    std::vector<int16_t> levels16;
    std::vector<int8_t> levels8;
    template <typename T>
    std::vector<T>& levels_of() {
        if constexpr (sizeof(T) == 2) {
            return levels16;
        } else {
            return levels8;
        }
    }

    // Integer levels dequantized to floats for the FP32 kernels: the same
    // values the twin's integer sums see, multiplied as floats.
    template <typename T>
    void prepare_dequantized(const DenseWeights& w, const float* x, int64_t tokens, int64_t act,
                             int64_t act_blocks, int order_bits) {
        const int64_t cols = w.view.cols;
        std::vector<T> q(static_cast<size_t>(cols));
        std::vector<float> scales(static_cast<size_t>(act_blocks)), xhat(static_cast<size_t>(cols));
        xf.resize(static_cast<size_t>(tokens * view.stride));
        for (int64_t t = 0; t < tokens; ++t) {
            quantize_token(x + t * cols, cols, act, q.data(), scales.data());
            for (int64_t c = 0; c < cols; ++c) xhat[c] = static_cast<float>(q[c]) * scales[c / act];
            permute_to_block_order(xhat.data(), cols, order_bits, xf.data() + t * view.stride);
        }
        view.xf = xf.data();
        kernel_mode = ActivationMode::F32;
    }

    // Token-lane layout for the integer-dot prefill (kernel_args.h), built in
    // parallel over token vectors: each vector is written by one chunk.
    template <typename T>
    void prepare_dot(const DenseWeights& w, const float* x, int64_t tokens, int64_t act, int64_t act_blocks) {
        constexpr int64_t kPerStep = 4 / static_cast<int64_t>(sizeof(T));  // levels per 4-byte step
        const int64_t cols = w.view.cols;
        const int64_t stride = w.blocks * kBlock;
        const int64_t steps = stride / kPerStep;
        const int64_t vectors = (tokens + kTokenLanes - 1) / kTokenLanes;
        dot_q.resize(static_cast<size_t>(vectors * steps * 4 * kTokenLanes));
        dot_scales.resize(static_cast<size_t>(vectors * act_blocks * kTokenLanes));
        dot_sums.resize(dot_scales.size());
        const int bits = w.view.scheme.bits;
        parallel_for(0, vectors, 1, [&](int64_t v0, int64_t v1) {
            std::vector<T> q(static_cast<size_t>(cols)), ordered(static_cast<size_t>(stride));
            std::vector<float> scales(static_cast<size_t>(act_blocks));
            for (int64_t v = v0; v < v1; ++v) {
                for (int64_t lane = 0; lane < kTokenLanes; ++lane) {
                    const int64_t t = v * kTokenLanes + lane;
                    if (t < tokens) {
                        quantize_token(x + t * cols, cols, act, q.data(), scales.data());
                        permute_to_block_order(q.data(), cols, bits, ordered.data());
                    } else {  // lanes past the last token: zeros
                        std::fill(q.begin(), q.end(), T{0});
                        std::fill(ordered.begin(), ordered.end(), T{0});
                        std::fill(scales.begin(), scales.end(), 0.0f);
                    }
                    uint8_t* out = dot_q.data() + v * steps * 4 * kTokenLanes + lane * 4;
                    for (int64_t k = 0; k < steps; ++k)
                        std::memcpy(out + k * 4 * kTokenLanes, ordered.data() + kPerStep * k, 4);
                    for (int64_t a = 0; a < act_blocks; ++a) {
                        int32_t sum = 0;
                        for (int64_t c = a * act; c < std::min(cols, (a + 1) * act); ++c) sum += q[c];
                        dot_scales[(v * act_blocks + a) * kTokenLanes + lane] = scales[a];
                        dot_sums[(v * act_blocks + a) * kTokenLanes + lane] = sum;
                    }
                }
            }
        });
        dot.wide = sizeof(T) == 2;
        dot.tokens = tokens;
        dot.vectors = vectors;
        dot.steps = steps;
        dot.act_block = act;
        dot.act_blocks = act_blocks;
        dot.q = dot_q.data();
        dot.scales = dot_scales.data();
        dot.sums = dot_sums.data();
    }
};

}  // namespace

}  // namespace kernels

void packed_matmul(const PackedView& w, const float* x, int64_t tokens, float* y, int64_t y_stride,
                   ActivationMode mode) {
    const PackedProduct product{w, y, y_stride};
    packed_matmul_group({&product, 1}, x, tokens, mode);
}

void packed_matmul_group(std::span<const PackedProduct> products, const float* x, int64_t tokens,
                         ActivationMode mode) {
    using namespace kernels;
    if (products.empty()) return;
    const PackedView& first = products.front().w;
    for (const PackedProduct& p : products) {
        check_call(p.w, x, tokens, p.y, p.y_stride);
        if (p.w.cols != first.cols || !(p.w.scheme == first.scheme)) {
            fail("packed matmul group: a [", p.w.rows, ", ", p.w.cols, "] ", p.w.scheme.name(), " matrix with a [",
                 first.rows, ", ", first.cols, "] ", first.scheme.name(), " one (one input: same cols and scheme)");
        }
    }
    // Nothing to read where no matrix has rows (x may then be null).
    const bool any_rows =
        std::any_of(products.begin(), products.end(), [](const PackedProduct& p) { return p.w.rows > 0; });
    if (tokens == 0 || !any_rows) return;
    // The calling thread's buffers, unless a call on this thread is already
    // using them (only if a caller nests products, which nothing does now).
    thread_local ActivationBuffers reused;
    ActivationBuffers fresh;
    ActivationBuffers& buffers = reused.in_use ? fresh : reused;
    buffers.in_use = true;
    struct Release {
        ActivationBuffers& b;
        ~Release() { b.in_use = false; }
    } release{buffers};
    const bool small_groups = has_small_groups(first.scheme);
    buffers.prepare(dense_weights(first), x, tokens, mode, small_groups);
    // Each matrix's call and chunks, its chunks numbered after the ones
    // before it (at most a few matrices: a linear search finds a chunk's).
    struct Part {
        DenseCall call;
        int64_t chunk = 0, first_chunk = 0, chunks = 0;
    };
    std::vector<Part> parts;
    parts.reserve(products.size());
    int64_t total_chunks = 0, dot_bytes = 0;
    for (const PackedProduct& p : products) {
        if (p.w.rows == 0) continue;
        Part part;
        part.call.w = dense_weights(p.w);
        part.call.small_groups = small_groups;
        part.call.y = p.y;
        part.call.y_stride = p.y_stride;
        part.call.x = buffers.view;
        part.call.dot = buffers.dot;
        part.call.mode = buffers.kernel_mode;
        part.chunk = dense_rows_per_chunk(part.call.w, tokens);
        part.first_chunk = total_chunks;
        part.chunks = (p.w.rows + part.chunk - 1) / part.chunk;
        total_chunks += part.chunks;
        if (buffers.dot.q) {
            dot_bytes = std::max(dot_bytes, IntDotScratch(buffers.view.stride, buffers.dot.act_blocks, part.chunk).total);
        }
        parts.push_back(part);
    }
    // Row scales, then the tile buffer from a 64-byte boundary.
    const int64_t groups_per_row = parts.front().call.w.groups_per_row;
    const int64_t tile_offset = (groups_per_row + 16 + 15) / 16 * 16;
    const size_t scratch_floats = static_cast<size_t>(
        tile_offset + 16 + std::max(kMaxTileRows * buffers.view.stride, (dot_bytes + 3) / 4));
    parallel_for(0, total_chunks, 1, [&](int64_t c0, int64_t c1) {
        // Chunks never nest parallel loops, so a per-thread buffer is safe.
        thread_local std::vector<float> scratch;
        if (scratch.size() < scratch_floats) scratch.resize(scratch_floats);
        KernelScratch s;
        s.row_scales = scratch.data();
        const auto misalign = reinterpret_cast<uintptr_t>(scratch.data() + tile_offset) % 64;
        s.weight_tile = scratch.data() + tile_offset + (misalign ? (64 - misalign) / 4 : 0);
        for (int64_t c = c0; c < c1; ++c) {
            size_t j = 0;
            while (c >= parts[j].first_chunk + parts[j].chunks) ++j;
            const Part& part = parts[j];
            const int64_t r0 = (c - part.first_chunk) * part.chunk;
            const int64_t r1 = std::min(part.call.w.view.rows, r0 + part.chunk);
            HWY_DYNAMIC_DISPATCH(DenseRows)(part.call, r0, r1, s);
        }
    });
}

void packed_matvec(const PackedView& w, const float* x, float* y, ActivationMode mode) {
    packed_matmul(w, x, 1, y, w.rows, mode);
}

bool packed_int_dot_is_faster(int64_t tokens) {
    return tokens >= kernels::kMinIntDotTokens && HWY_DYNAMIC_DISPATCH(kernels::HasIntDot)();
}

bool packed_q16_is_faster(const QuantScheme& s, int64_t tokens) {
    if (packed_int_dot_is_faster(tokens)) return true;
    return tokens == 1 && !kernels::has_small_groups(s);
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

void quad_activation_parts_simd(const int16_t* q, int64_t cols, int64_t block, const float* dx, uint8_t* quad_bytes,
                                float* sums) {
    if (cols % kernels::kQuadColumns != 0) fail("quad activations: ", cols, " columns, not a multiple of 128");
    HWY_DYNAMIC_DISPATCH(kernels::QuadActivationParts)(q, cols, block, dx, quad_bytes, sums);
}

void quantize_activation_blocks_simd(const float* x, int64_t cols, int64_t block, int16_t* q, float* scales) {
    if (block < kActivationBlock || block % kActivationBlock != 0) {
        fail("activation block of ", block, " columns: must be a positive multiple of ", kActivationBlock);
    }
    HWY_DYNAMIC_DISPATCH(kernels::QuantizeActivationBlocks16)(x, cols, block, q, scales);
}

}  // namespace sparq
#endif  // HWY_ONCE
