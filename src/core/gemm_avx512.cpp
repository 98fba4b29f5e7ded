// The training GEMM on AVX-512: C[i, r] (+)= Σ_k A(i, k) · B(r, k) with A and B each row-major or transposed (see
// kernels.h), in f32 or with bf16 operands and f32 accumulation (AVX512-BF16). Compiled with -mavx512bf16; the bf16
// entry point is only called where the CPU reports the instructions.
//
// Structure (as in kernels_x86.cpp's inference GEMM): each thread owns a range of B rows in panels of NP = 32. Per block
// of TB rows of A and chunk of KC values of k, a panel of B is packed k-major (P[k][j], 32 columns per k) and used by
// every group of MR = 12 rows of A: the micro-kernel keeps a 12 × 32 tile of C in 24 registers and per k loads 2 vectors
// of B and broadcasts 12 values of A. Packing reads either layout of B; the micro-kernel reads either layout of A, so
// the transposes the backward pass needs never exist in memory.
// bf16: A is rounded once per call into pairs (A(i, 2p), A(i, 2p+1)) held in one 32-bit word; B panels hold the same
// pairs per column, so one vdpbf16ps adds two products per lane: a 12 × 32 tile advances two k per step.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/simd_avx512.h"
#include "core/threadpool.h"
#include "llmforge/dtype.h"

namespace llmforge::kernels::detail {
namespace {

constexpr int NP = 32;        // B rows per packed panel (two vectors)
constexpr int MR = 12;        // A rows per register tile
constexpr int64_t TB = 384;   // A rows per block (stays in L2 while the panels stream; 384 measured best of 192/384/768)
constexpr int64_t KC = 512;   // k per chunk (even, so bf16 pairs never straddle chunks)

template <int M>
inline void store_tile(__m512 (&acc)[M][2], float* C, int64_t ldc, int nr, bool add) {
    const __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
    for (int i = 0; i < M; ++i) {
        float* y = C + i * ldc;
        if (add) {
            _mm512_mask_storeu_ps(y, m0, _mm512_add_ps(_mm512_maskz_loadu_ps(m0, y), acc[i][0]));
            _mm512_mask_storeu_ps(y + 16, m1, _mm512_add_ps(_mm512_maskz_loadu_ps(m1, y + 16), acc[i][1]));
        } else {
            _mm512_mask_storeu_ps(y, m0, acc[i][0]);
            _mm512_mask_storeu_ps(y + 16, m1, acc[i][1]);
        }
    }
}

// ------------------------------------------------------------------------------------------------------------ f32
// P[k·32 + j] = B(r + j, k0 + k) for j < nr, zero beyond.
void pack_b_f32(const float* b, bool b_t, int64_t ldb, int64_t r, int nr, int64_t k0, int64_t kn, float* P) {
    if (b_t) {  // B(r, k) = b[k·ldb + r]: each k is a contiguous run of columns
        const __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
        for (int64_t k = 0; k < kn; ++k) {
            const float* src = b + (k0 + k) * ldb + r;
            _mm512_store_ps(P + k * NP, _mm512_maskz_loadu_ps(m0, src));
            _mm512_store_ps(P + k * NP + 16, _mm512_maskz_loadu_ps(m1, src + 16));
        }
        return;
    }
    int64_t k = 0;  // B(r, k) = b[r·ldb + k]: transpose 16 × 16 blocks in registers
    for (; k + 16 <= kn; k += 16)
        for (int half = 0; half < 2; ++half) {
            __m512 v[16];
            for (int j = 0; j < 16; ++j) {
                const int jj = half * 16 + j;
                v[j] = jj < nr ? _mm512_loadu_ps(b + (r + jj) * ldb + k0 + k) : _mm512_setzero_ps();
            }
            transpose16(v);
            for (int q = 0; q < 16; ++q) _mm512_store_ps(P + (k + q) * NP + half * 16, v[q]);
        }
    for (; k < kn; ++k)
        for (int j = 0; j < NP; ++j) P[k * NP + j] = j < nr ? b[(r + j) * ldb + k0 + k] : 0.0f;
}

template <int M, bool AT>
void tile_f32(const float* A, int64_t lda, const float* P, int64_t kn, float* C, int64_t ldc, int nr, bool add) {
    __m512 acc[M][2];
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kn; ++k) {
        const __m512 w0 = _mm512_load_ps(P + k * NP), w1 = _mm512_load_ps(P + k * NP + 16);
#pragma GCC unroll 12
        for (int i = 0; i < M; ++i) {
            const __m512 x = _mm512_set1_ps(AT ? A[k * lda + i] : A[i * lda + k]);
            acc[i][0] = _mm512_fmadd_ps(x, w0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(x, w1, acc[i][1]);
        }
    }
    store_tile<M>(acc, C, ldc, nr, add);
}

template <bool AT, int M = MR>
void tile_f32_m(int m, const float* A, int64_t lda, const float* P, int64_t kn, float* C, int64_t ldc, int nr, bool add) {
    if constexpr (M > 1) {
        if (m < M) return tile_f32_m<AT, M - 1>(m, A, lda, P, kn, C, ldc, nr, add);
    }
    tile_f32<M, AT>(A, lda, P, kn, C, ldc, nr, add);
}

float* aligned_scratch(std::vector<float>& store, size_t n) {
    store.resize(n + 16);
    return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(store.data()) + 63) & ~uintptr_t(63));
}

// ------------------------------------------------------------------------------------------------------------ bf16
// Word p of a pair row: low half bf16(x[2p]), high half bf16(x[2p + 1]). _mm512_cvtne2ps_pbh(hi, lo) gives the 16
// rounded values of lo then the 16 of hi; this permutation interleaves them into pairs.
inline __m512i interleave_idx() {
    alignas(64) static const uint16_t idx[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                                 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    return _mm512_load_si512(idx);
}
inline __m512i pairs_of(__m512 even, __m512 odd, __m512i idx) {
    return _mm512_permutexvar_epi16(idx, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(odd, even)));
}
inline uint32_t pair_scalar(float lo, float hi) { return f32_to_bf16(lo) | static_cast<uint32_t>(f32_to_bf16(hi)) << 16; }

// A in pairs: row-major A → Ab[i·K2 + p]; transposed A → Ab[p·n + i], where K2 = ⌈K/2⌉ and a missing odd k is 0.
void convert_a_bf16(const float* a, bool a_t, int64_t lda, int64_t n, int64_t K, uint32_t* Ab, ThreadPool& pool) {
    const int64_t K2 = (K + 1) / 2;
    if (!a_t) {
        pool.parallel_for(n, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) {
                const float* src = a + i * lda;
                uint16_t* dst = reinterpret_cast<uint16_t*>(Ab + i * K2);
                int64_t k = 0;  // consecutive k are already pairs: natural order
                for (; k + 32 <= K; k += 32)
                    _mm512_storeu_si512(dst + k, reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + k + 16), _mm512_loadu_ps(src + k))));
                for (; k < K; ++k) dst[k] = f32_to_bf16(src[k]);
                if (K & 1) dst[K] = 0;
            }
        });
        return;
    }
    const __m512i idx = interleave_idx();
    pool.parallel_for(K2, [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p) {
            const float* e = a + 2 * p * lda;
            const float* o = 2 * p + 1 < K ? e + lda : nullptr;
            uint32_t* dst = Ab + p * n;
            int64_t i = 0;
            for (; i + 16 <= n; i += 16)
                _mm512_storeu_si512(dst + i, pairs_of(_mm512_loadu_ps(e + i), o ? _mm512_loadu_ps(o + i) : _mm512_setzero_ps(), idx));
            for (; i < n; ++i) dst[i] = pair_scalar(e[i], o ? o[i] : 0.0f);
        }
    });
}

// Pb[p·64 + 2j + h] = bf16(B(r + j, k0 + 2p + h)) for j < nr, zero beyond (and for k ≥ k0 + kn).
void pack_b_bf16(const float* b, bool b_t, int64_t ldb, int64_t r, int nr, int64_t k0, int64_t kn, uint16_t* Pb) {
    const __m512i idx = interleave_idx();
    const int64_t kp = (kn + 1) / 2;
    if (b_t) {
        const __mmask16 m[2] = {first_lanes(nr), first_lanes(nr - 16)};
        for (int64_t p = 0; p < kp; ++p) {
            const float* e = b + (k0 + 2 * p) * ldb + r;
            const bool has_o = 2 * p + 1 < kn;
            for (int h = 0; h < 2; ++h) {
                const __m512 ve = _mm512_maskz_loadu_ps(m[h], e + 16 * h);
                const __m512 vo = has_o ? _mm512_maskz_loadu_ps(m[h], e + ldb + 16 * h) : _mm512_setzero_ps();
                _mm512_store_si512(Pb + p * 64 + 32 * h, pairs_of(ve, vo, idx));
            }
        }
        return;
    }
    int64_t k = 0;
    for (; k + 16 <= kn; k += 16)
        for (int h = 0; h < 2; ++h) {
            __m512 v[16];
            for (int j = 0; j < 16; ++j) {
                const int jj = h * 16 + j;
                v[j] = jj < nr ? _mm512_loadu_ps(b + (r + jj) * ldb + k0 + k) : _mm512_setzero_ps();
            }
            transpose16(v);  // v[q] = B(r + 16h + ·, k0 + k + q)
            for (int q = 0; q < 8; ++q) _mm512_store_si512(Pb + (k / 2 + q) * 64 + 32 * h, pairs_of(v[2 * q], v[2 * q + 1], idx));
        }
    for (int64_t p = k / 2; p < kp; ++p)
        for (int j = 0; j < NP; ++j)
            for (int h = 0; h < 2; ++h) {
                const int64_t kk = 2 * p + h;
                Pb[p * 64 + 2 * j + h] = j < nr && kk < kn ? f32_to_bf16(b[(r + j) * ldb + k0 + kk]) : 0;
            }
}

template <int M, bool AT>
void tile_bf16(const uint32_t* A, int64_t lda, const uint16_t* Pb, int64_t kp, float* C, int64_t ldc, int nr, bool add) {
    __m512 acc[M][2];
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t p = 0; p < kp; ++p) {
        const __m512bh w0 = reinterpret_cast<__m512bh>(_mm512_load_si512(Pb + p * 64));
        const __m512bh w1 = reinterpret_cast<__m512bh>(_mm512_load_si512(Pb + p * 64 + 32));
#pragma GCC unroll 12
        for (int i = 0; i < M; ++i) {
            const __m512bh x = reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(AT ? A[p * lda + i] : A[i * lda + p])));
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], x, w0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], x, w1);
        }
    }
    store_tile<M>(acc, C, ldc, nr, add);
}

template <bool AT, int M = MR>
void tile_bf16_m(int m, const uint32_t* A, int64_t lda, const uint16_t* Pb, int64_t kp, float* C, int64_t ldc, int nr, bool add) {
    if constexpr (M > 1) {
        if (m < M) return tile_bf16_m<AT, M - 1>(m, A, lda, Pb, kp, C, ldc, nr, add);
    }
    tile_bf16<M, AT>(A, lda, Pb, kp, C, ldc, nr, add);
}

// The shared driver. Each thread takes a range of B's panels. When A has more rows than one block, every panel of B is
// used once per block: the thread's panels are then packed once per call, whole (all of K), into a buffer that the
// blocks reuse; with a single block they are packed chunk by chunk into a small buffer that stays in L1/L2.
// Op supplies the packed element type, the packed size of k values per panel column, the packer and the tile.
struct F32Op {
    using Elem = float;
    static int64_t packed(int64_t k) { return k; }  // one float per k
    static void pack(const float* b, bool b_t, int64_t ldb, int64_t r, int nr, int64_t k0, int64_t kn, Elem* P) {
        pack_b_f32(b, b_t, ldb, r, nr, k0, kn, P);
    }
    const float* a;
    int64_t lda;
    bool a_t;
    void tile(int m, int64_t i, int64_t k0, int64_t kn, const Elem* P, float* C, int64_t ldc, int nr, bool add) const {
        if (a_t) tile_f32_m<true>(m, a + k0 * lda + i, lda, P, kn, C, ldc, nr, add);
        else tile_f32_m<false>(m, a + i * lda + k0, lda, P, kn, C, ldc, nr, add);
    }
};
struct Bf16Op {
    using Elem = uint16_t;
    static int64_t packed(int64_t k) { return 2 * ((k + 1) / 2); }  // pairs of bf16
    static void pack(const float* b, bool b_t, int64_t ldb, int64_t r, int nr, int64_t k0, int64_t kn, Elem* P) {
        pack_b_bf16(b, b_t, ldb, r, nr, k0, kn, P);
    }
    const uint32_t* Ab;  // A in pairs (convert_a_bf16)
    int64_t n, K2;
    bool a_t;
    void tile(int m, int64_t i, int64_t k0, int64_t kn, const Elem* P, float* C, int64_t ldc, int nr, bool add) const {
        const int64_t p0 = k0 / 2, kp = (kn + 1) / 2;
        if (a_t) tile_bf16_m<true>(m, Ab + p0 * n + i, n, P, kp, C, ldc, nr, add);
        else tile_bf16_m<false>(m, Ab + i * K2 + p0, K2, P, kp, C, ldc, nr, add);
    }
};

template <class Op>
void gemm_driver(const Op& op, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n, int64_t rows, int64_t K,
                 bool accumulate, ThreadPool& pool) {
    using Elem = typename Op::Elem;
    const int64_t panels = (rows + NP - 1) / NP;
    const bool prepack = n > TB;
    const int64_t panel_elems = Op::packed(K) * NP;  // one whole panel, all of K
    pool.parallel_for(panels, [&](int64_t g0, int64_t g1) {
        thread_local std::vector<float> store;
        const int64_t r0 = g0 * NP, r1 = g1 * NP < rows ? g1 * NP : rows;
        const size_t elems = static_cast<size_t>(prepack ? (g1 - g0) * panel_elems : Op::packed(KC) * NP);
        Elem* P = reinterpret_cast<Elem*>(aligned_scratch(store, (elems * sizeof(Elem) + sizeof(float) - 1) / sizeof(float)));
        if (prepack)
            for (int64_t r = r0; r < r1; r += NP)
                Op::pack(b, b_t, ldb, r, static_cast<int>(r1 - r < NP ? r1 - r : NP), 0, K, P + (r - r0) / NP * panel_elems);
        for (int64_t t0 = 0; t0 < n; t0 += TB) {
            const int64_t t1 = t0 + TB < n ? t0 + TB : n;
            for (int64_t k0 = 0; k0 < K; k0 += KC) {
                const int64_t kn = (k0 + KC < K ? k0 + KC : K) - k0;
                const bool add = accumulate || k0 > 0;
                for (int64_t r = r0; r < r1; r += NP) {
                    const int nr = static_cast<int>(r1 - r < NP ? r1 - r : NP);
                    const Elem* Pk = P;
                    if (prepack) Pk = P + (r - r0) / NP * panel_elems + Op::packed(k0) * NP;
                    else Op::pack(b, b_t, ldb, r, nr, k0, kn, P);
                    for (int64_t i = t0; i < t1; i += MR)
                        op.tile(static_cast<int>(t1 - i < MR ? t1 - i : MR), i, k0, kn, Pk, c + i * ldc + r, ldc, nr, add);
                }
            }
        }
    });
}

}  // namespace

void gemm_avx512_f32(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n,
                     int64_t rows, int64_t K, bool accumulate, ThreadPool& pool) {
    gemm_driver(F32Op{a, lda, a_t}, b, ldb, b_t, c, ldc, n, rows, K, accumulate, pool);
}

void gemm_avx512_bf16(const float* a, int64_t lda, bool a_t, const float* b, int64_t ldb, bool b_t, float* c, int64_t ldc, int64_t n,
                      int64_t rows, int64_t K, bool accumulate, ThreadPool& pool) {
    const int64_t K2 = (K + 1) / 2;
    thread_local std::vector<uint32_t> a_store;  // the calling thread's: workers only read it
    a_store.resize(static_cast<size_t>(n * K2));
    convert_a_bf16(a, a_t, lda, n, K, a_store.data(), pool);
    gemm_driver(Bf16Op{a_store.data(), n, K2, a_t}, b, ldb, b_t, c, ldc, n, rows, K, accumulate, pool);
}

}  // namespace llmforge::kernels::detail

// ---- Inference: bf16 weights · activations rounded to bf16 (llama.cpp's vec_dot_type for bf16), one vdpbf16ps per
// 32 products. Every output is one 16-lane accumulator over k in steps of 32, its lanes summed at the end, and a scalar
// tail: the same operations whether the row is computed alone or in a tile with others, so batch-invariant.
namespace llmforge::kernels::detail {
namespace {

inline __m512bh ld_bh(const uint16_t* p) { return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p)); }

// The tail k0..K in order, added to the lanes' sum, in f32 as vdpbf16ps would not be (only where K % 32 != 0).
inline float tail(const uint16_t* w, const uint16_t* x, int64_t k0, int64_t K, float s) {
    for (int64_t k = k0; k < K; ++k) s += bf16_to_f32(w[k]) * bf16_to_f32(x[k]);
    return s;
}

// One tile: NR weight rows × NX activation rows, each output one accumulator over the whole of k.
template <int NR, int NX>
void dp_tile(const uint16_t* const* w, const uint16_t* const* x, float* const* y, int64_t K) {
    __m512 acc[NR][NX];
    for (int r = 0; r < NR; ++r)
        for (int j = 0; j < NX; ++j) acc[r][j] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512bh wv[NR];
        for (int r = 0; r < NR; ++r) wv[r] = ld_bh(w[r] + k);
        for (int j = 0; j < NX; ++j) {
            const __m512bh xv = ld_bh(x[j] + k);
            for (int r = 0; r < NR; ++r) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], wv[r], xv);
        }
    }
    for (int r = 0; r < NR; ++r)
        for (int j = 0; j < NX; ++j) y[j][r] = tail(w[r], x[j], k, K, _mm512_reduce_add_ps(acc[r][j]));
}

// A lone row: one sequential stream of the weights, prefetched ahead (memory-bound).
inline float dp_lone(const uint16_t* w, const uint16_t* x, int64_t K) {
    __m512 acc = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
        _mm_prefetch(reinterpret_cast<const char*>(w + k) + 1024, _MM_HINT_T0);
        acc = _mm512_dpbf16_ps(acc, ld_bh(w + k), ld_bh(x + k));
    }
    return tail(w, x, k, K, _mm512_reduce_add_ps(acc));
}

// NR weight rows × all n activation rows in tiles of 4 (16 accumulators). Measured on a 5632 × 2048 matrix, 2 threads:
// 4 × 4 tiles 216–228 GFLOP/s at n = 16 (the f16 FMA kernel 176); 4 × 3, 4 × 6 and k in chunks of 512 were no faster.
template <int NR>
void dp_rows(const uint16_t* const* w, const uint16_t* X, float* out, int64_t n, int64_t K) {
    for (int64_t j = 0; j < n; j += 4) {
        const int m = static_cast<int>(std::min<int64_t>(4, n - j));
        const uint16_t* xx[4];
        float* yy[4];
        for (int t = 0; t < m; ++t) {
            xx[t] = X + (j + t) * K;
            yy[t] = out + 4 * (j + t);
        }
        switch (m) {
            case 1: dp_tile<NR, 1>(w, xx, yy, K); break;
            case 2: dp_tile<NR, 2>(w, xx, yy, K); break;
            case 3: dp_tile<NR, 3>(w, xx, yy, K); break;
            default: dp_tile<NR, 4>(w, xx, yy, K); break;
        }
    }
}

}  // namespace

void round_to_bf16_avx512(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_loadu_ps(x + i))));
    for (; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}

void rowwise_bf16_dp(const uint16_t* W, const uint16_t* X, float* Y, int64_t n, int64_t rows, int64_t K, int64_t r0, int64_t r1) {
    if (n == 1) {
        for (int64_t r = r0; r < r1; ++r) Y[r] = dp_lone(W + r * K, X, K);
        return;
    }
    thread_local std::vector<float> out;
    out.resize(static_cast<size_t>(4 * n));
    const int64_t tile = 4;
    for (int64_t r = r0; r < r1; r += tile) {
        const int nr = static_cast<int>(std::min<int64_t>(tile, r1 - r));
        const uint16_t* w[4];
        for (int t = 0; t < nr; ++t) w[t] = W + (r + t) * K;
        switch (nr) {
            case 1: dp_rows<1>(w, X, out.data(), n, K); break;
            case 2: dp_rows<2>(w, X, out.data(), n, K); break;
            case 3: dp_rows<3>(w, X, out.data(), n, K); break;
            default: dp_rows<4>(w, X, out.data(), n, K); break;
        }
        for (int64_t i = 0; i < n; ++i)
            for (int t = 0; t < nr; ++t) Y[i * rows + r + t] = out[static_cast<size_t>(4 * i + t)];
    }
}

}  // namespace llmforge::kernels::detail
