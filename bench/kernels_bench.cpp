// Decode and prefill speed of the packed kernels, next to the memory
// bandwidth the same threads can stream.
//
//   kernels_bench [--threads=N] [benchmark flags]   (default: 2 threads)
//
// BM_StreamProbe sums a 1 GiB buffer with the same fixed-chunk parallel
// loop the kernels use: the bandwidth decode can hope for. BM_Matvec runs
// one scheme on a 2048x5632 or 5632x2048 matrix, rotating over enough
// copies (>= 512 MiB) that the weights come from DRAM, not cache, as in a
// real model; its GB/s counter is packed weight bytes (codes, scales, zero
// points) per second and `of_probe` its fraction of the probe. BM_Matmul
// is prefill: many tokens times one matrix, in GFLOP/s.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/parallel.h"
#include "quant/layout.h"
#include "runtime/kernels/packed_matmul.h"

namespace sparq {
namespace {

double g_probe_gbps = 0.0;

// Planes filled with random bytes and sane scales: the kernels' speed does
// not depend on the values.
PackedTensor random_packed(const QuantScheme& s, int64_t rows, int64_t cols, uint32_t seed) {
    PackedTensor t(s, rows, cols);
    std::mt19937 gen(seed);
    for (auto& b : t.codes) b = static_cast<uint8_t>(gen());
    if (s.bits == 8 && s.symmetric) {
        for (auto& b : t.codes) b = b == 0x80 ? 0x81 : b;
    }
    for (auto& h : t.scales) h = fp32_to_fp16(1e-3f * static_cast<float>(gen() % 1000 + 1));
    for (auto& z : t.zeros) z = static_cast<uint8_t>(gen() & (s.bits == 3 ? 0x77 : 0xFF));
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
};

void BM_Matvec(benchmark::State& state, MatvecCase c) {
    const QuantScheme s = parse_quant_scheme(c.scheme);
    const PackedGeometry g = packed_geometry(s, c.rows, c.cols);
    const size_t copies = std::max<size_t>(2, (size_t{512} << 20) / g.total_bytes + 1);
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

const char* mode_tag(ActivationMode m) { return m == ActivationMode::F32 ? "f32" : "q8"; }

void register_all() {
    benchmark::RegisterBenchmark("StreamProbe", BM_StreamProbe)->UseRealTime()->Unit(benchmark::kMillisecond);
    const char* schemes[] = {"int8_ch_sym",  "int8_g32_sym",   "int8_ch_asym",   "int4_g32_sym",
                             "int4_g32_asym", "int4_g128_sym", "int4_g128_asym", "int3_g128_sym",
                             "int3_g64_asym", "int2_g64_sym",  "int2_g128_asym"};
    for (const char* scheme : schemes) {
        for (auto [rows, cols] : {std::pair<int64_t, int64_t>{5632, 2048}, {2048, 5632}}) {
            for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8}) {
                const std::string name = std::string("Matvec/") + scheme + "/" + std::to_string(rows) + "x" +
                                         std::to_string(cols) + "/" + mode_tag(mode);
                benchmark::RegisterBenchmark(name.c_str(), BM_Matvec, MatvecCase{scheme, rows, cols, mode})
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
    for (const char* scheme : {"int8_ch_sym", "int4_g32_sym", "int4_g128_sym", "int3_g128_sym"}) {
        for (ActivationMode mode : {ActivationMode::F32, ActivationMode::Q8}) {
            const std::string name = std::string("Matmul/") + scheme + "/2048x5632/" + mode_tag(mode);
            benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, MatvecCase{scheme, 2048, 5632, mode})
                ->Arg(64)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
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
