// Internal: AVX-512 helpers shared by the kernels compiled for AVX-512.
#pragma once
#include <immintrin.h>

namespace llmforge::kernels {

// In-register transpose of a 16 × 16 block of floats: on return v[q] holds column q of the input rows.
inline void transpose16(__m512 v[16]) {
    __m512 t[16], u[16];
    for (int m = 0; m < 8; ++m) {  // interleave 32-bit elements of row pairs
        t[2 * m] = _mm512_unpacklo_ps(v[2 * m], v[2 * m + 1]);
        t[2 * m + 1] = _mm512_unpackhi_ps(v[2 * m], v[2 * m + 1]);
    }
    for (int m = 0; m < 4; ++m) {  // interleave 64-bit pairs: u[4m+q], lane L = rows 4m..4m+3 at column q + 4L
        const __m512d a = _mm512_castps_pd(t[4 * m]), b = _mm512_castps_pd(t[4 * m + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * m + 2]), d = _mm512_castps_pd(t[4 * m + 3]);
        u[4 * m + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * m + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * m + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * m + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int q = 0; q < 4; ++q) {  // 4 × 4 transpose of 128-bit lanes across u[q], u[4+q], u[8+q], u[12+q]
        const __m512 s0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44), s1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
        const __m512 s2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44), s3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
        v[q + 0] = _mm512_shuffle_f32x4(s0, s2, 0x88);
        v[q + 4] = _mm512_shuffle_f32x4(s0, s2, 0xDD);
        v[q + 8] = _mm512_shuffle_f32x4(s1, s3, 0x88);
        v[q + 12] = _mm512_shuffle_f32x4(s1, s3, 0xDD);
    }
}

// Lane mask for the first n of 16 lanes (n may be ≤ 0 or ≥ 16).
inline __mmask16 first_lanes(int n) {
    return n <= 0 ? static_cast<__mmask16>(0) : n >= 16 ? static_cast<__mmask16>(0xffff) : static_cast<__mmask16>((1u << n) - 1);
}

}  // namespace llmforge::kernels
