// The arithmetic of llama.cpp's CPU backend (ggml, AVX-512 build), reproduced operation for operation so that our
// results round exactly as its do. This matters wherever a value is rounded to f16 (the KV cache, attention weights):
// a difference in the last bit of an f32 before such a rounding can flip an f16 ulp and move a logit by 1e-4, which
// shows in the fourth decimal of a perplexity. Facts taken from ggml (llama.cpp commit c392e50, build 4748):
//   * matrix products in prompt processing (≥ 2 tokens) whose inner length is a multiple of 16 go through llamafile's
//     tinyBLAS: one 16-lane FMA accumulator per output, summed at the end by _mm512_reduce_add_ps;
//   * other lengths go through ggml_vec_dot_f32: four 16-lane FMA accumulators over blocks of 64, added pairwise
//     ((0+2)+(1+3)), reduced as above, then the remaining products (rounded) added one by one in f32;
//     ggml_vec_dot_f16 does the same on f16 inputs but adds the remaining products in f64;
//   * softmax and SiLU evaluate exp with ggml_v_expf (a polynomial on 16 lanes) and sum each block of 16 in f32 before
//     adding it to an f64 total; lengths past the last full block use expf;
//   * the KV cache is seen in lengths padded to 32 cells (llama_kv_cache's padding without flash attention).
// Scalar code written from those descriptions (the order of operations and the constants are the facts reused).
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge::ggml {

constexpr int kLanes = 16;

// _mm512_reduce_add_ps as GCC implements it: halves added (8), halves again (4), then (0+2, 1+3), then the two.
inline float reduce16(const float* v) {
    float a[8], b[4];
    for (int i = 0; i < 8; ++i) a[i] = v[8 + i] + v[i];
    for (int i = 0; i < 4; ++i) b[i] = a[4 + i] + a[i];
    const float c0 = b[0] + b[2], c1 = b[1] + b[3];
    return c0 + c1;
}

// tinyBLAS: n a multiple of 16.
// a, b: pointers, or anything indexable to float.
template <class A, class B>
inline float dot_tinyblas(A a, B b, int64_t n) {
    float acc[kLanes] = {};
    for (int64_t i = 0; i < n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) acc[l] = std::fma(static_cast<float>(a[i + l]), static_cast<float>(b[i + l]), acc[l]);
    return reduce16(acc);
}

// The products past the last block of 64 in ggml_vec_dot_f32 as GCC 12 (-O3, Zen 4) compiled its loop
// `for (i = np; i < n; ++i) sumf += x[i]*y[i]`: blocks of 16, then one of 8 if at least 8 remain, as rounded products
// added one by one; the last (fewer than 8) products fused into the sum (vfmadd231ss).
template <class A, class B>
inline float vec_dot_f32_tail(float s, A a, B b, int64_t i, int64_t n) {
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) s += static_cast<float>(a[i + l]) * static_cast<float>(b[i + l]);
    if (n - i >= 8) {
        for (int l = 0; l < 8; ++l) s += static_cast<float>(a[i + l]) * static_cast<float>(b[i + l]);
        i += 8;
    }
    for (; i < n; ++i) s = std::fma(static_cast<float>(a[i]), static_cast<float>(b[i]), s);
    return s;
}

// ggml_vec_dot_f32 (tail in f32, as vec_dot_f32_tail) or, with F64Tail, ggml_vec_dot_f16 (tail in f64).
template <bool F64Tail, class A, class B>
inline float dot_vec(A a, B b, int64_t n) {
    const int64_t np = n & ~static_cast<int64_t>(4 * kLanes - 1);
    float s[4][kLanes] = {};
    for (int64_t i = 0; i < np; i += 4 * kLanes)
        for (int j = 0; j < 4; ++j)
            for (int l = 0; l < kLanes; ++l) {
                const int64_t k = i + j * kLanes + l;
                s[j][l] = std::fma(static_cast<float>(a[k]), static_cast<float>(b[k]), s[j][l]);
            }
    float r[kLanes];
    for (int l = 0; l < kLanes; ++l) r[l] = (s[0][l] + s[2][l]) + (s[1][l] + s[3][l]);
    if constexpr (F64Tail) {
        double sum = np ? static_cast<double>(reduce16(r)) : 0.0;
        for (int64_t i = np; i < n; ++i) sum += static_cast<double>(static_cast<float>(a[i]) * static_cast<float>(b[i]));
        return static_cast<float>(sum);
    } else {
        return vec_dot_f32_tail(np ? reduce16(r) : 0.0f, a, b, np, n);
    }
}

// One lane of ggml_v_expf (AVX-512): exp(x) = 2^n · p(b), n = round(x / ln 2), b = x − n·ln 2 (in two parts),
// p a degree-5 polynomial; |n| > 192 gives 0 or ∞.
inline float v_expf(float x) {
    const float r = 0x1.8p23f;
    const float z = std::fma(x, 0x1.715476p+0f, r);
    const float n = z - r;
    const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
    if (std::fabs(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
    const float u = b * b;
    const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                             std::fma(0x1.ffffecp-1f, b, 1.0f));
    return std::ldexp(j, static_cast<int>(n));
}

// ggml_vec_soft_max_f32: y = exp(x − max) (v_expf on full blocks of 16, expf after), returns Σ y (f64 of f32 block sums).
inline double softmax_exp(float* y, const float* x, int64_t n, float max) {
    double sum = 0;
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
        for (int l = 0; l < kLanes; ++l) y[i + l] = v_expf(x[i + l] - max);
        sum += static_cast<double>(reduce16(y + i));
    }
    for (; i < n; ++i) {
        y[i] = std::exp(x[i] - max);
        sum += static_cast<double>(y[i]);
    }
    return sum;
}

// ggml_vec_silu_f32: x / (1 + exp(−x)), v_expf on full blocks of 16, expf after.
inline void silu_row(float* y, const float* x, int64_t n) {
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int l = 0; l < kLanes; ++l) y[i + l] = x[i + l] / (1.0f + v_expf(0.0f - x[i + l]));
    for (; i < n; ++i) y[i] = x[i] / (1.0f + std::exp(-x[i]));
}

// RoPE on n tokens × n_heads heads of hd values (pairs (2j, 2j+1) if interleaved, else (j, j + half)), rotated by
// cos/sin[token][j]: x0·cos − x1·sin and x0·sin + x1·cos with the x0 products fused, as ggml's compiled loop
// (vfmaddsub over the interleaved pair) computes them. static: each kernel translation unit keeps its own copy,
// compiled with its own instruction set (where FMA is available std::fma is the instruction, not a libm call).
static inline void rope_rows(float* x, int64_t n, int64_t n_heads, int64_t hd, int64_t half, bool interleaved, const float* cos,
                             const float* sin) {
    for (int64_t i = 0; i < n; ++i) {
        const float* cs = cos + i * half;
        const float* sn = sin + i * half;
        for (int64_t h = 0; h < n_heads; ++h) {
            float* v = x + (i * n_heads + h) * hd;
            for (int64_t j = 0; j < half; ++j) {
                const int64_t a = interleaved ? 2 * j : j, b = interleaved ? 2 * j + 1 : j + half;
                const float x0 = v[a], x1 = v[b];
                v[a] = std::fma(x0, cs[j], -(x1 * sn[j]));
                v[b] = std::fma(x0, sn[j], x1 * cs[j]);
            }
        }
    }
}

// The number of KV cells attention sees: the cells in use, padded to 32, at most the cache size.
// ggml_vec_gelu_f32 (GGML_GELU_FP16, defined in the CPU backend): x ≤ −10 gives 0, x ≥ 10 gives x; otherwise x rounded
// to f16 indexes a table of f16 values of 0.5 x (1 + tanh(√(2/π) x (1 + 0.044715 x²))), in that order of operations.
inline float gelu(float x) {
    static const std::vector<uint16_t> table = [] {
        std::vector<uint16_t> t(65536);
        for (uint32_t i = 0; i < 65536; ++i) {
            const float f = f16_to_f32(static_cast<uint16_t>(i));
            t[i] = f32_to_f16(0.5f * f * (1.0f + std::tanh(0.79788456080286535587989211986876f * f * (1.0f + 0.044715f * f * f))));
        }
        return t;
    }();
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    return f16_to_f32(table[f32_to_f16(x)]);
}

inline int64_t kv_cells(int64_t used, int64_t cache) {
    const int64_t p = (used + 31) / 32 * 32;
    return p < cache ? p : cache;
}

}  // namespace llmforge::ggml
