// SIMD kernels, compiled once per instruction set (LLMFORGE_ISA = avx2 | avx512) with the matching -m flags.
// Decoding is memory-bound, so each kernel streams the weights once, converts f16/bf16 to f32 in registers
// (never in memory) and keeps several accumulators in flight to hide FMA latency.
#include <immintrin.h>

#include "core/kernels_impl.h"

namespace llmforge::kernels {
namespace {

#if defined(__AVX512F__)
// ---------------------------------------------------------------- AVX-512: 16 floats per vector
using vf = __m512;
constexpr int W = 16;
inline vf vzero() { return _mm512_setzero_ps(); }
inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
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

// One row · x: four accumulators over blocks of 4 vectors, combined pairwise (0+2, 1+3), then across lanes;
// the tail is summed in f64. (This order keeps f32 results reproducible between the one-row and four-row kernels.)
template <class L>
float dot_row(const typename L::T* w, const float* x, int64_t n) {
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = fmadd(L::load(w + i), load_f32(x + i), a0);
        a1 = fmadd(L::load(w + i + W), load_f32(x + i + W), a1);
        a2 = fmadd(L::load(w + i + 2 * W), load_f32(x + i + 2 * W), a2);
        a3 = fmadd(L::load(w + i + 3 * W), load_f32(x + i + 3 * W), a3);
    }
    double s = hsum(vadd(vadd(a0, a2), vadd(a1, a3)));
    for (; i < n; ++i) s += static_cast<double>(L::at(w, i) * x[i]);
    return static_cast<float>(s);
}

// Four rows · the same x, each summed in exactly the order of dot_row.
template <class L>
void dot_rows4(const typename L::T* w, int64_t ld, const float* x, int64_t n, float* out) {
    vf acc[4][4];
    for (auto& r : acc) for (auto& a : r) a = vzero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        for (int k = 0; k < 4; ++k) {
            const vf xv = load_f32(x + i + k * W);
            acc[0][k] = fmadd(L::load(w + i + k * W), xv, acc[0][k]);
            acc[1][k] = fmadd(L::load(w + ld + i + k * W), xv, acc[1][k]);
            acc[2][k] = fmadd(L::load(w + 2 * ld + i + k * W), xv, acc[2][k]);
            acc[3][k] = fmadd(L::load(w + 3 * ld + i + k * W), xv, acc[3][k]);
        }
    }
    for (int r = 0; r < 4; ++r) {
        double s = hsum(vadd(vadd(acc[r][0], acc[r][2]), vadd(acc[r][1], acc[r][3])));
        const typename L::T* wr = w + r * ld;
        for (int64_t j = i; j < n; ++j) s += static_cast<double>(L::at(wr, j) * x[j]);
        out[r] = static_cast<float>(s);
    }
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

}  // namespace

const KernelTable* LF_TABLE_FN() {
    static const KernelTable t = {
        LF_TABLE_NAME,
        dot_row<F32>, dot_row<F16>, dot_row<BF16>,
        dot_rows4<F32>, dot_rows4<F16>, dot_rows4<BF16>,
        convert_row<F16>, convert_row<BF16>,
        dot_f16_acc64, axpy_f16_acc64,
    };
    return &t;
}

}  // namespace llmforge::kernels
