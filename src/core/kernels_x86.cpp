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

// One row · x.
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
    for (; i + W <= n; i += W) a0 = fmadd(L::load(w + i), load_f32(x + i), a0);
    float s = hsum(vadd(vadd(a0, a1), vadd(a2, a3)));
    for (; i < n; ++i) s += L::at(w, i) * x[i];
    return s;
}

// Four rows · the same x: each x vector is loaded once for four rows.
template <class L>
void dot_rows4(const typename L::T* w, int64_t ld, const float* x, int64_t n, float* out) {
    const typename L::T* w0 = w;
    const typename L::T* w1 = w + ld;
    const typename L::T* w2 = w + 2 * ld;
    const typename L::T* w3 = w + 3 * ld;
    vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
    vf b0 = vzero(), b1 = vzero(), b2 = vzero(), b3 = vzero();
    int64_t i = 0;
    for (; i + 2 * W <= n; i += 2 * W) {
        const vf x0 = load_f32(x + i), x1 = load_f32(x + i + W);
        a0 = fmadd(L::load(w0 + i), x0, a0);
        a1 = fmadd(L::load(w1 + i), x0, a1);
        a2 = fmadd(L::load(w2 + i), x0, a2);
        a3 = fmadd(L::load(w3 + i), x0, a3);
        b0 = fmadd(L::load(w0 + i + W), x1, b0);
        b1 = fmadd(L::load(w1 + i + W), x1, b1);
        b2 = fmadd(L::load(w2 + i + W), x1, b2);
        b3 = fmadd(L::load(w3 + i + W), x1, b3);
    }
    for (; i + W <= n; i += W) {
        const vf x0 = load_f32(x + i);
        a0 = fmadd(L::load(w0 + i), x0, a0);
        a1 = fmadd(L::load(w1 + i), x0, a1);
        a2 = fmadd(L::load(w2 + i), x0, a2);
        a3 = fmadd(L::load(w3 + i), x0, a3);
    }
    float s0 = hsum(vadd(a0, b0)), s1 = hsum(vadd(a1, b1)), s2 = hsum(vadd(a2, b2)), s3 = hsum(vadd(a3, b3));
    for (; i < n; ++i) {
        s0 += L::at(w0, i) * x[i];
        s1 += L::at(w1, i) * x[i];
        s2 += L::at(w2, i) * x[i];
        s3 += L::at(w3, i) * x[i];
    }
    out[0] = s0; out[1] = s1; out[2] = s2; out[3] = s3;
}

template <class L>
void convert_row(const typename L::T* src, float* dst, int64_t n) {
    int64_t i = 0;
    for (; i + W <= n; i += W) store(dst + i, L::load(src + i));
    for (; i < n; ++i) dst[i] = L::at(src, i);
}

}  // namespace

const KernelTable* LF_TABLE_FN() {
    static const KernelTable t = {
        LF_TABLE_NAME,
        dot_row<F32>, dot_row<F16>, dot_row<BF16>,
        dot_rows4<F32>, dot_rows4<F16>, dot_rows4<BF16>,
        convert_row<F16>, convert_row<BF16>,
    };
    return &t;
}

}  // namespace llmforge::kernels
