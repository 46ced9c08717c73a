#include "formats/gguf/ggml_blocks.h"

#include <cstring>
#include <type_traits>

#include "core/error.h"
#include "core/half.h"

namespace sparq::gguf {

bool can_dequantize_ggml(GgmlType type) {
    return type == GgmlType::Q8_0 || type == GgmlType::Q4_0 || type == GgmlType::Q4_1 || type == GgmlType::Q4_K ||
           type == GgmlType::Q5_K || type == GgmlType::Q6_K;
}

void unpack_k_scale_min(const uint8_t scales[12], int j, int& scale, int& min) {
    if (j < 4) {
        scale = scales[j] & 63;
        min = scales[j + 4] & 63;
    } else {
        scale = (scales[j + 4] & 15) | ((scales[j - 4] >> 6) << 4);
        min = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

void pack_k_scale_min(uint8_t scales[12], int j, int scale, int min) {
    if (j < 4) {
        scales[j] = static_cast<uint8_t>((scales[j] & 0xC0) | scale);
        scales[j + 4] = static_cast<uint8_t>((scales[j + 4] & 0xC0) | min);
    } else {
        scales[j + 4] = static_cast<uint8_t>((scale & 15) | ((min & 15) << 4));
        scales[j - 4] = static_cast<uint8_t>((scales[j - 4] & 63) | ((scale >> 4) << 6));
        scales[j] = static_cast<uint8_t>((scales[j] & 63) | ((min >> 4) << 6));
    }
}

void pack_q4_nibbles(const uint8_t codes[kGgmlBlock], uint8_t qs[kGgmlBlock / 2]) {
    for (int j = 0; j < kGgmlBlock / 2; ++j) qs[j] = static_cast<uint8_t>(codes[j] | (codes[j + kGgmlBlock / 2] << 4));
}

void pack_q4_k_codes(const uint8_t codes[kGgmlSuperBlock], uint8_t qs[kGgmlSuperBlock / 2]) {
    // Chunk c of 64 values: sub-block 2c in the low nibbles of qs[32c ..], 2c + 1 in the high ones.
    for (int c = 0; c < 4; ++c) {
        for (int l = 0; l < 32; ++l) qs[32 * c + l] = static_cast<uint8_t>(codes[64 * c + l] | (codes[64 * c + 32 + l] << 4));
    }
}

void pack_q6_k_codes(const uint8_t codes[kGgmlSuperBlock], BlockQ6_K& block) {
    for (int h = 0; h < 2; ++h) {
        const uint8_t* q = codes + 128 * h;
        for (int l = 0; l < 32; ++l) {
            block.ql[64 * h + l] = static_cast<uint8_t>((q[l] & 15) | ((q[l + 64] & 15) << 4));
            block.ql[64 * h + l + 32] = static_cast<uint8_t>((q[l + 32] & 15) | ((q[l + 96] & 15) << 4));
            block.qh[32 * h + l] = static_cast<uint8_t>((q[l] >> 4) | ((q[l + 32] >> 4) << 2) | ((q[l + 64] >> 4) << 4) |
                                                        ((q[l + 96] >> 4) << 6));
        }
    }
}

namespace {

template <typename Block>
Block load_block(const uint8_t* bytes, int64_t b) {
    Block block;
    std::memcpy(&block, bytes + static_cast<size_t>(b) * sizeof(Block), sizeof(Block));  // file bytes need not be aligned
    return block;
}

// Q4_K and Q5_K: chunk c of 64 values takes sub-blocks 2c and 2c + 1.
template <typename Block>
void dequantize_k_block(const Block& block, float* x) {
    constexpr bool kFifthBit = std::is_same_v<Block, BlockQ5_K>;
    const float d = fp16_to_fp32(block.d), dmin = fp16_to_fp32(block.dmin);
    for (int c = 0; c < 4; ++c) {
        for (int half = 0; half < 2; ++half) {
            int scale = 0, min = 0;
            unpack_k_scale_min(block.scales, 2 * c + half, scale, min);
            const float step = d * static_cast<float>(scale), offset = dmin * static_cast<float>(min);
            for (int l = 0; l < 32; ++l) {
                const uint8_t byte = block.qs[32 * c + l];
                int q = half == 0 ? (byte & 15) : (byte >> 4);
                if constexpr (kFifthBit) q += ((block.qh[l] >> (2 * c + half)) & 1) << 4;
                x[64 * c + 32 * half + l] = step * static_cast<float>(q) - offset;
            }
        }
    }
}

void dequantize_q6_k_block(const BlockQ6_K& block, float* x) {
    const float d = fp16_to_fp32(block.d);
    for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = block.ql + 64 * h;
        const uint8_t* qh = block.qh + 32 * h;
        float* y = x + 128 * h;
        for (int l = 0; l < 32; ++l) {
            const int q[4] = {(ql[l] & 15) | ((qh[l] & 3) << 4), (ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4),
                              (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4), (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)};
            for (int k = 0; k < 4; ++k) {
                const int i = 128 * h + l + 32 * k;
                y[l + 32 * k] = d * static_cast<float>(block.scales[i / 16]) * static_cast<float>(q[k] - 32);
            }
        }
    }
}

}  // namespace

void dequantize_ggml(GgmlType type, const uint8_t* bytes, size_t nbytes, int64_t n, float* out,
                     const std::string& tensor) {
    if (!can_dequantize_ggml(type)) {
        fail_in({"", tensor, "type"}, "is stored as ggml type ", ggml_type_name(type),
                ", which sparq does not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K are read)");
    }
    const GgmlTypeTraits traits = ggml_type_traits(type);
    const int64_t per_block = traits.block_size;
    if (n < 0 || n % per_block != 0) fail_in({"", tensor, "shape"}, n, " values are not whole blocks of ", per_block);
    const int64_t blocks = n / per_block;
    if (nbytes != static_cast<size_t>(blocks) * traits.type_size) {
        fail_in({"", tensor, "size"}, "holds ", nbytes, " bytes, expected ", static_cast<size_t>(blocks) * traits.type_size);
    }
    for (int64_t b = 0; b < blocks; ++b) {
        float* x = out + b * per_block;
        if (type == GgmlType::Q4_K) {
            dequantize_k_block(load_block<BlockQ4_K>(bytes, b), x);
        } else if (type == GgmlType::Q5_K) {
            dequantize_k_block(load_block<BlockQ5_K>(bytes, b), x);
        } else if (type == GgmlType::Q6_K) {
            dequantize_q6_k_block(load_block<BlockQ6_K>(bytes, b), x);
        } else if (type == GgmlType::Q8_0) {
            const auto block = load_block<BlockQ8_0>(bytes, b);
            const float d = fp16_to_fp32(block.d);
            for (int j = 0; j < kGgmlBlock; ++j) x[j] = d * static_cast<float>(block.q[j]);
        } else if (type == GgmlType::Q4_0) {
            const auto block = load_block<BlockQ4_0>(bytes, b);
            const float d = fp16_to_fp32(block.d);
            for (int j = 0; j < kGgmlBlock / 2; ++j) {
                x[j] = d * static_cast<float>((block.qs[j] & 15) - 8);
                x[j + kGgmlBlock / 2] = d * static_cast<float>((block.qs[j] >> 4) - 8);
            }
        } else {
            const auto block = load_block<BlockQ4_1>(bytes, b);
            const float d = fp16_to_fp32(block.d), m = fp16_to_fp32(block.m);
            for (int j = 0; j < kGgmlBlock / 2; ++j) {
                x[j] = d * static_cast<float>(block.qs[j] & 15) + m;
                x[j + kGgmlBlock / 2] = d * static_cast<float>(block.qs[j] >> 4) + m;
            }
        }
    }
}

}  // namespace sparq::gguf
