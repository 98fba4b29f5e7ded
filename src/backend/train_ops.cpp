// The training forward and backward kernels of the CPU backend, one per operation (llm.c style: each operation's two
// directions side by side). Shapes: B sequences of T tokens, N = B·T rows; C, H heads of HD dims, KV = kv heads · HD.
#include "backend/train_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/weight_types.h"

namespace llmforge::backend::train_ops {

using kernels::Precision;



// dst[i] += src[i], split over the threads
void add_into(ThreadPool& pool, float* dst, const float* src, int64_t n) {
    pool.parallel_for(n, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) dst[i] += src[i];
    });
}

// ---- linear: y[N,O] = x[N,I] · W[O,I]ᵀ + b -------------------------------------------------------------------------
// The matrix products run in `prec`: f32, or bf16 operands with f32 accumulation (the master weights stay f32).
void linear_forward(ThreadPool& pool, Precision prec, const float* x, const float* W, const float* b, float* y, int64_t N, int64_t I,
                    int64_t O) {
    kernels::gemm(x, false, W, false, y, N, O, I, false, prec, pool);
    if (b)
        pool.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t o = 0; o < O; ++o) y[n * O + o] += b[o];
        });
}

// dx[N,I] (+)= dy[N,O] · W[O,I];  dW[O,I] += dyᵀ · x;  db[O] += Σ_n dy[n]. The GEMM reads the transposed operands in
// place. accumulate_dx = false overwrites dx (saves zeroing it first).
// y[i] += x[i]: unaliased, so vectorised (each element's sum in the same order as before, the same bits)
static void add_row(float* __restrict y, const float* __restrict x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void linear_backward(ThreadPool& pool, Precision prec, const float* dy, const float* x, const float* W, float* dx, float* dW, float* db,
                     int64_t N, int64_t I, int64_t O, bool accumulate_dx) {
    // dx[n, i] = Σ_o dy[n, o] · W[o, i]: A = dy as stored, B(i, o) = W[o·I + i] (transposed)
    if (dx) kernels::gemm(dy, false, W, true, dx, N, I, O, accumulate_dx, prec, pool);
    // dW[o, i] += Σ_n dy[n, o] · x[n, i]: A(o, n) = dy[n·O + o], B(i, n) = x[n·I + i] (both transposed)
    if (dW) kernels::gemm(dy, true, x, true, dW, O, I, N, true, prec, pool);  // dW null: frozen (LoRA)
    if (db)
        pool.parallel_for(O, [&](int64_t o0, int64_t o1) {
            for (int64_t n = 0; n < N; ++n) add_row(db + o0, dy + n * O + o0, o1 - o0);
        });
}

// ---- linear through a frozen weight of any type (QLoRA) -------------------------------------------------------------
// Rows [r0, r0 + R) of W in f32: each a whole row of blocks, so any block size divides it; split over the threads.
static int64_t tile_rows(int64_t I, int64_t O) {
    const int64_t r = std::max<int64_t>(32, (int64_t{1} << 19) / std::max<int64_t>(1, I) / 32 * 32);  // ~2 MiB of f32
    return std::min(r, O);
}
static void dequantise_rows(ThreadPool& pool, const Tensor& W, int64_t r0, int64_t R, float* out) {
    const WeightType& wt = weight_type(W.dtype, "a frozen weight's tiles");
    const int64_t I = W.cols();
    pool.parallel_for(R, [&](int64_t a, int64_t e) {
        for (int64_t r = a; r < e; ++r) wt.to_f32(wt.row(W.data, r0 + r, I), out + r * I, I);
    });
}

void linear_forward_frozen(ThreadPool& pool, Precision prec, const float* x, const Tensor& W, const float* b, float* y, int64_t N,
                           std::vector<float>& tile) {
    const int64_t I = W.cols(), O = W.shape[0], R = tile_rows(I, O);
    tile.resize(static_cast<size_t>(R * I));
    for (int64_t r0 = 0; r0 < O; r0 += R) {  // y[:, r0 : r0 + R] = x · W[r0 : r0 + R]ᵀ
        const int64_t n = std::min(R, O - r0);
        dequantise_rows(pool, W, r0, n, tile.data());
        kernels::gemm(x, I, false, tile.data(), I, false, y + r0, O, N, n, I, false, prec, pool);
    }
    if (b)
        pool.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t o = 0; o < O; ++o) y[n * O + o] += b[o];
        });
}

void linear_backward_frozen(ThreadPool& pool, Precision prec, const float* dy, const Tensor& W, float* dx, int64_t N, bool accumulate_dx,
                            std::vector<float>& tile) {
    const int64_t I = W.cols(), O = W.shape[0], R = tile_rows(I, O);
    tile.resize(static_cast<size_t>(R * I));
    for (int64_t r0 = 0; r0 < O; r0 += R) {  // dx += dy[:, r0 : r0 + R] · W[r0 : r0 + R]
        const int64_t n = std::min(R, O - r0);
        dequantise_rows(pool, W, r0, n, tile.data());
        // C[i, c] = Σ_o A(i, o) B(c, o): A = dy's columns r0.. (lda O), B(c, o) = tile[o·I + c] (transposed, ldb I)
        kernels::gemm(dy + r0, O, false, tile.data(), I, true, dx, I, N, I, n, accumulate_dx || r0 > 0, prec, pool);
    }
}

// ---- LayerNorm: y = (x − μ)/√(σ² + ε) · w + b ----------------------------------------------------------------------
void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t N, int64_t C, float eps) {
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = x + n * C;
        double m = 0, v = 0;
        for (int64_t c = 0; c < C; ++c) m += xn[c];
        m /= static_cast<double>(C);
        for (int64_t c = 0; c < C; ++c) v += (xn[c] - m) * (xn[c] - m);
        v /= static_cast<double>(C);
        const float r = static_cast<float>(1.0 / std::sqrt(v + eps));
        for (int64_t c = 0; c < C; ++c) y[n * C + c] = (xn[c] - static_cast<float>(m)) * r * w[c] + b[c];
        mean[n] = static_cast<float>(m);
        rstd[n] = r;
    }
}

// x̂ = (x − μ)·r, g = dy ⊙ w:  dx = r · (g − mean(g) − x̂ · mean(g ⊙ x̂)),  dw += dy ⊙ x̂,  db += dy
void layernorm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx, float* dw,
                        float* db, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = x + n * C;
        const float* dyn = dy + n * C;
        double mg = 0, mgx = 0;
        for (int64_t c = 0; c < C; ++c) {
            const float xh = (xn[c] - mean[n]) * rstd[n], g = dyn[c] * w[c];
            mg += g;
            mgx += g * xh;
            dw[c] += dyn[c] * xh;
            db[c] += dyn[c];
        }
        mg /= static_cast<double>(C);
        mgx /= static_cast<double>(C);
        for (int64_t c = 0; c < C; ++c) {
            const float xh = (xn[c] - mean[n]) * rstd[n];
            dx[n * C + c] += rstd[n] * (dyn[c] * w[c] - static_cast<float>(mg) - xh * static_cast<float>(mgx));
        }
    }
}

// ---- RMSNorm: y = x / √(mean(x²) + ε) · w -------------------------------------------------------------------------
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps) {
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = x + n * C;
        double ss = 0;
        for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xn[c]) * xn[c];
        const float r = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(C) + eps));
        for (int64_t c = 0; c < C; ++c) y[n * C + c] = xn[c] * r * w[c];
        rstd[n] = r;
    }
}

// g = dy ⊙ w:  dx = r · (g − x · r² · mean(g ⊙ x)),  dw += dy ⊙ x · r
void rmsnorm_backward(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw, int64_t N, int64_t C) {
    for (int64_t n = 0; n < N; ++n) {
        const float* xn = x + n * C;
        const float* dyn = dy + n * C;
        const float r = rstd[n];
        double mgx = 0;
        for (int64_t c = 0; c < C; ++c) {
            mgx += static_cast<double>(dyn[c] * w[c]) * xn[c];
            dw[c] += dyn[c] * xn[c] * r;
        }
        const float k = static_cast<float>(mgx / static_cast<double>(C)) * r * r;
        for (int64_t c = 0; c < C; ++c) dx[n * C + c] += r * (dyn[c] * w[c] - xn[c] * k);
    }
}

// The norms on all threads: rows are independent forward; backward sums dw/db per thread (rows split statically, so
// the result is the same for a given thread count), then adds the partial sums in thread order.
void layernorm_forward_par(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t N,
                           int64_t C, float eps) {
    pool.parallel_for(N, [&](int64_t r0, int64_t r1) { layernorm_forward(x + r0 * C, w, b, y + r0 * C, mean + r0, rstd + r0, r1 - r0, C, eps); });
}
void rmsnorm_forward_par(ThreadPool& pool, const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps) {
    pool.parallel_for(N, [&](int64_t r0, int64_t r1) { rmsnorm_forward(x + r0 * C, w, y + r0 * C, rstd + r0, r1 - r0, C, eps); });
}
void norm_backward_par(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                       float* dw, float* db, int64_t N, int64_t C) {
    const int nth = pool.size();
    std::vector<float> part(static_cast<size_t>(2 * C * nth), 0.0f);
    pool.run([&](int ith, int n) {
        const int64_t r0 = N * ith / n, r1 = N * (ith + 1) / n;
        float* pw = part.data() + static_cast<size_t>(2 * C * ith);
        if (mean) layernorm_backward(dy + r0 * C, x + r0 * C, w, mean + r0, rstd + r0, dx + r0 * C, pw, pw + C, r1 - r0, C);
        else rmsnorm_backward(dy + r0 * C, x + r0 * C, w, rstd + r0, dx + r0 * C, pw, r1 - r0, C);
    });
    for (int t = 0; t < nth && dw; ++t) {  // dw null: the weights are frozen (LoRA)
        const float* pw = part.data() + static_cast<size_t>(2 * C * t);
        for (int64_t c = 0; c < C; ++c) dw[c] += pw[c];
        if (db)
            for (int64_t c = 0; c < C; ++c) db[c] += pw[C + c];
    }
}

// ---- RoPE: rotate each pair (a, b) of every head by the angle of its position; backward rotates by minus the angle.
void rope_apply(float* x, int64_t B, int64_t T, int64_t heads, int64_t HD, int64_t half, bool interleaved, const float* cos_t,
                const float* sin_t, float sign) {
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t) {
            const float* cs = cos_t + t * half;
            const float* sn = sin_t + t * half;
            for (int64_t h = 0; h < heads; ++h) {
                float* v = x + ((b * T + t) * heads + h) * HD;
                for (int64_t j = 0; j < half; ++j) {
                    const int64_t ia = interleaved ? 2 * j : j, ib = interleaved ? 2 * j + 1 : j + half;
                    const float x0 = v[ia], x1 = v[ib], s = sign * sn[j];
                    v[ia] = x0 * cs[j] - x1 * s;
                    v[ib] = x0 * s + x1 * cs[j];
                }
            }
        }
}

// ---- attention: Y = softmax(Q Kᵀ / √HD, causal or padding mask) V per (sequence, head), query heads sharing KV heads in
// groups. One task per head (per KV head in the backward pass); the products run through the strided GEMM directly on
// the head's columns of q, k, v, y (no copies), single-threaded inside a task, in blocks of kAttBlock query rows so that
// the causal mask skips the blocks above the diagonal. The probabilities P are kept for the backward pass.
namespace {
constexpr int64_t kAttBlock = 64;
ThreadPool& task_pool() {  // a pool of one: the GEMM runs on the calling thread
    thread_local ThreadPool one{1};
    return one;
}
}  // namespace

void attention_forward(ThreadPool& pool, Precision prec, const float* q, const float* k, const float* v, float* att, float* y, int64_t B,
                       int64_t T, int64_t H, int64_t HKV, int64_t HD, float scale, int64_t window, float softcap, bool causal,
                       const int32_t* lengths) {
    const int64_t C = H * HD, KV = HKV * HD, group = H / HKV;
    const float inv_cap = softcap > 0 ? 1.0f / softcap : 0.0f;
    pool.run([&](int ith, int nth) {
        ThreadPool& one = task_pool();
        for (int64_t task = ith; task < B * H; task += nth) {
            const int64_t b = task / H, h = task % H, kh = h / group;
            const int64_t len = lengths ? lengths[b] : T;  // bidirectional: keys 0 .. len − 1 (the rest is padding)
            const float* Q = q + b * T * C + h * HD;    // [T, HD], rows C apart
            const float* K = k + b * T * KV + kh * HD;  // [T, HD], rows KV apart
            const float* V = v + b * T * KV + kh * HD;
            float* P = att + (b * H + h) * T * T;       // [T, T]
            float* Y = y + b * T * C + h * HD;
            for (int64_t t0 = 0; t0 < T; t0 += kAttBlock) {
                const int64_t t1 = std::min(T, t0 + kAttBlock);
                const int64_t cols = causal ? t1 : len;  // the keys any row of this block sees
                kernels::gemm(Q + t0 * C, C, false, K, KV, false, P + t0 * T, T, t1 - t0, cols, HD, false, prec, one);  // S[t, s] = q_t · k_s
                for (int64_t t = t0; t < t1; ++t) {
                    float* p = P + t * T;
                    const int64_t lo = causal && window > 0 ? std::max<int64_t>(0, t - window + 1) : 0;  // keys lo .. hi − 1
                    const int64_t hi = causal ? t + 1 : len;
                    float mx = -INFINITY;
                    for (int64_t s2 = lo; s2 < hi; ++s2) p[s2] *= scale;
                    if (softcap > 0) {  // s → cap · tanh(s / cap)
                        for (int64_t s2 = lo; s2 < hi; ++s2) p[s2] *= inv_cap;
                        kernels::tanh(p + lo, p + lo, hi - lo);
                        for (int64_t s2 = lo; s2 < hi; ++s2) p[s2] *= softcap;
                    }
                    for (int64_t s2 = lo; s2 < hi; ++s2) mx = std::max(mx, p[s2]);
                    const float inv = static_cast<float>(1.0 / kernels::exp_shift_sum(p + lo, p + lo, hi - lo, mx));
                    for (int64_t s2 = lo; s2 < hi; ++s2) p[s2] *= inv;
                    std::fill(p, p + lo, 0.0f);      // the sliding window
                    std::fill(p + hi, p + T, 0.0f);  // the causal mask, or the padding
                }
                // Y[t, i] = Σ_{s < cols} P[t, s] V[s, i]
                kernels::gemm(P + t0 * T, T, false, V, KV, true, Y + t0 * C, C, t1 - t0, HD, cols, false, prec, one);
            }
        }
    });
}

// dP = dY Vᵀ;  dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale;  dQ = dS K;  dK += dSᵀ Q;  dV += Pᵀ dY.
// Soft-capped scores c = cap · tanh(s · scale / cap): dS also times dc/ds' = 1 − tanh², the tanh recomputed from q·k.
// One task per (sequence, KV head): the query heads of a group add into the same dK, dV.
void attention_backward(ThreadPool& pool, Precision prec, const float* dy, const float* q, const float* k, const float* v, const float* att,
                        float* dq, float* dk, float* dv, int64_t B, int64_t T, int64_t H, int64_t HKV, int64_t HD, float scale, float softcap,
                        bool causal, const int32_t* lengths) {
    const int64_t C = H * HD, KV = HKV * HD, group = H / HKV;
    pool.run([&](int ith, int nth) {
        ThreadPool& one = task_pool();
        thread_local std::vector<float> dS_store, S_store;
        dS_store.resize(static_cast<size_t>(T * T));
        if (softcap > 0) S_store.resize(static_cast<size_t>(kAttBlock * T));
        float* dS = dS_store.data();
        float* S = S_store.data();
        for (int64_t task = ith; task < B * HKV; task += nth) {
            const int64_t b = task / HKV, kh = task % HKV;
            const int64_t len = lengths ? lengths[b] : T;
            const float* K = k + b * T * KV + kh * HD;
            const float* V = v + b * T * KV + kh * HD;
            float* dK = dk + b * T * KV + kh * HD;
            float* dV = dv + b * T * KV + kh * HD;
            for (int64_t h = kh * group; h < (kh + 1) * group; ++h) {
                const float* P = att + (b * H + h) * T * T;
                const float* dY = dy + b * T * C + h * HD;
                const float* Q = q + b * T * C + h * HD;
                float* dQ = dq + b * T * C + h * HD;
                for (int64_t t0 = 0; t0 < T; t0 += kAttBlock) {  // rows t of dS (columns s < cols of them)
                    const int64_t t1 = std::min(T, t0 + kAttBlock);
                    const int64_t cols = causal ? t1 : len;
                    kernels::gemm(dY + t0 * C, C, false, V, KV, false, dS + t0 * T, T, t1 - t0, cols, HD, false, prec, one);  // dP = dy_t · v_s
                    if (softcap > 0)  // the products again, for the cap's derivative
                        kernels::gemm(Q + t0 * C, C, false, K, KV, false, S, T, t1 - t0, cols, HD, false, prec, one);
                    for (int64_t t = t0; t < t1; ++t) {
                        const float* p = P + t * T;
                        float* d = dS + t * T;
                        const int64_t hi = causal ? t + 1 : len;
                        float dot = 0;
                        for (int64_t s2 = 0; s2 < hi; ++s2) dot += p[s2] * d[s2];
                        for (int64_t s2 = 0; s2 < hi; ++s2) d[s2] = p[s2] * (d[s2] - dot) * scale;
                        if (softcap > 0) {
                            float* th = S + (t - t0) * T;
                            for (int64_t s2 = 0; s2 < hi; ++s2) th[s2] *= scale / softcap;
                            kernels::tanh(th, th, hi);
                            for (int64_t s2 = 0; s2 < hi; ++s2) d[s2] *= 1.0f - th[s2] * th[s2];
                        }
                        std::fill(d + hi, d + (causal ? t1 : T), 0.0f);  // (bidirectional: the padding's columns, read below)
                    }
                    // dQ[t, i] += Σ_{s < cols} dS[t, s] k_s[i]
                    kernels::gemm(dS + t0 * T, T, false, K, KV, true, dQ + t0 * C, C, t1 - t0, HD, cols, true, prec, one);
                }
                for (int64_t s0 = 0; s0 < T; s0 += kAttBlock) {  // rows s of dK, dV: causal, only t ≥ s0 contribute
                    const int64_t s1 = std::min(T, s0 + kAttBlock), from = causal ? s0 : 0;
                    // dK[s, i] += Σ_t dS[t, s] q_t[i];  dV[s, i] += Σ_t P[t, s] dy_t[i]
                    kernels::gemm(dS + from * T + s0, T, true, Q + from * C, C, true, dK + s0 * KV, KV, s1 - s0, HD, T - from, true, prec, one);
                    kernels::gemm(P + from * T + s0, T, true, dY + from * C, C, true, dV + s0 * KV, KV, s1 - s0, HD, T - from, true, prec, one);
                }
            }
        }
    });
}

}  // namespace llmforge::backend::train_ops
