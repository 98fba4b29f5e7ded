// The block products of ggml's quantised types with AVX2 (compiled with -mavx2 -mfma -mf16c): weight rows × rows of
// quantised activations (core/quants.h), several activation rows per weight row so that each weight block is unpacked
// once for all of them.
//
// Each output is computed by the same sequence of operations whether it is computed alone or in a tile, so the result
// of a row never depends on how many rows are multiplied together (the engine's batch invariance). Within a block the
// integer products are exact; blocks are combined in float as ggml's x86 kernels combine them: in 8 lanes summed at
// the end (vec_dot's order), or, for Q4_0 matrices that llama.cpp repacks, one FMA chain per output.
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/kernels.h"
#include "core/quants.h"

namespace llmforge::quant::x86 {

namespace {

// Prefetch `lines` cache lines of weights from `ahead` elements (blocks, or bytes) past p, where this CPU streams faster with it
// (kernels::quant_stream_prefetch: not on AMD Zen 5, whose hardware prefetchers follow the stream better alone).
// The choice is read once when the program loads: a function-local static would put a guard and a possible call in
// every kernel's loop, across which the compiler keeps the accumulators in memory (measured 1.5x slower). Always
// inlined: GCC outlines the part after the test, finds the outlined function free of side effects (a prefetch has
// none it counts) and deletes every call to it.
const bool kPrefetch = kernels::quant_stream_prefetch();
template <class T>
[[gnu::always_inline]] inline void prefetch_stream(const T* p, int64_t ahead, int lines) {
    if (!kPrefetch) return;
    const char* q = reinterpret_cast<const char*>(p + ahead);
    for (int l = 0; l < lines; ++l) _mm_prefetch(q + 64 * l, _MM_HINT_T0);
}

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

// 32 bits → 32 bytes, 0xFF where bit j is set: byte j takes source byte j / 8, then tests its bit j % 8
inline __m256i bits_to_bytes(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    const __m256i src = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(v)),
                                            _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    return _mm256_cmpeq_epi8(_mm256_and_si256(src, bit), bit);
}

// Q5_0's 32 values as signed bytes q − 16: the nibbles, with 0xF0 added where the fifth bit is clear
inline __m256i unpack_q5_0(const BlockQ5_0& b) { return _mm256_or_si256(nibbles32(b.qs), _mm256_andnot_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(static_cast<char>(0xF0)))); }

// ---- the 32-value types with Q8_0 activations: Σ_blocks d_w·d_x·Σ w·x in 8 float lanes ----
// dx[i][b]: the activation blocks' scales as f32 (converted once per product, not once per weight row)
template <int NR, class Unpack, class Block>
void rows_q8_0_style(const Block* w, const BlockQ8_0* const* x, const float* const* dx, int64_t nb, float* out, Unpack unpack) {
    // four named accumulators (an array of them was kept in memory by the compiler)
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const BlockQ8_0* x0 = x[0];
    const BlockQ8_0* x1 = NR > 1 ? x[1] : x[0];
    const BlockQ8_0* x2 = NR > 2 ? x[2] : x[0];
    const BlockQ8_0* x3 = NR > 3 ? x[3] : x[0];
    const float* d0 = dx[0];
    const float* d1 = NR > 1 ? dx[1] : dx[0];
    const float* d2 = NR > 2 ? dx[2] : dx[0];
    const float* d3 = NR > 3 ? dx[3] : dx[0];
    constexpr int ahead = 512 / sizeof(Block);  // blocks: the weight stream prefetched ~512 bytes ahead
    for (int64_t b = 0; b < nb; ++b) {
        prefetch_stream(w + b, ahead, 1);
        const __m256i q = unpack(w[b]);  // signed −127 … 127
        const __m256i aq = _mm256_sign_epi8(q, q);
        const __m256 dw = _mm256_set1_ps(h2f(w[b].d));
        auto step = [&](const BlockQ8_0* xr, const float* dr, __m256& acc) {
            const __m256 p = _mm256_cvtepi32_ps(dot_us(aq, _mm256_sign_epi8(load32(xr[b].qs), q)));
            acc = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_broadcast_ss(&dr[b])), p, acc);
        };
        step(x0, d0, a0);
        if constexpr (NR > 1) step(x1, d1, a1);
        if constexpr (NR > 2) step(x2, d2, a2);
        if constexpr (NR > 3) step(x3, d3, a3);
    }
    out[0] = hsum8(a0);
    if constexpr (NR > 1) out[1] = hsum8(a1);
    if constexpr (NR > 2) out[2] = hsum8(a2);
    if constexpr (NR > 3) out[3] = hsum8(a3);
}

// Two weight rows with four activation rows: each activation block is loaded once for both rows (the same operations
// per output as rows_q8_0_style, so the results are the same bit for bit).
template <class Unpack, class Block>
void rows2_q8_0_style(const Block* wa, const Block* wb, const BlockQ8_0* const* x, const float* const* dx, int64_t nb, float* out,
                      Unpack unpack) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const BlockQ8_0 *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    const float *d0 = dx[0], *d1 = dx[1], *d2 = dx[2], *d3 = dx[3];
    for (int64_t b = 0; b < nb; ++b) {
        const __m256i qa = unpack(wa[b]), qb = unpack(wb[b]);
        const __m256i aqa = _mm256_sign_epi8(qa, qa), aqb = _mm256_sign_epi8(qb, qb);
        const __m256 dwa = _mm256_set1_ps(h2f(wa[b].d)), dwb = _mm256_set1_ps(h2f(wb[b].d));
        auto step = [&](const BlockQ8_0* xr, const float* dr, __m256& acc_a, __m256& acc_b) {
            const __m256i y = load32(xr[b].qs);
            const __m256 dy = _mm256_broadcast_ss(&dr[b]);
            const __m256 pa = _mm256_cvtepi32_ps(dot_us(aqa, _mm256_sign_epi8(y, qa)));
            acc_a = _mm256_fmadd_ps(_mm256_mul_ps(dwa, dy), pa, acc_a);
            const __m256 pb = _mm256_cvtepi32_ps(dot_us(aqb, _mm256_sign_epi8(y, qb)));
            acc_b = _mm256_fmadd_ps(_mm256_mul_ps(dwb, dy), pb, acc_b);
        };
        step(x0, d0, a0, b0);
        step(x1, d1, a1, b1);
        step(x2, d2, a2, b2);
        step(x3, d3, a3, b3);
    }
    out[0] = hsum8(a0), out[1] = hsum8(a1), out[2] = hsum8(a2), out[3] = hsum8(a3);
    out[4] = hsum8(b0), out[5] = hsum8(b1), out[6] = hsum8(b2), out[7] = hsum8(b3);
}

void rows2_q8_0(const void* wa, const void* wb, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows2_q8_0_style(static_cast<const BlockQ8_0*>(wa), static_cast<const BlockQ8_0*>(wb), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb,
                     out, [](const BlockQ8_0& b) { return load32(b.qs); });
}

void rows2_q4_0(const void* wa, const void* wb, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows2_q8_0_style(static_cast<const BlockQ4_0*>(wa), static_cast<const BlockQ4_0*>(wb), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb,
                     out, [](const BlockQ4_0& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); });
}

// ---- Q4_0 in the order of ggml's repacked q4_0_8x8 kernels (quants.h: vec_dot_q4_0_chain): per output one FMA
// chain over the blocks of the exact integer sum times d_w·d_x. The nibbles are multiplied unsigned (0…15) and 8·Σx
// taken off, which is the same integer. sx[i][b] = Σ of activation block b of row i.
// one weight row with one activation row (a thread's rows before or after its whole groups of eight)
float chain_q4_0(const BlockQ4_0* w, const BlockQ8_0* x, const float* dx, const int32_t* sx, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        const int32_t s = hsum8i(dot_us(nibbles32(w[b].qs), load32(x[b].qs))) - 8 * sx[b];
        acc = std::fma(static_cast<float>(s), h2f(w[b].d) * dx[b], acc);
    }
    return acc;
}

// eight weight rows (wrb bytes apart), NR activation rows: out[i·8 + r]. The eight rows' integer sums of a block are
// gathered into one vector (lane r: row r) by a tree of horizontal adds, so that one FMA serves all eight.
template <int NR>
void chain8_q4_0(const uint8_t* w, size_t wrb, const BlockQ8_0* const* x, const float* const* dx, const int32_t* const* sx, int64_t nb,
                 float* out) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const BlockQ4_0* row[8];
    for (int r = 0; r < 8; ++r) row[r] = reinterpret_cast<const BlockQ4_0*>(w + static_cast<size_t>(r) * wrb);
    for (int64_t b = 0; b < nb; ++b) {
        __m256i qu[8];
        alignas(16) uint16_t d16[8];
        for (int r = 0; r < 8; ++r) {
            prefetch_stream(row[r] + b, 8, 1);
            qu[r] = nibbles32(row[r][b].qs);
            d16[r] = row[r][b].d;
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d16)));
        for (int i = 0; i < NR; ++i) {
            const __m256i y = load32(x[i][b].qs);
            const __m256i h01 = _mm256_hadd_epi32(dot_us(qu[0], y), dot_us(qu[1], y));
            const __m256i h23 = _mm256_hadd_epi32(dot_us(qu[2], y), dot_us(qu[3], y));
            const __m256i h45 = _mm256_hadd_epi32(dot_us(qu[4], y), dot_us(qu[5], y));
            const __m256i h67 = _mm256_hadd_epi32(dot_us(qu[6], y), dot_us(qu[7], y));
            const __m256i h0123 = _mm256_hadd_epi32(h01, h23), h4567 = _mm256_hadd_epi32(h45, h67);  // per 128-bit half: rows 0-3 | 4-7
            __m256i s = _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31));
            s = _mm256_sub_epi32(s, _mm256_set1_epi32(8 * sx[i][b]));
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(dx[i][b])), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) _mm256_storeu_ps(out + i * 8, acc[i]);
}

// ---- Q4_0 interleaved by eight rows (quants.h: interleave_q4_0), the same order as chain8_q4_0 without its horizontal
// adds: a group block is the eight rows' f16 scales, then four chunks of 32 bytes, chunk c holding bytes 4c … 4c+3 of
// each row's nibbles (row r at 4r): lane r of a 32-bit product gathers row r's four nibble pairs, so four activation
// bytes broadcast to every lane give the eight rows' sums side by side. Low nibbles are values 4c…4c+3, high ones 16+4c….
inline __m256i dot_us_acc(__m256i acc, __m256i u, __m256i s) {
#if defined(LLMFORGE_VNNI)
    return _mm256_dpbusd_epi32(acc, u, s);
#else
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

inline __m256i bcast4(const int8_t* p) {
    int32_t v;
    std::memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

// one group of eight rows (its blocks nb · 144 bytes from g), NR activation rows: out[i·ldo + r]
template <int NR>
void group8_q4_0(const uint8_t* g, const BlockQ8_0* const* x, const float* const* dx, const int32_t* const* sx, int64_t nb, float* out,
                 int64_t ldo) {
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t b = 0; b < nb; ++b, g += kQ4_0GroupBlockBytes) {
        prefetch_stream(g, 4 * kQ4_0GroupBlockBytes, 3);
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g)));
        __m256i lo[4], hi[4];
        for (int c = 0; c < 4; ++c) {
            const __m256i v = load32(g + 16 + 32 * c);
            lo[c] = _mm256_and_si256(v, m4);
            hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        for (int i = 0; i < NR; ++i) {
            const int8_t* y = x[i][b].qs;
            // Σ u·y − 8·Σy, the same integers as Σ (u − 8)·y; two chains, added (exact)
            __m256i s0 = _mm256_set1_epi32(-8 * sx[i][b]), s1 = _mm256_setzero_si256();
            s0 = dot_us_acc(s0, lo[0], bcast4(y + 0));
            s1 = dot_us_acc(s1, hi[0], bcast4(y + 16));
            s0 = dot_us_acc(s0, lo[1], bcast4(y + 4));
            s1 = dot_us_acc(s1, hi[1], bcast4(y + 20));
            s0 = dot_us_acc(s0, lo[2], bcast4(y + 8));
            s1 = dot_us_acc(s1, hi[2], bcast4(y + 24));
            s0 = dot_us_acc(s0, lo[3], bcast4(y + 12));
            s1 = dot_us_acc(s1, hi[3], bcast4(y + 28));
            const __m256i s = _mm256_add_epi32(s0, s1);
            acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(dw, _mm256_set1_ps(dx[i][b])), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) _mm256_storeu_ps(out + i * ldo, acc[i]);
}

template <int NR>
void rows_q8_0(const void* w, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockQ8_0*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb, out,
                        [](const BlockQ8_0& b) { return load32(b.qs); });
}

// ---- the affine 32-value types with Q8_1 activations (ggml_vec_dot_q4_1_q8_1 / _q5_1_q8_1's AVX2 order): the blocks'
// d_w·d_x·Σ q·x in 8 float lanes (q unsigned), the minimums' m·s summed apart in block order, added at the end
template <int NR, class Block, class Unpack>
void rows_q8_1_style(const Block* w, const BlockQ8_1* const* x, int64_t nb, float* out, Unpack unpack) {
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    float summs[4] = {0, 0, 0, 0};
    constexpr int ahead = 512 / sizeof(Block);
    for (int64_t b = 0; b < nb; ++b) {
        prefetch_stream(w + b, ahead, 1);
        const __m256i q = unpack(w[b]);  // unsigned 0 … 31
        const float dw = h2f(w[b].d), mw = h2f(w[b].m);
        for (int i = 0; i < NR; ++i) {
            const BlockQ8_1& y = x[i][b];
            summs[i] += mw * h2f(y.s);
            const __m256 p = _mm256_cvtepi32_ps(dot_us(q, load32(y.qs)));
            acc[i] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(dw), _mm256_set1_ps(h2f(y.d))), p, acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]) + summs[i];
}

inline __m256i unpack_q4_1(const BlockQ4_1& b) { return nibbles32(b.qs); }
// Q5_1's values 0 … 31: the nibbles, with 0x10 where the fifth bit is set
inline __m256i unpack_q5_1(const BlockQ5_1& b) { return _mm256_or_si256(nibbles32(b.qs), _mm256_and_si256(bits_to_bytes(b.qh), _mm256_set1_epi8(0x10))); }

template <int NR>
void rows_q4_1(const void* w, const void* const* x, const float* const*, int64_t nb, float* out) {
    rows_q8_1_style<NR>(static_cast<const BlockQ4_1*>(w), reinterpret_cast<const BlockQ8_1* const*>(x), nb, out, unpack_q4_1);
}
template <int NR>
void rows_q5_1(const void* w, const void* const* x, const float* const*, int64_t nb, float* out) {
    rows_q8_1_style<NR>(static_cast<const BlockQ5_1*>(w), reinterpret_cast<const BlockQ8_1* const*>(x), nb, out, unpack_q5_1);
}

// IQ4_NL's 32 values as signed bytes: each nibble looks its level up (one byte shuffle)
inline __m256i unpack_iq4_nl(const BlockIQ4_NL& b) {
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4NlLevels)));
    return _mm256_shuffle_epi8(levels, nibbles32(b.qs));
}

// IQ4_NL in the order of llamafile's tinyBLAS, which llama.cpp's CPU backend runs for it whenever two or more rows are
// multiplied (prompts; its single-row vec_dot pairs the blocks differently): vec_dot's structure of Q8_0
template <int NR>
void rows_iq4_nl(const void* w, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockIQ4_NL*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb, out, unpack_iq4_nl);
}

void rows2_iq4_nl(const void* wa, const void* wb, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows2_q8_0_style(static_cast<const BlockIQ4_NL*>(wa), static_cast<const BlockIQ4_NL*>(wb), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb,
                     out, unpack_iq4_nl);
}

template <int NR>
void rows_q5_0(const void* w, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockQ5_0*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb, out, unpack_q5_0);
}

void rows2_q5_0(const void* wa, const void* wb, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows2_q8_0_style(static_cast<const BlockQ5_0*>(wa), static_cast<const BlockQ5_0*>(wb), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb,
                     out, unpack_q5_0);
}

template <int NR>
void rows_q4_0(const void* w, const void* const* x, const float* const* dx, int64_t nb, float* out) {
    rows_q8_0_style<NR>(static_cast<const BlockQ4_0*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nb, out,
                        [](const BlockQ4_0& b) { return _mm256_sub_epi8(nibbles32(b.qs), _mm256_set1_epi8(8)); });
}

// ---- K-quants with Q8_K activations ----

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block (k4_scale_min's layout) with 32-bit word operations:
// scales 0–3 and mins 0–3 are the low 6 bits of bytes 0–3 and 4–7; scales 4–7 and mins 4–7 take the low and high
// nibbles of bytes 8–11 with the top 2 bits of bytes 0–3 and 4–7 above them.
inline void k4_unpack_scales(const uint8_t* s, uint8_t* sc, uint8_t* mn) {
    uint32_t u[3];
    std::memcpy(u, s, 12);
    const uint32_t six = 0x3f3f3f3f, four = 0x0f0f0f0f, two = 0x03030303;
    const uint32_t out[4] = {u[0] & six, (u[2] & four) | (((u[0] >> 6) & two) << 4), u[1] & six,
                             ((u[2] >> 4) & four) | (((u[1] >> 6) & two) << 4)};
    std::memcpy(sc, out, 8);
    std::memcpy(mn, out + 2, 8);
}

// Each of 8 bytes twice, as 16 int16 (a Q4_K/Q5_K super-block's mins against the activations' 16 sums of 16)
inline __m256i twice16(const uint8_t* v8) {
    const __m128i w = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v8)));
    return _mm256_set_m128i(_mm_unpackhi_epi16(w, w), _mm_unpacklo_epi16(w, w));
}
inline __m256i bsums16(const BlockQ8_K& x) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.bsums)); }

// Q4_K / Q5_K: Σ_j sc_j·(q_j·x_j) in 8 int32 lanes, scaled by d·x.d into 8 float lanes; the mins' term
// −dmin·x.d·Σ_j m_j·Σx_j from the sums of 32 (4 lanes, pairs of sub-blocks) — in Q4_K into 4 float lanes, in Q5_K as
// one scalar per super-block. The lanes and their order are those of ggml's AVX2 kernels (ggml_vec_dot_q4_K_q8_K /
// _q5_K_q8_K), so that with the activations quantised as ggml quantises them the result is ggml's bit for bit.
template <int NR, bool Five>
void rows_k4(const void* wv, const void* const* xv, const float* const*, int64_t nb, float* out) {
    using Block = std::conditional_t<Five, BlockQ5_K, BlockQ4_K>;
    const Block* w = static_cast<const Block*>(wv);
    const BlockQ8_K* const* x = reinterpret_cast<const BlockQ8_K* const*>(xv);
    __m256 acc[NR];
    __m128 accm[NR];
    float summs[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps(), accm[i] = _mm_setzero_ps(), summs[i] = 0.f;
    const __m256i low4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) {
        uint8_t sc[8], mn[8];
        k4_unpack_scales(w[b].scales, sc, mn);
        const __m128i mins = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn)));
        // the 8 scales as int16 in both halves; scale j is spread over all lanes by one byte shuffle (not extracted,
        // stored and broadcast from memory)
        const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sc))));
        prefetch_stream(w + b, 2, 3);
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
            const __m256i s_lo = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (2 * k))));
            const __m256i s_hi = _mm256_shuffle_epi8(sc16, _mm256_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (2 * k + 1))));
            for (int i = 0; i < NR; ++i) {
                const __m256i pl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, load32(x[i][b].qs + 64 * k)), s_lo);
                const __m256i ph = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, load32(x[i][b].qs + 64 * k + 32)), s_hi);
                isum[i] = _mm256_add_epi32(isum[i], _mm256_add_epi32(pl, ph));
            }
        }
        const float d = h2f(w[b].d), dmin = h2f(w[b].dmin);
        for (int i = 0; i < NR; ++i) {
            const __m256i bs = bsums16(x[i][b]);
            const __m128i s32 = _mm_hadd_epi16(_mm256_castsi256_si128(bs), _mm256_extracti128_si256(bs, 1));  // Σx of each 32
            const __m128i prod = _mm_madd_epi16(mins, s32);
            const float dm = -x[i][b].d * dmin;
            if constexpr (Five) {
                const __m128i h = _mm_hadd_epi32(_mm_hadd_epi32(prod, _mm_setzero_si128()), _mm_setzero_si128());
                // one rounding, as ggml's compiled `summs += dmin * …` (GCC contracts it into a fused multiply-add)
                summs[i] = std::fma(dm, static_cast<float>(_mm_cvtsi128_si32(h)), summs[i]);
            } else {
                accm[i] = _mm_fmadd_ps(_mm_set1_ps(dm), _mm_cvtepi32_ps(prod), accm[i]);
            }
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(x[i][b].d * d), _mm256_cvtepi32_ps(isum[i]), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) {
        if constexpr (Five) {
            out[i] = hsum8(acc[i]) + summs[i];
        } else {
            __m128 m = _mm_add_ps(accm[i], _mm_movehl_ps(accm[i], accm[i]));
            m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[i] = hsum8(acc[i]) + _mm_cvtss_f32(m);
        }
    }
}

// Q6_K: values 0…63 (stored + 32) less 32, times the signed 8-bit scales of each 16, in int32 lanes; each super-block
// adds them, scaled by d·x.d, to a float accumulator of 8 lanes (ggml_vec_dot_q6_K_q8_K's AVX2 lanes and order).
template <int NR>
void rows_q6_k(const void* wv, const void* const* xv, const float* const*, int64_t nb, float* out) {
    const BlockQ6_K* w = static_cast<const BlockQ6_K*>(wv);
    const BlockQ8_K* const* x = reinterpret_cast<const BlockQ8_K* const*>(xv);
    __m256 acc[NR];
    for (int i = 0; i < NR; ++i) acc[i] = _mm256_setzero_ps();
    const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03), m32 = _mm256_set1_epi8(32);
    for (int64_t b = 0; b < nb; ++b) {
        __m256i isum[NR];
        for (int i = 0; i < NR; ++i) isum[i] = _mm256_setzero_si256();
        prefetch_stream(w + b, 4, 4);
        for (int h = 0; h < 2; ++h) {
            const uint8_t* ql = w[b].ql + 64 * h;
            const __m256i qa = load32(ql), qb = load32(ql + 32), qh = load32(w[b].qh + 32 * h);
            const __m256i v[4] = {
                _mm256_or_si256(_mm256_and_si256(qa, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
                _mm256_or_si256(_mm256_and_si256(qb, low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qa, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qb, 4), low4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4)),
            };
            // this half's 8 scales as int16 in both 128-bit halves; chunk k takes scale 2k in its low half, 2k+1 in its high
            const __m256i sc16 = _mm256_broadcastsi128_si256(_mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[b].scales + 8 * h))));
            for (int k = 0; k < 4; ++k) {
                const __m256i s = _mm256_shuffle_epi8(sc16, _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (2 * k + 1))),
                                                                              _mm_set1_epi16(static_cast<int16_t>(0x0100 + 0x0202 * (2 * k)))));
                for (int i = 0; i < NR; ++i) {
                    const __m256i y = load32(x[i][b].qs + 128 * h + 32 * k);
                    // (q − 32)·x per pair of bytes in 16 bits, then × the scale: ggml's lanes
                    const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(v[k], y), _mm256_maddubs_epi16(m32, y));
                    isum[i] = _mm256_add_epi32(isum[i], _mm256_madd_epi16(s, p16));
                }
            }
        }
        const float d = h2f(w[b].d);
        for (int i = 0; i < NR; ++i) {
            const float dd = x[i][b].d * d;
            acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(&dd), _mm256_cvtepi32_ps(isum[i]), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]);
}

// ---- Q2_K (ggml_vec_dot_q2_K_q8_K's AVX2 lanes): per super-block, the minimums' term Σ min·bsum in 8 int32 lanes
// (pairs of the 16 sub-blocks) added with −d_x·dmin, then the 2-bit values' products in 8 lanes (lane l: bytes 4l … 4l+3
// of each 32-value load, times their sub-block's scale) added with d_x·d; the lanes summed at the end.
template <int NR>
void rows_q2_k(const void* w, const void* const* x, const float* const*, int64_t nb, float* out) {
    const BlockQ2_K* wb = static_cast<const BlockQ2_K*>(w);
    const BlockQ8_K* const* y = reinterpret_cast<const BlockQ8_K* const*>(x);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i m3 = _mm256_set1_epi8(3);
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ2_K& B = wb[b];
        prefetch_stream(wb + b, 4, 1);
        const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(B.scales));
        const __m256i mins = _mm256_cvtepi8_epi16(_mm_and_si128(_mm_srli_epi16(packed, 4), _mm_set1_epi8(0x0F)));
        __m256i scale[8], q[8];  // [half j · 4 + plane k]: sub-blocks 8j + 2k (low 16 bytes) and 8j + 2k + 1 (high 16)
        for (int j = 0; j < 2; ++j) {
            const __m256i bits = load32(B.qs + 32 * j);
            for (int k = 0; k < 4; ++k) {
                q[j * 4 + k] = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const int s = 8 * j + 2 * k;
                scale[j * 4 + k] = _mm256_set_m128i(_mm_set1_epi16(B.scales[s + 1] & 0x0F), _mm_set1_epi16(B.scales[s] & 0x0F));
            }
        }
        const float dw = h2f(B.d), mw = h2f(B.dmin);
        for (int i = 0; i < NR; ++i) {
            const BlockQ8_K& Y = y[i][b];
            const float d = Y.d * dw, dmin = -Y.d * mw;
            const __m256i prod = _mm256_madd_epi16(mins, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Y.bsums)));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dmin), _mm256_cvtepi32_ps(prod), acc[i]);
            __m256i sumi = _mm256_setzero_si256();
            for (int t = 0; t < 8; ++t)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale[t], _mm256_maddubs_epi16(q[t], load32(Y.qs + 32 * t))));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]);
}

// ---- Q3_K (ggml_vec_dot_q3_K_q8_K's AVX2 lanes): the same lanes as Q2_K's, the values q − 4 (q the 2 low bits and
// the hmask bit above them: bit 4j + k of byte m for value 128j + 32k + m), the 6-bit scales − 32, no minimums
template <int NR>
void rows_q3_k(const void* w, const void* const* x, const float* const*, int64_t nb, float* out) {
    const BlockQ3_K* wb = static_cast<const BlockQ3_K*>(w);
    const BlockQ8_K* const* y = reinterpret_cast<const BlockQ8_K* const*>(x);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < nb; ++b) {
        const BlockQ3_K& B = wb[b];
        prefetch_stream(wb + b, 4, 1);
        int8_t sc[16];
        q3k_scales(B.scales, sc);
        const __m256i hbits = load32(B.hmask);
        __m256i scale[8], q[8], aq[8];
        for (int j = 0; j < 2; ++j) {
            const __m256i bits = load32(B.qs + 32 * j);
            for (int k = 0; k < 4; ++k) {
                const int t = j * 4 + k;
                const __m256i low = _mm256_and_si256(_mm256_srli_epi16(bits, 2 * k), m3);
                const __m256i high = _mm256_and_si256(_mm256_srli_epi16(hbits, t), one);                  // 0 or 1
                q[t] = _mm256_sub_epi8(low, _mm256_andnot_si256(_mm256_slli_epi16(high, 2), _mm256_set1_epi8(4)));  // q − 4
                aq[t] = _mm256_sign_epi8(q[t], q[t]);
                scale[t] = _mm256_set_m128i(_mm_set1_epi16(sc[8 * j + 2 * k + 1]), _mm_set1_epi16(sc[8 * j + 2 * k]));
            }
        }
        const float dw = h2f(B.d);
        for (int i = 0; i < NR; ++i) {
            const BlockQ8_K& Y = y[i][b];
            const float d = Y.d * dw;
            __m256i sumi = _mm256_setzero_si256();
            for (int t = 0; t < 8; ++t)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(scale[t], _mm256_maddubs_epi16(aq[t], _mm256_sign_epi8(load32(Y.qs + 32 * t), q[t]))));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]);
}

// ---- IQ4_XS (ggml_vec_dot_iq4_xs_q8_K's AVX2 lanes): per 32-value sub-block its levels times the activations in 8
// lanes, times the sub-block's 6-bit scale − 32; per super-block the lanes' integers times d_w·d_x
template <int NR>
void rows_iq4_xs(const void* w, const void* const* x, const float* const*, int64_t nb, float* out) {
    const BlockIQ4_XS* wb = static_cast<const BlockIQ4_XS*>(w);
    const BlockQ8_K* const* y = reinterpret_cast<const BlockQ8_K* const*>(x);
    __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4NlLevels)));
    for (int64_t b = 0; b < nb; ++b) {
        const BlockIQ4_XS& B = wb[b];
        prefetch_stream(wb + b, 4, 1);
        __m256i q[8], aq[8], scale[8];
        for (int t = 0; t < 8; ++t) {
            q[t] = _mm256_shuffle_epi8(levels, nibbles32(B.qs + 16 * t));
            aq[t] = _mm256_sign_epi8(q[t], q[t]);
            const int ls = (((B.scales_l[t / 2] >> (4 * (t % 2))) & 0xF) | (((B.scales_h >> (2 * t)) & 3) << 4)) - 32;
            scale[t] = _mm256_set1_epi16(static_cast<int16_t>(ls));
        }
        const float dw = h2f(B.d);
        for (int i = 0; i < NR; ++i) {
            const BlockQ8_K& Y = y[i][b];
            __m256i sumi = _mm256_setzero_si256();
            for (int t = 0; t < 8; ++t)
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(_mm256_maddubs_epi16(aq[t], _mm256_sign_epi8(load32(Y.qs + 32 * t), q[t])), scale[t]));
            acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(dw * Y.d), _mm256_cvtepi32_ps(sumi), acc[i]);
        }
    }
    for (int i = 0; i < NR; ++i) out[i] = hsum8(acc[i]);
}

#if defined(LLMFORGE_VNNI)
// ---- Four weight rows × four activation rows of the signed 32-value types with Q8_0 activations (Q8_0, Q5_0, IQ4_NL),
// in sixteen registers of 8 float lanes (AVX512-VL gives 32 vector registers). vpdpbusd multiplies unsigned by signed
// bytes, so the weights go in as q + 128 (q ^ 0x80) and each lane starts from −128 · Σ of its four activation bytes
// (nl: per activation block, computed once per product): the lane's integer is Σ q·y over the same four values as
// rows_q8_0_style's, so every output keeps its order bit for bit, without the per-product sign fix-up.
template <class Unpack, class Block>
void rows4x4_q8_0_style(const Block* const* w, const BlockQ8_0* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb,
                        float* out, Unpack unpack) {
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) acc[k][i] = _mm256_setzero_ps();
    const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
    for (int64_t b = 0; b < nb; ++b) {
        __m256i u[4];
        __m256 dw[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
            u[k] = _mm256_xor_si256(unpack(w[k][b]), flip);
            dw[k] = _mm256_set1_ps(h2f(w[k][b].d));
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) {
            const __m256i y = load32(x[i][b].qs);
            const __m256i n0 = load32(nl[i] + 8 * b);
            const __m256 dy = _mm256_broadcast_ss(&dx[i][b]);
#pragma GCC unroll 4
            for (int k = 0; k < 4; ++k) {
                const __m256 p = _mm256_cvtepi32_ps(_mm256_dpbusd_epi32(n0, u[k], y));
                acc[k][i] = _mm256_fmadd_ps(_mm256_mul_ps(dw[k], dy), p, acc[k][i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) out[k * 4 + i] = hsum8(acc[k][i]);
}

// The same tile on 512-bit vectors: two weight rows side by side in one register (row 2p in the low 256 bits, row 2p+1
// in the high), the activation block, its lane sums and its scale broadcast to both halves straight from memory. Each
// half computes exactly what rows4x4_q8_0_style computes for its row (the same lanes, the same operations in the same
// order) with half as many instructions. 2·NP weight rows × NI activation rows (NI ≤ 4): out[k·4 + i]. With NI < 4
// (decoding's one row, a short verification pass's two or three) the 2·NP rows' chains run side by side, where one
// weight row at a time waits on its single accumulator's fused multiply-add for every block.
inline float hsum8_lo(__m512 v) { return hsum8(_mm512_castps512_ps256(v)); }
inline float hsum8_hi(__m512 v) { return hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); }

template <int NP, int NI, class Unpack, class Block>
void rows_pairs_q8_0_style(const Block* const* w, const BlockQ8_0* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb,
                           float* out, Unpack unpack) {
    __m512 acc[NP][NI];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
        for (int i = 0; i < NI; ++i) acc[p][i] = _mm512_setzero_ps();
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
    constexpr int ahead = 512 / sizeof(Block);  // blocks: with few activation rows the weights stream from memory, prefetched
    for (int64_t b = 0; b < nb; ++b) {
        __m512i u[NP];
        __m512 dw[NP];
        if constexpr (NI < 4) {
#pragma GCC unroll 8
            for (int k = 0; k < 2 * NP; ++k) prefetch_stream(w[k] + b, ahead, 1);
        }
#pragma GCC unroll 4
        for (int p = 0; p < NP; ++p) {
            const Block& lo = w[2 * p][b];
            const Block& hi = w[2 * p + 1][b];
            u[p] = _mm512_xor_si512(_mm512_inserti64x4(_mm512_castsi256_si512(unpack(lo)), unpack(hi), 1), flip);
            dw[p] = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(h2f(lo.d)), _mm512_set1_ps(h2f(hi.d)));
        }
#pragma GCC unroll 4
        for (int i = 0; i < NI; ++i) {
            const __m512i y = _mm512_broadcast_i64x4(load32(x[i][b].qs));
            const __m512i n0 = _mm512_broadcast_i64x4(load32(nl[i] + 8 * b));
            const __m512 dy = _mm512_set1_ps(dx[i][b]);
#pragma GCC unroll 4
            for (int p = 0; p < NP; ++p) {
                const __m512 q = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(n0, u[p], y));
                acc[p][i] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], dy), q, acc[p][i]);
            }
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p)
#pragma GCC unroll 4
        for (int i = 0; i < NI; ++i) {
            out[(2 * p) * 4 + i] = hsum8_lo(acc[p][i]);
            out[(2 * p + 1) * 4 + i] = hsum8_hi(acc[p][i]);
        }
}

using Tile4x4Fn = void (*)(const void* const* w, const void* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb, float* out);

// 512-bit tiles (rows_pairs_q8_0_style) unless LLMFORGE_TILE_ZMM=0
inline bool tile_zmm() {
    static const bool on = [] {
        const char* e = std::getenv("LLMFORGE_TILE_ZMM");
        return !(e && e[0] == '0');
    }();
    return on;
}

// A tile of `rows` weight rows × 4 activation rows: 8 in the 512-bit form (four pairs), 4 in either form.
template <class Block, class Unpack>
Tile4x4Fn tile(int rows) {
    using Fn = Tile4x4Fn;
    if (rows == 8)
        return Fn{[](const void* const* w, const void* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb, float* out) {
            rows_pairs_q8_0_style<4, 4>(reinterpret_cast<const Block* const*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nl, nb, out,
                                     Unpack{});
        }};
    if (tile_zmm())
        return Fn{[](const void* const* w, const void* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb, float* out) {
            rows_pairs_q8_0_style<2, 4>(reinterpret_cast<const Block* const*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nl, nb, out,
                                     Unpack{});
        }};
    return Fn{[](const void* const* w, const void* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb, float* out) {
        rows4x4_q8_0_style(reinterpret_cast<const Block* const*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nl, nb, out, Unpack{});
    }};
}

struct UnpackQ8_0 {
    __m256i operator()(const BlockQ8_0& b) const { return load32(b.qs); }
};
struct UnpackQ5_0 {
    __m256i operator()(const BlockQ5_0& b) const { return unpack_q5_0(b); }
};
struct UnpackIQ4_NL {
    __m256i operator()(const BlockIQ4_NL& b) const { return unpack_iq4_nl(b); }
};

// The tile of `rows` (4 or 8) for a signed 32-value type, or null (8 rows: only with the 512-bit tiles).
Tile4x4Fn tile_for(DType t, int rows) {
    if (rows == 8 && !tile_zmm()) return nullptr;
    switch (t) {
        case DType::Q8_0: return tile<BlockQ8_0, UnpackQ8_0>(rows);
        case DType::Q5_0: return tile<BlockQ5_0, UnpackQ5_0>(rows);
        case DType::IQ4_NL: return tile<BlockIQ4_NL, UnpackIQ4_NL>(rows);
        default: return nullptr;
    }
}

// 8 weight rows × NI (1 to 3) activation rows in the 512-bit form: decoding's single row, or the rows a product has
// left over after its groups of four. out[k·4 + i], as the tiles of four.
template <class Block, class Unpack, int NI>
void tail8(const void* const* w, const void* const* x, const float* const* dx, const int32_t* const* nl, int64_t nb, float* out) {
    rows_pairs_q8_0_style<4, NI>(reinterpret_cast<const Block* const*>(w), reinterpret_cast<const BlockQ8_0* const*>(x), dx, nl, nb, out,
                                 Unpack{});
}

template <class Block, class Unpack>
Tile4x4Fn tail(int ni) {
    switch (ni) {
        case 1: return tail8<Block, Unpack, 1>;
        case 2: return tail8<Block, Unpack, 2>;
        case 3: return tail8<Block, Unpack, 3>;
        default: return nullptr;
    }
}

// The tile of 8 weight rows × ni activation rows (1 to 3) for a signed 32-value type, or null (only with the 512-bit
// tiles).
Tile4x4Fn tail_for(DType t, int ni) {
    if (!tile_zmm()) return nullptr;
    switch (t) {
        case DType::Q8_0: return tail<BlockQ8_0, UnpackQ8_0>(ni);
        case DType::Q5_0: return tail<BlockQ5_0, UnpackQ5_0>(ni);
        case DType::IQ4_NL: return tail<BlockIQ4_NL, UnpackIQ4_NL>(ni);
        default: return nullptr;
    }
}

// The most bytes of weight rows one thread multiplies by the tail tiles (a share of a core's L2 cache).
constexpr size_t kTailMaxBytes = size_t{256} << 10;

// per activation block of n rows: −128 · the sums of its bytes four by four (the lanes of rows4x4_q8_0_style)
const int32_t* neg_lane_sums(const uint8_t* X, size_t xrb, int64_t n, int64_t nb) {
    thread_local std::vector<int32_t> v;
    v.resize(static_cast<size_t>(n * nb * 8));
    for (int64_t i = 0; i < n; ++i) {
        const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(X + static_cast<size_t>(i) * xrb);
        for (int64_t b = 0; b < nb; ++b)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(v.data() + 8 * (i * nb + b)),
                                _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(dot_us(_mm256_set1_epi8(1), load32(xb[b].qs)), 7)));
    }
    return v.data();
}
#endif

using TileFn = void (*)(const void* w, const void* const* x, const float* const* dx, int64_t nb, float* out);

using Tile2Fn = void (*)(const void* wa, const void* wb, const void* const* x, const float* const* dx, int64_t nb, float* out);

struct Tiles {
    TileFn one, four;
    Tile2Fn two_by_four = nullptr;  // two weight rows × four activation rows, where there is one
};

Tiles tiles_for(DType t) {
    switch (t) {
        case DType::Q8_0: return {rows_q8_0<1>, rows_q8_0<4>, rows2_q8_0};
        case DType::Q4_0: return {rows_q4_0<1>, rows_q4_0<4>, rows2_q4_0};
        case DType::Q5_0: return {rows_q5_0<1>, rows_q5_0<4>, rows2_q5_0};
        case DType::Q4_1: return {rows_q4_1<1>, rows_q4_1<4>};
        case DType::IQ4_NL: return {rows_iq4_nl<1>, rows_iq4_nl<4>, rows2_iq4_nl};
        case DType::Q5_1: return {rows_q5_1<1>, rows_q5_1<4>};
        case DType::Q2_K: return {rows_q2_k<1>, rows_q2_k<4>};
        case DType::Q3_K: return {rows_q3_k<1>, rows_q3_k<4>};
        case DType::IQ4_XS: return {rows_iq4_xs<1>, rows_iq4_xs<4>};
        case DType::Q4_K: return {rows_k4<1, false>, rows_k4<4, false>};
        case DType::Q5_K: return {rows_k4<1, true>, rows_k4<4, true>};
        case DType::Q6_K: return {rows_q6_k<1>, rows_q6_k<4>};
        default: return {nullptr, nullptr};
    }
}

}  // namespace

#if defined(LLMFORGE_VNNI)
#define LF_ROWS_FN rows_vnni
#define LF_ROWS8_FN rows8_q4_0_vnni
#define LF_HAS_FN has_rows_vnni
#else
#define LF_ROWS_FN rows_avx2
#define LF_ROWS8_FN rows8_q4_0_avx2
#define LF_HAS_FN has_rows_avx2
#endif

bool LF_HAS_FN(DType t) { return tiles_for(t).one != nullptr; }

namespace {

// The n Q8_0 activation rows' block scales as f32 (converted once per product, not once per weight row) and, where
// asked, each block's Σ of its 32 values (for the unsigned-nibble products of Q4_0's chain order).
struct Q8_0Rows {
    const uint8_t* X;
    size_t xrb;
    int64_t nb;
    const float* scales;
    const int32_t* sums;
    const BlockQ8_0* row(int64_t i) const { return reinterpret_cast<const BlockQ8_0*>(X + static_cast<size_t>(i) * xrb); }
    const float* dx(int64_t i) const { return scales + i * nb; }
    const int32_t* sx(int64_t i) const { return sums + i * nb; }
};

Q8_0Rows q8_0_rows(const uint8_t* X, size_t xrb, int64_t n, int64_t nb, bool with_sums) {
    thread_local std::vector<float> scales;
    thread_local std::vector<int32_t> sums;
    scales.resize(static_cast<size_t>(n * nb));
    if (with_sums) sums.resize(static_cast<size_t>(n * nb));
    for (int64_t i = 0; i < n; ++i) {
        const BlockQ8_0* xb = reinterpret_cast<const BlockQ8_0*>(X + static_cast<size_t>(i) * xrb);
        for (int64_t b = 0; b < nb; ++b) {
            scales[static_cast<size_t>(i * nb + b)] = h2f(xb[b].d);
            if (with_sums) {
                int32_t s = 0;
                for (int j = 0; j < 32; ++j) s += xb[b].qs[j];
                sums[static_cast<size_t>(i * nb + b)] = s;
            }
        }
    }
    return {X, xrb, nb, scales.data(), with_sums ? sums.data() : nullptr};
}

}  // namespace

// Y[i·ldy + r] for the rows [r0, r1) (multiples of 8) of a Q4_0 matrix interleaved by eight (quants.h), activation rows
// [0, n): groups of four activation rows, then one at a time. Bit for bit chain8_q4_0's outputs.
void LF_ROWS8_FN(const uint8_t* W, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n, int64_t r0, int64_t r1, int64_t cols) {
    const int64_t nb = cols / 32;
    const Q8_0Rows a = q8_0_rows(X, xrb, n, nb, true);
    for (int64_t r = r0; r < r1; r += 8) {
        const uint8_t* g = W + static_cast<size_t>(r / 8) * static_cast<size_t>(nb) * kQ4_0GroupBlockBytes;
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const BlockQ8_0* xs[4] = {a.row(i), a.row(i + 1), a.row(i + 2), a.row(i + 3)};
            const float* ds[4] = {a.dx(i), a.dx(i + 1), a.dx(i + 2), a.dx(i + 3)};
            const int32_t* ss[4] = {a.sx(i), a.sx(i + 1), a.sx(i + 2), a.sx(i + 3)};
            group8_q4_0<4>(g, xs, ds, ss, nb, Y + i * ldy + r, ldy);
        }
        for (; i < n; ++i) {
            const BlockQ8_0* xs[1] = {a.row(i)};
            const float* ds[1] = {a.dx(i)};
            const int32_t* ss[1] = {a.sx(i)};
            group8_q4_0<1>(g, xs, ds, ss, nb, Y + i * ldy + r, ldy);
        }
    }
}

// Y[i·ldy + r] = Σ W[r] · X[i] for weight rows [r0, r1) and activation rows [0, n): each weight row meets the activation
// rows four at a time, then one at a time.
void LF_ROWS_FN(DType t, const uint8_t* W, size_t wrb, const uint8_t* X, size_t xrb, float* Y, int64_t ldy, int64_t n,
                int64_t r0, int64_t r1, int64_t cols) {
    const Tiles f = tiles_for(t);
    const int64_t nb = cols / block_elems(t);
    const bool q8_0 = activation_type(t) == DType::Q8_0;
    const bool chain = quant::q4_0_chain_order(t, ldy);  // Q4_0 of a multiple of 8 rows (ldy is the matrix's row count)
    const Q8_0Rows a = q8_0 ? q8_0_rows(X, xrb, n, nb, chain) : Q8_0Rows{X, xrb, nb, nullptr, nullptr};
    auto dx = [&](int64_t i) { return q8_0 ? a.dx(i) : nullptr; };
    // Q4_0 of a multiple of 8 rows: ggml's repacked order, with each activation block's sum
    if (chain) {
        auto xrow = [&](int64_t i) { return a.row(i); };
        auto sx = [&](int64_t i) { return a.sx(i); };
        int64_t r = r0;
        for (; r + 8 <= r1; r += 8) {
            const uint8_t* w8 = W + static_cast<size_t>(r) * wrb;
            int64_t i = 0;
            float o[32];
            for (; i + 4 <= n; i += 4) {
                const BlockQ8_0* xs[4] = {xrow(i), xrow(i + 1), xrow(i + 2), xrow(i + 3)};
                const float* ds[4] = {dx(i), dx(i + 1), dx(i + 2), dx(i + 3)};
                const int32_t* ss[4] = {sx(i), sx(i + 1), sx(i + 2), sx(i + 3)};
                chain8_q4_0<4>(w8, wrb, xs, ds, ss, nb, o);
                for (int k = 0; k < 4; ++k)
                    for (int j = 0; j < 8; ++j) Y[(i + k) * ldy + r + j] = o[k * 8 + j];
            }
            for (; i < n; ++i) {
                const BlockQ8_0* xs[1] = {xrow(i)};
                const float* ds[1] = {dx(i)};
                const int32_t* ss[1] = {sx(i)};
                chain8_q4_0<1>(w8, wrb, xs, ds, ss, nb, o);
                for (int j = 0; j < 8; ++j) Y[i * ldy + r + j] = o[j];
            }
        }
        for (; r < r1; ++r)  // a thread's range need not start or end on a multiple of 8: the same chain, row by row
            for (int64_t i = 0; i < n; ++i)
                Y[i * ldy + r] = chain_q4_0(reinterpret_cast<const BlockQ4_0*>(W + static_cast<size_t>(r) * wrb), xrow(i), dx(i), sx(i), nb);
        return;
    }
    int64_t r = r0;
#if defined(LLMFORGE_VNNI)
    // tiles of tr weight rows × 4 activation rows (tr = 8 where the 512-bit tiles take four pairs of rows), then 4; the
    // activation rows left over (n mod 4: all of them when decoding) in one tile of 8 × (n mod 4) where there is one
    auto tiles = [&](Tile4x4Fn fn, int64_t tr, const int32_t* nl, Tile4x4Fn rest) {
        for (; r + tr <= r1; r += tr) {
            const void* ws[8];
            for (int64_t k = 0; k < tr; ++k) ws[k] = W + static_cast<size_t>(r + k) * wrb;
            int64_t i = 0;
            float o[32];
            for (; i + 4 <= n; i += 4) {
                const void* xs[4] = {X + static_cast<size_t>(i) * xrb, X + static_cast<size_t>(i + 1) * xrb,
                                     X + static_cast<size_t>(i + 2) * xrb, X + static_cast<size_t>(i + 3) * xrb};
                const float* ds[4] = {dx(i), dx(i + 1), dx(i + 2), dx(i + 3)};
                const int32_t* ns[4] = {nl + 8 * i * nb, nl + 8 * (i + 1) * nb, nl + 8 * (i + 2) * nb, nl + 8 * (i + 3) * nb};
                fn(ws, xs, ds, ns, nb, o);
                for (int64_t k = 0; k < tr; ++k)
                    for (int j = 0; j < 4; ++j) Y[(i + j) * ldy + r + k] = o[k * 4 + j];
            }
            if (rest && i < n) {
                const void* xs[4];
                const float* ds[4];
                const int32_t* ns[4];
                for (int64_t j = 0; j < n - i; ++j)
                    xs[j] = X + static_cast<size_t>(i + j) * xrb, ds[j] = dx(i + j), ns[j] = nl + 8 * (i + j) * nb;
                rest(ws, xs, ds, ns, nb, o);
                for (int64_t k = 0; k < tr; ++k)
                    for (int64_t j = 0; j < n - i; ++j) Y[(i + j) * ldy + r + k] = o[k * 4 + j];
                i = n;
            }
            for (; i < n; ++i)
                for (int64_t rr = r; rr < r + tr; ++rr) {
                    const void* xs[1] = {X + static_cast<size_t>(i) * xrb};
                    const float* ds[1] = {dx(i)};
                    f.one(W + static_cast<size_t>(rr) * wrb, xs, ds, nb, &Y[i * ldy + rr]);
                }
        }
    };
    // (only where this thread's rows are few enough to stay in its caches: a product that reads its weights from memory
    // measured faster one row, one stream, at a time — 0.82x with the tile on a 63M model's Q8_0 decoding, against
    // 1.2x on a 9.3M one's)
    const Tile4x4Fn rest = static_cast<size_t>(r1 - r0) * wrb <= kTailMaxBytes ? tail_for(t, static_cast<int>(n % 4)) : nullptr;
    if (const Tile4x4Fn t44 = tile_for(t, 4); t44 && (n >= 4 || rest) && r1 - r0 >= 4) {
        const int32_t* nl = neg_lane_sums(X, xrb, n, nb);
        if (const Tile4x4Fn t84 = tile_for(t, 8)) tiles(t84, 8, nl, rest);
        if (n >= 4) tiles(t44, 4, nl, nullptr);
    }
#endif
    if (f.two_by_four && n >= 4) {
        for (; r + 2 <= r1; r += 2) {
            const uint8_t* wa = W + static_cast<size_t>(r) * wrb;
            int64_t i = 0;
            for (; i + 4 <= n; i += 4) {
                const void* xs[4] = {X + static_cast<size_t>(i) * xrb, X + static_cast<size_t>(i + 1) * xrb,
                                     X + static_cast<size_t>(i + 2) * xrb, X + static_cast<size_t>(i + 3) * xrb};
                const float* ds[4] = {dx(i), dx(i + 1), dx(i + 2), dx(i + 3)};
                float o[8];
                f.two_by_four(wa, wa + wrb, xs, ds, nb, o);
                for (int k = 0; k < 4; ++k) Y[(i + k) * ldy + r] = o[k], Y[(i + k) * ldy + r + 1] = o[4 + k];
            }
            for (; i < n; ++i)
                for (int64_t rr = r; rr < r + 2; ++rr) {
                    const void* xs[1] = {X + static_cast<size_t>(i) * xrb};
                    const float* ds[1] = {dx(i)};
                    f.one(W + static_cast<size_t>(rr) * wrb, xs, ds, nb, &Y[i * ldy + rr]);
                }
        }
    }
    for (; r < r1; ++r) {
        const uint8_t* w = W + static_cast<size_t>(r) * wrb;
        int64_t i = 0;
        for (; i + 4 <= n; i += 4) {
            const void* xs[4] = {X + static_cast<size_t>(i) * xrb, X + static_cast<size_t>(i + 1) * xrb,
                                 X + static_cast<size_t>(i + 2) * xrb, X + static_cast<size_t>(i + 3) * xrb};
            const float* ds[4] = {dx(i), dx(i + 1), dx(i + 2), dx(i + 3)};
            float o[4];
            f.four(w, xs, ds, nb, o);
            for (int k = 0; k < 4; ++k) Y[(i + k) * ldy + r] = o[k];
        }
        for (; i < n; ++i) {
            const void* xs[1] = {X + static_cast<size_t>(i) * xrb};
            const float* ds[1] = {dx(i)};
            f.one(w, xs, ds, nb, &Y[i * ldy + r]);
        }
    }
}

#if !defined(LLMFORGE_VNNI)
// n values of a Q8_0 or Q4_0 row to f32 (AVX2; built once): dequantize()'s values exactly — each q converted to float
// (exact) and multiplied by the block's f16 scale, as dq_q8_0 / dq_q4_0 do. Returns false for other types.
bool widen_avx2(DType t, const void* src, float* dst, int64_t n) {
    const int64_t nb = n / 32;
    if (t == DType::Q8_0) {
        const BlockQ8_0* x = static_cast<const BlockQ8_0*>(src);
        for (int64_t b = 0; b < nb; ++b, dst += 32) {
            const __m256 d = _mm256_set1_ps(h2f(x[b].d));
            for (int k = 0; k < 4; ++k) {
                const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[b].qs + 8 * k));
                _mm256_storeu_ps(dst + 8 * k, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)), d));
            }
        }
        return true;
    }
    if (t == DType::Q4_0) {
        const BlockQ4_0* x = static_cast<const BlockQ4_0*>(src);
        for (int64_t b = 0; b < nb; ++b, dst += 32) {
            const __m256 d = _mm256_set1_ps(h2f(x[b].d));
            // bytes 0..15: the low nibbles (values 0..15), 16..31: the high ones (16..31), each minus 8
            const __m256i q = _mm256_sub_epi8(nibbles32(x[b].qs), _mm256_set1_epi8(8));
            const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
            _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
            _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
            _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
            _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
        }
        return true;
    }
    return false;
}
#endif

}  // namespace llmforge::quant::x86
