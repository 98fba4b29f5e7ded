// ggml's quantised block formats: dequantisation and the reference and importance-weighted quantisers (see quants.h).
//
// The searches below are ggml's (ggml-quants.c: make_qx_quants, make_q3_quants, make_qkx2/qkx3_quants,
// make_qp_quants and the per-type row quantisers), reimplemented here. Results must match ggml's bit for bit, so each
// expression keeps ggml's association — (w·x)·l, not w·(x·l) — and float/int conversions happen where ggml's do.
#include "core/quants.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "llmforge/error.h"

namespace llmforge::quant {

namespace {

constexpr float kGroupMaxEps = 1e-15f;  // below this a group's largest |x| counts as all-zero

inline float h2f(uint16_t h) { return f16_to_f32(h); }
inline uint16_t f2h(float f) { return f32_to_f16(f); }

// Round to the nearest integer, ties to even, by adding 1.5·2^23 (|v| ≤ 2^22): ggml's nearest_int.
inline int nearest(float v) {
    const float shifted = v + 12582912.f;
    int32_t bits;
    std::memcpy(&bits, &shifted, 4);
    return (bits & 0x007fffff) - 0x00400000;
}

inline int clampi(int v, int lo, int hi) { return std::max(lo, std::min(hi, v)); }

// ---- the searches ---------------------------------------------------------------------------------------------------

// Symmetric levels l ∈ [−nmax, nmax) for x ≈ scale·l, minimising Σ w·(x − scale·l)² over 19 trial scales around
// −nmax / (the value of largest magnitude); w = importance, or x² without it. L receives l + nmax. (make_qx_quants with
// rmse_type 1.)
float fit_symmetric(int n, int nmax, const float* x, int8_t* L, const float* importance) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < kGroupMaxEps) {
        std::fill(L, L + n, int8_t{0});
        return 0.f;
    }
    auto weight = [&](int i) { return importance ? importance[i] : x[i] * x[i]; };
    float iscale = static_cast<float>(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = weight(i);
        sumlx += w * x[i] * static_cast<float>(l);
        suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int step = -9; step <= 9; ++step) {
        if (step == 0) continue;
        iscale = -(static_cast<float>(nmax) + 0.1f * static_cast<float>(step)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            const float w = weight(i);
            sumlx += w * x[i] * static_cast<float>(l);
            suml2 += w * static_cast<float>(l) * static_cast<float>(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Q3_K's reference search: symmetric levels from −nmax / max, then up to five passes that move single values to the
// level that most improves the x²-weighted fit. L receives l + nmax. (make_q3_quants with do_rmse.)
float fit_symmetric_refined(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) { amax = ax; max = x[i]; }
    }
    if (amax < kGroupMaxEps) {
        std::fill(L, L + n, int8_t{0});
        return 0.f;
    }
    const float iscale = static_cast<float>(-nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * static_cast<float>(l);
        suml2 += w * static_cast<float>(l) * static_cast<float>(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * static_cast<float>(L[i]);
            if (slx > 0) {
                float sl2 = suml2 - w * static_cast<float>(L[i]) * static_cast<float>(L[i]);
                const int nl = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * static_cast<float>(nl);
                    sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<int8_t>(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
    return sumlx / suml2;
}

// Affine levels l ∈ [0, nmax] for x ≈ scale·l − the_min (the_min ≥ 0): the w-weighted least-squares scale and min for
// each of nstep + 1 trial level assignments, keeping the one of least Σ w·|err| (use_mad) or Σ w·err². Returns scale,
// sets *the_min. (make_qkx2_quants; `strict` = its "max == min" test for an empty range, make_qkx3_quants has
// "max <= min".)
float fit_affine(int n, int nmax, const float* x, const float* w, uint8_t* L, float* the_min, uint8_t* Laux, float rmin,
                 float rdelta, int nstep, bool use_mad, bool strict) {
    float min = x[0], max = x[0];
    float sum_w = w[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (strict ? max == min : max <= min) {
        std::fill(L, L + n, uint8_t{0});
        *the_min = -min;
        return 0.f;
    }
    auto err = [use_mad](float d) { return use_mad ? std::fabs(d) : d * d; };
    float iscale = static_cast<float>(nmax) / (max - min);
    float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(clampi(nearest(iscale * (x[i] - min)), 0, nmax));
        const float d = scale * static_cast<float>(L[i]) + min - x[i];
        best += w[i] * err(d);
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int step = 0; step <= nstep; ++step) {
        iscale = (rmin + rdelta * static_cast<float>(step) + static_cast<float>(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = static_cast<uint8_t>(l);
            const float fl = static_cast<float>(l);
            sum_l += w[i] * fl;
            sum_l2 += w[i] * fl * fl;
            sum_xl += w[i] * fl * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float e = 0;
            for (int i = 0; i < n; ++i) {
                const float d = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
                e += w[i] * err(d);
            }
            if (e < best) {
                std::copy(Laux, Laux + n, L);
                best = e;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Non-negative levels l ∈ [0, nmax] for non-negative x ≈ scale·l (a super-block's sub-block scales or mins), weighted by
// w: 9 trial scales, then up to five single-value refinement passes. (make_qp_quants.)
float fit_positive(int n, int nmax, const float* x, uint8_t* L, const float* w) {
    float max = 0;
    for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
    if (!max) {
        std::fill(L, L + n, uint8_t{0});
        return 0.f;
    }
    float iscale = static_cast<float>(nmax) / max;
    for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest(iscale * x[i]));
    const float scale = 1 / iscale;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        const float d = x[i] - scale * static_cast<float>(L[i]);
        best += w[i] * d * d;
    }
    for (int step = -4; step <= 4; ++step) {
        if (step == 0) continue;
        const float is = (0.1f * static_cast<float>(step) + static_cast<float>(nmax)) / max;
        const float s = 1 / is;
        float e = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest(is * x[i]));
            const float d = x[i] - s * static_cast<float>(l);
            e += w[i] * d * d;
        }
        if (e < best) {
            best = e;
            iscale = is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest(iscale * x[i]));
        L[i] = static_cast<uint8_t>(l);
        sumlx += w[i] * x[i] * static_cast<float>(l);
        suml2 += w[i] * static_cast<float>(l) * static_cast<float>(l);
    }
    for (int pass = 0; pass < 5; ++pass) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            float slx = sumlx - w[i] * x[i] * static_cast<float>(L[i]);
            float sl2 = suml2 - w[i] * static_cast<float>(L[i]) * static_cast<float>(L[i]);
            if (slx > 0 && sl2 > 0) {
                const int nl = std::min(nmax, nearest(x[i] * sl2 / slx));
                if (nl != L[i]) {
                    slx += w[i] * x[i] * static_cast<float>(nl);
                    sl2 += w[i] * static_cast<float>(nl) * static_cast<float>(nl);
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<uint8_t>(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return sumlx / suml2;
}

// The value of largest magnitude in x[0..n) (the first one on ties), and that magnitude.
inline float signed_absmax(const float* x, int n, float& amax) {
    float max = 0;
    amax = 0;
    for (int i = 0; i < n; ++i)
        if (amax < std::fabs(x[i])) {
            amax = std::fabs(x[i]);
            max = x[i];
        }
    return max;
}

// Per-row importance weights of the 32-value block types: importance · √(σ² + x²), σ² the row's mean square.
float row_mean_square(const float* x, int64_t n) {
    float s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[j] * x[j];
    return s / static_cast<float>(n);
}

// Packs 32 five-bit levels (low nibbles in qs, first 16 with the last 16; 5th bits in qh).
void pack5(const uint8_t* L, uint8_t qs[16], uint8_t qh_out[4]) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; ++j) {
        const uint8_t a = L[j], b = L[j + 16];
        qs[j] = static_cast<uint8_t>((a & 0x0F) | ((b & 0x0F) << 4));
        qh |= ((a & 0x10u) >> 4) << j;
        qh |= ((b & 0x10u) >> 4) << (j + 16);
    }
    std::memcpy(qh_out, &qh, 4);
}

// ---- Q4_0 / Q4_1 / Q5_0 / Q5_1 / Q8_0 -------------------------------------------------------------------------------

void q4_0_ref(const float* x, BlockQ4_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kBlock) {
        float amax;
        const float max = signed_absmax(x, kBlock, amax);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
            const int b = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
            y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
        }
    }
}

void q4_0_weighted(const float* x, BlockQ4_0* y, int64_t n, const float* imp) {
    const float sigma2 = row_mean_square(x, n);
    float w[kBlock];
    int8_t L[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + ib * kBlock;
        const float* qw = imp + ib * kBlock;
        for (int j = 0; j < kBlock; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
        y[ib].d = f2h(fit_symmetric(kBlock, 8, xb, L, w));
        for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
    }
}

// min and max of a block, as q4_1/q5_1's reference quantisers find them
inline void block_range(const float* x, float& min, float& max) {
    min = FLT_MAX;
    max = -FLT_MAX;
    for (int j = 0; j < kBlock; ++j) {
        if (x[j] < min) min = x[j];
        if (x[j] > max) max = x[j];
    }
}

void q4_1_ref(const float* x, BlockQ4_1* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kBlock) {
        float min, max;
        block_range(x, min, max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < 16; ++j) {
            const int a = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - min) * id + 0.5f)));
            const int b = std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - min) * id + 0.5f)));
            y[i].qs[j] = static_cast<uint8_t>(a | (b << 4));
        }
    }
}

template <class Block>
void affine_weighted(const float* x, Block* y, int64_t n, const float* imp, int nmax) {
    const float sigma2 = row_mean_square(x, n);
    float w[kBlock];
    uint8_t L[kBlock], Laux[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + ib * kBlock;
        const float* qw = imp + ib * kBlock;
        for (int j = 0; j < kBlock; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
        float min;
        const float d = fit_affine(kBlock, nmax, xb, w, L, &min, Laux, -0.9f, 0.05f, 36, false, false);
        y[ib].d = f2h(d);
        y[ib].m = f2h(-min);
        if constexpr (sizeof(Block) == sizeof(BlockQ4_1)) {
            for (int j = 0; j < 16; ++j) y[ib].qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
        } else {
            pack5(L, y[ib].qs, y[ib].qh);
        }
    }
}

void q5_0_ref(const float* x, BlockQ5_0* y, int64_t nb) {
    uint8_t L[kBlock];
    for (int64_t i = 0; i < nb; ++i, x += kBlock) {
        float amax;
        const float max = signed_absmax(x, kBlock, amax);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < kBlock; ++j) L[j] = static_cast<uint8_t>(std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f))));
        pack5(L, y[i].qs, y[i].qh);
    }
}

void q5_0_weighted(const float* x, BlockQ5_0* y, int64_t n, const float* imp) {
    const float sigma2 = row_mean_square(x, n);
    float w[kBlock];
    int8_t L[kBlock];
    uint8_t U[kBlock];
    for (int64_t ib = 0; ib < n / kBlock; ++ib) {
        const float* xb = x + ib * kBlock;
        const float* qw = imp + ib * kBlock;
        for (int j = 0; j < kBlock; ++j) w[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
        y[ib].d = f2h(fit_symmetric(kBlock, 16, xb, L, w));
        for (int j = 0; j < kBlock; ++j) U[j] = static_cast<uint8_t>(L[j]);
        pack5(U, y[ib].qs, y[ib].qh);
    }
}

void q5_1_ref(const float* x, BlockQ5_1* y, int64_t nb) {
    uint8_t L[kBlock];
    for (int64_t i = 0; i < nb; ++i, x += kBlock) {
        float min, max;
        block_range(x, min, max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < kBlock; ++j) L[j] = static_cast<uint8_t>((x[j] - min) * id + 0.5f);
        pack5(L, y[i].qs, y[i].qh);
    }
}

// ---- K-quants -------------------------------------------------------------------------------------------------------

// Packs 256 levels of 2 bits: byte l of each 32-byte group holds values l, l+32, l+64, l+96 of its 128.
void pack2(const uint8_t* L, uint8_t qs[64]) {
    for (int j = 0; j < kSuper; j += 128)
        for (int l = 0; l < 32; ++l)
            qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Requantises a Q2_K super-block's values with its stored scales and mins, then packs them.
void q2_k_finish(const float* x, BlockQ2_K& y, uint8_t* L) {
    for (int j = 0; j < 16; ++j) {
        const float d = h2f(y.d) * static_cast<float>(y.scales[j] & 0xF);
        if (!d) continue;
        const float dm = h2f(y.dmin) * static_cast<float>(y.scales[j] >> 4);
        for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest((x[16 * j + ii] + dm) / d), 0, 3));
    }
    pack2(L, y.qs);
}

void q2_k_ref(const float* x, BlockQ2_K* y, int64_t nb) {
    uint8_t L[kSuper], Laux[16];
    float w[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; ++i, x += kSuper) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
            scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true, true);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j) y[i].scales[j] = static_cast<uint8_t>(nearest(iscale * scales[j]));
            y[i].d = f2h(max_scale / q4scale);
        } else {
            std::memset(y[i].scales, 0, 16);
            y[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j) y[i].scales[j] = static_cast<uint8_t>(y[i].scales[j] | (nearest(iscale * mins[j]) << 4));
            y[i].dmin = f2h(max_min / q4scale);
        } else {
            y[i].dmin = f2h(0.f);
        }
        q2_k_finish(x, y[i], L);
    }
}

void q2_k_weighted(const float* x, BlockQ2_K* y, int64_t n, const float* imp) {
    uint8_t L[kSuper], Laux[16], Ls[16], Lm[16];
    float mins[16], scales[16], sw[16], w[16];
    for (int64_t i = 0; i < n / kSuper; ++i, x += kSuper) {
        std::fill(sw, sw + 16, 0.f);
        float sumx2 = 0;
        for (int j = 0; j < kSuper; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = sumx2 / kSuper;
        for (int j = 0; j < 16; ++j) {
            const float* qw = imp + kSuper * i + 16 * j;
            for (int l = 0; l < 16; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            for (int l = 0; l < 16; ++l) sw[j] += w[l];
            scales[j] = fit_affine(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, false);
        }
        const float dm = fit_positive(16, 15, scales, Ls, sw);
        const float mm = fit_positive(16, 15, mins, Lm, sw);
        y[i].d = f2h(dm);
        y[i].dmin = f2h(mm);
        for (int j = 0; j < 16; ++j) y[i].scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
        q2_k_finish(x, y[i], L);
    }
}

// Stores 16 six-bit Q3_K scales (0…63, i.e. scale + 32): low nibbles in bytes 0–7, high 2 bits in bytes 8–11.
void q3k_pack_scales(const int* ls, uint8_t s[12]) {
    std::memset(s, 0, 12);
    for (int j = 0; j < 16; ++j) {
        const int l = ls[j];
        if (j < 8) s[j] = static_cast<uint8_t>(l & 0xF);
        else s[j - 8] = static_cast<uint8_t>(s[j - 8] | ((l & 0xF) << 4));
        s[j % 4 + 8] = static_cast<uint8_t>(s[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
    }
}

// Requantises a Q3_K super-block with its stored scales (L: levels + 4), then packs the high bits and low 2 bits.
void q3_k_finish(const float* x, BlockQ3_K& y, int8_t* L) {
    int8_t sc[16];
    q3k_scales(y.scales, sc);
    for (int j = 0; j < 16; ++j) {
        const float d = h2f(y.d) * static_cast<float>(sc[j]);
        if (!d) continue;
        for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clampi(nearest(x[16 * j + ii] / d), -4, 3) + 4);
    }
    std::memset(y.hmask, 0, 32);
    // the high bit of values 0–31 goes to bit 0 of hmask[0..31], of values 32–63 to bit 1, and so on
    uint8_t U[kSuper];
    for (int j = 0; j < kSuper; ++j) {
        int l = L[j];
        if (l > 3) {
            y.hmask[j % 32] = static_cast<uint8_t>(y.hmask[j % 32] | (1 << (j / 32)));
            l -= 4;
        }
        U[j] = static_cast<uint8_t>(l);
    }
    pack2(U, y.qs);
}

void q3_k_ref(const float* x, BlockQ3_K* y, int64_t nb) {
    int8_t L[kSuper];
    float scales[16];
    for (int64_t i = 0; i < nb; ++i, x += kSuper) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = fit_symmetric_refined(16, 4, x + 16 * j, L + 16 * j);
            const float a = std::fabs(scales[j]);
            if (a > amax) { amax = a; max_scale = scales[j]; }
        }
        if (max_scale) {
            const float iscale = -32.f / max_scale;
            int ls[16];
            for (int j = 0; j < 16; ++j) {
                const int8_t l = static_cast<int8_t>(nearest(iscale * scales[j]));
                ls[j] = clampi(l, -32, 31) + 32;
            }
            q3k_pack_scales(ls, y[i].scales);
            y[i].d = f2h(1 / iscale);
        } else {
            std::memset(y[i].scales, 0, 12);
            y[i].d = f2h(0.f);
        }
        q3_k_finish(x, y[i], L);
    }
}

void q3_k_weighted(const float* x, BlockQ3_K* y, int64_t n, const float* imp) {
    int8_t L[kSuper], Ls[16];
    float scales[16], w[16], sw[16];
    for (int64_t i = 0; i < n / kSuper; ++i, x += kSuper) {
        float sumx2 = 0;
        for (int j = 0; j < kSuper; ++j) sumx2 += x[j] * x[j];
        const float sigma2 = 2 * sumx2 / kSuper;
        for (int j = 0; j < 16; ++j) {
            const float* qw = imp + kSuper * i + 16 * j;
            for (int l = 0; l < 16; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += w[l];
            sw[j] = sumw;
            scales[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j, w);
        }
        const float d_block = fit_symmetric(16, 32, scales, Ls, sw);
        int ls[16];
        for (int j = 0; j < 16; ++j) ls[j] = Ls[j];
        q3k_pack_scales(ls, y[i].scales);
        y[i].d = f2h(d_block);
        q3_k_finish(x, y[i], L);
    }
}

// Stores 8 six-bit scales and mins of a Q4_K / Q5_K super-block in its 12 bytes (k4_scale_min reads them back).
void k4_pack(const uint8_t* ls, const uint8_t* lm, uint8_t s[12]) {
    for (int j = 0; j < 8; ++j) {
        if (j < 4) {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls[j] >> 4) << 6));
            s[j] = static_cast<uint8_t>(s[j] | ((lm[j] >> 4) << 6));
        }
    }
}

// Requantises the 8 sub-blocks of 32 with a super-block's stored scales and mins into levels 0…nmax.
void k4_requantize(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* s, int nmax, uint8_t* L) {
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        k4_scale_min(j, s, sc, m);
        const float d = h2f(d16) * static_cast<float>(sc);
        if (!d) continue;
        const float dm = h2f(dmin16) * static_cast<float>(m);
        for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = static_cast<uint8_t>(clampi(nearest((x[32 * j + ii] + dm) / d), 0, nmax));
    }
}

// The reference search of Q4_K (nmax 15) and Q5_K (nmax 31): each sub-block's affine fit, then the scales and mins
// quantised to 6 bits against their maxima. Sets d, dmin and the 12 scale bytes; L receives the levels.
void k4_ref_scales(const float* x, int nmax, float rmin, int nstep, uint16_t& d, uint16_t& dmin, uint8_t* s, uint8_t* L) {
    uint8_t Laux[32];
    float w[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest(inv_scale * scales[j])));
        lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest(inv_min * mins[j])));
    }
    k4_pack(ls, lm, s);
    d = f2h(max_scale / 63.f);
    dmin = f2h(max_min / 63.f);
}

// The importance-weighted search of Q4_K / Q5_K: sub-block fits weighted by importance · √(σ² + x²) (or, without an
// importance matrix, √σ² + |x|), then the scales and mins fitted as non-negative 6-bit levels.
void k4_weighted_scales(const float* x, const float* imp, int nmax, uint16_t& d, uint16_t& dmin, uint8_t* s, uint8_t* L) {
    uint8_t Laux[32], Ls[8], Lm[8];
    float w[32], sw[8], mins[8], scales[8];
    float sum_x2 = 0;
    for (int l = 0; l < kSuper; ++l) sum_x2 += x[l] * x[l];
    const float sigma2 = 2 * sum_x2 / kSuper;
    const float av_x = std::sqrt(sigma2);
    for (int j = 0; j < 8; ++j) {
        if (imp) {
            const float* qw = imp + 32 * j;
            for (int l = 0; l < 32; ++l) w[l] = qw[l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
        } else {
            for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
        }
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += w[l];
        sw[j] = sumw;
        scales[j] = fit_affine(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, false);
    }
    const float d_block = fit_positive(8, 63, scales, Ls, sw);
    const float m_block = fit_positive(8, 63, mins, Lm, sw);
    for (int j = 0; j < 8; ++j) {
        Ls[j] = std::min<uint8_t>(63, Ls[j]);
        Lm[j] = std::min<uint8_t>(63, Lm[j]);
    }
    k4_pack(Ls, Lm, s);
    d = f2h(d_block);
    dmin = f2h(m_block);
}

void pack4_k(const uint8_t* L, uint8_t* q) {
    for (int j = 0; j < kSuper; j += 64, q += 32)
        for (int l = 0; l < 32; ++l) q[l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

void pack5_k(const uint8_t* L, uint8_t* ql, uint8_t* qh) {
    std::memset(qh, 0, 32);
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < kSuper; n += 64, ql += 32) {
        for (int j = 0; j < 32; ++j) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) { l1 -= 16; qh[j] = static_cast<uint8_t>(qh[j] | m1); }
            if (l2 > 15) { l2 -= 16; qh[j] = static_cast<uint8_t>(qh[j] | m2); }
            ql[j] = static_cast<uint8_t>(l1 | (l2 << 4));
        }
        m1 = static_cast<uint8_t>(m1 << 2);
        m2 = static_cast<uint8_t>(m2 << 2);
    }
}

void q4_k(const float* x, BlockQ4_K* y, int64_t nb, const float* imp, bool ref) {
    uint8_t L[kSuper];
    for (int64_t i = 0; i < nb; ++i, x += kSuper) {
        if (ref) k4_ref_scales(x, 15, -1.f, 20, y[i].d, y[i].dmin, y[i].scales, L);
        else k4_weighted_scales(x, imp ? imp + kSuper * i : nullptr, 15, y[i].d, y[i].dmin, y[i].scales, L);
        k4_requantize(x, y[i].d, y[i].dmin, y[i].scales, 15, L);
        pack4_k(L, y[i].qs);
    }
}

void q5_k(const float* x, BlockQ5_K* y, int64_t nb, const float* imp, bool ref) {
    uint8_t L[kSuper];
    for (int64_t i = 0; i < nb; ++i, x += kSuper) {
        if (ref) k4_ref_scales(x, 31, -0.5f, 15, y[i].d, y[i].dmin, y[i].scales, L);
        else k4_weighted_scales(x, imp ? imp + kSuper * i : nullptr, 31, y[i].d, y[i].dmin, y[i].scales, L);
        k4_requantize(x, y[i].d, y[i].dmin, y[i].scales, 31, L);
        pack5_k(L, y[i].qs, y[i].qh);
    }
}

void q6_k(const float* x, BlockQ6_K* y, int64_t nb, const float* imp) {
    int8_t L[kSuper];
    float scales[16];
    for (int64_t i = 0; i < nb; ++i, x += kSuper) {
        float max_scale = 0, max_abs = 0;
        for (int ib = 0; ib < 16; ++ib) {
            scales[ib] = fit_symmetric(16, 32, x + 16 * ib, L + 16 * ib, imp ? imp + kSuper * i + 16 * ib : nullptr);
            const float a = std::fabs(scales[ib]);
            if (a > max_abs) { max_abs = a; max_scale = scales[ib]; }
        }
        if (max_abs < kGroupMaxEps) {
            std::memset(&y[i], 0, sizeof(BlockQ6_K));
            y[i].d = f2h(0.f);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < 16; ++ib) y[i].scales[ib] = static_cast<int8_t>(std::min(127, nearest(iscale * scales[ib])));
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(y[i].d) * static_cast<float>(y[i].scales[j]);
            if (!d) continue;
            for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clampi(nearest(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < kSuper; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const int a = L[j + l], b = L[j + l + 32], c = L[j + l + 64], e = L[j + l + 96];
                ql[l] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
                ql[l + 32] = static_cast<uint8_t>((b & 0xF) | ((e & 0xF) << 4));
                qh[l] = static_cast<uint8_t>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
            }
        }
    }
}

// ---- IQ4_NL / IQ4_XS: indices into 16 non-linear levels ----------------------------------------------------------------

constexpr const int8_t* kIq4Levels = kIq4NlLevels;

// The index of the level nearest v (the lower one on ties; ggml's best_index_int8).
inline int nearest_level(float v) {
    const int8_t* L = kIq4Levels;
    if (v <= L[0]) return 0;
    if (v >= L[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < L[mid]) hi = mid;
        else lo = mid;
    }
    return v - L[hi - 1] < L[hi] - v ? hi - 1 : hi;
}

// One super-block of `sbs` values in sub-blocks of 32 (IQ4_NL: one; IQ4_XS: eight): per sub-block the scale whose
// levels fit best (weights importance · √(σ² + x²), or x²), 15 trial scales around −max/−127; IQ4_XS then stores
// the scales as 6-bit multiples of max_scale/−32. (ggml's quantize_row_iq4_nl_impl with ntry 7, as quantize_iq4_nl
// and quantize_iq4_xs call it.)
void iq4_superblock(int sbs, const float* x, uint16_t* dh, uint8_t* q4, uint16_t* scales_h, uint8_t* scales_l, const float* imp) {
    constexpr int ntry = 7, bs = 32;
    float weight[bs], scales[kSuper / bs];
    uint8_t L[kSuper];
    float sigma2 = 0;
    for (int j = 0; j < sbs; ++j) sigma2 += x[j] * x[j];
    sigma2 *= 2.f / static_cast<float>(sbs);
    std::memset(q4, 0, static_cast<size_t>(sbs / 2));
    *dh = f2h(0.f);
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < sbs / bs; ++ib) {
        const float* xb = x + ib * bs;
        uint8_t* Lb = L + ib * bs;
        for (int j = 0; j < bs; ++j) weight[j] = imp ? imp[ib * bs + j] * std::sqrt(sigma2 + xb[j] * xb[j]) : xb[j] * xb[j];
        float amax;
        const float max = signed_absmax(xb, bs, amax);
        if (amax < kGroupMaxEps) {
            scales[ib] = 0;
            continue;
        }
        float d = -max / static_cast<float>(kIq4Levels[0]);
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < bs; ++j) {
            const int l = nearest_level(id * xb[j]);
            Lb[j] = static_cast<uint8_t>(l);
            const float q = kIq4Levels[l];
            sumqx += weight[j] * q * xb[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumqx / sumq2;
        float best = d * sumqx;
        for (int t = -ntry; t <= ntry; ++t) {
            id = static_cast<float>(t + kIq4Levels[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < bs; ++j) {
                const float q = kIq4Levels[nearest_level(id * xb[j])];
                sumqx += weight[j] * q * xb[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[ib] = d;
        if (std::fabs(d) > amax_scale) {
            amax_scale = std::fabs(d);
            max_scale = d;
        }
    }
    if (sbs / bs > 1) {
        *scales_h = 0;
        const float d = -max_scale / 32;
        *dh = f2h(d);
        const float id = d ? 1 / d : 0.f;
        for (int ib = 0; ib < sbs / bs; ++ib) {
            int l = clampi(nearest(id * scales[ib]), -32, 31);
            const float dl = d * static_cast<float>(l);
            const float idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < bs; ++j) L[ib * bs + j] = static_cast<uint8_t>(nearest_level(idl * x[ib * bs + j]));
            l += 32;
            if (ib % 2 == 0) scales_l[ib / 2] = static_cast<uint8_t>(l & 0xF);
            else scales_l[ib / 2] = static_cast<uint8_t>(scales_l[ib / 2] | ((l & 0xF) << 4));
            *scales_h = static_cast<uint16_t>(*scales_h | ((l >> 4) << (2 * (ib % 8))));
        }
    } else {
        *dh = f2h(scales[0]);
        const float id = scales[0] ? 1 / scales[0] : 0;
        for (int j = 0; j < sbs; ++j) L[j] = static_cast<uint8_t>(nearest_level(id * x[j]));
    }
    for (int i = 0; i < sbs / 32; ++i)
        for (int j = 0; j < 16; ++j) q4[16 * i + j] = static_cast<uint8_t>(L[32 * i + j] | (L[32 * i + 16 + j] << 4));
}

void iq4_nl(const float* x, BlockIQ4_NL* y, int64_t nb, const float* imp) {
    for (int64_t i = 0; i < nb; ++i) iq4_superblock(kBlock, x + i * kBlock, &y[i].d, y[i].qs, nullptr, nullptr, imp ? imp + i * kBlock : nullptr);
}

void iq4_xs(const float* x, BlockIQ4_XS* y, int64_t nb, const float* imp) {
    for (int64_t i = 0; i < nb; ++i)
        iq4_superblock(kSuper, x + i * kSuper, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l, imp ? imp + i * kSuper : nullptr);
}

inline int iq4_xs_scale(const BlockIQ4_XS& b, int ib) {  // the 6-bit scale of sub-block ib, less 32
    return (((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xF) | (((b.scales_h >> (2 * ib)) & 3) << 4)) - 32;
}

// ---- dequantisation -------------------------------------------------------------------------------------------------

void dq_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = static_cast<float>((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void dq_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < 16; ++j) {
            y[j] = static_cast<float>(x[i].qs[j] & 0x0F) * d + m;
            y[j + 16] = static_cast<float>(x[i].qs[j] >> 4) * d + m;
        }
    }
}

// the 5-bit levels of a Q5 block
inline void unpack5(const uint8_t qs[16], const uint8_t qh_bytes[4], int* q) {
    uint32_t qh;
    std::memcpy(&qh, qh_bytes, 4);
    for (int j = 0; j < 16; ++j) {
        q[j] = (qs[j] & 0x0F) | static_cast<int>(((qh >> j) << 4) & 0x10);
        q[j + 16] = (qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
    }
}

void dq_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
    int q[kBlock];
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d);
        unpack5(x[i].qs, x[i].qh, q);
        for (int j = 0; j < kBlock; ++j) y[j] = static_cast<float>(q[j] - 16) * d;
    }
}

void dq_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
    int q[kBlock];
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        unpack5(x[i].qs, x[i].qh, q);
        for (int j = 0; j < kBlock; ++j) y[j] = static_cast<float>(q[j]) * d + m;
    }
}

void dq_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < kBlock; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

void dq_q8_1(const BlockQ8_1* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < kBlock; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

void dq_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kBlock) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = d * static_cast<float>(kIq4Levels[x[i].qs[j] & 0xF]);
            y[j + 16] = d * static_cast<float>(kIq4Levels[x[i].qs[j] >> 4]);
        }
    }
}

void dq_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        for (int ib = 0; ib < 8; ++ib, y += 32) {
            const float dl = d * static_cast<float>(iq4_xs_scale(x[i], ib));
            const uint8_t* qs = x[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) {
                y[j] = dl * static_cast<float>(kIq4Levels[qs[j] & 0xF]);
                y[j + 16] = dl * static_cast<float>(kIq4Levels[qs[j] >> 4]);
            }
        }
    }
}

void dq_q2_k(const BlockQ2_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        const uint8_t* q = x[i].qs;
        int is = 0;
        for (int n = 0; n < kSuper; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2)
                for (int half = 0; half < 2; ++half) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * static_cast<float>(sc & 0xF), ml = min * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
                }
    }
}

void dq_q3_k(const BlockQ3_K* x, float* y, int64_t nb) {
    int8_t sc[16];
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = h2f(x[i].d);
        q3k_scales(x[i].scales, sc);
        const uint8_t* q = x[i].qs;
        const uint8_t* hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < kSuper; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1))
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * static_cast<float>(sc[is++]);
                    for (int l = 16 * half; l < 16 * half + 16; ++l)
                        *y++ = dl * static_cast<float>(((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
                }
    }
}

void dq_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        const uint8_t* q = x[i].qs;
        for (int j = 0, is = 0; j < kSuper; j += 64, q += 32, is += 2) {
            uint8_t sc, m;
            k4_scale_min(is, x[i].scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
            k4_scale_min(is + 1, x[i].scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

void dq_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), min = h2f(x[i].dmin);
        const uint8_t* ql = x[i].qs;
        const uint8_t* qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0, is = 0; j < kSuper; j += 64, ql += 32, is += 2) {
            uint8_t sc, m;
            k4_scale_min(is, x[i].scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = min * static_cast<float>(m);
            k4_scale_min(is + 1, x[i].scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = min * static_cast<float>(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
            u1 = static_cast<uint8_t>(u1 << 2);
            u2 = static_cast<uint8_t>(u2 << 2);
        }
    }
}

void dq_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* sc = x[i].scales;
        for (int n = 0; n < kSuper; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

void dq_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i)
        for (int j = 0; j < kSuper; ++j) *y++ = x[i].d * static_cast<float>(x[i].qs[j]);
}

}  // namespace

void q3k_scales(const uint8_t s[12], int8_t out[16]) {
    for (int j = 0; j < 16; ++j) {
        const int low = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
        const int high = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = static_cast<int8_t>((low | (high << 4)) - 32);
    }
}

bool is_quantized(DType t) { return block_elems(t) > 1; }

int64_t block_elems(DType t) {
    switch (t) {
        case DType::Q4_0: case DType::Q4_1: case DType::Q5_0: case DType::Q5_1: case DType::Q8_0: case DType::Q8_1: case DType::IQ4_NL: return kBlock;
        case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::Q8_K: case DType::IQ4_XS: return kSuper;
        default: return 1;
    }
}

size_t block_bytes(DType t) {
    switch (t) {
        case DType::Q4_0: return sizeof(BlockQ4_0);
        case DType::Q4_1: return sizeof(BlockQ4_1);
        case DType::Q5_0: return sizeof(BlockQ5_0);
        case DType::Q5_1: return sizeof(BlockQ5_1);
        case DType::Q8_0: return sizeof(BlockQ8_0);
        case DType::Q8_1: return sizeof(BlockQ8_1);
        case DType::Q2_K: return sizeof(BlockQ2_K);
        case DType::Q3_K: return sizeof(BlockQ3_K);
        case DType::Q4_K: return sizeof(BlockQ4_K);
        case DType::Q5_K: return sizeof(BlockQ5_K);
        case DType::Q6_K: return sizeof(BlockQ6_K);
        case DType::Q8_K: return sizeof(BlockQ8_K);
        case DType::IQ4_NL: return sizeof(BlockIQ4_NL);
        case DType::IQ4_XS: return sizeof(BlockIQ4_XS);
        default: return 0;
    }
}

void dequantize(DType t, const void* src, float* dst, int64_t n) {
    const int64_t nb = n / block_elems(t);
    switch (t) {
        case DType::Q4_0: return dq_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
        case DType::Q4_1: return dq_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
        case DType::Q5_0: return dq_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
        case DType::Q5_1: return dq_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
        case DType::Q8_0: return dq_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
        case DType::Q8_1: return dq_q8_1(static_cast<const BlockQ8_1*>(src), dst, nb);
        case DType::Q2_K: return dq_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb);
        case DType::Q3_K: return dq_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb);
        case DType::Q4_K: return dq_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
        case DType::Q5_K: return dq_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
        case DType::Q6_K: return dq_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
        case DType::Q8_K: return dq_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb);
        case DType::IQ4_NL: return dq_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, nb);
        case DType::IQ4_XS: return dq_iq4_xs(static_cast<const BlockIQ4_XS*>(src), dst, nb);
        default: throw_runtime("dequantize: %s is not a quantised type", dtype_name(t));
    }
}

void quantize_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock) {
        float amax = 0;
        for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < kBlock; ++j) y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));
    }
}

void quantize_q8_K_ref(const float* x, BlockQ8_K* y, int64_t n) {
    for (int64_t i = 0; i < n / kSuper; ++i, x += kSuper) {
        float amax = 0, max = 0;
        for (int j = 0; j < kSuper; ++j)
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        if (!amax) {
            y[i].d = 0;
            std::memset(y[i].qs, 0, kSuper);
            std::memset(y[i].bsums, 0, sizeof(y[i].bsums));  // ggml leaves them; zero is what they sum to
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < kSuper; ++j) y[i].qs[j] = static_cast<int8_t>(std::min(127, nearest(iscale * x[j])));
        for (int j = 0; j < 16; ++j) {
            int sum = 0;
            for (int ii = 0; ii < 16; ++ii) sum += y[i].qs[j * 16 + ii];
            y[i].bsums[j] = static_cast<int16_t>(sum);
        }
        y[i].d = 1 / iscale;
    }
}

size_t quantize(DType t, const float* src, void* dst, int64_t rows, int64_t n, const float* imp) {
    const int64_t be = block_elems(t);
    if (be == 1 || n % be != 0) throw_runtime("quantize: rows of %lld values do not split into %s blocks", static_cast<long long>(n), dtype_name(t));
    const size_t rb = row_bytes(t, n);
    const int64_t nb = n / be;
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = src + r * n;
        void* y = static_cast<uint8_t*>(dst) + static_cast<size_t>(r) * rb;
        switch (t) {
            case DType::Q4_0: imp ? q4_0_weighted(x, static_cast<BlockQ4_0*>(y), n, imp) : q4_0_ref(x, static_cast<BlockQ4_0*>(y), nb); break;
            case DType::Q4_1: imp ? affine_weighted(x, static_cast<BlockQ4_1*>(y), n, imp, 15) : q4_1_ref(x, static_cast<BlockQ4_1*>(y), nb); break;
            case DType::Q5_0: imp ? q5_0_weighted(x, static_cast<BlockQ5_0*>(y), n, imp) : q5_0_ref(x, static_cast<BlockQ5_0*>(y), nb); break;
            case DType::Q5_1: imp ? affine_weighted(x, static_cast<BlockQ5_1*>(y), n, imp, 31) : q5_1_ref(x, static_cast<BlockQ5_1*>(y), nb); break;
            case DType::Q8_0: quantize_q8_0_ref(x, static_cast<BlockQ8_0*>(y), n); break;
            case DType::Q2_K: imp ? q2_k_weighted(x, static_cast<BlockQ2_K*>(y), n, imp) : q2_k_ref(x, static_cast<BlockQ2_K*>(y), nb); break;
            case DType::Q3_K: imp ? q3_k_weighted(x, static_cast<BlockQ3_K*>(y), n, imp) : q3_k_ref(x, static_cast<BlockQ3_K*>(y), nb); break;
            case DType::Q4_K: q4_k(x, static_cast<BlockQ4_K*>(y), nb, imp, imp == nullptr); break;
            case DType::Q5_K: q5_k(x, static_cast<BlockQ5_K*>(y), nb, imp, imp == nullptr); break;
            case DType::Q6_K: q6_k(x, static_cast<BlockQ6_K*>(y), nb, imp); break;
            case DType::Q8_K: quantize_q8_K_ref(x, static_cast<BlockQ8_K*>(y), n); break;
            case DType::IQ4_NL: iq4_nl(x, static_cast<BlockIQ4_NL*>(y), nb, imp); break;
            case DType::IQ4_XS: iq4_xs(x, static_cast<BlockIQ4_XS*>(y), nb, imp); break;
            default: throw_runtime("quantize: %s is not a quantised type", dtype_name(t));
        }
    }
    return static_cast<size_t>(rows) * rb;
}

}  // namespace llmforge::quant

// ---- products with quantised activations ----------------------------------------------------------------------------
//
// Each block's integer dot product is exact; the blocks' scaled sums are added in block order. (llama.cpp's SIMD
// kernels add the same terms in other orders, so results agree to rounding, not bit for bit.)
namespace llmforge::quant {

namespace {

// One block of 32 activations as ggml's x86 backend quantises it (amax/127, 127/amax, ties to even): the scale d
// (stored in f16) and the levels; returns Σq.
int q8_block(const float* x, float& d, uint16_t& d16, int8_t* qs) {
    float amax = 0;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    d = amax / 127.f;
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    d16 = f32_to_f16(d);
    int sum = 0;
    for (int j = 0; j < kBlock; ++j) {
        qs[j] = static_cast<int8_t>(nearest(x[j] * id));
        sum += qs[j];
    }
    return sum;
}

void q8_0_act(const float* x, BlockQ8_0* y, int64_t n) {
    float d;
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock) (void)q8_block(x, d, y[i].d, y[i].qs);
}

void q8_1_act(const float* x, BlockQ8_1* y, int64_t n) {  // Q8_0's blocks and s = d·Σq
    float d;
    for (int64_t i = 0; i < n / kBlock; ++i, x += kBlock) {
        const int sum = q8_block(x, d, y[i].d, y[i].qs);
        y[i].s = f32_to_f16(d * static_cast<float>(sum));
    }
}

// Σ a_j·b_j over 32 signed bytes (vectorises to multiply-adds of 16-bit pairs)
inline int dot32(const int8_t* a, const int8_t* b) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += static_cast<int16_t>(a[j]) * static_cast<int16_t>(b[j]);
    return s;
}
inline int dot16(const int8_t* a, const int8_t* b) {
    int s = 0;
    for (int j = 0; j < 16; ++j) s += static_cast<int16_t>(a[j]) * static_cast<int16_t>(b[j]);
    return s;
}

inline void nibbles(const uint8_t* qs, int8_t* out, int offset) {  // 16 bytes → 32 values, low nibbles first
    for (int j = 0; j < 16; ++j) {
        out[j] = static_cast<int8_t>((qs[j] & 0x0F) - offset);
        out[j + 16] = static_cast<int8_t>((qs[j] >> 4) - offset);
    }
}

inline void fives(const uint8_t* qs, const uint8_t* qh_bytes, int8_t* out, int offset) {
    int q[32];
    unpack5(qs, qh_bytes, q);
    for (int j = 0; j < 32; ++j) out[j] = static_cast<int8_t>(q[j] - offset);
}

// Symmetric 32-value blocks with Q8_0 activations: Σ_blocks (Σ w·x)·(d_w·d_x); unpack gives a block's signed levels.
template <class Block, class Unpack>
float dot_symmetric(const Block* w, const BlockQ8_0* x, int64_t nb, Unpack unpack) {
    float sum = 0;
    int8_t v[32];
    for (int64_t i = 0; i < nb; ++i) {
        unpack(w[i], v);
        sum += static_cast<float>(dot32(v, x[i].qs)) * (h2f(w[i].d) * h2f(x[i].d));
    }
    return sum;
}

// Affine 32-value blocks (x = d·q + m) with Q8_1 activations: (d_w·d_x)·Σ q·x + m·s_x per block.
template <class Block, class Unpack>
float dot_affine(const Block* w, const BlockQ8_1* x, int64_t nb, Unpack unpack) {
    float sum = 0;
    int8_t v[32];
    for (int64_t i = 0; i < nb; ++i) {
        unpack(w[i], v);
        sum += (h2f(w[i].d) * h2f(x[i].d)) * static_cast<float>(dot32(v, x[i].qs)) + h2f(w[i].m) * h2f(x[i].s);
    }
    return sum;
}

float dot_q4_0(const BlockQ4_0* w, const BlockQ8_0* x, int64_t nb) {
    return dot_symmetric(w, x, nb, [](const BlockQ4_0& b, int8_t* v) { nibbles(b.qs, v, 8); });
}
float dot_q4_1(const BlockQ4_1* w, const BlockQ8_1* x, int64_t nb) {
    return dot_affine(w, x, nb, [](const BlockQ4_1& b, int8_t* v) { nibbles(b.qs, v, 0); });
}
float dot_q5_0(const BlockQ5_0* w, const BlockQ8_0* x, int64_t nb) {
    return dot_symmetric(w, x, nb, [](const BlockQ5_0& b, int8_t* v) { fives(b.qs, b.qh, v, 16); });
}
float dot_q5_1(const BlockQ5_1* w, const BlockQ8_1* x, int64_t nb) {
    return dot_affine(w, x, nb, [](const BlockQ5_1& b, int8_t* v) { fives(b.qs, b.qh, v, 0); });
}

float dot_q8_0(const BlockQ8_0* w, const BlockQ8_0* x, int64_t nb) {
    return dot_symmetric(w, x, nb, [](const BlockQ8_0& b, int8_t* v) { std::memcpy(v, b.qs, 32); });
}

// K-quants: per super-block, Σ_j scale_j · (q_j · x_j) − Σ_j min_j · Σ x_j in integers, then × d (and dmin) × x's d.
float dot_q2_k(const BlockQ2_K* w, const BlockQ8_K* x, int64_t nb) {
    float sum = 0;
    int8_t v[kSuper];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q = w[i].qs;
        for (int n = 0; n < kSuper; n += 128, q += 32)
            for (int shift = 0, k = 0; shift < 8; shift += 2, ++k)
                for (int l = 0; l < 32; ++l) v[n + 32 * k + l] = static_cast<int8_t>((q[l] >> shift) & 3);
        int isum = 0, msum = 0;
        for (int j = 0; j < 16; ++j) {
            isum += (w[i].scales[j] & 0xF) * dot16(v + 16 * j, x[i].qs + 16 * j);
            msum += (w[i].scales[j] >> 4) * x[i].bsums[j];
        }
        sum += x[i].d * (h2f(w[i].d) * static_cast<float>(isum) - h2f(w[i].dmin) * static_cast<float>(msum));
    }
    return sum;
}

float dot_q3_k(const BlockQ3_K* w, const BlockQ8_K* x, int64_t nb) {
    float sum = 0;
    int8_t v[kSuper], sc[16];
    for (int64_t i = 0; i < nb; ++i) {
        q3k_scales(w[i].scales, sc);
        const uint8_t* q = w[i].qs;
        for (int n = 0, m = 0; n < kSuper; n += 128, q += 32)
            for (int shift = 0; shift < 8; shift += 2, ++m)
                for (int l = 0; l < 32; ++l)
                    v[n + 16 * shift + l] = static_cast<int8_t>(((q[l] >> shift) & 3) - ((w[i].hmask[l] >> m) & 1 ? 0 : 4));
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += sc[j] * dot16(v + 16 * j, x[i].qs + 16 * j);
        sum += x[i].d * h2f(w[i].d) * static_cast<float>(isum);
    }
    return sum;
}

template <int Bits, class Block>
float dot_k4(const Block* w, const BlockQ8_K* x, int64_t nb) {
    float sum = 0;
    int8_t v[kSuper];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q = w[i].qs;
        for (int j = 0; j < kSuper; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) {
                int lo = q[l] & 0xF, hi = q[l] >> 4;
                if constexpr (Bits == 5) {
                    const int b = j / 32;  // sub-blocks 2k and 2k+1 take bits 2k and 2k+1 of qh
                    lo |= ((w[i].qh[l] >> b) & 1) << 4;
                    hi |= ((w[i].qh[l] >> (b + 1)) & 1) << 4;
                }
                v[j + l] = static_cast<int8_t>(lo);
                v[j + 32 + l] = static_cast<int8_t>(hi);
            }
        int isum = 0, msum = 0;
        for (int j = 0; j < 8; ++j) {
            uint8_t sc, m;
            k4_scale_min(j, w[i].scales, sc, m);
            isum += sc * dot32(v + 32 * j, x[i].qs + 32 * j);
            msum += m * (x[i].bsums[2 * j] + x[i].bsums[2 * j + 1]);
        }
        sum += x[i].d * (h2f(w[i].d) * static_cast<float>(isum) - h2f(w[i].dmin) * static_cast<float>(msum));
    }
    return sum;
}

float dot_q6_k(const BlockQ6_K* w, const BlockQ8_K* x, int64_t nb) {
    float sum = 0;
    int8_t v[kSuper];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* ql = w[i].ql;
        const uint8_t* qh = w[i].qh;
        for (int n = 0; n < kSuper; n += 128, ql += 64, qh += 32)
            for (int l = 0; l < 32; ++l) {
                v[n + l] = static_cast<int8_t>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                v[n + l + 32] = static_cast<int8_t>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                v[n + l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                v[n + l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        int isum = 0;
        for (int j = 0; j < 16; ++j) isum += w[i].scales[j] * dot16(v + 16 * j, x[i].qs + 16 * j);
        sum += x[i].d * h2f(w[i].d) * static_cast<float>(isum);
    }
    return sum;
}

float dot_iq4_nl(const BlockIQ4_NL* w, const BlockQ8_0* x, int64_t nb) {
    return dot_symmetric(w, x, nb, [](const BlockIQ4_NL& b, int8_t* v) {
        for (int j = 0; j < 16; ++j) v[j] = kIq4Levels[b.qs[j] & 0xF], v[j + 16] = kIq4Levels[b.qs[j] >> 4];
    });
}

float dot_iq4_xs(const BlockIQ4_XS* w, const BlockQ8_K* x, int64_t nb) {
    float sum = 0;
    int8_t v[32];
    for (int64_t i = 0; i < nb; ++i) {
        int isum = 0;
        for (int ib = 0; ib < 8; ++ib) {
            const uint8_t* qs = w[i].qs + 16 * ib;
            for (int j = 0; j < 16; ++j) v[j] = kIq4Levels[qs[j] & 0xF], v[j + 16] = kIq4Levels[qs[j] >> 4];
            isum += iq4_xs_scale(w[i], ib) * dot32(v, x[i].qs + 32 * ib);
        }
        sum += x[i].d * h2f(w[i].d) * static_cast<float>(isum);
    }
    return sum;
}

}  // namespace

DType activation_type(DType w) {
    switch (w) {
        case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: case DType::IQ4_NL: return DType::Q8_0;
        case DType::Q4_1: case DType::Q5_1: return DType::Q8_1;
        case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: case DType::IQ4_XS: return DType::Q8_K;
        default: throw_runtime("activation_type: %s is not a quantised weight type", dtype_name(w));
    }
}

void quantize_activations(DType act, const float* x, void* y, int64_t n) {
    switch (act) {
        case DType::Q8_0: return q8_0_act(x, static_cast<BlockQ8_0*>(y), n);
        case DType::Q8_1: return q8_1_act(x, static_cast<BlockQ8_1*>(y), n);
        case DType::Q8_K: return quantize_q8_K_ref(x, static_cast<BlockQ8_K*>(y), n);
        default: throw_runtime("quantize_activations: %s is not an activation type", dtype_name(act));
    }
}

float vec_dot_q4_0_chain(const void* w, const void* x, int64_t n) {
    const BlockQ4_0* wb = static_cast<const BlockQ4_0*>(w);
    const BlockQ8_0* xb = static_cast<const BlockQ8_0*>(x);
    float acc = 0.0f;
    for (int64_t b = 0; b < n / 32; ++b) {
        int32_t s = 0;
        for (int j = 0; j < 16; ++j)
            s += ((wb[b].qs[j] & 0x0F) - 8) * xb[b].qs[j] + ((wb[b].qs[j] >> 4) - 8) * xb[b].qs[j + 16];
        acc = std::fma(static_cast<float>(s), f16_to_f32(wb[b].d) * f16_to_f32(xb[b].d), acc);
    }
    return acc;
}

void interleave_q4_0(const void* src, void* dst, int64_t rows, int64_t cols) {
    const int64_t nb = cols / 32;
    const BlockQ4_0* w = static_cast<const BlockQ4_0*>(src);
    uint8_t* o = static_cast<uint8_t*>(dst);
    for (int64_t g = 0; g < rows; g += 8)
        for (int64_t b = 0; b < nb; ++b, o += kQ4_0GroupBlockBytes)
            for (int r = 0; r < 8; ++r) {
                const BlockQ4_0& blk = w[(g + r) * nb + b];
                std::memcpy(o + 2 * r, &blk.d, 2);
                for (int c = 0; c < 4; ++c) std::memcpy(o + 16 + 32 * c + 4 * r, blk.qs + 4 * c, 4);
            }
}

void deinterleave_q4_0(const void* src, void* dst, int64_t rows, int64_t cols) {
    const int64_t nb = cols / 32;
    const uint8_t* in = static_cast<const uint8_t*>(src);
    BlockQ4_0* w = static_cast<BlockQ4_0*>(dst);
    for (int64_t g = 0; g < rows; g += 8)
        for (int64_t b = 0; b < nb; ++b, in += kQ4_0GroupBlockBytes)
            for (int r = 0; r < 8; ++r) {
                BlockQ4_0& blk = w[(g + r) * nb + b];
                std::memcpy(&blk.d, in + 2 * r, 2);
                for (int c = 0; c < 4; ++c) std::memcpy(blk.qs + 4 * c, in + 16 + 32 * c + 4 * r, 4);
            }
}

float vec_dot(DType t, const void* w, const void* x, int64_t n) {
    const int64_t nb = n / block_elems(t);
    switch (t) {
        case DType::Q4_0: return dot_q4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
        case DType::Q4_1: return dot_q4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
        case DType::Q5_0: return dot_q5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
        case DType::Q5_1: return dot_q5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(x), nb);
        case DType::Q8_0: return dot_q8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(x), nb);
        case DType::Q2_K: return dot_q2_k(static_cast<const BlockQ2_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
        case DType::Q3_K: return dot_q3_k(static_cast<const BlockQ3_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
        case DType::Q4_K: return dot_k4<4>(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
        case DType::Q5_K: return dot_k4<5>(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
        case DType::Q6_K: return dot_q6_k(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(x), nb);
        case DType::IQ4_NL: return dot_iq4_nl(static_cast<const BlockIQ4_NL*>(w), static_cast<const BlockQ8_0*>(x), nb);
        case DType::IQ4_XS: return dot_iq4_xs(static_cast<const BlockIQ4_XS*>(w), static_cast<const BlockQ8_K*>(x), nb);
        default: throw_runtime("vec_dot: %s is not a quantised weight type", dtype_name(t));
    }
}

}  // namespace llmforge::quant
