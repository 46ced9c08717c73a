// Decode and prefill speed of the packed kernels, next to the memory
// bandwidth the same threads can stream.
//
//   kernels_bench [--threads=N] [--target=AVX2] [benchmark flags]
//
// Default: 2 threads, the best SIMD target of this CPU; --target forces one
// of the compiled targets (AVX3, AVX2, SSE4, ...) to compare them.
//
// BM_StreamProbe sums a 1 GiB buffer with the same fixed-chunk parallel
// loop the kernels use: the bandwidth decode can hope for. BM_Matvec runs
// one scheme on a 2048x5632 or 5632x2048 matrix, rotating over enough
// copies (>= 256 MiB) that the weights come from DRAM, not cache, as in a
// real model; its GB/s counter is packed weight bytes (codes, scales, zero
// points) per second and `of_probe` its fraction of the probe. BM_Matmul
// is prefill: many tokens times one matrix, in GFLOP/s.
#include <benchmark/benchmark.h>
#include <hwy/targets.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/parallel.h"
#include "quant/layout.h"
#include "runtime/kernels/packed_matmul.h"
#include "runtime/kernels/sparse_matmul.h"

namespace sparq {
namespace {

double g_probe_gbps = 0.0;

// Planes filled with random bytes and sane scales: the kernels' speed does
// not depend on the values. splitmix64 fills 8 bytes per step, so setting
// up hundreds of MiB of copies takes a moment, not minutes.
uint64_t splitmix(uint64_t& state) {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void fill_random(std::vector<uint8_t>& bytes, uint64_t& state) {
    size_t i = 0;
    for (; i + 8 <= bytes.size(); i += 8) {
        const uint64_t v = splitmix(state);
        std::memcpy(bytes.data() + i, &v, 8);
    }
    for (; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(splitmix(state));
}

PackedTensor random_packed(const QuantScheme& s, int64_t rows, int64_t cols, uint32_t seed) {
    PackedTensor t(s, rows, cols);
    uint64_t state = seed;
    fill_random(t.codes, state);
    if (s.bits == 8 && s.symmetric) {
        for (auto& b : t.codes) b = b == 0x80 ? 0x81 : b;
    }
    for (auto& h : t.scales) h = fp32_to_fp16(1e-3f * static_cast<float>(splitmix(state) % 1000 + 1));
    fill_random(t.zeros, state);
    if (s.bits == 3) {
        for (auto& z : t.zeros) z &= 0x77;
    }
    return t;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

void BM_StreamProbe(benchmark::State& state) {
    const size_t n = (size_t{1} << 30) / sizeof(uint64_t);
    std::unique_ptr<uint64_t[]> buf(new uint64_t[n]);
    parallel_for(0, static_cast<int64_t>(n), 1 << 16, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i);
    });
    const int64_t chunk = 1 << 16;  // 512 KiB
    std::vector<uint64_t> partial(n / chunk + 1);
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        parallel_for(0, static_cast<int64_t>(n), chunk, [&](int64_t b, int64_t e) {
            uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (int64_t i = b; i + 4 <= e; i += 4) {
                s0 += buf[i];
                s1 += buf[i + 1];
                s2 += buf[i + 2];
                s3 += buf[i + 3];
            }
            partial[b / chunk] = s0 + s1 + s2 + s3;
        });
        benchmark::DoNotOptimize(partial.data());
    }
    const double bytes = static_cast<double>(n * sizeof(uint64_t));
    g_probe_gbps = bytes / 1e9 * static_cast<double>(state.iterations()) / seconds_since(start);
    state.counters["GB/s"] = g_probe_gbps;
    state.counters["threads"] = active_threads();
}

struct MatvecCase {
    std::string scheme;
    int64_t rows, cols;
    ActivationMode mode;
    bool from_cache = false;  // one matrix of a few MB, read from cache (L2/L3): the compute ceiling
};

void BM_Matvec(benchmark::State& state, MatvecCase c) {
    const QuantScheme s = parse_quant_scheme(c.scheme);
    const PackedGeometry g = packed_geometry(s, c.rows, c.cols);
    const size_t copies = c.from_cache ? 1 : std::max<size_t>(2, (size_t{256} << 20) / g.total_bytes + 1);
    std::vector<PackedTensor> mats;
    mats.reserve(copies);
    for (size_t i = 0; i < copies; ++i) mats.push_back(random_packed(s, c.rows, c.cols, static_cast<uint32_t>(i)));
    std::vector<float> x(static_cast<size_t>(c.cols)), y(static_cast<size_t>(c.rows));
    std::mt19937 gen(1);
    std::normal_distribution<float> dist;
    for (auto& v : x) v = dist(gen);
    size_t next = 0;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        packed_matvec(mats[next].view(), x.data(), y.data(), c.mode);
        next = next + 1 == copies ? 0 : next + 1;
        benchmark::DoNotOptimize(y.data());
    }
    const double gbps =
        static_cast<double>(g.total_bytes) / 1e9 * static_cast<double>(state.iterations()) / seconds_since(start);
    state.counters["GB/s"] = gbps;
    if (g_probe_gbps > 0) state.counters["of_probe"] = gbps / g_probe_gbps;
    state.counters["bpw"] = 8.0 * static_cast<double>(g.total_bytes) / static_cast<double>(c.rows * c.cols);
    state.SetLabel(packed_kernel_target());
}

void BM_Matmul(benchmark::State& state, MatvecCase c) {
    const int64_t tokens = state.range(0);
    const QuantScheme s = parse_quant_scheme(c.scheme);
    const PackedTensor w = random_packed(s, c.rows, c.cols, 7);
    std::vector<float> x(static_cast<size_t>(tokens * c.cols)), y(static_cast<size_t>(tokens * c.rows));
    std::mt19937 gen(1);
    std::normal_distribution<float> dist;
    for (auto& v : x) v = dist(gen);
    for (auto _ : state) {
        packed_matmul(w.view(), x.data(), tokens, y.data(), c.rows, c.mode);
        benchmark::DoNotOptimize(y.data());
    }
    const double flops = 2.0 * static_cast<double>(tokens * c.rows * c.cols);
    state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9 * state.iterations(), benchmark::Counter::kIsRate);
    state.counters["tok/s"] = benchmark::Counter(static_cast<double>(tokens) * state.iterations(),
                                                 benchmark::Counter::kIsRate);
    state.SetLabel(packed_kernel_target());
}

// 2:4 with a random pattern per run (one of the 6 valid index pairs).
NmSparseTensor random_nm24(const QuantScheme& q, int64_t rows, int64_t cols, uint64_t seed) {
    const NmSparseScheme scheme{2, 4, q};
    const NmSparseGeometry g = nm_sparse_geometry(scheme, rows, cols);
    NmSparseTensor t;
    t.scheme = scheme;
    t.rows = rows;
    t.cols = cols;
    const PackedTensor dense = random_packed(q, rows, 8, static_cast<uint32_t>(seed));  // scales, zeros below
    t.values.resize(g.value_bytes);
    uint64_t state = seed;
    fill_random(t.values, state);
    if (q.bits == 8 && q.symmetric) {
        for (auto& b : t.values) b = b == 0x80 ? 0x81 : b;
    }
    static const uint8_t pairs[6] = {0x4, 0x8, 0xC, 0x9, 0xD, 0xE};  // (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    t.indices.resize(g.index_bytes);
    for (auto& b : t.indices) {
        const uint64_t r = splitmix(state);
        b = static_cast<uint8_t>(pairs[r % 6] | pairs[(r >> 8) % 6] << 4);
    }
    PackedTensor planes = random_packed(q, rows, cols, static_cast<uint32_t>(seed + 1));
    planes.codes.clear();
    t.scales = std::move(planes.scales);
    t.zeros = std::move(planes.zeros);
    (void)dense;
    return t;
}

// Unstructured: each weight stored with probability 1 - sparsity.
BitmaskSparseTensor random_bitmask(const QuantScheme& q, int64_t rows, int64_t cols, double sparsity,
                                   uint64_t seed) {
    BitmaskSparseTensor t;
    t.scheme = q;
    t.rows = rows;
    t.cols = cols;
    const int64_t mask_row = (cols + 7) / 8;
    t.mask.assign(static_cast<size_t>(rows * mask_row), 0);
    t.row_offsets.assign(static_cast<size_t>(rows + 1), 0);
    uint64_t state = seed;
    const auto threshold = static_cast<uint64_t>(sparsity * 18446744073709551615.0);
    for (int64_t r = 0; r < rows; ++r) {
        int64_t k = 0;
        for (int64_t c = 0; c < cols; ++c) {
            if (splitmix(state) >= threshold) {
                t.mask[r * mask_row + c / 8] |= static_cast<uint8_t>(1u << (c % 8));
                ++k;
            }
        }
        t.row_offsets[r + 1] = t.row_offsets[r] + static_cast<uint64_t>(k == 0 ? 0 : code_row_bytes(q, k));
    }
    t.values.resize(t.row_offsets[rows]);
    fill_random(t.values, state);
    if (q.bits == 8 && q.symmetric) {
        for (auto& b : t.values) b = b == 0x80 ? 0x81 : b;
    }
    PackedTensor planes = random_packed(q, rows, cols, static_cast<uint32_t>(seed + 1));
    t.scales = std::move(planes.scales);
    t.zeros = std::move(planes.zeros);
    return t;
}

struct SparseCase {
    std::string scheme;
    int64_t rows, cols;
    double sparsity;  // < 0: 2:4
    bool from_cache = false;
    bool integer_activations = false;  // the sparse Q16 kernels (sparse_matmul.h)
};

void BM_SparseMatvec(benchmark::State& state, SparseCase c) {
    const QuantScheme q = parse_quant_scheme(c.scheme);
    std::vector<NmSparseTensor> nm;
    std::vector<BitmaskSparseTensor> bm;
    size_t bytes = 0, copies = 0;
    while ((!c.from_cache && bytes < (size_t{256} << 20)) || copies < (c.from_cache ? 1u : 2u)) {
        if (c.sparsity < 0) {
            nm.push_back(random_nm24(q, c.rows, c.cols, copies + 1));
            const NmSparseGeometry g = nm_sparse_geometry(nm.back().scheme, c.rows, c.cols);
            bytes += g.total_bytes;
        } else {
            bm.push_back(random_bitmask(q, c.rows, c.cols, c.sparsity, copies + 1));
            const auto& t = bm.back();
            bytes += t.values.size() + t.mask.size() + 8 * t.row_offsets.size() + 2 * t.scales.size() + t.zeros.size();
        }
        ++copies;
    }
    const size_t bytes_per_matrix = bytes / copies;
    std::vector<float> x(static_cast<size_t>(c.cols)), y(static_cast<size_t>(c.rows));
    std::mt19937 gen(1);
    std::normal_distribution<float> dist;
    for (auto& v : x) v = dist(gen);
    size_t next = 0;
    const auto start = std::chrono::steady_clock::now();
    for (auto _ : state) {
        if (c.integer_activations) {
            if (c.sparsity < 0) {
                nm_sparse_matmul_q16(nm[next].view(), x.data(), 1, y.data(), c.rows);
            } else {
                bitmask_sparse_matmul_q16(bm[next].view(), x.data(), 1, y.data(), c.rows);
            }
        } else if (c.sparsity < 0) {
            nm_sparse_matvec(nm[next].view(), x.data(), y.data());
        } else {
            bitmask_sparse_matvec(bm[next].view(), x.data(), y.data());
        }
        next = next + 1 == copies ? 0 : next + 1;
        benchmark::DoNotOptimize(y.data());
    }
    const double gbps = static_cast<double>(bytes_per_matrix) / 1e9 * static_cast<double>(state.iterations()) /
                        seconds_since(start);
    state.counters["GB/s"] = gbps;
    if (g_probe_gbps > 0) state.counters["of_probe"] = gbps / g_probe_gbps;
    state.counters["bpw"] = 8.0 * static_cast<double>(bytes_per_matrix) / static_cast<double>(c.rows * c.cols);
    state.SetLabel(packed_kernel_target());
}

// With --benchmark_repetitions=N, the fastest repetition: on a shared
// machine the minimum is the least disturbed measurement.
// (Statistics apply to counters too: read times from the _min row and
// rates such as GB/s from the _max row.)
double fastest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double slowest(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

const char* mode_tag(ActivationMode m) { return m == ActivationMode::F32 ? "f32" : m == ActivationMode::Q8 ? "q8" : "q16"; }

// One token's activations to int16 levels per 32-column block, as decode
// prepares every input (packed_matmul.h).
void BM_QuantizeActivations(benchmark::State& state) {
    const int64_t cols = state.range(0);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(cols)), scales(static_cast<size_t>(cols / 32));
    for (float& v : x) v = normal(rng);
    std::vector<int16_t> q(static_cast<size_t>(cols));
    for (auto _ : state) {
        quantize_activation_blocks_simd(x.data(), cols, 32, q.data(), scales.data());
        benchmark::DoNotOptimize(q.data());
        benchmark::ClobberMemory();
    }
    state.SetLabel(packed_kernel_target());
}

void register_all() {
    benchmark::RegisterBenchmark("QuantizeActivations/q16_b32", BM_QuantizeActivations)
        ->Arg(2048)->Arg(5632)->ComputeStatistics("min", fastest)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark("StreamProbe", BM_StreamProbe)->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)->Unit(benchmark::kMillisecond);
    const char* schemes[] = {"int8_ch_sym",  "int8_g32_sym",   "int8_ch_asym",   "int4_g32_sym",
                             "int4_g32_asym", "int4_g128_sym", "int4_g128_asym", "int3_g128_sym",
                             "int3_g64_asym", "int2_g64_sym",  "int2_g128_asym"};
    for (const char* scheme : schemes) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5632, 2048}, {2048, 5632}}) {
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                const std::string name = std::string("Matvec/") + scheme + "/" + std::to_string(rows) + "x" +
                                         std::to_string(cols) + "/" + mode_tag(mode);
                benchmark::RegisterBenchmark(name.c_str(), BM_Matvec, MatvecCase{scheme, rows, cols, mode})
                    ->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
    for (const char* scheme : {"int8_ch_sym", "int8_g32_sym", "int4_g32_sym", "int4_g128_sym"}) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5632, 2048}, {2048, 5632}}) {
            for (double sparsity : {-1.0, 0.5, 0.7}) {
                for (bool integer : {false, true}) {
                    const std::string kind = sparsity < 0 ? "nm24" : "bitmask" + std::to_string(int(sparsity * 100));
                    const std::string name = "Sparse/" + kind + "/" + scheme + "/" + std::to_string(rows) + "x" +
                                             std::to_string(cols) + (integer ? "/q16" : "/f32");
                    benchmark::RegisterBenchmark(name.c_str(), BM_SparseMatvec,
                                                 SparseCase{scheme, rows, cols, sparsity, false, integer})
                        ->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)
                        ->Unit(benchmark::kMicrosecond);
                }
            }
        }
    }
    for (const char* scheme : {"int8_ch_sym", "int4_g32_sym"}) {
        for (double sparsity : {-1.0, 0.5}) {
            for (bool integer : {false, true}) {
                const std::string kind = sparsity < 0 ? "nm24" : "bitmask" + std::to_string(int(sparsity * 100));
                const std::string name = "SparseCached/" + kind + "/" + scheme + "/512x2048" + (integer ? "/q16" : "/f32");
                benchmark::RegisterBenchmark(name.c_str(), BM_SparseMatvec,
                                             SparseCase{scheme, 512, 2048, sparsity, true, integer})
                    ->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
    for (const char* scheme : schemes) {
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
            const std::string name = std::string("MatvecCached/") + scheme + "/512x2048/" + mode_tag(mode);
            benchmark::RegisterBenchmark(name.c_str(), BM_Matvec, MatvecCase{scheme, 512, 2048, mode, true})
                ->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)
                ->Unit(benchmark::kMicrosecond);
        }
    }
    // Prefill: a 128-token prompt (and 16, the smallest full token vector
    // of the integer-dot kernels) through both orientations of the MLP.
    for (const char* scheme : {"int8_ch_sym", "int8_ch_asym", "int4_g32_sym", "int4_g32_asym", "int4_g128_sym",
                               "int3_g128_sym"}) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{2048, 5632}, {5632, 2048}}) {
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8, ActivationMode::Q16}) {
                const std::string name = std::string("Matmul/") + scheme + "/" + std::to_string(rows) + "x" +
                                         std::to_string(cols) + "/" + mode_tag(mode);
                benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, MatvecCase{scheme, rows, cols, mode})
                    ->Arg(16)->Arg(128)
                    ->UseRealTime()->ComputeStatistics("min", fastest)->ComputeStatistics("max", slowest)
                    ->Unit(benchmark::kMillisecond);
            }
        }
    }
}

}  // namespace
}  // namespace sparq

int main(int argc, char** argv) {
    int threads = 2;
    std::vector<char*> args;
    for (int i = 0; i < argc; ++i) {
        if (std::strncmp(argv[i], "--threads=", 10) == 0) {
            threads = std::atoi(argv[i] + 10);
        } else if (std::strncmp(argv[i], "--target=", 9) == 0) {
            const int64_t compiled = sparq::packed_kernel_compiled_targets() & hwy::SupportedTargets();
            int64_t chosen = 0;
            for (int bit = 0; bit < 63; ++bit) {
                const int64_t t = int64_t{1} << bit;
                if ((compiled & t) && std::strcmp(hwy::TargetName(t), argv[i] + 9) == 0) chosen = t;
            }
            if (chosen == 0) {
                std::fprintf(stderr, "kernels_bench: target %s not available\n", argv[i] + 9);
                return 2;
            }
            hwy::SetSupportedTargetsForTest(chosen);
        } else {
            args.push_back(argv[i]);
        }
    }
    int n = static_cast<int>(args.size());
    sparq::ThreadLimit limit(threads);
    benchmark::Initialize(&n, args.data());
    sparq::register_all();
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
