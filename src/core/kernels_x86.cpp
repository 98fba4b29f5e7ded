// SIMD kernels, compiled once per instruction set (LLMFORGE_ISA = avx2 | avx512) with the matching -m flags.
// Decoding is memory-bound, so each kernel streams the weights once, converts f16/bf16 to f32 in registers
// (never in memory) and keeps several accumulators in flight to hide FMA latency.
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "core/kernels_impl.h"
#if defined(__AVX512F__)
#include "core/simd_avx512.h"
#endif

#include <cmath>
#include <type_traits>

#include "core/ggml_math.h"

namespace llmforge::kernels {
int64_t stream_prefetch_bytes(size_t element_bytes);  // kernels.h (whose other names this file's own kernels share)
int stream_rows(size_t element_bytes);                // kernels.h
namespace {

#if defined(__AVX512F__)
// ---------------------------------------------------------------- AVX-512: 16 floats per vector
using vf = __m512;
constexpr int W = 16;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
inline vf load_f32(const float* p) { return _mm512_loadu_ps(p); }
inline vf load_f16(const uint16_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline vf load_bf16(const uint16_t* p) {
    __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}
inline vf fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
inline float hsum(vf v) { return _mm512_reduce_add_ps(v); }
inline void store(float* p, vf v) { _mm512_storeu_ps(p, v); }
#define LF_TABLE_FN table_avx512
#define LF_TABLE_NAME "avx512"
#else
// ---------------------------------------------------------------- AVX2: 8 floats per vector
using vf = __m256;
constexpr int W = 8;
inline vf vzero() { return _mm256_setzero_ps(); }
inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
inline vf load_f32(const float* p) { return _mm256_loadu_ps(p); }
inline vf load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline vf load_bf16(const uint16_t* p) {
    __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
}
inline vf fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
inline float hsum(vf v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
    return _mm_cvtss_f32(lo);
}
inline void store(float* p, vf v) { _mm256_storeu_ps(p, v); }
#define LF_TABLE_FN table_avx2
#define LF_TABLE_NAME "avx2"
#endif

inline float bf16_scalar(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}

// Loaders: how to bring W elements of each weight type into an f32 vector, and one element into a float.
struct F32 { using T = float;
    static vf load(const T* p) { return load_f32(p); }
    static float at(const T* p, int64_t i) { return p[i]; } };
struct F16 { using T = uint16_t;
    static vf load(const T* p) { return load_f16(p); }
    static float at(const T* p, int64_t i) { return _cvtsh_ss(p[i]); } };
struct BF16 { using T = uint16_t;
    static vf load(const T* p) { return load_bf16(p); }
    static float at(const T* p, int64_t i) { return bf16_scalar(p[i]); } };

// Lone rows: on AMD Zen 4 they stream without software prefetch (the hardware prefetchers follow one sequential
// stream), as llama.cpp's dot products do; on Intel 2 KiB ahead, on Zen 5 1 KiB for f32 rows (stream_prefetch_bytes,
// kernels.h: f16 decoding 35 % faster on the Xeon, f32 18 % on Zen 5). AMD Zen 4, measured on 2026-11-29, in one
// process alternating, on 16 f16 matrices of 5632 × 2048 against prefetching 2 KiB ahead: one thread 29.9–32.0 GB/s
// against 26.3–29.3 with prefetcht0 (19 with prefetcht1); two threads 35.6–36.4 against 34.9–37.1. TinyLlama-1.1B
// decoding on 2 threads, alternating with the prefetcht0 build: f16 23.0 / 15.7 / 15.8 t/s against 20.1 / 15.2 / 14.4,
// f32 7.7 / 8.1 / 8.0 against 7.7 / 7.9 / 7.9. An earlier VM had measured f32 45 GB/s with the prefetch and 37 without.
// One row · x: four accumulators over blocks of 4 vectors, combined pairwise (0+2, 1+3), then across lanes;
// the tail is summed in f32 for f32 weights and in f64 otherwise (ggml_vec_dot_f32 / ggml_vec_dot_f16's order).
// How dot_row ends: the four accumulators combined (0+2, 1+3), summed across lanes, and the tail added.
template <class L, class X>
inline float dot_row_finish(vf a0, vf a1, vf a2, vf a3, const typename L::T* w, const typename X::T* x, int64_t i, int64_t n) {
    if constexpr (std::is_same_v<L, F32>) {
        float s = i ? hsum(vadd(vadd(a0, a2), vadd(a1, a3))) : 0.0f;
        return ggml::vec_dot_f32_tail(s, w, x, i, n);
    } else {
        double s = hsum(vadd(vadd(a0, a2), vadd(a1, a3)));
        for (; i < n; ++i) s += static_cast<double>(L::at(w, i) * X::at(x, i));
        return static_cast<float>(s);
    }
}

template <class L, class X = F32>
float dot_row(const typename L::T* w, const typename X::T* x, int64_t n) {
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    int64_t i = 0;
    // where this CPU streams faster with software prefetch (kernels.h: stream_prefetch_bytes), the weights that many
    // bytes ahead, one prefetch per cache line consumed (the same products: only the loop's memory hints differ)
    if (const int64_t ahead = stream_prefetch_bytes(sizeof(typename L::T)); ahead > 0) {
        constexpr int64_t step = 4 * W * static_cast<int64_t>(sizeof(typename L::T));
        const char* pf = reinterpret_cast<const char*>(w) + ahead;
        for (; i + 4 * W <= n; i += 4 * W, pf += step) {
#pragma GCC unroll 4
            for (int64_t l = 0; l < step; l += 64) _mm_prefetch(pf + l, _MM_HINT_T0);
            a0 = fmadd(L::load(w + i), X::load(x + i), a0);
            a1 = fmadd(L::load(w + i + W), X::load(x + i + W), a1);
            a2 = fmadd(L::load(w + i + 2 * W), X::load(x + i + 2 * W), a2);
            a3 = fmadd(L::load(w + i + 3 * W), X::load(x + i + 3 * W), a3);
        }
        return dot_row_finish<L, X>(a0, a1, a2, a3, w, x, i, n);
    }
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = fmadd(L::load(w + i), X::load(x + i), a0);
        a1 = fmadd(L::load(w + i + W), X::load(x + i + W), a1);
        a2 = fmadd(L::load(w + i + 2 * W), X::load(x + i + 2 * W), a2);
        a3 = fmadd(L::load(w + i + 3 * W), X::load(x + i + 3 * W), a3);
    }
    return dot_row_finish<L, X>(a0, a1, a2, a3, w, x, i, n);
}

// y[r] = dot_row<L, X>(W[r], x) for the rows [r0, r1), bit for bit: R rows read side by side, each with its own four
// accumulators and dot_row's operations in dot_row's order (x's vectors loaded once for the R rows).
template <class L, class X, int R>
void dot_rows_lockstep(const typename L::T* const* w, const typename X::T* x, float* y, int64_t n) {
    vf a[R][4];
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) a[j][0] = a[j][1] = a[j][2] = a[j][3] = vzero();
    int64_t i = 0;
    const int64_t ahead = stream_prefetch_bytes(sizeof(typename L::T));
    constexpr int64_t step = 4 * W * static_cast<int64_t>(sizeof(typename L::T));
    for (; i + 4 * W <= n; i += 4 * W) {
        if (ahead > 0)
#pragma GCC unroll 4
            for (int j = 0; j < R; ++j)
#pragma GCC unroll 4
                for (int64_t l = 0; l < step; l += 64) _mm_prefetch(reinterpret_cast<const char*>(w[j] + i) + ahead + l, _MM_HINT_T0);
        const vf x0 = X::load(x + i), x1 = X::load(x + i + W), x2 = X::load(x + i + 2 * W), x3 = X::load(x + i + 3 * W);
#pragma GCC unroll 4
        for (int j = 0; j < R; ++j) {
            a[j][0] = fmadd(L::load(w[j] + i), x0, a[j][0]);
            a[j][1] = fmadd(L::load(w[j] + i + W), x1, a[j][1]);
            a[j][2] = fmadd(L::load(w[j] + i + 2 * W), x2, a[j][2]);
            a[j][3] = fmadd(L::load(w[j] + i + 3 * W), x3, a[j][3]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < R; ++j) y[j] = dot_row_finish<L, X>(a[j][0], a[j][1], a[j][2], a[j][3], w[j], x, i, n);
}

template <class L, class X>
void dot_rows(const typename L::T* Wm, const typename X::T* x, float* y, int64_t K, int64_t r0, int64_t r1) {
    int64_t r = r0;
    const int R = stream_rows(sizeof(typename L::T));
    if (R == 4)
        for (; r + 4 <= r1; r += 4) {
            const typename L::T* w[4] = {Wm + r * K, Wm + (r + 1) * K, Wm + (r + 2) * K, Wm + (r + 3) * K};
            dot_rows_lockstep<L, X, 4>(w, x, y + r, K);
        }
    if (R >= 2)
        for (; r + 2 <= r1; r += 2) {
            const typename L::T* w[2] = {Wm + r * K, Wm + (r + 1) * K};
            dot_rows_lockstep<L, X, 2>(w, x, y + r, K);
        }
    for (; r < r1; ++r) y[r] = dot_row<L, X>(Wm + r * K, x, K);
}

// Y[i, r] = dot_row_seq(W[r], X[i]) for rows [r0, r1) and all n activation rows, in tiles of up to 4 weight rows × XT
// activation rows: each product keeps its own single vector accumulator over k, its lanes summed at the end and its
// tail added in f32 — dot_row_seq's order whatever the tile — so every output is the same bits whatever n is (the
// server's batch invariance) while the tile reuses each loaded weight vector XT times and each x vector up to 4 times.
template <class L, int NR, int NX>
void seq_tile(const typename L::T* const* w, const float* const* x, float* const* y, int64_t K) {
    vf a[NR][NX];
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < NX; ++j) a[r][j] = vzero();
    // The tile's rows lie one after the other in memory and so does the next tile: prefetch the next tile linearly,
    // as much of it per step as this step consumes, so the memory sees one sequential stream (four interleaved row
    // streams measured half the bandwidth on large matrices). A lone row is one stream already (see dot_row).
    constexpr bool prefetch = NR > 1 || NX > 1;
    constexpr int64_t step_bytes = NR * W * static_cast<int64_t>(sizeof(typename L::T));
    const char* pf = reinterpret_cast<const char*>(w[0]) + 2 * NR * K * static_cast<int64_t>(sizeof(typename L::T));
    int64_t k = 0;
    for (; k + W <= K; k += W, pf += step_bytes) {
        if constexpr (prefetch) {
#pragma GCC unroll 8
            for (int64_t b = 0; b < step_bytes; b += 64) _mm_prefetch(pf + b, _MM_HINT_T0);
        }
        vf xv[NX];
#pragma GCC unroll 8
        for (int j = 0; j < NX; ++j) xv[j] = load_f32(x[j] + k);
#pragma GCC unroll 8
        for (int r = 0; r < NR; ++r) {
            const vf wv = L::load(w[r] + k);
#pragma GCC unroll 8
            for (int j = 0; j < NX; ++j) a[r][j] = fmadd(wv, xv[j], a[r][j]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < NR; ++r)
#pragma GCC unroll 8
        for (int j = 0; j < NX; ++j) {
            float s = hsum(a[r][j]);
            for (int64_t t = k; t < K; ++t) s += L::at(w[r], t) * x[j][t];
            y[j][r] = s;
        }
}

// activation rows per tile: 6 on AVX-512 (24 accumulators; 4 × 4 measured 176 GFLOP/s on f16 at n = 16, 4 × 6 188–192),
// 2 on AVX2 (8 accumulators)
constexpr int SEQ_XT = W == 16 ? 6 : 2;

template <class L, int NR>
void seq_rows(const typename L::T* const* w, const float* const* x, float* const* y, int64_t nx, int64_t K) {
    for (int64_t j = 0; j < nx; j += SEQ_XT) {
        float* yy[SEQ_XT];
        const float* xx[SEQ_XT];
        const int64_t m = std::min<int64_t>(SEQ_XT, nx - j);
        for (int64_t t = 0; t < m; ++t) {
            xx[t] = x[j + t];
            yy[t] = y[j + t];
        }
        switch (m) {
            case 1: seq_tile<L, NR, 1>(w, xx, yy, K); break;
            case 2: seq_tile<L, NR, 2>(w, xx, yy, K); break;
#if defined(__AVX512F__)
            case 3: seq_tile<L, NR, 3>(w, xx, yy, K); break;
            case 4: seq_tile<L, NR, 4>(w, xx, yy, K); break;
            case 5: seq_tile<L, NR, 5>(w, xx, yy, K); break;
            default: seq_tile<L, NR, 6>(w, xx, yy, K); break;
#else
            default: break;
#endif
        }
    }
}

void to_f16(const float* x, uint16_t* y, int64_t n);

// One f16 weight row · activations already rounded to f16, given as f16: seq_tile<F16, 1, 1>'s products in its order
// (the conversions are exact), loading half the activation bytes (a lone sequence: 4–5 % faster, microbenchmark).
inline float seq_row_f16x(const uint16_t* w, const uint16_t* xh, int64_t K) {
    vf a = vzero();
    int64_t k = 0;
    for (; k + W <= K; k += W) {
        a = fmadd(load_f16(w + k), load_f16(xh + k), a);
    }
    float s = hsum(a);
    for (; k < K; ++k) s += _cvtsh_ss(w[k]) * _cvtsh_ss(xh[k]);
    return s;
}

template <class L>
void gemm_seq(const void* Wv, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    const auto* Wt = static_cast<const typename L::T*>(Wv);
    if constexpr (std::is_same_v<L, F16>) {
        if (n == 1) {  // (matmul_rowwise rounded X to f16 for f16 weights: this conversion is exact)
            thread_local std::vector<uint16_t> xh;
            xh.resize(static_cast<size_t>(K));
            to_f16(X, xh.data(), K);
            for (int64_t r = r0; r < r1; ++r) Y[r] = seq_row_f16x(Wt + r * K, xh.data(), K);
            return;
        }
    }
    // (per-thread buffers: this runs for every matrix of every decoding step)
    thread_local std::vector<const float*> xs;
    thread_local std::vector<float> out;
    thread_local std::vector<float*> ys;
    xs.resize(static_cast<size_t>(n));
    out.resize(static_cast<size_t>(4 * n));
    ys.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) xs[static_cast<size_t>(i)] = X + i * K;
    for (int64_t i = 0; i < n; ++i) ys[static_cast<size_t>(i)] = out.data() + 4 * i;
    // One activation row (a lone sequence) is memory-bound: one weight row at a time keeps a single sequential stream
    // (four interleaved rows measured 30 % slower on large matrices, two 8 % slower in the server); the products are
    // the same either way.
    const int64_t tile = n == 1 ? 1 : 4;
    for (int64_t r = r0; r < r1; r += tile) {
        const int nr = static_cast<int>(std::min<int64_t>(tile, r1 - r));
        const typename L::T* w[4];
        for (int t = 0; t < nr; ++t) w[t] = Wt + (r + t) * K;
        switch (nr) {
            case 1: seq_rows<L, 1>(w, xs.data(), ys.data(), n, K); break;
            case 2: seq_rows<L, 2>(w, xs.data(), ys.data(), n, K); break;
            case 3: seq_rows<L, 3>(w, xs.data(), ys.data(), n, K); break;
            default: seq_rows<L, 4>(w, xs.data(), ys.data(), n, K); break;
        }
        for (int64_t i = 0; i < n; ++i)
            for (int t = 0; t < nr; ++t) Y[i * rows + r + t] = out[static_cast<size_t>(4 * i + t)];
    }
}

// f16 weights · activations already rounded to f16 (llama.cpp's vec_dot_type for f16): half the bytes of x to load
// per product. Exactly dot_row<F16>(w, x rounded to f16): the conversions to f32 are exact, the order is the same.
float dot_f16_f16(const uint16_t* w, const uint16_t* x, int64_t n) { return dot_row<F16, F16>(w, x, n); }

void to_f16(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#else
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
    for (; i < n; ++i) y[i] = _cvtss_sh(x[i], 0);
}

// One row · x with a single vector accumulator, lanes summed at the end: the order in which llama.cpp's prompt pass
// (llamafile's tinyBLAS) sums a dot product whose length is a multiple of the vector width.
template <class L>
float dot_row_seq(const typename L::T* w, const float* x, int64_t n) {
    vf a = vzero();
    int64_t i = 0;
    for (; i + W <= n; i += W) a = fmadd(L::load(w + i), load_f32(x + i), a);
    float s = hsum(a);
    for (; i < n; ++i) s += L::at(w, i) * x[i];
    return s;
}

template <class L>
void convert_row(const typename L::T* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) store(dst + i, L::load(src + i));
    for (; i < n; ++i) dst[i] = L::at(src, i);
}

// f32 products summed in f64: 8 products at a time widened to doubles.
float dot_f16_acc64(const uint16_t* k, const float* q, int64_t n) {
    int64_t i = 0;
    double s = 0;
#if defined(__AVX512F__)
    __m512d acc = _mm512_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        const __m256 kv = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i)));
        acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_mul_ps(kv, _mm256_loadu_ps(q + i))));
    }
    s = _mm512_reduce_add_pd(acc);
#else
    __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
    for (; i + 8 <= n; i += 8) {
        const __m256 prod = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(k + i))), _mm256_loadu_ps(q + i));
        acc0 = _mm256_add_pd(acc0, _mm256_cvtps_pd(_mm256_castps256_ps128(prod)));
        acc1 = _mm256_add_pd(acc1, _mm256_cvtps_pd(_mm256_extractf128_ps(prod, 1)));
    }
    alignas(32) double t[4];
    _mm256_store_pd(t, _mm256_add_pd(acc0, acc1));
    s = (t[0] + t[1]) + (t[2] + t[3]);
#endif
    for (; i < n; ++i) s += static_cast<double>(_cvtsh_ss(k[i]) * q[i]);
    return static_cast<float>(s);
}

void axpy_f16_acc64(double* acc, float p, const uint16_t* v, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    const __m256 pv = _mm256_set1_ps(p);
    for (; i + 8 <= n; i += 8) {
        const __m256 prod = _mm256_mul_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i))));
        _mm512_storeu_pd(acc + i, _mm512_add_pd(_mm512_loadu_pd(acc + i), _mm512_cvtps_pd(prod)));
    }
#else
    const __m256 pv = _mm256_set1_ps(p);
    for (; i + 8 <= n; i += 8) {
        const __m256 prod = _mm256_mul_ps(pv, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i))));
        _mm256_storeu_pd(acc + i, _mm256_add_pd(_mm256_loadu_pd(acc + i), _mm256_cvtps_pd(_mm256_castps256_ps128(prod))));
        _mm256_storeu_pd(acc + i + 4, _mm256_add_pd(_mm256_loadu_pd(acc + i + 4), _mm256_cvtps_pd(_mm256_extractf128_ps(prod, 1))));
    }
#endif
    for (; i < n; ++i) acc[i] += static_cast<double>(p * _cvtsh_ss(v[i]));
}

void axpy_f32_acc64(double* acc, float p, const float* v, int64_t n) {
    int64_t i = 0;
#if defined(__AVX512F__)
    const __m512d pv = _mm512_set1_pd(p);
    for (; i + 8 <= n; i += 8)
        _mm512_storeu_pd(acc + i, _mm512_fmadd_pd(pv, _mm512_cvtps_pd(_mm256_loadu_ps(v + i)), _mm512_loadu_pd(acc + i)));
#else
    const __m256d pv = _mm256_set1_pd(p);
    for (; i + 4 <= n; i += 4)
        _mm256_storeu_pd(acc + i, _mm256_fmadd_pd(pv, _mm256_cvtps_pd(_mm_loadu_ps(v + i)), _mm256_loadu_pd(acc + i)));
#endif
    for (; i < n; ++i) acc[i] += static_cast<double>(p) * v[i];
}


// ---------------------------------------------------------------------------------------------- GEMM (AVX2)
// Y[i, r] = Σ_k X[i, k] · W[r, k] for the weight rows [r0, r1) and all n activation rows.
// Blocking: activation rows in blocks of TB and K in chunks of KC, so that the X block (TB × KC floats) stays in L2.
// For each group of 4 weight rows, the slice 4 × KC is widened to f32 once into an L1-resident buffer and then used by
// every group of 4 activation rows. The micro-kernel keeps a 4 × 4 tile of accumulators (16 vector registers) and
// reads 4 x-vectors and 4 w-vectors per step: 16 FMAs per 8 loads, all from cache.
// Sizes measured on TinyLlama-1.1B's matrices (bench/, BENCHMARKS.md): KC = 768 and TB = 128 keep the activation
// block in L2; 4 × 4 was the best dot-product tile, 12 × 32 the best outer-product tile.
constexpr int64_t KC = 768, TB = 128;
constexpr int TM = 4, TN = 4;  // register tile: TM activation rows × TN weight rows
// Row stride of the packed buffers: KC plus one cache line, so that rows never sit a multiple of 4 KiB apart
// (loads from addresses 4 KiB apart falsely alias in the load/store unit and stall).
constexpr int64_t KS = KC + 16;
constexpr int64_t PF_GROUPS = 1;  // how many groups of weight rows ahead to prefetch

template <int MR, int NR>
void gemm_tile(const float* X, int64_t ldx, const float* Wb, float* Y, int64_t ldy, int64_t kn, bool first) {
    vf acc[MR][NR];
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) acc[i][j] = vzero();
    int64_t k = 0;
    for (; k + W <= kn; k += W) {
        vf w[NR];
#pragma GCC unroll 4
        for (int j = 0; j < NR; ++j) w[j] = load_f32(Wb + j * KS + k);
#pragma GCC unroll 4
        for (int i = 0; i < MR; ++i) {
            const vf x = load_f32(X + i * ldx + k);
#pragma GCC unroll 4
            for (int j = 0; j < NR; ++j) acc[i][j] = fmadd(x, w[j], acc[i][j]);
        }
    }
    for (int i = 0; i < MR; ++i)
        for (int j = 0; j < NR; ++j) {
            float s = hsum(acc[i][j]);
            for (int64_t kk = k; kk < kn; ++kk) s += X[i * ldx + kk] * Wb[j * KS + kk];
            float& y = Y[i * ldy + j];
            y = first ? s : y + s;
        }
}

// Dispatch a run-time edge size (1..TN weight rows) to the compile-time tile.
template <int MR, int NR = TN>
void gemm_tile_nr(int nr, const float* X, int64_t ldx, const float* Wb, float* Y, int64_t ldy, int64_t kn, bool first) {
    if constexpr (NR > 1) {
        if (nr < NR) return gemm_tile_nr<MR, NR - 1>(nr, X, ldx, Wb, Y, ldy, kn, first);
    }
    gemm_tile<MR, NR>(X, ldx, Wb, Y, ldy, kn, first);
}

template <int MR = TM>
void gemm_tile_mr(int mr, int nr, const float* X, int64_t ldx, const float* Wb, float* Y, int64_t ldy, int64_t kn, bool first) {
    if constexpr (MR > 1) {
        if (mr < MR) return gemm_tile_mr<MR - 1>(mr, nr, X, ldx, Wb, Y, ldy, kn, first);
    }
    gemm_tile_nr<MR>(nr, X, ldx, Wb, Y, ldy, kn, first);
}

template <class L>
void gemm_rows(const void* Wv, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    const typename L::T* Wm = static_cast<const typename L::T*>(Wv);
    alignas(64) float wbuf[TN * KS];
    thread_local std::vector<float> xbuf_store;
    xbuf_store.resize(static_cast<size_t>(TB * KS));
    float* xbuf = xbuf_store.data();
    for (int64_t t0 = 0; t0 < n; t0 += TB) {
        const int64_t t1 = t0 + TB < n ? t0 + TB : n;
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            const int64_t kn = (k0 + KC < K ? k0 + KC : K) - k0;
            const bool first = k0 == 0;
            for (int64_t i = t0; i < t1; ++i)  // this block of activations, copied with the padded stride
                __builtin_memcpy(xbuf + (i - t0) * KS, X + i * K + k0, static_cast<size_t>(kn) * sizeof(float));
            for (int64_t r = r0; r < r1; r += TN) {
                const int nr = static_cast<int>(r1 - r < TN ? r1 - r : TN);
                // The next group's weight slice streams in from memory while this group computes: its cache lines
                // are prefetched a few at a time, one batch after each tile, so the prefetches are not dropped.
                const char* pf_row[TN] = {};
                int n_pf_rows = 0;
                constexpr int64_t ahead = PF_GROUPS * TN;
                if (r + ahead < r1) {
                    n_pf_rows = static_cast<int>(r1 - r - ahead < TN ? r1 - r - ahead : TN);
                    for (int j = 0; j < n_pf_rows; ++j) pf_row[j] = reinterpret_cast<const char*>(Wm + (r + ahead + j) * K + k0);
                }
                const int64_t pf_bytes = kn * static_cast<int64_t>(sizeof(typename L::T));
                int64_t pf_next = 0;
                const int64_t n_tiles = (t1 - t0 + TM - 1) / TM;
                const int64_t pf_step = ((pf_bytes + 63) / 64 + n_tiles - 1) / n_tiles * 64;
                auto prefetch_some = [&] {
                    for (int64_t b = pf_next; b < pf_next + pf_step && b < pf_bytes; b += 64)
                        for (int j = 0; j < n_pf_rows; ++j) _mm_prefetch(pf_row[j] + b, _MM_HINT_T0);
                    pf_next += pf_step;
                };
                for (int j = 0; j < nr; ++j) {  // widen the weight slice once, reuse it for every activation row
                    const typename L::T* src = Wm + (r + j) * K + k0;
                    float* dst = wbuf + j * KS;
                    int64_t k = 0;
                    for (; k + W <= kn; k += W) store(dst + k, L::load(src + k));
                    for (; k < kn; ++k) dst[k] = L::at(src, k);
                }
                int64_t i = t0;
                if (nr == TN)
                    for (; i + TM <= t1; i += TM) {
                        gemm_tile<TM, TN>(xbuf + (i - t0) * KS, KS, wbuf, Y + i * rows + r, rows, kn, first);
                        prefetch_some();
                    }
                for (; i < t1; i += TM) {
                    const int mr = static_cast<int>(t1 - i < TM ? t1 - i : TM);
                    gemm_tile_mr(mr, nr, xbuf + (i - t0) * KS, KS, wbuf, Y + i * rows + r, rows, kn, first);
                    prefetch_some();
                }
            }
        }
    }
}

// ------------------------------------------------------------------------------------- exp and tanh (vectorised)
// exp(t) for t ≤ 0 (clamped at −87, where it is 1.6e-38): range reduction t = n·ln2 + r (Cody–Waite split),
// |r| ≤ ln2/2, a degree-6 Taylor polynomial for exp(r) (error < 2e-7 relative), then scaling by 2^n.
#if defined(__AVX512F__)
#define LF_SET1 _mm512_set1_ps
#else
#define LF_SET1 _mm256_set1_ps
#endif
inline vf vexp_nonpos(vf t) {
#if defined(__AVX512F__)
    t = _mm512_max_ps(t, LF_SET1(-87.0f));
    const vf fn = _mm512_roundscale_ps(_mm512_fmadd_ps(t, LF_SET1(1.44269504088896341f), LF_SET1(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
    t = _mm256_max_ps(t, LF_SET1(-87.0f));
    const vf fn = _mm256_floor_ps(_mm256_fmadd_ps(t, LF_SET1(1.44269504088896341f), LF_SET1(0.5f)));
#endif
    vf r = fmadd(fn, LF_SET1(-0.693359375f), t);
    r = fmadd(fn, LF_SET1(2.12194440e-4f), r);
    vf p = LF_SET1(1.0f / 720);
    p = fmadd(p, r, LF_SET1(1.0f / 120));
    p = fmadd(p, r, LF_SET1(1.0f / 24));
    p = fmadd(p, r, LF_SET1(1.0f / 6));
    p = fmadd(p, r, LF_SET1(0.5f));
    p = fmadd(p, r, LF_SET1(1.0f));
    p = fmadd(p, r, LF_SET1(1.0f));
#if defined(__AVX512F__)
    return _mm512_scalef_ps(p, fn);
#else
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fn), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
#endif
}

// tanh(x) = sign(x) · (1 − e)/(1 + e) with e = exp(−2|x|) ∈ (0, 1]. Absolute error < 1e-7 against std::tanh (tested).
inline vf vtanh(vf x) {
#if defined(__AVX512F__)
    const vf e = vexp_nonpos(_mm512_mul_ps(_mm512_abs_ps(x), LF_SET1(-2.0f)));
    const vf th = _mm512_div_ps(_mm512_sub_ps(LF_SET1(1.0f), e), _mm512_add_ps(LF_SET1(1.0f), e));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(th),
                                               _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(INT32_MIN))));
#else
    const vf sign = LF_SET1(-0.0f);
    const vf e = vexp_nonpos(_mm256_mul_ps(_mm256_andnot_ps(sign, x), LF_SET1(-2.0f)));
    const vf th = _mm256_div_ps(_mm256_sub_ps(LF_SET1(1.0f), e), _mm256_add_ps(LF_SET1(1.0f), e));
    return _mm256_or_ps(th, _mm256_and_ps(x, sign));
#endif
}

// y[i] = exp(x[i] − shift) for x[i] ≤ shift; returns Σ y (two vector accumulators, summed in double at the end).
double exp_shift_sum(const float* x, float* y, int64_t n, float shift) {
    const vf sh = LF_SET1(shift);
    vf s0 = vzero(), s1 = vzero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        const vf e0 = vexp_nonpos(vadd(load_f32(x + i), vsub(vzero(), sh)));
        const vf e1 = vexp_nonpos(vadd(load_f32(x + i + W), vsub(vzero(), sh)));
        store(y + i, e0);
        store(y + i + W, e1);
        s0 = vadd(s0, e0);
        s1 = vadd(s1, e1);
    }
    double sum = static_cast<double>(hsum(s0)) + static_cast<double>(hsum(s1));
    for (; i < n; i += W) {
        alignas(64) float buf[W];
        const int64_t m = n - i < W ? n - i : W;
        for (int64_t j = 0; j < W; ++j) buf[j] = j < m ? x[i + j] - shift : -100.0f;
        store(buf, vexp_nonpos(load_f32(buf)));
        for (int64_t j = 0; j < m; ++j) {
            y[i + j] = buf[j];
            sum += static_cast<double>(buf[j]);
        }
    }
    return sum;
}
#undef LF_SET1

void tanh_rows(const float* x, float* y, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) store(y + i, vtanh(load_f32(x + i)));
    if (i < n) {
        alignas(64) float buf[W] = {};
        for (int64_t j = i; j < n; ++j) buf[j - i] = x[j];
        store(buf, vtanh(load_f32(buf)));
        for (int64_t j = i; j < n; ++j) y[j] = buf[j - i];
    }
}

#if defined(__AVX512F__)
// ------------------------------------------------------------------- AVX-512 GEMM: packed outer-product form
// For AVX-512 the weights are packed, slice by slice, into panels of NP = 32 rows stored k-major (P[k][row], f32),
// so the micro-kernel can keep a 12 × 32 block of Y in 24 registers and, per k, load 2 weight vectors and broadcast
// 12 activations: 24 FMAs per 2 loads + 12 broadcasts, no horizontal sums. A panel (32 × KC) is packed once and used by
// every group of 12 activation rows of the block.
constexpr int NP = 32, MRB = 12;
#if defined(__clang__)
constexpr int PANEL_HINT = _MM_HINT_T1;  // (T0 measured the same; clang's _mm_prefetch takes an int, gcc's an enum)
#else
constexpr _mm_hint PANEL_HINT = _MM_HINT_T1;
#endif

// P[k][j] = W[r + j][k0 + k] for j < nr (zero beyond), k < kn.
template <class L>
void pack_panel(const typename L::T* Wm, int64_t K, int64_t r, int nr, int64_t k0, int64_t kn, float* P) {
    int64_t k = 0;
    for (; k + 16 <= kn; k += 16) {
        for (int half = 0; half < 2; ++half) {
            __m512 v[16];
            for (int j = 0; j < 16; ++j) {
                const int jj = half * 16 + j;
                v[j] = jj < nr ? L::load(Wm + (r + jj) * K + k0 + k) : _mm512_setzero_ps();
            }
            transpose16(v);
            for (int q = 0; q < 16; ++q) _mm512_store_ps(P + (k + q) * NP + half * 16, v[q]);
        }
    }
    for (; k < kn; ++k)
        for (int j = 0; j < NP; ++j) P[k * NP + j] = j < nr ? L::at(Wm + (r + j) * K + k0, k) : 0.0f;
}

// X arrives packed too (pack_rows): a group of up to 12 activation rows k-major, X[k·12 + i], so the 12 broadcasts of
// a step read 48 consecutive bytes. Read in place, this model's rows sit 8 KiB apart: all 12 fall in one set of the
// 8-way L1 and evict one another every step (measured on a 5632 × 2048 matrix at n = 128: 169 GFLOP/s with 2048
// columns against 181–184 with 2040 or 2064; packed: see BENCHMARKS.md).
inline __m512 panel_load(const float* p) { return _mm512_loadu_ps(p); }
inline __m512 panel_load(const uint16_t* p) { return load_f16(p); }
template <int MR, class PT>
void outer_tile(const float* X, const PT* P, int64_t kn, float* Y, int64_t ldy, int nr, bool first) {
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kn; ++k) {
        const __m512 w0 = panel_load(P + k * NP), w1 = panel_load(P + k * NP + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; ++i) {
            const __m512 xb = _mm512_set1_ps(X[k * MRB + i]);
            acc[i][0] = _mm512_fmadd_ps(xb, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(xb, w1, acc[i][1]);
        }
    }
    const __mmask16 m0 = nr >= 16 ? 0xffff : static_cast<__mmask16>((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? 0xffff : nr > 16 ? static_cast<__mmask16>((1u << (nr - 16)) - 1) : 0;
    for (int i = 0; i < MR; ++i) {
        float* y = Y + i * ldy;
        if (first) {
            _mm512_mask_storeu_ps(y, m0, acc[i][0]);
            _mm512_mask_storeu_ps(y + 16, m1, acc[i][1]);
        } else {
            _mm512_mask_storeu_ps(y, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y), acc[i][0]));
            _mm512_mask_storeu_ps(y + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + 16), acc[i][1]));
        }
    }
}

template <int MR = MRB, class PT>
void outer_tile_mr(int mr, const float* X, const PT* P, int64_t kn, float* Y, int64_t ldy, int nr, bool first) {
    if constexpr (MR > 1) {
        if (mr < MR) return outer_tile_mr<MR - 1>(mr, X, P, kn, Y, ldy, nr, first);
    }
    outer_tile<MR>(X, P, kn, Y, ldy, nr, first);
}

// Xp[g·MRB·kn + k·MRB + i] = X[(t0 + g·MRB + i)·K + k0 + k] for the rows [t0, t1) (groups of MRB; a short last group
// leaves its unused lanes unset — the tile for mr rows never reads them).
void pack_rows(const float* X, int64_t K, int64_t t0, int64_t t1, int64_t k0, int64_t kn, float* Xp) {
    for (int64_t g = t0; g < t1; g += MRB) {
        const int mr = static_cast<int>(t1 - g < MRB ? t1 - g : MRB);
        float* dst = Xp + (g - t0) * kn;
        for (int i = 0; i < mr; ++i) {
            const float* src = X + (g + i) * K + k0;
            for (int64_t k = 0; k < kn; ++k) dst[k * MRB + i] = src[k];
        }
    }
}

inline float* aligned64(std::vector<float>& store, size_t n) {
    store.resize(n + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(store.data()) + 63) & ~uintptr_t(63));
}

// The blocked loops shared by both weight layouts: per block of TB activation rows, the rows are packed k-major once
// per chunk of KC values of k; then the weight rows go in super-blocks of SB panels of NP rows, and within each, chunk
// by chunk, every panel (panel_of(r, nr, k0, kn) gives it, k-major) runs the tile for every group of MRB rows. Each
// output still sums its chunks in k order (the same bits as chunk-outermost loops). The super-blocks keep the pages a
// pass touches few: packing a panel reads 32 rows, each in its own 4 KiB page where the weights are mapped in small
// pages, and with the chunks outermost every chunk swept all of a matrix's rows — 5,632 pages for TinyLlama's f16 FFN
// matrices, more than the L2 TLB holds. (TinyLlama f16 pp128 from a file cached in 4 KiB pages: +2 %, 5 of 5 pairs
// alternating with chunk-outermost loops, 2026-12-06, Zen 5.)
constexpr int64_t SB = 8;
template <class PanelOf, class Prefetch>
void gemm_blocked(const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1, PanelOf panel_of, Prefetch prefetch) {
    thread_local std::vector<float> xbuf_store;
    const int64_t chunks = (K + KC - 1) / KC, chunk_floats = (TB + MRB) * KC;
    float* Xp = aligned64(xbuf_store, static_cast<size_t>(chunks * chunk_floats));
    for (int64_t t0 = 0; t0 < n; t0 += TB) {
        const int64_t t1 = t0 + TB < n ? t0 + TB : n;
        const int64_t groups = (t1 - t0 + MRB - 1) / MRB;
        for (int64_t k0 = 0; k0 < K; k0 += KC) pack_rows(X, K, t0, t1, k0, (k0 + KC < K ? k0 + KC : K) - k0, Xp + k0 / KC * chunk_floats);
        for (int64_t rs = r0; rs < r1; rs += SB * NP) {
            const int64_t re = rs + SB * NP < r1 ? rs + SB * NP : r1;
            for (int64_t k0 = 0; k0 < K; k0 += KC) {
                const int64_t kn = (k0 + KC < K ? k0 + KC : K) - k0;
                const float* Xc = Xp + k0 / KC * chunk_floats;
                for (int64_t r = rs; r < re; r += NP) {
                    const int nr = static_cast<int>(re - r < NP ? re - r : NP);
                    const auto* P = panel_of(r, nr, k0, kn);
                    // the panel packed next (the next rows, the super-block's first rows in the next chunk of k, or
                    // the next super-block's first rows), fetched a part per tile
                    int64_t rn = r + NP, kn0 = k0, rne = re;
                    if (rn >= re) rn = rs, kn0 = k0 + KC;
                    if (kn0 >= K) rn = re, kn0 = 0, rne = re + SB * NP < r1 ? re + SB * NP : r1;
                    const bool more = rn < r1;
                    const int nrn = static_cast<int>(rne - rn < NP ? rne - rn : NP);
                    const int64_t knn = more ? (kn0 + KC < K ? kn0 + KC : K) - kn0 : 0;
                    for (int64_t i = t0, g = 0; i < t1; i += MRB, ++g) {
                        if (more) prefetch(rn, nrn, kn0, knn, g, groups);
                        outer_tile_mr(static_cast<int>(t1 - i < MRB ? t1 - i : MRB), Xc + (i - t0) * kn, P, kn, Y + i * rows + r, rows, nr, k0 == 0);
                    }
                }
            }
        }
    }
}

// Row-major weights: each panel packed (and widened to f32) into a buffer as it is needed. The weights come from memory
// (often for the first time: a mapped file), 32 rows at once, which the hardware prefetchers do not follow: the next
// panel is fetched into L2 while this one is used, its rows spread over the tiles. TinyLlama pp128 on Zen 5, 2 threads,
// alternating builds: f16 151/149 → 156/152 t/s, f32 133/131 → 134/136; the packing 16 % → 13 % of the time (perf).
template <class L>
void gemm_rows_packed(const void* Wv, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    const typename L::T* Wm = static_cast<const typename L::T*>(Wv);
    thread_local std::vector<float> pbuf_store;
    float* P = aligned64(pbuf_store, static_cast<size_t>(KC * NP));
    gemm_blocked(
        X, Y, n, rows, K, r0, r1,
        [&](int64_t r, int nr, int64_t k0, int64_t kn) {
            pack_panel<L>(Wm, K, r, nr, k0, kn, P);
            return static_cast<const float*>(P);
        },
        [&](int64_t r, int nr, int64_t k0, int64_t kn, int64_t part, int64_t parts) {
            const int j0 = static_cast<int>(nr * part / parts), j1 = static_cast<int>(nr * (part + 1) / parts);
            const int64_t bytes = kn * static_cast<int64_t>(sizeof(typename L::T));
            for (int j = j0; j < j1; ++j) {
                const char* p = reinterpret_cast<const char*>(Wm + (r + j) * K + k0);
                for (int64_t b = 0; b < bytes; b += 64) _mm_prefetch(p + b, PANEL_HINT);
            }
        });
}
#define LF_GEMM(T) gemm_rows_packed<T>

// Weights already in panel layout (kernels::pack_panels, pack_panels_f16): the panel read in place (a thread's panels
// are consecutive in memory: one sequential stream), f16 widened by the tile's own loads (where a row-major matrix's
// packing gathers 32 rows at once: 17–25 % of f16 pp128's time). Widening in the loads rather than into an f32 buffer
// per chunk: pp128 +3.3 % (median of 10 alternating pairs, 9 ahead; TinyLlama f16, Zen 5).
static_assert(KC == 768 && NP == 32, "kernels.h: kPanelK and kPanelRows are the packed GEMM's chunk and panel");
void gemm_panels_f32(const float* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    gemm_blocked(X, Y, n, rows, K, r0, r1, [&](int64_t r, int, int64_t k0, int64_t) { return Wp + r * K + k0 * NP; },
                 [](int64_t, int, int64_t, int64_t, int64_t, int64_t) {});
}
void gemm_panels_f16(const uint16_t* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    gemm_blocked(
        X, Y, n, rows, K, r0, r1, [&](int64_t r, int, int64_t k0, int64_t) { return Wp + r * K + k0 * NP; },
        // the next chunk, a part per tile, where there are at least 4 tiles to spread it over (all at once before one
        // tile, its prefetches stalled the loop: n = 2 and 8 slower; pp128 138.8/145.2 against 137.0/137.2 t/s without)
        [&](int64_t r, int, int64_t k0, int64_t kn, int64_t part, int64_t parts) {
            if (parts < 4) return;
            const char* p = reinterpret_cast<const char*>(Wp + r * K + k0 * NP);
            const int64_t bytes = kn * NP * 2, b0 = bytes * part / parts / 64 * 64, b1 = bytes * (part + 1) / parts;
            for (int64_t b = b0; b < b1; b += 64) _mm_prefetch(p + b, PANEL_HINT);
        });
}

// A few vectors (M ≤ 4: decoding, a speculative verification, a server's step with few sequences): NPV panels at a
// time, each panel's two weight vectors loaded once per k for all M rows (2·NPV·M independent FMA chains), each output
// summed as outer_tile sums it (the same bits as the GEMM). Through the GEMM, few rows left it bound by its per-chunk
// overheads (TinyLlama f16, 2 rows: 23 t/s against 38 for the row-major tiles).
template <class L, int NPV, int M>
void matvec_panels_group(const typename L::T* Wp, const float* X, float* Y, int64_t ldy, int64_t K) {
    __m512 out[M][NPV][2];
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kn = (k0 + KC < K ? k0 + KC : K) - k0;
        __m512 acc[M][NPV][2];
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < NPV; ++q) acc[i][q][0] = acc[i][q][1] = _mm512_setzero_ps();
        const typename L::T* P = Wp + k0 * NP;
        for (int64_t k = 0; k < kn; ++k) {
#pragma GCC unroll 4
            for (int q = 0; q < NPV; ++q) {
                const __m512 w0 = L::load(P + q * NP * K + k * NP), w1 = L::load(P + q * NP * K + k * NP + 16);
#pragma GCC unroll 4
                for (int i = 0; i < M; ++i) {
                    const __m512 xb = _mm512_set1_ps(X[i * K + k0 + k]);
                    acc[i][q][0] = _mm512_fmadd_ps(xb, w0, acc[i][q][0]);
                    acc[i][q][1] = _mm512_fmadd_ps(xb, w1, acc[i][q][1]);
                }
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < M; ++i)
#pragma GCC unroll 4
            for (int q = 0; q < NPV; ++q)
                for (int h = 0; h < 2; ++h) out[i][q][h] = k0 == 0 ? acc[i][q][h] : _mm512_add_ps(out[i][q][h], acc[i][q][h]);
    }
    for (int i = 0; i < M; ++i)
        for (int q = 0; q < NPV; ++q) {
            _mm512_storeu_ps(Y + i * ldy + q * NP, out[i][q][0]);
            _mm512_storeu_ps(Y + i * ldy + q * NP + 16, out[i][q][1]);
        }
}

template <class L, int NPV, int M>
void matvec_panels_m(const typename L::T* Wp, const float* X, float* Y, int64_t ldy, int64_t K, int64_t r0, int64_t r1) {
    int64_t r = r0;
    for (; r + NPV * NP <= r1; r += NPV * NP) matvec_panels_group<L, NPV, M>(Wp + r * K, X, Y + r, ldy, K);
    for (; r < r1; r += NP) matvec_panels_group<L, 1, M>(Wp + r * K, X, Y + r, ldy, K);
}

// Y[i, r] for the n ≤ 4 rows of X (Y's rows `rows` apart), weight rows [r0, r1).
template <class L>
void matvec_panels(const typename L::T* Wp, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    switch (n) {
        case 1: return matvec_panels_m<L, 4, 1>(Wp, X, Y, rows, K, r0, r1);
        case 2: return matvec_panels_m<L, 4, 2>(Wp, X, Y, rows, K, r0, r1);
        case 3: return matvec_panels_m<L, 2, 3>(Wp, X, Y, rows, K, r0, r1);
        default: return matvec_panels_m<L, 2, 4>(Wp, X, Y, rows, K, r0, r1);
    }
}
#define LF_PANELS gemm_panels_f32, matvec_panels<F32>, gemm_panels_f16, matvec_panels<F16>,

// llamafile's tinyBLAS order: each output is one 16-lane FMA accumulator over k, reduced by _mm512_reduce_add_ps.
// Tiles of 4 weight rows × RN activation rows (24 accumulators for RN = 6), loaded straight from W and X.
template <class L, int RN>
void tiny_tile(const typename L::T* Wr, int64_t K, const float* Xi, float* Yi, int64_t rows) {
    __m512 acc[RN][4];
    for (int a = 0; a < RN; ++a)
        for (int j = 0; j < 4; ++j) acc[a][j] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k += 16) {
        const __m512 w0 = L::load(Wr + k), w1 = L::load(Wr + K + k), w2 = L::load(Wr + 2 * K + k), w3 = L::load(Wr + 3 * K + k);
#pragma GCC unroll 6
        for (int a = 0; a < RN; ++a) {
            const __m512 x = _mm512_loadu_ps(Xi + a * K + k);
            acc[a][0] = _mm512_fmadd_ps(w0, x, acc[a][0]);
            acc[a][1] = _mm512_fmadd_ps(w1, x, acc[a][1]);
            acc[a][2] = _mm512_fmadd_ps(w2, x, acc[a][2]);
            acc[a][3] = _mm512_fmadd_ps(w3, x, acc[a][3]);
        }
    }
    for (int a = 0; a < RN; ++a)
        for (int j = 0; j < 4; ++j) Yi[a * rows + j] = _mm512_reduce_add_ps(acc[a][j]);
}

template <class L>
void gemm_tinyblas(const void* Wv, const float* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    const typename L::T* W = static_cast<const typename L::T*>(Wv);
    for (int64_t r = r0; r + 4 <= r1; r += 4) {
        int64_t i = 0;
        for (; i + 6 <= n; i += 6) tiny_tile<L, 6>(W + r * K, K, X + i * K, Y + i * rows + r, rows);
        switch (n - i) {
            case 5: tiny_tile<L, 5>(W + r * K, K, X + i * K, Y + i * rows + r, rows); break;
            case 4: tiny_tile<L, 4>(W + r * K, K, X + i * K, Y + i * rows + r, rows); break;
            case 3: tiny_tile<L, 3>(W + r * K, K, X + i * K, Y + i * rows + r, rows); break;
            case 2: tiny_tile<L, 2>(W + r * K, K, X + i * K, Y + i * rows + r, rows); break;
            case 1: tiny_tile<L, 1>(W + r * K, K, X + i * K, Y + i * rows + r, rows); break;
            default: break;
        }
    }
}
#define LF_TINYBLAS gemm_tinyblas<F32>, gemm_tinyblas<F16>

// ggml_v_expf (AVX-512), the same operations as ggml_math.h's scalar v_expf.
inline __m512 v_expf16(__m512 x) {
    const __m512 r = _mm512_set1_ps(0x1.8p23f);
    const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
    const __m512 n = _mm512_sub_ps(z, r);
    const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f), _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
    const __mmask16 d = _mm512_cmp_ps_mask(_mm512_abs_ps(n), _mm512_set1_ps(192), _CMP_GT_OQ);
    const __m512 u = _mm512_mul_ps(b, b);
    const __m512 j = _mm512_fmadd_ps(
        _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                        _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
        u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
    const __m512 res = _mm512_scalef_ps(j, n);
    if (_mm512_kortestz(d, d)) return res;
    const __m512 alt = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(n, _mm512_setzero_ps(), _CMP_LE_OQ), _mm512_set1_ps(INFINITY), _mm512_setzero_ps());
    return _mm512_mask_blend_ps(d, res, alt);
}

double softmax_exp_ggml(float* y, const float* x, int64_t n, float max) {
    int64_t i = 0;
    double sum = 0;
    const __m512 mv = _mm512_set1_ps(max);
    for (; i + 16 <= n; i += 16) {
        const __m512 v = v_expf16(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv));
        _mm512_storeu_ps(y + i, v);
        sum += static_cast<double>(_mm512_reduce_add_ps(v));
    }
    for (; i < n; ++i) {
        y[i] = std::exp(x[i] - max);
        sum += static_cast<double>(y[i]);
    }
    return sum;
}

void silu_ggml(float* y, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        const __m512 e = v_expf16(_mm512_sub_ps(_mm512_setzero_ps(), v));
        _mm512_storeu_ps(y + i, _mm512_div_ps(v, _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    }
    for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

void round_f16(float* x, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    for (; i < n; ++i) x[i] = _cvtsh_ss(_cvtss_sh(x[i], 0));
}
#define LF_GGML_FNS softmax_exp_ggml, silu_ggml, round_f16,
#else
#define LF_GEMM(T) gemm_rows<T>
#define LF_TINYBLAS nullptr, nullptr
#define LF_GGML_FNS nullptr, nullptr, nullptr,
#define LF_PANELS nullptr, nullptr, nullptr, nullptr,
#endif



}  // namespace

const KernelTable* LF_TABLE_FN() {
    static const KernelTable t = {
        LF_TABLE_NAME,
        dot_row<F32>, dot_row<F16>, dot_row<BF16>,
        convert_row<F16>, convert_row<BF16>,
        dot_f16_acc64, axpy_f16_acc64, axpy_f32_acc64,
        dot_row_seq<F32>, dot_row_seq<F16>, dot_row_seq<BF16>, W,
        LF_GEMM(F32), LF_GEMM(F16), LF_GEMM(BF16),
        LF_TINYBLAS,
        LF_GGML_FNS
        ggml::rope_rows,
        tanh_rows, exp_shift_sum,
        dot_f16_f16, to_f16,
        gemm_seq<F32>, gemm_seq<F16>, gemm_seq<BF16>,
        LF_PANELS
        dot_rows<F32, F32>, dot_rows<F16, F16>,
    };
    return &t;
}

}  // namespace llmforge::kernels
