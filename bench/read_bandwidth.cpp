// The machine's read bandwidth, for stating decoding's share of it (bench/bench_vs_llamacpp.sh): T threads each sum
// their own contiguous part of a 2 GiB buffer (written first, so every page is real), 64-bit words in 4 chains, which
// the compiler vectorises; the best of 7 passes, in GB/s (10^9 bytes per second). Built by the script with
// g++ -O3 -march=native; not part of llmforge.
//   read_bandwidth [THREADS]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
    const int threads = argc > 1 ? std::atoi(argv[1]) : 2;
    const size_t words = (size_t{2} << 30) / sizeof(uint64_t);
    std::vector<uint64_t> buf(words);
    for (size_t i = 0; i < words; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;
    double best = 0;
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 7; ++pass) {
        std::vector<uint64_t> sums(static_cast<size_t>(threads));
        const auto t0 = std::chrono::steady_clock::now();
        std::vector<std::thread> pool;
        for (int t = 0; t < threads; ++t)
            pool.emplace_back([&, t] {
                const size_t b = words / threads * t, e = t + 1 == threads ? words : words / threads * (t + 1);
                uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                size_t i = b;
                for (; i + 4 <= e; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
                for (; i < e; ++i) s0 += buf[i];
                sums[static_cast<size_t>(t)] = s0 + s1 + s2 + s3;
            });
        for (auto& th : pool) th.join();
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        for (uint64_t v : sums) sink = sink + v;
        best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / s / 1e9);
    }
    std::printf("%.2f\n", best);
    return sink == 42 ? 1 : 0;
}
