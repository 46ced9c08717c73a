// Speed of weight quantization (the offline pass `sparq quantize` runs):
// quantize_tensor on a 2048 x 5632 random N(0, 0.02) F32 matrix, in weights
// per second, for the schemes users ask for most. Run on an idle machine;
// compare with llama-quantize on the same model (bench/quant_speed_vs_llamacpp).
//
//   quantize_bench [--threads=N] [benchmark flags]
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "core/parallel.h"
#include "core/tensor.h"
#include "models/matmul.h"
#include "quant/group_output_error.h"
#include "quant/imatrix.h"
#include "quant/quantize_tensor.h"
#include "quant/rtn_fused.h"
#include "quant/subtract_product.h"

namespace sparq {
namespace {

const std::vector<float>& weights() {
    static const std::vector<float> w = [] {
        std::vector<float> v(int64_t{2048} * 5632);
        std::mt19937 rng(1);
        std::normal_distribution<float> gauss(0.0f, 0.02f);
        for (float& x : v) x = gauss(rng);
        return v;
    }();
    return w;
}

void BM_Quantize(benchmark::State& state, QuantScheme scheme, QuantMethod method) {
    const Tensor t = make_f32_tensor({2048, 5632}, weights());
    for (auto _ : state) {
        QuantizationError error;
        PackedTensor p = quantize_tensor(t, scheme, method, nullptr, "w", {}, &error);
        benchmark::DoNotOptimize(p.codes.data());
    }
    state.counters["Mweights/s"] = benchmark::Counter(static_cast<double>(t.numel()) * state.iterations() / 1e6,
                                                      benchmark::Counter::kIsRate);
}

// One thread, rows in cache order: the fused SIMD RTN row kernel against
// its plain per-group twin (the reference path), same data, same process.
void BM_RtnRows(benchmark::State& state, QuantScheme scheme, bool fused) {
    const std::vector<float>& w = weights();
    const int64_t cols = 5632, rows = 256;
    std::vector<uint8_t> codes(static_cast<size_t>(cols)), zeros(static_cast<size_t>(cols));
    std::vector<uint16_t> scales(static_cast<size_t>(cols));
    std::vector<float> scratch(static_cast<size_t>(std::max<int64_t>(cols, rtn_row_scratch_floats(scheme, cols))));
    double signal = 0, noise = 0;
    for (auto _ : state) {
        for (int64_t r = 0; r < rows; ++r) {
            RtnRowJob job;
            job.scheme = scheme;
            job.row = w.data() + r * cols;
            job.cols = cols;
            job.codes = codes.data();
            job.scales = scales.data();
            job.zeros = zeros.data();
            job.signal = &signal;
            job.noise = &noise;
            job.scratch = scratch.data();
            benchmark::DoNotOptimize(fused ? quantize_row_rtn(job) : quantize_row_rtn_reference(job));
        }
    }
    state.counters["Mweights/s"] = benchmark::Counter(static_cast<double>(rows * cols) * state.iterations() / 1e6,
                                                      benchmark::Counter::kIsRate);
}

// One thread: C += A B in double (quant/subtract_product.h) on the shapes
// of the offline passes: the refit's product of 64 rows with H of a 1B
// down_proj (5632 inputs), GPTQ's lazy update of one 128-column batch, and
// a 256 x 256 Cholesky tile. GMAC/s counts multiply-adds.
void BM_AddProduct(benchmark::State& state, int64_t m, int64_t n, int64_t k) {
    std::mt19937 rng(2);
    std::normal_distribution<double> gauss(0.0, 1.0);
    std::vector<double> a(static_cast<size_t>(m * k)), b(static_cast<size_t>(k * n)), c(static_cast<size_t>(m * n));
    for (double& x : a) x = gauss(rng);
    for (double& x : b) x = gauss(rng);
    for (auto _ : state) {
        add_product(c.data(), n, a.data(), k, 1, b.data(), n, m, n, k);
        benchmark::DoNotOptimize(c.data());
    }
    state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(m * n * k) * state.iterations() / 1e9,
                                                  benchmark::Counter::kIsRate);
}

// All threads: the float product of the calibration forward and of the
// statistics (models/matmul.h), out = x w^T: one 512-token sample through
// a 1B-class gate_proj (5632 x 2048), and one 256-row band of X^T X over
// 512 tokens at width 2048; and one and four tokens through gate_proj (a
// reference model's decode). GMAC/s counts multiply-adds.
void BM_MatmulF32(benchmark::State& state, int64_t tokens, int64_t rows, int64_t k) {
    std::mt19937 rng(3);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(tokens * k)), w(static_cast<size_t>(rows * k)),
        out(static_cast<size_t>(tokens * rows));
    for (float& v : x) v = gauss(rng);
    for (float& v : w) v = gauss(rng);
    for (auto _ : state) {
        matmul_f32(x.data(), tokens, w.data(), rows, k, out.data(), rows);
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(tokens * rows * k) * state.iterations() / 1e9,
                                                  benchmark::Counter::kIsRate);
}

// One thread: the clip searches' group score H d (quant/group_output_error.h)
// on one 128- or 32-column group, the cloned column-sum loop against its
// row-by-row twin (the loop the score ran before). GMAC/s counts multiply-adds.
void BM_GroupBlockProduct(benchmark::State& state, int64_t n, bool cloned) {
    std::mt19937 rng(4);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    std::vector<float> h(static_cast<size_t>(n * n)), d(static_cast<size_t>(n)), s(static_cast<size_t>(n));
    for (float& v : h) v = gauss(rng);
    for (float& v : d) v = gauss(rng);
    for (auto _ : state) {
        if (cloned) {
            block_times_vector(h.data(), d.data(), n, s.data());
        } else {
            block_times_vector_reference(h.data(), d.data(), n, s.data());
        }
        benchmark::DoNotOptimize(s.data());
    }
    state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(n * n) * state.iterations() / 1e9,
                                                  benchmark::Counter::kIsRate);
}

// All threads: importance-weighted RTN (the imatrix method's quantizer and
// AWQ's per-candidate clip search) of 256 rows of the 2048 x 5632 matrix,
// int4 g128, each group's clipping scored by d^T H_gg d (52 candidates).
void BM_ImportanceWeighted(benchmark::State& state) {
    const int64_t rows = 256, cols = 5632;
    std::mt19937 rng(5);
    std::normal_distribution<double> gauss(0.0, 1.0);
    // A dense positive definite H with uneven channel energy: X^T X of 64
    // random tokens plus a diagonal.
    std::vector<double> x(static_cast<size_t>(64 * cols));
    for (double& v : x) v = gauss(rng);
    std::vector<double> h(static_cast<size_t>(cols * cols), 0.0);
    for (int64_t i = 0; i < cols; ++i) {
        for (int64_t j = 0; j <= i; ++j) {
            double sum = i == j ? 1.0 : 0.0;
            for (int64_t t = 0; t < 64; ++t) sum += x[t * cols + i] * x[t * cols + j] / 64;
            h[i * cols + j] = h[j * cols + i] = sum;
        }
    }
    for (auto _ : state) {
        PackedTensor p = quantize_importance_weighted(weights().data(), rows, cols, h, QuantScheme{4, 128, true},
                                                      ImportanceWeighting::GroupHessian, "w");
        benchmark::DoNotOptimize(p.codes.data());
    }
    state.counters["Mweights/s"] = benchmark::Counter(static_cast<double>(rows * cols) * state.iterations() / 1e6,
                                                      benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_RtnRows, int4_g32_fused, QuantScheme{4, 32, true}, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RtnRows, int4_g32_reference, QuantScheme{4, 32, true}, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RtnRows, int8_channel_fused, QuantScheme{8, 0, true}, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RtnRows, int8_channel_reference, QuantScheme{8, 0, true}, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RtnRows, int4_g32_asym_fused, QuantScheme{4, 32, false}, true)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_RtnRows, int4_g32_asym_reference, QuantScheme{4, 32, false}, false)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_MatmulF32, forward_512x5632x2048, 512, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, decode_1x5632x2048, 1, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, decode_4x5632x2048, 4, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, batch_16x5632x2048, 16, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, batch_32x5632x2048, 32, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, batch_64x5632x2048, 64, 5632, 2048)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MatmulF32, statistics_band_256x2048x512, 256, 2048, 512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_GroupBlockProduct, g128_cloned, 128, true)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_GroupBlockProduct, g128_row_by_row, 128, false)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_GroupBlockProduct, g32_cloned, 32, true)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_GroupBlockProduct, g32_row_by_row, 32, false)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ImportanceWeighted)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_AddProduct, refit_64x5632x5632, 64, 5632, 5632)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AddProduct, gptq_batch_46x5504x128, 46, 5504, 128)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_AddProduct, cholesky_tile_256x256x256, 256, 256, 256)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Quantize, int4_g32_rtn, QuantScheme{4, 32, true}, QuantMethod::Rtn)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Quantize, int4_g128_rtn, QuantScheme{4, 128, true}, QuantMethod::Rtn)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Quantize, int8_channel_rtn, QuantScheme{8, 0, true}, QuantMethod::Rtn)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Quantize, int4_g32_asym_rtn, QuantScheme{4, 32, false}, QuantMethod::Rtn)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_Quantize, int4_g128_mse, QuantScheme{4, 128, true}, QuantMethod::Mse)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace sparq

int main(int argc, char** argv) {
    int threads = 2;
    std::vector<char*> rest;
    for (int i = 0; i < argc; ++i) {
        if (std::strncmp(argv[i], "--threads=", 10) == 0) {
            threads = std::stoi(argv[i] + 10);
        } else {
            rest.push_back(argv[i]);
        }
    }
    sparq::ThreadLimit limit(threads);
    std::printf("threads: %d\n", threads);
    int n = static_cast<int>(rest.size());
    benchmark::Initialize(&n, rest.data());
    benchmark::RunSpecifiedBenchmarks();
    return 0;
}
