// Training: the Transformer's forward pass with the activations kept, its backward pass, and AdamW.
//
// Shapes in comments: B = sequences in the batch, T = tokens per sequence, N = B·T, C = n_embd, H = heads,
// HD = head dim, KV = kv heads · HD, F = n_ff, V = vocabulary. Weights are row-major [out, in] (GGUF's layout), and a
// linear layer computes y = x · Wᵀ + b. All parameters live in one f32 buffer (the "master" weights) and their
// gradients in another of the same layout, as in llm.c.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "core/kernels.h"
#include "core/threadpool.h"
#include "llmforge/model.h"

namespace llmforge {

struct ModelWeights;
struct LayerBuffers;
namespace backend {
class Backend;
}

// LoRA (Hu et al. 2021): W' = W + (alpha / rank) · B A with A [rank, in], B [out, rank]; only A and B are trained.
struct LoraConfig {
    int64_t rank = 0;  // 0: no LoRA (every weight trains)
    float alpha = 16;
    // weights to adapt, by their GGUF short names: attn_q, attn_k, attn_v, attn_qkv, attn_output, ffn_gate, ffn_up,
    // ffn_down; empty: the attention projections; {"all"}: attention and MLP
    std::vector<std::string> targets;
    uint64_t seed = 1;
    float init_b_std = 0.0f;  // B starts at zero (the adapter a no-op) unless > 0: N(0, std²), for checking gradients
    float scale() const { return alpha / static_cast<float>(rank); }
};

class TrainableModel {
public:
    struct Param {
        std::string name;            // GGUF name, e.g. blk.0.attn_q.weight
        std::vector<int64_t> shape;
        size_t offset = 0, numel = 0;  // into data() / grad()
        bool decay = false;          // AdamW weight decay applies (matrices; not norms, biases or embeddings)
    };

    // Copies the model's weights (any dtype) into f32 master weights. frozen_view: the weights will stay frozen (LoRA
    // follows): f32 weights are then read in place (e.g. from the memory-mapped file, kept mapped) instead of copied.
    TrainableModel(const Model& init, ThreadPool& pool, bool decay_embeddings = false, bool frozen_view = false);
    ~TrainableModel();
    TrainableModel(const TrainableModel&) = delete;
    TrainableModel& operator=(const TrainableModel&) = delete;

    const ModelConfig& config() const { return cfg_; }
    const std::vector<Param>& params() const { return params_; }
    size_t n_params() const { return data_.size(); }
    float* data() { return data_.data(); }
    const float* data() const { return data_.data(); }
    float* grad() { return grad_.data(); }
    const float* grad() const { return grad_.data(); }

    // Mean cross-entropy of predicting targets[i] from inputs[0..i] within each sequence; targets < 0 are ignored.
    // inputs, targets: [B, T]. Keeps the activations for backward().
    float forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T);
    // Adds d(loss)/d(parameters) of the last forward() into grad(), scaled by `scale` (1/accumulation steps).
    void backward(float scale = 1.0f);

    // ---- embedding models (contrastive training): the final hidden states, for a loss of the caller's
    // Runs the embeddings and the blocks on inputs [B, T] and returns the final hidden states [B·T, C] (after the final
    // norm where the model has one; an encoder's blocks end normalised). lengths [B]: each sequence's real tokens, the
    // rest padding (null: all T); a bidirectional model's queries never see the padding (a causal one's real tokens
    // never do anyway). types [B, T]: BERT's segment ids (0 or 1: a cross-encoder's pair; null: all 0). Keeps the
    // activations for backward_hidden(). Encoders train only through these two.
    const float* forward_hidden(const int32_t* inputs, const int32_t* lengths, int64_t B, int64_t T, const int32_t* types = nullptr);
    // Adds d(loss)/d(parameters) into grad() from dh = ∂loss/∂hidden [B·T, C] of the last forward_hidden().
    void backward_hidden(const float* dh);

    // ---- what the alignment objectives (reward models, PPO, DPO, GRPO) need besides the mean cross-entropy
    // log p(targets[n] | inputs[..n]) of the last forward() for every row n = b·T + t (0 where targets[n] < 0).
    std::vector<float> token_logprobs() const;
    // The entropy of each row's next-token distribution, −Σ p log p (computed by forward() only when enabled).
    void set_compute_entropy(bool on) { want_entropy_ = on; }
    const std::vector<float>& token_entropy() const;
    // Without the language-model head, forward() skips the logits (a reward model needs only its scalar head); it
    // then returns 0 and token_logprobs() is all zeros.
    void set_lm_head(bool on) { lm_head_ = on; }
    // Adds a linear head on the final (normalised) hidden state, y = h·Wᵀ + b with W [n_out, C] and b [n_out] — the
    // scalar head of a reward model or a PPO value function. Its parameters are trainable and are appended to
    // params() (named "<name>.weight" / "<name>.bias"), so the optimiser and checkpoints carry them. Under LoRA, call
    // after enable_lora(). `init`: starting values (W then b), or W ~ N(0, std²) (seeded) and b = 0.
    void add_head(const std::string& name, int64_t n_out, uint64_t seed, float std, const Model* init = nullptr);
    bool has_head() const { return head_.n_out > 0; }
    int64_t head_outputs() const { return head_.n_out; }
    // The head's outputs of the last forward(), [N, n_out].
    const std::vector<float>& head_values() const { return head_values_; }
    // The backward pass of an arbitrary loss L of the last forward()'s per-token log-probabilities and head outputs:
    // dlogp[n] = ∂L/∂log p(targets[n]) (rows with targets < 0 are ignored; may be null) and dhead[n·n_out + j] =
    // ∂L/∂head[n, j] (may be null). Adds ∂L/∂θ into grad(). backward(s) is this with dlogp = −s / (number of targets).
    void backward_custom(const float* dlogp, const float* dhead);
    // Log-probabilities (and their gradients) of the distribution softmax(logits / τ): the policy that sampled at
    // temperature τ (RL roll-outs). Default 1.
    void set_logit_temperature(float tau) { inv_temp_ = 1.0f / tau; }
    // ---- distillation: the logits themselves, and the backward pass from a gradient with respect to them
    // With keep_logits on, forward() also keeps the logits [B·T, V] (after any final soft-cap, before the temperature).
    void set_keep_logits(bool on) { keep_logits_ = on; }
    const float* logits() const;
    // Adds d(loss)/d(parameters) into grad() from dz = ∂loss/∂logits [B·T, V] of the last forward() (the logits that
    // logits() returns; any scale already applied).
    void backward_logits(const float* dz);
    // Under LoRA: run the frozen base alone (the adapters off) — the reference policy of DPO/PPO/GRPO for free.
    void set_adapters_enabled(bool on) { adapters_on_ = on; }
    void zero_grad();
    double grad_norm() const;  // global L2 norm
    // Scales gradients so their global norm is at most max_norm (PyTorch's clip_grad_norm_); returns the norm before.
    double clip_grad_norm(double max_norm);

    // Precision of the matrix products (forward and backward): f32 (default), or bf16 operands with f32 accumulation.
    // Master weights, gradients and optimiser state stay f32 either way.
    void set_matmul_precision(kernels::Precision p) { matmul_ = p; }
    // Activation checkpointing (recomputation): keep only each block's input for the backward pass, which runs a
    // block's forward again just before its own backward. Activation memory per token falls from about
    // L·(8C + 3F + H·T) floats to L·C plus one block's; the cost is one more forward pass of the blocks (about a third
    // more arithmetic). Gradients are bit-identical either way.
    void set_recompute(bool on) { recompute_ = on; }
    bool recompute() const { return recompute_; }
    kernels::Precision matmul_precision() const { return matmul_; }

    // A Model viewing the weights (or, with gradients = true, the gradients) — valid while this object lives.
    // Under LoRA: the adapter (tensors "<weight>.lora_a" / ".lora_b", llama.cpp's adapter names and metadata).
    Model to_model(bool gradients = false) const;

    // Freezes every weight and trains LoRA adapters instead: afterwards data()/grad()/params() are the adapters', so
    // the optimiser holds state for them only, and the frozen weights keep no gradients. `adapter` (optional) holds
    // their starting values (a saved adapter); otherwise A ~ U(±1/√in) and B = 0.
    void enable_lora(const LoraConfig& cfg, const Model* adapter = nullptr);
    bool lora() const { return lora_; }
    const LoraConfig& lora_config() const { return lora_cfg_; }
    // The base weights with the adapters merged in (W + s·B·A), as a model owning its weights.
    Model merged_model() const;

private:
    struct Layer;  // offsets of one block's parameters
    struct Acts;   // activation buffers for one (B, T)
    // base weights (frozen under LoRA) and their gradients (none under LoRA)
    float* P(size_t off) { return const_cast<float*>(static_cast<const TrainableModel*>(this)->P(off)); }
    const float* P(size_t off) const;
    float* G(size_t off) { return lora_ ? nullptr : grad_.data() + off; }
    static constexpr size_t kNone = ~size_t{0};
    void lin_fwd(const Tensor* w, const Tensor* b, const float* x, float* y, int64_t N);
    void lin_bwd(size_t w, size_t b, const float* dy, const float* x, float* dx, int64_t N, int64_t I, int64_t O, bool accumulate_dx = true);
    void ensure_acts(int64_t B, int64_t T);
    LayerBuffers layer_buffers(int64_t l);
    void bind_views();
    Layer layer_offsets(int64_t l) const;
    void norm_bwd(const float* dy, const float* x, size_t w, size_t b, const float* mean, const float* rstd, float* dx, int64_t N);
    const float* post_bwd(size_t w, const std::vector<float>& proj, const std::vector<float>& rstd, int64_t l);
    void backward_from_dlogits(bool have_dlogits, const float* dhead);
    void forward_trunk(const int32_t* inputs, const int32_t* lengths, int64_t B, int64_t T, const int32_t* types = nullptr);
    void backward_blocks();  // from ∂loss/∂(the last block's output) in the activations' dx, to the embeddings

    ModelConfig cfg_;
    ThreadPool& pool_;
    std::vector<Param> params_;
    std::vector<float> data_, grad_;
    size_t tok_embd_ = 0, pos_embd_ = 0, out_norm_ = 0, out_norm_b_ = 0, output_ = 0;
    size_t tok_types_ = kNone, embd_norm_ = kNone, embd_norm_b_ = kNone;  // BERT's segment embedding and embedding norm
    std::vector<int32_t> lengths_;  // forward_hidden(): each sequence's real tokens (empty: all T)
    std::vector<int32_t> types_;    // forward_hidden(): the segment ids [B·T] (empty: all 0)
    bool tied_ = false;
    std::unique_ptr<Acts> acts_;  // allocated by the first forward() of a given (B, T)
    int64_t B_ = 0, T_ = 0;
    std::vector<int32_t> inputs_, targets_;
    int64_t n_targets_ = 0;
    bool want_entropy_ = false, lm_head_ = true, adapters_on_ = true, recompute_ = false, acts_recompute_ = false;
    float inv_temp_ = 1.0f;
    bool keep_logits_ = false;
    std::vector<float> kept_logits_;  // [N, V] with keep_logits
    std::vector<float> entropy_;
    struct Head {
        std::string name;
        int64_t n_out = 0;
        size_t w = 0, b = 0;  // offsets into data_ / grad_ (always trainable)
    } head_;
    std::vector<float> head_values_;
    std::vector<float> rope_cos_, rope_sin_;  // [B·T, n_rot/2]
    // the forward pass: views of the weights, and the training backend in the current matrix-product precision
    std::vector<Tensor> views_;
    std::unordered_map<const Tensor*, size_t> view_offset_;
    std::unique_ptr<ModelWeights> weights_;
    std::tuple<const float*, const float*, size_t, bool> bound_key_{};  // the buffers weights_ views
    std::vector<int32_t> pos_ids_;  // learned positions: each row's position
    std::unique_ptr<backend::Backend> be_;
    kernels::Precision be_prec_ = kernels::Precision::F32;
    kernels::Precision matmul_ = kernels::Precision::F32;
    // LoRA
    struct LoraSlot {
        size_t a = 0, b = 0;  // offsets of A and B in data_
        int64_t in = 0, out = 0;
    };
    bool lora_ = false;
    LoraConfig lora_cfg_;
    std::vector<Param> base_params_;
    std::vector<float> base_;
    std::unordered_map<size_t, size_t> lora_index_;  // base weight offset → slot
    std::vector<LoraSlot> lora_slots_;
    std::vector<std::vector<float>> lora_u_;         // per slot: s · x Aᵀ of the last forward
    std::vector<float> lora_du_;
    bool frozen_ = false;
    std::unordered_map<size_t, const float*> view_;           // frozen f32 weights read in place, by offset
    std::unordered_map<size_t, Tensor> frozen_mats_;               // frozen matrices of other types (QLoRA), as stored
    std::vector<std::vector<float>> widened_;                 // frozen vectors of other types, widened to f32
    std::vector<std::shared_ptr<const void>> view_storage_;  // keeps their file mapped
};

// AdamW (Loshchilov & Hutter 2019) as PyTorch's torch.optim.AdamW computes it: decoupled weight decay
// p ← p·(1 − lr·wd), then p ← p − lr/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε).
struct AdamWConfig {
    float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weight_decay = 0.1f;
};

class AdamW {
public:
    AdamW(size_t n_params, const AdamWConfig& cfg) : cfg_(cfg), m_(n_params, 0.0f), v_(n_params, 0.0f) {}
    void step(TrainableModel& model, float lr, ThreadPool& pool);
    int64_t steps() const { return t_; }
    std::vector<float>& m() { return m_; }
    std::vector<float>& v() { return v_; }
    const std::vector<float>& m() const { return m_; }
    const std::vector<float>& v() const { return v_; }
    void set_steps(int64_t t) { t_ = t; }

private:
    AdamWConfig cfg_;
    std::vector<float> m_, v_;
    int64_t t_ = 0;
};

// Learning rate at a step (0-based): linear warm-up to lr_max over `warmup` steps, then constant, cosine or linear
// decay to lr_min at `total`, or warmup-stable-decay (constant, then a linear decay over the last decay_frac).
struct LrSchedule {
    enum class Kind { Constant, Cosine, Linear, WSD } kind = Kind::Cosine;
    float lr_max = 3e-4f, lr_min = 3e-5f;
    int64_t warmup = 0, total = 1;
    float decay_frac = 0.2f;
    float at(int64_t step) const;
    static Kind parse(const std::string& name);  // constant | cosine | linear | wsd
};

}  // namespace llmforge
