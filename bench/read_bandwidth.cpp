// The machine's read bandwidth, for stating decoding's share of it (bench/bench_vs_llamacpp.sh): T threads each sum
// their own contiguous part of a 2 GiB buffer (2 MiB-aligned and advised to use transparent huge pages, as llmforge's
// weights in memory are; written first, so every page is real), with the widest vector loads the CPU has into 4
// accumulators; the best of 7 passes, in GB/s (10^9 bytes per second). Built by the script with g++ -O3
// -march=native; not part of llmforge. (Until 2026-12-06 it summed 64-bit words of a std::vector: 43.8 GB/s against
// this form's 66.9 on the same AMD EPYC Zen 5 VM, a minute apart — below what llmforge's decoding then read.)
//   read_bandwidth [THREADS]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace {
// Σ of the floats in [b, e) (e − b a multiple of 256 bytes), four independent accumulators.
float sum_range(const char* b, const char* e) {
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; b < e; b += 256) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(reinterpret_cast<const float*>(b)));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(reinterpret_cast<const float*>(b + 64)));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(reinterpret_cast<const float*>(b + 128)));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(reinterpret_cast<const float*>(b + 192)));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX2__)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (; b < e; b += 128) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(reinterpret_cast<const float*>(b)));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(reinterpret_cast<const float*>(b + 32)));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(reinterpret_cast<const float*>(b + 64)));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(reinterpret_cast<const float*>(b + 96)));
    }
    alignas(32) float out[8];
    _mm256_store_ps(out, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    float s = 0;
    for (float v : out) s += v;
    return s;
#else
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (const float* p = reinterpret_cast<const float*>(b); p < reinterpret_cast<const float*>(e); p += 4)
        s0 += p[0], s1 += p[1], s2 += p[2], s3 += p[3];
    return s0 + s1 + s2 + s3;
#endif
}
}  // namespace

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
    const size_t bytes = size_t{2} << 30, part = bytes / static_cast<size_t>(threads) / 256 * 256;
    char* buf = static_cast<char*>(std::aligned_alloc(size_t{2} << 20, bytes));
    if (!buf) return 2;
    madvise(buf, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < bytes; i += sizeof(float)) {
        const float v = static_cast<float>(i & 1023);
        std::copy_n(reinterpret_cast<const char*>(&v), sizeof v, buf + i);
    }
    double best = 0;
    volatile float sink = 0;
    for (int pass = 0; pass < 7; ++pass) {
        std::vector<float> sums(static_cast<size_t>(threads));
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] { sums[static_cast<size_t>(t)] = sum_range(buf + part * t, buf + part * (t + 1)); });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (float v : sums) sink = sink + v;
        best = std::max(best, static_cast<double>(part * threads) / s / 1e9);
    }
    std::printf("%.2f\n", best);
    std::free(buf);
    return sink == 42.0f ? 1 : 0;
}
