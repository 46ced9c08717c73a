#include "formats/gguf/ggml_quantize.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf/ggml_blocks.h"

namespace sparq::gguf {

namespace {

float weight_at(const float* importance, int i) { return importance ? importance[i] : 1.0f; }

float round_fp16(float v) { return fp16_to_fp32(fp32_to_fp16(v)); }

// Nearest integer in [lo, hi] (halves rounded up). Clamping first keeps
// the conversion in range (std::max(lo, NaN) is lo: a reciprocal of a
// denormal step can make one), and truncating the shifted non-negative
// value avoids a libm rounding call: this sits in every inner loop.
int round_clamped(float v, int lo, int hi) {
    const float c = std::min(std::max(static_cast<float>(lo), v), static_cast<float>(hi));
    return static_cast<int>(c - static_cast<float>(lo) + 0.5f) + lo;
}

// ---- affine grids: value = step * q + offset, q in [0, qmax] ----

struct Affine {
    float step = 0;
    float offset = 0;
};

// Codes are always rounded from the reciprocal of the step (0 for a zero
// step, which gives code 0), so the fitters score exactly the codes packed.
float reciprocal(float step) { return step != 0 ? 1.0f / step : 0.0f; }

int affine_code(float v, float inverse, float offset, int qmax) {
    return round_clamped((v - offset) * inverse, 0, qmax);
}

// Weighted sums of a block that do not depend on its codes.
struct BlockSums {
    double sw = 0, sx = 0, sxx = 0;
};

BlockSums block_sums(const float* x, const float* w, int n) {
    BlockSums b;
    for (int i = 0; i < n; ++i) {
        const double wi = weight_at(w, i);
        b.sw += wi;
        b.sx += wi * x[i];
        b.sxx += wi * x[i] * x[i];
    }
    return b;
}

// One pass over a block at grid `a`: its codes and the code sums from which
// both their weighted error and the least-squares (step, offset) follow.
struct AffinePass {
    double sq = 0, sqq = 0, sqx = 0;
    bool changed = false;
};

AffinePass affine_pass(const float* x, const float* w, int n, const Affine& a, int qmax, int* codes) {
    // Four interleaved partial sums: the loop is bound by the add latency otherwise.
    constexpr int kLanes = 4;
    float sq[kLanes] = {}, sqq[kLanes] = {}, sqx[kLanes] = {};
    const float inverse = reciprocal(a.step);
    bool changed = false;
    for (int i = 0; i < n; ++i) {
        const int q = affine_code(x[i], inverse, a.offset, qmax);
        changed |= q != codes[i];
        codes[i] = q;
        const float wq = weight_at(w, i) * static_cast<float>(q);
        sq[i % kLanes] += wq;
        sqq[i % kLanes] += wq * static_cast<float>(q);
        sqx[i % kLanes] += wq * x[i];
    }
    AffinePass p;
    p.changed = changed;
    for (int k = 0; k < kLanes; ++k) {
        p.sq += sq[k];
        p.sqq += sqq[k];
        p.sqx += sqx[k];
    }
    return p;
}

// sum w (x - step q - offset)^2, expanded over the sums.
double affine_error(const BlockSums& b, const AffinePass& p, const Affine& a) {
    const double s = a.step, o = a.offset;
    return std::max(0.0, b.sxx - 2 * s * p.sqx - 2 * o * b.sx + s * s * p.sqq + 2 * s * o * p.sq + o * o * b.sw);
}

// Weighted least-squares (step, offset) for the pass's codes; the offset
// held at <= 0 when `offset_nonpositive`. False when the codes do not
// determine a positive step.
bool refit_affine(const BlockSums& b, const AffinePass& p, bool offset_nonpositive, Affine& a) {
    const double det = b.sw * p.sqq - p.sq * p.sq;
    if (!(det > 1e-12 * b.sw * p.sqq)) return false;
    double step = (b.sw * p.sqx - p.sq * b.sx) / det;
    double offset = (p.sqq * b.sx - p.sq * p.sqx) / det;
    if (offset_nonpositive && offset > 0) {
        offset = 0;
        step = p.sqx / p.sqq;
    }
    if (!(step > 0)) return false;
    a.step = static_cast<float>(step);
    a.offset = static_cast<float>(offset);
    return true;
}

// The float affine grid of n (<= 32) values with the lowest weighted error:
// ranges clipped a little at either end, each refined by alternating
// rounding and least squares until the codes settle.
Affine fit_affine(const float* x, const float* w, int n, int qmax, bool offset_nonpositive) {
    float lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
    if (offset_nonpositive) lo = std::min(lo, 0.0f);
    if (!(hi > lo)) return {0.0f, lo};
    static constexpr float kClip[] = {0.0f, 0.05f};
    Affine best{(hi - lo) / static_cast<float>(qmax), lo};
    double best_error = std::numeric_limits<double>::infinity();
    std::array<int, kGgmlBlock> codes{};
    const BlockSums sums = block_sums(x, w, n);
    for (const float clip_lo : kClip) {
        for (const float clip_hi : kClip) {
            float a_lo = lo + clip_lo * (hi - lo);
            if (offset_nonpositive) a_lo = std::min(a_lo, 0.0f);
            const float a_hi = hi - clip_hi * (hi - lo);
            Affine a{(a_hi - a_lo) / static_cast<float>(qmax), a_lo};
            codes.fill(-1);
            // Evaluate, refit, repeat; settled codes refit to the grid just evaluated.
            for (int iteration = 0; iteration < 5; ++iteration) {
                const AffinePass p = affine_pass(x, w, n, a, qmax, codes.data());
                const double error = affine_error(sums, p, a);
                if (error < best_error) {
                    best_error = error;
                    best = a;
                }
                if (!p.changed || !refit_affine(sums, p, offset_nonpositive, a)) break;
            }
        }
    }
    return best;
}

// ---- symmetric grids: value = step * l, l in [-32, 31] (Q6_K) ----

constexpr int kQ6Low = -32, kQ6High = 31;

int symmetric_level(float v, float inverse) { return round_clamped(v * inverse, kQ6Low, kQ6High); }

// The weighted error of a block at `step`, and the least-squares step for
// the levels it rounds to (0 when they are all zero).
double symmetric_pass(const float* x, const float* w, int n, float step, float* refit = nullptr) {
    const float inverse = reciprocal(step);
    constexpr int kLanes = 4;  // interleaved partial sums, as in affine_pass
    float e[kLanes] = {}, num[kLanes] = {}, den[kLanes] = {};
    for (int i = 0; i < n; ++i) {
        const int l = symmetric_level(x[i], inverse);
        const float wi = weight_at(w, i), d = x[i] - step * static_cast<float>(l);
        e[i % kLanes] += wi * d * d;
        num[i % kLanes] += wi * static_cast<float>(l) * x[i];
        den[i % kLanes] += wi * static_cast<float>(l * l);
    }
    const double total_den = static_cast<double>(den[0]) + den[1] + den[2] + den[3];
    if (refit) {
        *refit = total_den > 0 ? static_cast<float>((static_cast<double>(num[0]) + num[1] + num[2] + num[3]) / total_den)
                               : 0.0f;
    }
    return static_cast<double>(e[0]) + e[1] + e[2] + e[3];
}

// The float step of n values with the lowest weighted error: the largest
// magnitude put on -32 (the grid's longer side) or on 31, a few clipped
// scales of each, refined by least squares.
float fit_symmetric(const float* x, const float* w, int n) {
    int peak = 0;
    for (int i = 1; i < n; ++i) {
        if (std::fabs(x[i]) > std::fabs(x[peak])) peak = i;
    }
    if (x[peak] == 0.0f) return 0.0f;
    float best = 0;
    double best_error = std::numeric_limits<double>::infinity();
    static constexpr float kShrink[] = {0.0f, 1.0f, 2.5f};
    for (const float target : {-32.0f, 31.0f}) {
        for (const float shrink : kShrink) {
            float step = x[peak] / (target + (target < 0 ? shrink : -shrink));
            for (int iteration = 0; iteration < 3 && step != 0; ++iteration) {
                float refit = 0;
                const double e = symmetric_pass(x, w, n, step, &refit);
                if (e < best_error) {
                    best_error = e;
                    best = step;
                }
                if (refit == step) break;
                step = refit;
            }
        }
    }
    return best;
}

// ---- Q4_1 ----

GgmlBlockGrid fit_q4_1_grid(const float* x, const float* w) {
    const Affine fit = fit_affine(x, w, kGgmlBlock, 15, false);
    GgmlBlockGrid g;
    g.type = GgmlType::Q4_1;
    g.d = round_fp16(fit.step);
    g.dmin = round_fp16(fit.offset);  // Q4_1's m
    return g;
}

void pack_q4_1(const GgmlBlockGrid& g, const float* x, BlockQ4_1& block) {
    block.d = fp32_to_fp16(g.d);
    block.m = fp32_to_fp16(g.dmin);
    const float inverse = reciprocal(g.d);
    std::array<uint8_t, kGgmlBlock> codes{};
    for (int j = 0; j < kGgmlBlock; ++j) codes[j] = static_cast<uint8_t>(affine_code(x[j], inverse, g.dmin, 15));
    pack_q4_nibbles(codes.data(), block.qs);
}

// ---- Q4_K ----

constexpr int kQ4KSub = 32, kQ4KSubBlocks = kGgmlSuperBlock / kQ4KSub;

struct Q4KChoice {
    std::array<int, kQ4KSubBlocks> scale{}, min{};
    double error = 0;
};

double q4_k_sub_error(const float* x, const float* w, float d, float dmin, int scale, int min) {
    const float step = d * static_cast<float>(scale), offset = dmin * static_cast<float>(min);
    const float inverse = reciprocal(step);
    float e[4] = {};
    for (int i = 0; i < kQ4KSub; ++i) {
        const int q = affine_code(x[i], inverse, -offset, 15);
        const float diff = x[i] - (step * static_cast<float>(q) - offset);
        e[i % 4] += weight_at(w, i) * diff * diff;
    }
    return static_cast<double>(e[0]) + e[1] + e[2] + e[3];
}

// 6-bit scales and mins for FP16 d / dmin: the rounded targets, then the
// neighbouring pairs of each sub-block.
Q4KChoice choose_q4_k_scales(const float* x, const float* w, const Affine* fits, float d, float dmin) {
    Q4KChoice c;
    for (int j = 0; j < kQ4KSubBlocks; ++j) {
        const float* xs = x + j * kQ4KSub;
        const float* ws = w ? w + j * kQ4KSub : nullptr;
        const int s0 = d > 0 ? round_clamped(fits[j].step / d, 0, 63) : 0;
        const int m0 = dmin > 0 ? round_clamped(-fits[j].offset / dmin, 0, 63) : 0;
        double best = std::numeric_limits<double>::infinity();
        for (int s = std::max(s0 - 1, 0); s <= std::min(s0 + 1, 63); ++s) {
            for (int m = std::max(m0 - 1, 0); m <= std::min(m0 + 1, 63); ++m) {
                const double e = q4_k_sub_error(xs, ws, d, dmin, s, m);
                if (e < best) {
                    best = e;
                    c.scale[j] = s;
                    c.min[j] = m;
                }
            }
        }
        c.error += best;
    }
    return c;
}

void pack_q4_k(const GgmlBlockGrid& g, const float* x, BlockQ4_K& block) {
    block.d = fp32_to_fp16(g.d);
    block.dmin = fp32_to_fp16(g.dmin);
    std::memset(block.scales, 0, sizeof block.scales);
    std::array<uint8_t, kGgmlSuperBlock> codes{};
    for (int j = 0; j < kQ4KSubBlocks; ++j) {
        pack_k_scale_min(block.scales, j, g.scale[j], g.min[j]);
        const float step = g.d * static_cast<float>(g.scale[j]), offset = g.dmin * static_cast<float>(g.min[j]);
        const float inverse = reciprocal(step);
        for (int i = 0; i < kQ4KSub; ++i) {
            codes[j * kQ4KSub + i] = static_cast<uint8_t>(affine_code(x[j * kQ4KSub + i], inverse, -offset, 15));
        }
    }
    pack_q4_k_codes(codes.data(), block.qs);
}

GgmlBlockGrid fit_q4_k_grid(const float* x, const float* w) {
    std::array<Affine, kQ4KSubBlocks> fits;
    float max_step = 0, max_min = 0;
    for (int j = 0; j < kQ4KSubBlocks; ++j) {
        fits[j] = fit_affine(x + j * kQ4KSub, w ? w + j * kQ4KSub : nullptr, kQ4KSub, 15, true);
        max_step = std::max(max_step, fits[j].step);
        max_min = std::max(max_min, -fits[j].offset);
    }
    float d = round_fp16(max_step / 63.0f), dmin = round_fp16(max_min / 63.0f);
    Q4KChoice choice = choose_q4_k_scales(x, w, fits.data(), d, dmin);

    // Least-squares (d, dmin) for the chosen 6-bit pairs and codes.
    double a11 = 0, a12 = 0, a22 = 0, b1 = 0, b2 = 0;
    for (int j = 0; j < kQ4KSubBlocks; ++j) {
        const float step = d * static_cast<float>(choice.scale[j]), offset = dmin * static_cast<float>(choice.min[j]);
        const float inverse = reciprocal(step);
        for (int i = 0; i < kQ4KSub; ++i) {
            const float v = x[j * kQ4KSub + i];
            const double wi = weight_at(w, j * kQ4KSub + i);
            const double u = static_cast<double>(choice.scale[j]) * affine_code(v, inverse, -offset, 15);
            const double t = -static_cast<double>(choice.min[j]);
            a11 += wi * u * u;
            a12 += wi * u * t;
            a22 += wi * t * t;
            b1 += wi * u * v;
            b2 += wi * t * v;
        }
    }
    const double det = a11 * a22 - a12 * a12;
    if (det > 1e-12 * a11 * a22) {
        const float d2 = round_fp16(static_cast<float>((b1 * a22 - b2 * a12) / det));
        const float dmin2 = round_fp16(static_cast<float>((a11 * b2 - a12 * b1) / det));
        if (d2 > 0 && dmin2 >= 0) {
            const Q4KChoice refit = choose_q4_k_scales(x, w, fits.data(), d2, dmin2);
            if (refit.error < choice.error) {
                choice = refit;
                d = d2;
                dmin = dmin2;
            }
        }
    }
    GgmlBlockGrid g;
    g.type = GgmlType::Q4_K;
    g.d = d;
    g.dmin = dmin;
    std::copy(choice.scale.begin(), choice.scale.end(), g.scale.begin());
    std::copy(choice.min.begin(), choice.min.end(), g.min.begin());
    return g;
}

// ---- Q6_K ----

constexpr int kQ6KSub = 16, kQ6KSubBlocks = kGgmlSuperBlock / kQ6KSub;

struct Q6KChoice {
    std::array<int, kQ6KSubBlocks> scale{};
    double error = 0;
};

Q6KChoice choose_q6_k_scales(const float* x, const float* w, const float* steps, float d) {
    Q6KChoice c;
    for (int j = 0; j < kQ6KSubBlocks; ++j) {
        const int s0 = d > 0 ? round_clamped(steps[j] / d, -128, 127) : 0;
        double best = std::numeric_limits<double>::infinity();
        for (int s = std::max(s0 - 1, -128); s <= std::min(s0 + 1, 127); ++s) {
            const double e = symmetric_pass(x + j * kQ6KSub, w ? w + j * kQ6KSub : nullptr, kQ6KSub,
                                            d * static_cast<float>(s));
            if (e < best) {
                best = e;
                c.scale[j] = s;
            }
        }
        c.error += best;
    }
    return c;
}

void pack_q6_k(const GgmlBlockGrid& g, const float* x, BlockQ6_K& block) {
    std::array<uint8_t, kGgmlSuperBlock> codes{};
    for (int i = 0; i < kGgmlSuperBlock; ++i) {
        codes[i] = static_cast<uint8_t>(
            symmetric_level(x[i], reciprocal(g.d * static_cast<float>(g.scale[i / kQ6KSub]))) - kQ6Low);
    }
    for (int j = 0; j < kQ6KSubBlocks; ++j) block.scales[j] = static_cast<int8_t>(g.scale[j]);
    block.d = fp32_to_fp16(g.d);
    pack_q6_k_codes(codes.data(), block);
}

GgmlBlockGrid fit_q6_k_grid(const float* x, const float* w) {
    std::array<float, kQ6KSubBlocks> steps{};
    float max_step = 0;
    for (int j = 0; j < kQ6KSubBlocks; ++j) {
        steps[j] = fit_symmetric(x + j * kQ6KSub, w ? w + j * kQ6KSub : nullptr, kQ6KSub);
        max_step = std::max(max_step, std::fabs(steps[j]));
    }
    float d = round_fp16(max_step / 127.0f);
    Q6KChoice choice = choose_q6_k_scales(x, w, steps.data(), d);

    // Least-squares d for the chosen int8 scales and levels.
    double num = 0, den = 0;
    for (int i = 0; i < kGgmlSuperBlock; ++i) {
        const int s = choice.scale[i / kQ6KSub];
        const double u = static_cast<double>(s) * symmetric_level(x[i], reciprocal(d * static_cast<float>(s)));
        num += weight_at(w, i) * u * x[i];
        den += weight_at(w, i) * u * u;
    }
    if (den > 0) {
        const float d2 = round_fp16(static_cast<float>(num / den));
        if (d2 > 0) {
            const Q6KChoice refit = choose_q6_k_scales(x, w, steps.data(), d2);
            if (refit.error < choice.error) {
                choice = refit;
                d = d2;
            }
        }
    }
    GgmlBlockGrid g;
    g.type = GgmlType::Q6_K;
    g.d = d;
    std::copy(choice.scale.begin(), choice.scale.end(), g.scale.begin());
    return g;
}

template <typename Block, typename Pack>
void pack_block(const GgmlBlockGrid& grid, const float* x, uint8_t* out, Pack pack) {
    Block block{};
    pack(grid, x, block);
    std::memcpy(out, &block, sizeof(Block));
}

}  // namespace

bool can_quantize_ggml(GgmlType type) {
    return type == GgmlType::Q4_1 || type == GgmlType::Q4_K || type == GgmlType::Q6_K;
}

GgmlBlockGrid fit_ggml_block_grid(GgmlType type, const float* x, const float* importance) {
    if (type == GgmlType::Q4_1) return fit_q4_1_grid(x, importance);
    if (type == GgmlType::Q4_K) return fit_q4_k_grid(x, importance);
    if (type == GgmlType::Q6_K) return fit_q6_k_grid(x, importance);
    throw Error(std::string("cannot quantize to ggml type ") + std::string(ggml_type_name(type)));
}

float round_to_ggml_grid(const GgmlBlockGrid& g, int i, float v) {
    if (g.type == GgmlType::Q4_1) return g.d * static_cast<float>(affine_code(v, reciprocal(g.d), g.dmin, 15)) + g.dmin;
    if (g.type == GgmlType::Q4_K) {
        const int j = i / kQ4KSub;
        const float step = g.d * static_cast<float>(g.scale[j]), offset = g.dmin * static_cast<float>(g.min[j]);
        return step * static_cast<float>(affine_code(v, reciprocal(step), -offset, 15)) - offset;
    }
    const float step = g.d * static_cast<float>(g.scale[i / kQ6KSub]);
    return step * static_cast<float>(symmetric_level(v, reciprocal(step)));
}

void pack_ggml_block(const GgmlBlockGrid& grid, const float* values, uint8_t* out) {
    if (grid.type == GgmlType::Q4_1) {
        pack_block<BlockQ4_1>(grid, values, out, pack_q4_1);
    } else if (grid.type == GgmlType::Q4_K) {
        pack_block<BlockQ4_K>(grid, values, out, pack_q4_k);
    } else if (grid.type == GgmlType::Q6_K) {
        pack_block<BlockQ6_K>(grid, values, out, pack_q6_k);
    } else {
        throw Error(std::string("cannot pack ggml type ") + std::string(ggml_type_name(grid.type)));
    }
}

void quantize_ggml_row(GgmlType type, const float* x, int64_t n, const float* importance, uint8_t* out) {
    if (!can_quantize_ggml(type)) throw Error(std::string("cannot quantize to ggml type ") + std::string(ggml_type_name(type)));
    const GgmlTypeTraits traits = ggml_type_traits(type);
    const int64_t per_block = traits.block_size;
    if (n % per_block != 0) {
        throw Error("a row of " + std::to_string(n) + " values is not whole " + std::string(ggml_type_name(type)) +
                    " blocks of " + std::to_string(per_block));
    }
    for (int64_t b = 0; b < n / per_block; ++b) {
        const float* xb = x + b * per_block;
        pack_ggml_block(fit_ggml_block_grid(type, xb, importance ? importance + b * per_block : nullptr), xb,
                        out + b * traits.type_size);
    }
}

}  // namespace sparq::gguf
