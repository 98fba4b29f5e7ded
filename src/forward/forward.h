// Internal: the one forward pass of the Transformer's blocks, written once over the Backend operations and run by
// inference (Transformer: one or several sequences over a KV cache) and by training (TrainableModel: B sequences of T
// tokens, every intermediate kept for the backward pass).
//
// Each block (pre-norm):  x_mid = x + Post(W_o · Attention(Norm(x)));   x_out = x_mid + Post(MLP(Norm(x_mid)))
// or, where the description puts the norms after the residual adds (BERT):
//                          x_mid = Norm(x + W_o · Attention(x));          x_out = Norm(x_mid + MLP(x_mid))
// with what the block description says: LayerNorm or RMSNorm; fused or separate Q/K/V with or without biases, each
// head's query and key RMS-normalised or not; RoPE (scaled or not) or learned positions; the scores' factor, their
// soft-cap and which layers see a sliding window; a GELU or gated (SwiGLU, GeGLU) MLP; Post: the identity, or an
// RMSNorm of the sub-layer's output (Gemma 2's post-norms).
// Shapes: n rows, C = n_embd, Q = n_head · head_dim (the queries' width; C unless the family decouples them),
// KV = n_head_kv · head_dim, F = n_ff.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "llmforge/model.h"

namespace llmforge {

// The weights one block reads, as its description names them (biases null where it has none).
struct BlockWeights {
    const Tensor *attn_norm, *attn_norm_b, *wq, *wk, *wv, *bq, *bk, *bv, *wqkv, *bqkv, *wo, *bo;
    const Tensor *q_norm, *k_norm;  // QK-norm weights [head_dim]
    const Tensor *ffn_norm, *ffn_norm_b, *w_gate, *b_gate, *w_up, *b_up, *w_down, *b_down;
    const Tensor *attn_post_norm, *ffn_post_norm;  // post-norms (Gemma 2; RMSNorm, no bias)
    // norms after the residual adds (BERT; attn_norm and ffn_norm are then null)
    const Tensor *attn_out_norm, *attn_out_norm_b, *layer_out_norm, *layer_out_norm_b;
};
struct ModelWeights {
    std::vector<BlockWeights> blocks;
    const Tensor *tok_embd, *pos_embd, *out_norm, *out_norm_b, *output;  // output: the token embedding when tied; an
                                                                         // encoder has no output head (null)
    const Tensor *tok_types, *embd_norm, *embd_norm_b;                    // BERT's segment embedding and embedding norm
};
// Binds the tensors of a model of this description; `get` returns a tensor by GGUF name (throwing if missing).
ModelWeights bind_weights(const ModelConfig& c, const std::function<const Tensor*(const std::string&)>& get);

// Where layer l's intermediates go. Inference points every layer at one set of scratch buffers and works in place
// (x_mid == x_out == x); training gives each layer its own, for the backward pass.
struct LayerBuffers {
    float* x;                         // [n, C] the residual stream entering the block
    float *ln1, *mean1, *rstd1;       // [n, C], [n], [n]: the attention's normalised input (statistics: null if not kept);
                                      // post-norm blocks (not in place): the sum x + attention before its norm
    float *q, *k, *v;                 // [n, Q], [n, KV], [n, KV] after RoPE
    float *q_raw, *k_raw;             // QK-norm: the projections before it ([n, Q], [n, KV]; == q, k: in place)
    float *rstd_q, *rstd_k;           // QK-norm: each head's reciprocal root ([n · H], [n · HKV]; null: not kept)
    float* qkv;                       // [n, Q + 2KV]: a fused projection's output
    float* probs;                     // [B, H, T, T] attention probabilities (training)
    float* atty;                      // [n, Q] attention output before W_o
    float* x_mid;                     // [n, C] after the attention sub-layer (== x: in place)
    float *ln2, *mean2, *rstd2;       // the MLP's normalised input (post-norm: the sum x_mid + MLP before its norm)
    float *fa, *fb, *fact;            // [n, F]: up or gate pre-activation; up (gated) or tanh (GELU, training); activation
    float* x_out;                     // [n, C] leaving the block (== x_mid: in place)
    float* h;                         // [n, C] a sub-layer's output before the residual add (in place only)
    float *attn_proj, *rstd_pa;       // post-norms: the attention's projection before its norm [n, C], its 1/rms [n]
    float *mlp_proj, *rstd_pf;        // and the MLP's (training; inference works in h)
};

// How the pass's attention sees keys and values: over a KV cache (inference: this pass's keys and values are stored
// at the rows' positions first), or within the pass itself (training: B sequences of T consecutive tokens).
struct AttentionSource {
    KVCache* cache = nullptr;
    backend::Rows rows;
    int64_t B = 0, T = 0;
    const int32_t* lengths = nullptr;  // within the pass, bidirectional: each sequence's real tokens (null: T), the rest padding
};

// The linear layers as the runner applies them: inference with its adapters on the backend; training keeping what
// the backward pass needs.
using LinearFn = std::function<void(const float* x, float* y, int64_t n, const Tensor* w, const Tensor* b)>;

// RoPE angles θ_j = pos · base^(−2j/d) for n rows (cos, sin: [n][n_rot/2]), as ggml computes them.
void rope_angles(const ModelConfig& c, int64_t n, const std::function<int64_t(int64_t)>& pos_of, float* cos, float* sin);

// x[n, C] = the rows of the token embedding (× √C where the description scales them) (+ the learned positions' rows at
// positions[i]; null where the model has none) (+ the segment embedding's row types[i], row 0 where types is null, then
// a LayerNorm: BERT). pre, mean, rstd: where to keep the sum before that LayerNorm and its statistics for a backward
// pass (null: not kept).
void embed_tokens(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const int32_t* tokens, const int32_t* positions, int64_t n,
                  float* x, float* pre = nullptr, float* mean = nullptr, float* rstd = nullptr, const int32_t* types = nullptr);
// The output head on m normalised rows: logits = h Wᵀ, soft-capped where the description says (th: where to keep the
// tanh for a backward pass, or null).
void output_logits(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const LinearFn& linear, const float* h, int64_t m,
                   float* logits, float* th = nullptr);

// Runs blocks first .. last − 1 (last < 0: every block from first) on n rows.
void forward_blocks(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const LinearFn& linear, int64_t n,
                    const AttentionSource& att, const float* rope_cos, const float* rope_sin,
                    const std::function<LayerBuffers(int64_t layer)>& buffers, int64_t first = 0, int64_t last = -1);

}  // namespace llmforge
