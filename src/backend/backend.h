// Internal: the operations the forward pass is written against, and the CPU backend that implements them.
//
// The model code (src/model/) says what a block computes — which norm, which projections, RoPE or not — and calls
// these operations; a Backend says how they are computed: which instruction set, which summation order (its Numerics,
// fixed when it is made), and later on which device. Weights are read through views of any weight type.
#pragma once
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/kernels.h"
#include "core/threadpool.h"
#include "llmforge/kv_cache.h"
#include "llmforge/model.h"
#include "llmforge/numerics.h"
#include "llmforge/tensor.h"

namespace llmforge::backend {

// A LoRA adapter beside a weight: y += scale · (x Aᵀ) Bᵀ, A [rank, in], B [out, rank] (f32 copies).
struct Lora {
    std::vector<float> a, b;
    int64_t rank = 0;
    float scale = 0;
};

// A linear layer: y = x Wᵀ (+ b) (+ its adapters). W in any weight type and layout; b null if it has none.
struct Linear {
    const Tensor* w = nullptr;
    const Tensor* b = nullptr;
    const std::vector<Lora>* lora = nullptr;
};

// The rows of one pass: row i is position pos[i] of sequence seq[i] (several sequences, decoding), or, where seq is
// null, position pos0 + i of sequence seq0 (one sequence, consecutive positions).
struct Rows {
    int seq0 = 0;
    int64_t pos0 = 0;
    const int32_t* seq = nullptr;
    const int64_t* pos = nullptr;
    int seq_of(int64_t i) const { return seq ? seq[i] : seq0; }
    int64_t pos_of(int64_t i) const { return pos ? pos[i] : pos0 + i; }
};

struct AttentionShape {
    int64_t n_head, n_head_kv, head_dim;
    int64_t window = 0;  // a query at position p sees keys at positions > p − window only (0: every earlier position)
    float scale = 0;     // the scores' factor (0: 1/√head_dim)
    float softcap = 0;   // > 0: each score s (after the factor) becomes softcap · tanh(s / softcap) before the softmax
    bool causal = true;  // false: a query sees every key of its sequence stored by this pass (encoders), not only earlier ones
    // attention_within, bidirectional: the real tokens of each of the B sequences (null: all T), the rest padding
    // that no query sees
    const int32_t* lengths = nullptr;
    float factor() const { return scale > 0 ? scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }
};

class Backend {
public:
    virtual ~Backend() = default;
    virtual Numerics numerics() const = 0;
    // y[n, out] = x[n, in] · Wᵀ + b + the adapters'
    virtual void linear(const float* x, float* y, int64_t n, const Linear& w) = 0;
    // y[n, C] = Norm(x) · w (+ b): LayerNorm (x − μ)/√(σ² + ε), or RMSNorm x/√(mean(x²) + ε). mean, rstd [n]: where to
    // keep μ and the reciprocal root for a backward pass (null: not kept).
    virtual void norm(const float* x, float* y, int64_t n, int64_t C, NormKind kind, float eps, const Tensor& w, const Tensor* b,
                      float* mean = nullptr, float* rstd = nullptr) = 0;
    // Rotates n rows × heads heads of head_dim values: pairs (2j, 2j+1) (interleaved) or (j, j + n_rot/2) by the
    // angles whose cos/sin are given per row, [n][n_rot/2].
    virtual void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t n_rot, RopeStyle style, const float* cos, const float* sin) = 0;
    // out = softmax(cap(q Kᵀ · s.factor()) + causal mask) V for every head of every row, over the cache of the row's sequence in
    // layer l (keys at positions 0 .. the row's position, or its last s.window ones); query heads share KV heads in
    // groups.
    virtual void attention(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t l, const AttentionShape& s) = 0;
    // The same within B sequences of T consecutive tokens (q [B·T, C], k, v [B·T, KV]; training), keeping the
    // probabilities [B, H, T, T] for the backward pass.
    virtual void attention_within(const float* q, const float* k, const float* v, float* probs, float* out, int64_t B, int64_t T,
                                  const AttentionShape& s) = 0;
    // out[i] = silu(gate[i]) · up[i] over n rows of F (out may be gate)
    virtual void swiglu(const float* gate, const float* up, float* out, int64_t n, int64_t F) = 0;
    // out[i] = GELU(gate[i]) · up[i] over n rows of F (out may be gate)
    virtual void geglu(const float* gate, const float* up, float* out, int64_t n, int64_t F) = 0;
    // out = GELU(x), the tanh approximation (out may be x); th: where to keep tanh(√(2/π)(x + 0.044715x³)) for a
    // backward pass (null: not kept)
    virtual void gelu(const float* x, float* out, float* th, int64_t count) = 0;
    // out = GELU(x) = x · Φ(x) = x/2 · (1 + erf(x/√2)), the exact GELU (BERT's; ggml arithmetic: ggml_gelu, as
    // llama.cpp computes BERT's)
    virtual void gelu_erf(const float* x, float* out, int64_t count) = 0;
    // x = cap · tanh(x / cap) (soft-capping); th: where to keep the tanh for a backward pass (null: not kept)
    virtual void softcap(float* x, int64_t count, float cap, float* th) = 0;
    // x *= s
    virtual void scale(float* x, float s, int64_t count) = 0;
    // x += y
    virtual void add(float* x, const float* y, int64_t count) = 0;
    // out[i] (+)= row ids[i] of an embedding table (any weight type)
    virtual void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out, bool accumulate) = 0;

    // ---- training: each operation's backward pass, written once per operation (llm.c style). From ∂loss/∂output
    // (d…) and what the forward pass kept, each adds ∂loss/∂input to dx and the weights' gradients to dw, db (null:
    // not wanted, e.g. frozen weights). Weights and gradients are f32 arrays here. A backend that only runs inference
    // throws (these defaults).
    // c[n, rows] (+)= a · bᵀ: a [n, K] (a_t: stored [K, n]), b [rows, K] (b_t: stored [K, rows]) — adapters, heads
    virtual void matmul(const float* a, bool a_t, const float* b, bool b_t, float* c, int64_t n, int64_t rows, int64_t K, bool accumulate);
    // y = x Wᵀ + b:  dx (+)= dy W (accumulate_dx false: overwritten);  dW += dyᵀ x;  db += Σ dy
    virtual void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t n, int64_t in,
                                 int64_t out, bool accumulate_dx);
    // The same for a frozen weight of any type (QLoRA's quantised base): dx (+)= dy W only, W read as stored
    virtual void linear_backward_frozen(const float* dy, const Tensor& w, float* dx, int64_t n, bool accumulate_dx);
    // norm(): mean null for RMSNorm; dx += …, dw += …, db += …
    virtual void norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx, float* dw,
                               float* db, int64_t n, int64_t C);
    // rope(): the rotation's transpose, in place (rotate back by the same angles)
    virtual void rope_backward(float* dx, int64_t n, int64_t heads, int64_t head_dim, int64_t n_rot, RopeStyle style, const float* cos,
                               const float* sin);
    // attention_within(): dq, dk, dv += from dy and the kept probabilities
    virtual void attention_backward(const float* dy, const float* q, const float* k, const float* v, const float* probs, float* dq, float* dk,
                                    float* dv, int64_t B, int64_t T, const AttentionShape& s);
    // swiglu() / geglu(): dgate, dup = from dact (overwritten)
    virtual void glu_backward(MlpKind kind, const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t count);
    // gelu(): dx = dact · GELU'(x), th the tanh kept by the forward pass (overwritten)
    virtual void gelu_backward(const float* dact, const float* x, const float* th, float* dx, int64_t count);
    // gelu_erf(): dx = dact · (Φ(x) + x φ(x)) (overwritten)
    virtual void gelu_erf_backward(const float* dact, const float* x, float* dx, int64_t count);
    // softcap(): d ← d · (1 − th²) in place, th the tanh kept by the forward pass
    virtual void softcap_backward(float* d, const float* th, int64_t count);
    // embed() (scaled by `scale` after the lookup): dtable[ids[i]] += scale · dx[i]
    virtual void embed_backward(const float* dx, const int32_t* ids, int64_t n, int64_t C, float scale, float* dtable);
};

// Today's CPU kernels (AVX-512, AVX2 or scalar, chosen at run time) in the given numerics.
std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool, Numerics numerics);
// The training forward's CPU kernels (train_ops.h): f32 weights (frozen ones in any type, widened tile by tile), products in `precision` (f32, or bf16 operands with
// f32 accumulation), norms keeping their statistics, attention within the sequences keeping its probabilities.
std::unique_ptr<Backend> make_cpu_training_backend(ThreadPool& pool, kernels::Precision precision);

}  // namespace llmforge::backend
