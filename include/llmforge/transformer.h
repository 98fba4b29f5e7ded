// The Transformer forward pass with a key/value cache, for one or several sequences.
//
// Each block computes (pre-norm):   x = x + Attention(Norm(x));   x = x + MLP(Norm(x))
// where Attention(h) = concat_heads( softmax(Q Kᵀ / √d_k + causal mask) V ) · W_o,  Q = h W_q, K = h W_k, V = h W_v.
// What exactly (which norm, biases, RoPE or learned positions, which MLP) the model's block description says; how the
// operations are computed, a backend (backend/backend.h) in the numerics chosen here. Keys and values of past
// positions stay in a KVCache, so each new token costs one pass over the weights.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <unordered_map>
#include <vector>

#include "core/threadpool.h"
#include "llmforge/kv_cache.h"
#include "llmforge/model.h"
#include "llmforge/numerics.h"

namespace llmforge {

struct ModelWeights;
namespace backend {
class Backend;
struct Lora;
struct Rows;
}  // namespace backend

// A KV cache for this model of n_seq sequences × n_ctx positions (0: the model's context), after checking that it and
// the buffers of batches of n_batch tokens fit in this machine's memory (a bad-input Error names the sizes otherwise).
// ring: a sliding-window model's cache may keep only the window's cells (KVCache); false keeps every position.
std::unique_ptr<KVCache> make_kv_cache(const ModelConfig& cfg, ThreadPool& pool, int64_t n_ctx, int64_t n_batch, KVCacheType kv_type, int n_seq,
                                       bool ring = true);

// A sentence embedding from the final hidden states h [n, n_embd] (Transformer::embed): pooled as the model's
// description says (the mean over the tokens, the first token's — BERT's [CLS] — or the last token's), then divided by
// its L2 norm when normalize.
std::vector<float> pool_embedding(const ModelConfig& c, const float* h, int64_t n, bool normalize = true);

class Transformer {
public:
    // n_ctx: cache length (0: the model's context length). n_batch: the most tokens processed in one pass.
    // kv_type: F16 (llama.cpp's default: half the memory; queries and attention weights are rounded to f16 as
    // llama.cpp rounds them), F32 (exact, for checks against a float32 reference), or a block type for keys and/or
    // values (kv_cache.h).
    // n_seq: how many sequences share the weights, each with its own KV cache of n_ctx cells and its own position
    // (the server's slots). eval() and the other single-sequence calls work on the current one (set_seq).
    // numerics: how eval() and embed() round (see numerics.h); decode() is always batch-invariant.
    Transformer(const Model& model, ThreadPool& pool, int64_t n_ctx = 0, int64_t n_batch = 512, KVCacheType kv_type = DType::F16,
                int n_seq = 1, Numerics numerics = Numerics::Fast);
    // The same over a cache the caller owns (it must outlive this object; its sizes decide n_ctx and n_seq).
    Transformer(const Model& model, ThreadPool& pool, KVCache& cache, int64_t n_batch = 512, Numerics numerics = Numerics::Fast);
    ~Transformer();
    Transformer(const Transformer&) = delete;
    Transformer& operator=(const Transformer&) = delete;

    // Runs tokens at positions [n_past(), n_past() + n) and appends them to the cache.
    // Returns the logits: of the last token ([n_vocab]), or of every token ([n, n_vocab]) when all_logits.
    // Prompts longer than n_batch are processed in several passes. Throws a bad-input Error if the cache would overflow
    // or a token id is out of range.
    const std::vector<float>& eval(const int32_t* tokens, int64_t n, bool all_logits = false);
    const std::vector<float>& eval(const std::vector<int32_t>& tokens, bool all_logits = false) {
        return eval(tokens.data(), static_cast<int64_t>(tokens.size()), all_logits);
    }

    int64_t n_past() const { return cache_->n_past(slot_); }
    int n_seq() const { return cache_->n_seq(); }
    int seq() const { return slot_; }
    void set_seq(int s);            // the sequence eval(), n_past(), reset() and truncate() work on
    int64_t n_past_of(int s) const;
    void copy_seq(int src, int dst);  // dst's cache becomes a copy of src's (its n_past(src) cells)
    // n rows, each a token of a sequence: a sequence's rows take its next positions n_past_of(seq), +1, … in row order
    // (one row per sequence when decoding; several when a prompt, or a chunk of one, rides along). Logits into `logits`
    // for the rows with want[i] != 0 (every row if want is null), one after the other in row order. The weights are
    // streamed once for all n; every row's results are bit for bit those it gets alone (batch-invariant products,
    // per-row attention): they depend neither on which other sequences share the step nor on how a prompt is cut into
    // chunks (eval() sums its products in another order). Not with ggml arithmetic.
    void decode(const int32_t* seqs, const int32_t* tokens, int64_t n, float* logits, const uint8_t* want = nullptr);
    // Runs tokens like eval() and returns the final hidden states after the output norm, [n, n_embd] (embeddings).
    const std::vector<float>& embed(const int32_t* tokens, int64_t n);
    // The same with each token's segment (an encoder's token type: BERT's 0 for the first text of a pair, 1 for the
    // second), [n], each below the model's n_token_types.
    const std::vector<float>& embed(const int32_t* tokens, const int32_t* types, int64_t n);
    int64_t n_ctx() const { return cache_->n_ctx(); }
    void reset() { cache_->set_n_past(slot_, 0); }
    // Forget cached positions from n on (n ≤ n_past); returns the positions kept: n, or 0 where a sliding-window
    // ring no longer holds the keys position n attends to (the caller then runs the prefix again).
    int64_t truncate(int64_t n);
    const Model& model() const { return model_; }
    KVCacheType kv_type() const { return cache_->type(); }
    KVCache& cache() { return *cache_; }
    Numerics numerics() const { return numerics_; }

    // Applies a LoRA adapter (load_lora_adapter) beside the weights: each adapted layer computes
    // x Wᵀ + scale · (alpha / rank) · (x Aᵀ) Bᵀ. The adapter must outlive this object. Several may be added.
    void add_lora(const Model& adapter, float scale = 1.0f);

    // Calls observe(w, x, n) with the inputs x [n, w.cols()] of every linear layer of the blocks before it computes
    // them (an importance matrix sums their squares per input column: compute_imatrix); null: none.
    using LinearObserver = std::function<void(const Tensor& w, const float* x, int64_t n)>;
    void set_linear_observer(LinearObserver observe) { observer_ = std::move(observe); }

    // With ggml arithmetic: the index of this sequence's first cell in llama.cpp's KV cache (llama-perplexity packs
    // several chunks into one cache, one after another); it decides how keys fall into 16-lane sums.
    void set_ggml_cell_offset(int64_t cell) { cache_->ggml_cell_offset = cell; }

private:
    void setup(int64_t n_batch);
    void forward(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits_out, const backend::Rows& rows, backend::Backend& be,
                 float* hidden_out = nullptr, const uint8_t* want = nullptr);
    // Throws a bad-input Error for a token outside the vocabulary or (room) n tokens that do not fit after n_past().
    void check_tokens(const int32_t* tokens, int64_t n, bool room) const;
    // y = x Wᵀ (+ b) (+ the adapters of W) on the backend
    void linear(backend::Backend& be, const float* x, float* y, int64_t n, const Tensor* w, const Tensor* b);

    std::unordered_map<const Tensor*, std::vector<backend::Lora>> lora_;
    LinearObserver observer_;

    const Model& model_;
    const ModelConfig& cfg_;
    ThreadPool& pool_;
    std::unique_ptr<KVCache> own_cache_;
    KVCache* cache_ = nullptr;
    Numerics numerics_;
    std::unique_ptr<backend::Backend> be_, be_rows_;  // the set-up numerics (eval, embed); batch-invariant (decode)
    int64_t n_batch_, eval_chunk_;
    int slot_ = 0;
    std::unique_ptr<ModelWeights> w_;
    std::vector<int64_t> decode_pos_, decode_next_;
    std::vector<int32_t> pos_ids_;
    std::vector<float> hidden_;
    const int32_t* types_ = nullptr;  // embed()'s segments, for the pass under way
    // scratch, sized for n_batch tokens
    std::vector<float> x_, h_, q_, k_, v_, qkv_, att_, ff_a_, ff_b_, logits_;
    std::vector<float> rope_cos_, rope_sin_;
};

}  // namespace llmforge
