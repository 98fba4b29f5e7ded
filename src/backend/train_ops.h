// Internal: the CPU kernels of training, one per operation, forward and backward (llm.c style). The forward ones serve
// the CPU backend in training mode; the backward ones the per-operation backward pass (src/train/train_model.cpp).
// Shapes: B sequences of T tokens, N = B·T rows; C = n_embd, H heads of HD dims, KV = kv heads · HD.
#pragma once
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/kernels.h"
#include "core/threadpool.h"
#include "llmforge/tensor.h"

namespace llmforge::backend::train_ops {

constexpr float kGeluK = 0.7978845608028654f;  // √(2/π)

// dst[i] += src[i], split over the threads
void add_into(ThreadPool& pool, float* dst, const float* src, int64_t n);
// y[N,O] = x[N,I] · W[O,I]ᵀ + b, the products in `prec` (f32, or bf16 operands with f32 accumulation)
void linear_forward(ThreadPool& pool, kernels::Precision prec, const float* x, const float* W, const float* b, float* y, int64_t N, int64_t I,
                    int64_t O);
// dx[N,I] (+)= dy · W;  dW[O,I] += dyᵀ · x;  db[O] += Σ_n dy[n] (dW, db, dx null: not wanted). accumulate_dx = false
// overwrites dx.
void linear_backward(ThreadPool& pool, kernels::Precision prec, const float* dy, const float* x, const float* W, float* dx, float* dW, float* db,
                     int64_t N, int64_t I, int64_t O, bool accumulate_dx = true);
// The same two products with a frozen weight of any type (QLoRA: a quantised, memory-mapped base), which is never
// widened whole: tiles of its rows are dequantised into an f32 buffer (about 2 MiB, reused) and multiplied there, in
// `prec` as above. y[N,O] = x · Wᵀ + b;  dx[N,I] (+)= dy · W, summed tile by tile over O. No gradient of W.
void linear_forward_frozen(ThreadPool& pool, kernels::Precision prec, const float* x, const Tensor& W, const float* b, float* y, int64_t N,
                           std::vector<float>& tile);
void linear_backward_frozen(ThreadPool& pool, kernels::Precision prec, const float* dy, const Tensor& W, float* dx, int64_t N, bool accumulate_dx,
                            std::vector<float>& tile);
// LayerNorm y = (x − μ)/√(σ² + ε) · w + b, keeping μ and 1/σ; RMSNorm y = x/√(mean(x²) + ε) · w, keeping 1/rms
void layernorm_forward_par(ThreadPool& pool, const float* x, const float* w, const float* b, float* y, float* mean, float* rstd, int64_t N,
                           int64_t C, float eps);
void rmsnorm_forward_par(ThreadPool& pool, const float* x, const float* w, float* y, float* rstd, int64_t N, int64_t C, float eps);
// Both norms' backward (mean null: RMSNorm): dx += …, dw += …, db += … (dw null: frozen)
void norm_backward_par(ThreadPool& pool, const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx,
                       float* dw, float* db, int64_t N, int64_t C);
// RoPE on B·T rows of `heads` heads: rotate each pair by sign × the angle of its position (cos/sin [T][half]);
// the backward pass rotates by minus the angle
void rope_apply(float* x, int64_t B, int64_t T, int64_t heads, int64_t HD, int64_t half, bool interleaved, const float* cos_t,
                const float* sin_t, float sign);
// Attention within each sequence, softmax(cap(q·k · scale)) v, keeping the probabilities att [B, H, T, T] for the
// backward pass. Causal: query t sees keys 0 .. t; window > 0: only t − window + 1 .. t. Bidirectional (causal false,
// encoders): every query sees keys 0 .. len_b − 1, len_b = lengths[b] (null: T) the real tokens of sequence b, the rest
// padding. Masked probabilities are exactly 0, so the backward pass, which multiplies by them, needs no mask of its
// own. softcap > 0: scores s → softcap · tanh(s / softcap).
void attention_forward(ThreadPool& pool, kernels::Precision prec, const float* q, const float* k, const float* v, float* att, float* y, int64_t B,
                       int64_t T, int64_t H, int64_t HKV, int64_t HD, float scale, int64_t window = 0, float softcap = 0, bool causal = true,
                       const int32_t* lengths = nullptr);
void attention_backward(ThreadPool& pool, kernels::Precision prec, const float* dy, const float* q, const float* k, const float* v, const float* att,
                        float* dq, float* dk, float* dv, int64_t B, int64_t T, int64_t H, int64_t HKV, int64_t HD, float scale, float softcap = 0,
                        bool causal = true, const int32_t* lengths = nullptr);

// d gelu / dx from x and th = tanh(√(2/π)(x + 0.044715x³)), kept from the forward pass
inline float gelu_grad(float x, float th) {
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * kGeluK * (1.0f + 3.0f * 0.044715f * x * x);
}
// d GELU / dx of the exact GELU x Φ(x): Φ(x) + x φ(x)
inline float gelu_erf_grad(float x) {
    return 0.5f * (1.0f + std::erf(x * 0.70710678118654752f)) + x * 0.39894228040143268f * std::exp(-0.5f * x * x);
}
inline float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

}  // namespace llmforge::backend::train_ops
