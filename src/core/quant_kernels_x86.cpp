// The block products of ggml's quantised types with AVX2 (compiled with -mavx2 -mfma -mf16c): weight rows × rows of
// quantised activations (core/quants.h), several activation rows per weight row so that each weight block is unpacked
// once for all of them.
//
// Each output is computed by the same sequence of operations whether it is computed alone or in a tile, so the result
// of a row never depends on how many rows are multiplied together (the engine's batch invariance). Within a block the
// integer products are exact; blocks are combined in float as written below (8 lanes for the 32-value types, one
// scalar per super-block for the K-quants).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/quants.h"

namespace llmforge::quant::x86 {

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline float hsum8(__m256 v) {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

inline int hsum8i(__m256i v) {
    __m128i r = _mm_add_epi32(_mm256_extracti128_si256(v, 1), _mm256_castsi256_si128(v));
    r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    r = _mm_add_epi32(r, _mm_shuffle_epi32(r, 1));
    return _mm_cvtsi128_si32(r);
}

// Σ of 4 adjacent products of unsigned bytes u and signed bytes s, as 8 int32 lanes
inline __m256i dot_us(__m256i u, __m256i s) {
#if defined(LLMFORGE_VNNI)
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// 16 bytes of nibbles → 32 bytes: the low nibbles, then the high ones
inline __m256i nibbles32(const uint8_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(v, 4), v);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

inline __m256i load32(const void* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// ---- the 32-value types with Q8_0 activations: Σ_blocks d_w·d_x·Σ w·x in 8 float lanes ----
template <int NR, class Unpack, class Block>
void rows_q8_0_style(const Block* w, const BlockQ8_0* const* x, int64_t nb, float* out, Unpack unpack) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const __m256i q = unpack(w[b]);       // signed −127 … 127
        const __m256i aq = _mm256_sign_epi8(q, q);
        const float dw = h2f(w[b].d);
        for (int i = 0; i < NR; ++i) {
            const __m256i sy = _mm256_sign_epi8(load32(x[i][b].qs), q);
            const __m256 p = _mm256_cvtepi32_ps(dot_us(aq, sy));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * h2f(x[i][b].d)), p, acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]);
}

template <int NR>
void rows_q8_0(const void* w, const void* const* x, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockQ8_0*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), nb, out,
                        [](const BlockQ8_0& b) { return load32(b.qs); });
}

template <int NR>
void rows_q4_0(const void* w, const void* const* x, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockQ4_0*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), nb, out,
                        [](const BlockQ4_0& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); });
}

// ---- K-quants with Q8_K activations ----

// Q4_K / Q5_K: Σ_j sc_j·(q_j·x_j) in int32 lanes, minus Σ_j m_j·Σx_j; × d, dmin and x's d per super-block
template <int NR, bool Five>
void rows_k4(const void* wv, const void* const* xv, int64_t nb, float* out) {
    using Block = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;
    const Block* w = static_cast<const Block*>(wv);
    const BlockQ8_K* const* x = reinterpret_cast<const BlockQ8_K* const*>(xv);
    float sum[NR] = {};
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) {
        uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) k4_scale_min(j, w[b].scales, sc[j], mn[j]);
        __m256i isum[NR];
        for (int i = 0; i < NR; ++i) isum[i] = _mm256_setzero_si256();
        __m256i qh;
        if constexpr (Five) qh = load32(w[b].qh);
        for (int k = 0; k < 4; ++k) {
            const __m256i q = load32(w[b].qs + 32 * k);
            __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
            if constexpr (Five) {
                const __m128i s_lo = _mm_cvtsi32_si128(2 * k), s_hi = _mm_cvtsi32_si128(2 * k + 1);
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s_lo), one), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(qh, s_hi), one), 4));
            }
            const __m256i s_lo = _mm256_set1_epi16(sc[2 * k]), s_hi = _mm256_set1_epi16(sc[2 * k + 1]);
            for (int i = 0; i < NR; ++i) {
                const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(x[i][b].qs + 64 * k)), s_lo);
                const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(x[i][b].qs + 64 * k + 32)), s_hi);
                isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(pl, ph));
            }
        }
        const float d = h2f(w[b].d), dmin = h2f(w[b].dmin);
        for (int i = 0; i < NR; ++i) {
            int msum = 0;
            for (int j = 0; j < 8; ++j) msum += mn[j] * (x[i][b].bsums[2 * j] + x[i][b].bsums[2 * j + 1]);
            sum[i] += x[i][b].d * (d * static_cast<float>(hsum8i(isum[i])) - dmin * static_cast<float>(msum));
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = sum[i];
}

// Q6_K: values 0…63 (stored + 32) times the signed 8-bit scales of each 16, less 32·Σ_j sc_j·Σx_j
template <int NR>
void rows_q6_k(const void* wv, const void* const* xv, int64_t nb, float* out) {
    const BlockQ6_K* w = static_cast<const BlockQ6_K*>(wv);
    const BlockQ8_K* const* x = reinterpret_cast<const BlockQ8_K* const*>(xv);
    float sum[NR] = {};
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
    for (int64_t b = 0; b < nb; ++b) {
        __m256i isum[NR];
        for (int i = 0; i < NR; ++i) isum[i] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const __m256i qa = load32(ql), qb = load32(ql + 32), qh = load32(w[b].qh + 32 * h);
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
                _mm256_or_si256(_mm256_and_si256(qb, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)),
            };
            const int8_t* sc = w[b].scales + 8 * h;
            for (int k = 0; k < 4; ++k) {
                const __m256i s = _mm256_set_m128i(_mm_set1_epi16(sc[2 * k + 1]), _mm_set1_epi16(sc[2 * k]));
                for (int i = 0; i < NR; ++i) {
                    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(v[k], load32(x[i][b].qs + 128 * h + 32 * k)), s);
                    isum[i] = _mm256_add_epi32(isum[i], p);
                }
            }
        }
        const float d = h2f(w[b].d);
        for (int i = 0; i < NR; ++i) {
            int corr = 0;
            for (int j = 0; j < 16; ++j) corr += w[b].scales[j] * x[i][b].bsums[j];
            sum[i] += x[i][b].d * d * static_cast<float>(hsum8i(isum[i]) - 32 * corr);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = sum[i];
}

using TileFn = void (*)(const void* w, const void* const* x, int64_t nb, float* out);

struct Tiles {
    TileFn one, four;
};

Tiles tiles_for(DType t) {
    switch (t) {
        case DType::Q8_0: return {rows_q8_0<1>, rows_q8_0<4>};
        case DType::Q4_0: return {rows_q4_0<1>, rows_q4_0<4>};
        case DType::Q4_K: return {rows_k4<1, false>, rows_k4<4, false>};
        case DType::Q5_K: return {rows_k4<1, true>, rows_k4<4, true>};
        case DType::Q6_K: return {rows_q6_k<1>, rows_q6_k<4>};
        default: return {nullptr, nullptr};
    }
}

}  // namespace

#if defined(LLMFORGE_VNNI)
#define LF_ROWS_FN rows_vnni
#define LF_HAS_FN has_rows_vnni
#else
#define LF_ROWS_FN rows_avx2
#define LF_HAS_FN has_rows_avx2
#endif

bool LF_HAS_FN(DType t) { return tiles_for(t).one != nullptr; }

// Y[i·ldy + r] = Σ W[r] · X[i] for weight rows [r0, r1) and activation rows [0, n): each weight row meets the activation
// rows four at a time, then one at a time.
void LF_ROWS_FN(DType t, const uint8_t* W, size_t wrb, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n,
                int64_t r0, int64_t r1, int64_t cols) {
    const Tiles f = tiles_for(t);
    const int64_t nb = cols / block_elems(t);
    for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* w = W + static_cast<size_t>(r) * wrb;
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const void* xs[4] = {X + static_cast<size_t>(i) * xrb, X + static_cast<size_t>(i + 1) * xrb,
                                 X + static_cast<size_t>(i + 2) * xrb, X + static_cast<size_t>(i + 3) * xrb};
            float o[4];
            f.four(w, xs, nb, o);
            for (int k = 0; k < 4; ++k) Y[(i + k) * ldy + r] = o[k];
        }
        for (; i < n; ++i) {
            const void* xs[1] = {X + static_cast<size_t>(i) * xrb};
            f.one(w, xs, nb, &Y[i * ldy + r]);
        }
    }
}

}  // namespace llmforge::quant::x86
