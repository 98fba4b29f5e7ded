// Which approximate-nearest-neighbour library the retrieval index uses: hnswlib or FAISS (both Debian packages),
// measured side by side on the same vectors, queries and threads.
//
// Vectors: N unit vectors of dimension D drawn around 2,000 random centres with per-cluster spreads (embedding
// models' vectors are clustered and normalised); 1,000 held-out queries from the same distribution. Ground truth: the
// exact top 10 by inner product. Every method answers the queries one at a time (as a retrieval server does), on T
// threads splitting the queries; recall@10 against the exact top 10 and queries/s are printed, with build time and the
// memory the index took (resident set growth).
//
//   bench/bench_ann.sh [N] [D] [T]      (defaults 100000 384 2)
// Real vectors instead: ANN_VECTORS=base.f32 ANN_QUERIES=queries.f32 (raw float32 rows of D values, unit length; N is
// then the base file's rows) — bench/bench_ann_real.sh makes them from real text with an llmforge embedding model.
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <hnswlib/hnswlib.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double rss_mb() {
    std::ifstream f("/proc/self/statm");
    long pages = 0, res = 0;
    f >> pages >> res;
    return static_cast<double>(res) * 4096.0 / 1048576.0;
}

// Runs q(i) for i in [0, n) on t threads (each a contiguous share); returns queries per second.
double run_queries(int n, int t, const std::function<void(int)>& q) {
    const double t0 = now();
    std::vector<std::thread> th;
    for (int k = 0; k < t; ++k)
        th.emplace_back([&, k] {
            for (int i = k * n / t; i < (k + 1) * n / t; ++i) q(i);
        });
    for (auto& x : th) x.join();
    return n / (now() - t0);
}

struct Row {
    std::string method, params;
    double recall, qps, build_s, mem_mb;
};

}  // namespace

int main(int argc, char** argv) {
    int N = argc > 1 ? std::atoi(argv[1]) : 100000;
    const int D = argc > 2 ? std::atoi(argv[2]) : 384, T = argc > 3 ? std::atoi(argv[3]) : 2;
    // the per-coordinate spread of a cluster around its centre (whose coordinates are N(0, 1)): from lo to hi; wider
    // spreads make clusters overlap, so that nearest neighbours cross them (harder for every index)
    const float spread_lo = argc > 4 ? static_cast<float>(std::atof(argv[4])) : 0.35f, spread_hi = argc > 5 ? static_cast<float>(std::atof(argv[5])) : 0.9f;
    const std::vector<int> Ms = std::getenv("ANN_QUICK") ? std::vector<int>{16} : std::vector<int>{16, 32};
    int NQ = 1000;
    const int K = 10, CENTRES = 2000;
    omp_set_num_threads(1);  // every library single-threaded per query; the harness runs T query threads
    std::mt19937_64 rng(7);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(spread_lo, spread_hi);
    std::vector<float> centres(static_cast<size_t>(CENTRES) * D), spread(CENTRES);
    for (auto& x : centres) x = g(rng);
    for (auto& s : spread) s = u(rng);
    auto draw = [&](float* v) {
        const int c = static_cast<int>(rng() % CENTRES);
        double n2 = 0;
        for (int j = 0; j < D; ++j) {
            v[j] = centres[static_cast<size_t>(c) * D + j] + spread[c] * g(rng);
            n2 += static_cast<double>(v[j]) * v[j];
        }
        const float inv = static_cast<float>(1.0 / std::sqrt(n2));
        for (int j = 0; j < D; ++j) v[j] *= inv;
    };
    std::vector<float> data, queries;
    const char* vec_file = std::getenv("ANN_VECTORS");
    if (vec_file) {  // real vectors: the base and the held-out queries from files
        auto read_rows = [&](const char* path) {
            std::ifstream f(path, std::ios::binary | std::ios::ate);
            if (!f) { std::fprintf(stderr, "ann_choice: cannot read '%s'\n", path ? path : "(ANN_QUERIES unset)"); std::exit(2); }
            const auto bytes = static_cast<size_t>(f.tellg());
            if (bytes == 0 || bytes % (sizeof(float) * D) != 0) { std::fprintf(stderr, "ann_choice: '%s' is not rows of %d floats\n", path, D); std::exit(2); }
            std::vector<float> v(bytes / sizeof(float));
            f.seekg(0);
            f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(bytes));
            return v;
        };
        data = read_rows(vec_file);
        queries = read_rows(std::getenv("ANN_QUERIES"));
        N = static_cast<int>(data.size() / D);
        NQ = static_cast<int>(queries.size() / D);
        std::printf("%d real vectors of dimension %d (%s), %d held-out queries (%s) one at a time on %d threads\n", N, D, vec_file, NQ,
                    std::getenv("ANN_QUERIES"), T);
    } else {
        data.resize(static_cast<size_t>(N) * D);
        queries.resize(static_cast<size_t>(NQ) * D);
        for (int i = 0; i < N; ++i) draw(&data[static_cast<size_t>(i) * D]);
        for (int i = 0; i < NQ; ++i) draw(&queries[static_cast<size_t>(i) * D]);
        std::printf("%d vectors of dimension %d (2,000 clusters, spreads %.2f–%.2f, unit length), %d queries one at a time on %d threads\n", N, D,
                    static_cast<double>(spread_lo), static_cast<double>(spread_hi), NQ, T);
    }

    std::vector<Row> rows;
    // ---- exact search: FAISS's flat index (inner product), one query at a time
    std::vector<faiss::Index::idx_t> truth(static_cast<size_t>(NQ) * K);
    double exact_qps;
    {
        double m0 = rss_mb(), t0 = now();
        faiss::IndexFlatIP flat(D);
        flat.add(N, data.data());
        const double build = now() - t0;
        exact_qps = run_queries(NQ, T, [&](int i) {
            std::vector<float> dist(K);
            flat.search(1, &queries[static_cast<size_t>(i) * D], K, dist.data(), &truth[static_cast<size_t>(i) * K]);
        });
        rows.push_back({"exact (faiss IndexFlatIP)", "-", 1.0, exact_qps, build, rss_mb() - m0});
    }
    auto recall = [&](const std::vector<faiss::Index::idx_t>& got) {
        long hit = 0;
        for (int i = 0; i < NQ; ++i)
            for (int a = 0; a < K; ++a)
                for (int b = 0; b < K; ++b) hit += got[static_cast<size_t>(i) * K + a] == truth[static_cast<size_t>(i) * K + b];
        return static_cast<double>(hit) / (static_cast<double>(NQ) * K);
    };

    // ---- hnswlib: HNSW, inner-product space
    for (int M : Ms) {
        double m0 = rss_mb(), t0 = now();
        hnswlib::InnerProductSpace space(D);
        hnswlib::HierarchicalNSW<float> h(&space, N, M, 200, 100);
        // built on T threads (hnswlib's addPoint is thread-safe)
        run_queries(N, T, [&](int i) { h.addPoint(&data[static_cast<size_t>(i) * D], static_cast<size_t>(i)); });
        const double build = now() - t0, mem = rss_mb() - m0;
        for (int ef : {16, 32, 64, 128, 256}) {
            h.setEf(static_cast<size_t>(ef));
            std::vector<faiss::Index::idx_t> got(static_cast<size_t>(NQ) * K, -1);
            const double qps = run_queries(NQ, T, [&](int i) {
                auto r = h.searchKnn(&queries[static_cast<size_t>(i) * D], K);
                for (int a = K - 1; a >= 0 && !r.empty(); --a) {
                    got[static_cast<size_t>(i) * K + a] = static_cast<faiss::Index::idx_t>(r.top().second);
                    r.pop();
                }
            });
            rows.push_back({"hnswlib HNSW", "M " + std::to_string(M) + ", efC 200, ef " + std::to_string(ef), recall(got), qps, build, mem});
        }
    }
    // ---- FAISS: HNSW and IVF-Flat
    for (int M : Ms) {
        double m0 = rss_mb(), t0 = now();
        faiss::IndexHNSWFlat idx(D, M, faiss::METRIC_INNER_PRODUCT);
        idx.hnsw.efConstruction = 200;
        omp_set_num_threads(T);  // FAISS builds HNSW with OpenMP
        idx.add(N, data.data());
        omp_set_num_threads(1);
        const double build = now() - t0, mem = rss_mb() - m0;
        for (int ef : {16, 32, 64, 128, 256}) {
            idx.hnsw.efSearch = ef;
            std::vector<faiss::Index::idx_t> got(static_cast<size_t>(NQ) * K, -1);
            const double qps = run_queries(NQ, T, [&](int i) {
                std::vector<float> dist(K);
                idx.search(1, &queries[static_cast<size_t>(i) * D], K, dist.data(), &got[static_cast<size_t>(i) * K]);
            });
            rows.push_back({"faiss IndexHNSWFlat", "M " + std::to_string(M) + ", efC 200, ef " + std::to_string(ef), recall(got), qps, build, mem});
        }
    }
    {
        const int nlist = static_cast<int>(std::sqrt(static_cast<double>(N)) * 4);
        double m0 = rss_mb(), t0 = now();
        faiss::IndexFlatIP quant(D);
        faiss::IndexIVFFlat idx(&quant, D, static_cast<size_t>(nlist), faiss::METRIC_INNER_PRODUCT);
        omp_set_num_threads(T);
        idx.train(N, data.data());
        idx.add(N, data.data());
        omp_set_num_threads(1);
        const double build = now() - t0, mem = rss_mb() - m0;
        for (int np : {4, 8, 16, 32, 64, 128}) {
            idx.nprobe = static_cast<size_t>(np);
            std::vector<faiss::Index::idx_t> got(static_cast<size_t>(NQ) * K, -1);
            const double qps = run_queries(NQ, T, [&](int i) {
                std::vector<float> dist(K);
                idx.search(1, &queries[static_cast<size_t>(i) * D], K, dist.data(), &got[static_cast<size_t>(i) * K]);
            });
            rows.push_back({"faiss IndexIVFFlat", "nlist " + std::to_string(nlist) + ", nprobe " + std::to_string(np), recall(got), qps, build, mem});
        }
    }
    std::printf("\n%-26s %-28s %9s %10s %9s %8s %9s\n", "method", "parameters", "recall@10", "queries/s", "× exact", "build s", "memory MB");
    for (const Row& r : rows)
        std::printf("%-26s %-28s %9.4f %10.0f %9.1f %8.2f %9.1f\n", r.method.c_str(), r.params.c_str(), r.recall, r.qps, r.qps / exact_qps,
                    r.build_s, r.mem_mb);
    return 0;
}
