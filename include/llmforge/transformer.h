// The Transformer forward pass with a key/value cache, for one sequence.
//
// Each block computes (pre-norm):   x = x + Attention(Norm(x));   x = x + MLP(Norm(x))
// where Attention(h) = concat_heads( softmax(Q Kᵀ / √d_k + causal mask) V ) · W_o,  Q = h W_q, K = h W_k, V = h W_v.
// Keys and values of past positions stay in the cache, so each new token costs one pass over the weights.
#pragma once
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "llmforge/model.h"
#include "llmforge/threadpool.h"

namespace llmforge {

class Transformer {
public:
    // n_ctx: cache length (0: the model's context length). n_batch: the most tokens processed in one pass.
    // kv_type: F16 (llama.cpp's default: half the memory; queries and attention weights are rounded to f16 as
    // llama.cpp rounds them) or F32 (exact, for checks against a float32 reference).
    // n_seq: how many sequences share the weights, each with its own KV cache of n_ctx cells and its own position
    // (the server's slots). eval() and the other single-sequence calls work on the current one (set_seq).
    Transformer(const Model& model, ThreadPool& pool, int64_t n_ctx = 0, int64_t n_batch = 512, DType kv_type = DType::F16,
                int n_seq = 1);

    // Runs tokens at positions [n_past(), n_past() + n) and appends them to the cache.
    // Returns the logits: of the last token ([n_vocab]), or of every token ([n, n_vocab]) when all_logits.
    // Prompts longer than n_batch are processed in several passes. Throws a bad-input Error if the cache would overflow
    // or a token id is out of range.
    const std::vector<float>& eval(const int32_t* tokens, int64_t n, bool all_logits = false);
    const std::vector<float>& eval(const std::vector<int32_t>& tokens, bool all_logits = false) {
        return eval(tokens.data(), static_cast<int64_t>(tokens.size()), all_logits);
    }

    int64_t n_past() const { return n_past_; }
    int n_seq() const { return n_seq_; }
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
    int64_t n_ctx() const { return n_ctx_; }
    void reset() { n_past_ = 0; }
    // Forget cached positions from n on (n ≤ n_past).
    void truncate(int64_t n) { if (n < n_past_) n_past_ = n < 0 ? 0 : n; }
    const Model& model() const { return model_; }
    DType kv_type() const { return kv_type_; }

    // Applies a LoRA adapter (load_lora_adapter) beside the weights: each adapted layer computes
    // x Wᵀ + scale · (alpha / rank) · (x Aᵀ) Bᵀ. The adapter must outlive this object. Several may be added.
    void add_lora(const Model& adapter, float scale = 1.0f);

    // Round every intermediate exactly as llama.cpp's CPU backend does (its summation orders, its vectorised exp, the
    // cache padded to 32 cells; see core/ggml_math.h), so that results agree with llama.cpp's to the last bit on f32
    // weights — llama-perplexity's numbers to the digit. Slower than the default kernels.
    void set_ggml_arithmetic(bool on) { ggml_arith_ = on; }
    bool ggml_arithmetic() const { return ggml_arith_; }
    // With ggml arithmetic: the index of this sequence's first cell in llama.cpp's KV cache (llama-perplexity packs
    // several chunks into one cache, one after another); it decides how keys fall into 16-lane sums.
    void set_ggml_cell_offset(int64_t cell) { cell_offset_ = cell; }

private:
    struct Layer {
        const Tensor *attn_norm, *attn_norm_b, *wq, *wk, *wv, *bq, *bk, *bv, *wqkv, *bqkv, *wo, *bo;  // biases: null if none
        const Tensor *ffn_norm, *ffn_norm_b, *w_gate, *b_gate, *w_up, *b_up, *w_down, *b_down;
    };
    struct Rows {  // decode(): each row's sequence and position
        const int32_t* seq;
        const int64_t* pos;
    };
    void forward(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits_out, const Rows* rows = nullptr,
                 float* hidden_out = nullptr, const uint8_t* want = nullptr);
    // Throws a bad-input Error for a token outside the vocabulary or (room) n tokens that do not fit after n_past().
    void check_tokens(const int32_t* tokens, int64_t n, bool room) const;
    size_t cache_at(int64_t seq, int64_t layer, int64_t pos) const {
        return static_cast<size_t>(((seq * cfg_.n_layer + layer) * n_ctx_ + pos) * cfg_.kv_dim());
    }
    void norm(const float* x, float* out, int64_t n, const Tensor* w, const Tensor* b);
    void linear(const float* in, float* out, int64_t n, const Tensor* w, const Tensor* b);
    void rope(float* x, int64_t n, int64_t n_heads);
    void attention(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0);
    void attention_fast(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0, const Rows* rows = nullptr);
    void attention_ggml(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0);
    bool ggml_arith_ = false;
    bool rowwise_ = false;  // decode(): batch-invariant products
    int64_t cell_offset_ = 0;

    struct Lora {
        std::vector<float> a, b;  // f32 copies: A [r, in], B [out, r]
        int64_t rank;
        float scale;
    };
    std::unordered_map<const Tensor*, std::vector<Lora>> lora_;
    std::vector<float> lora_tmp_;

    const Model& model_;
    const ModelConfig& cfg_;
    ThreadPool& pool_;
    int64_t n_ctx_, n_batch_, n_past_ = 0;
    std::vector<Layer> layers_;
    const Tensor *tok_embd_, *pos_embd_, *out_norm_, *out_norm_b_, *output_;
    DType kv_type_;
    int n_seq_ = 1, slot_ = 0;
    std::vector<int64_t> past_;  // n_past of every sequence (the current one's lives in n_past_)
    std::vector<int64_t> decode_pos_, decode_next_;
    std::vector<float> hidden_;
    std::vector<float> k_cache_, v_cache_;       // [n_seq][n_layer][n_ctx][kv_dim] when kv_type_ is F32
    std::vector<uint16_t> k_cache16_, v_cache16_;  // the same, when kv_type_ is F16
    // scratch, sized for n_batch tokens
    std::vector<float> x_, h_, q_, k_, v_, qkv_, att_, ff_a_, ff_b_, scores_, logits_;
    std::vector<float> norm_w_;
    std::vector<double> acc_;
    std::vector<float> vt_;  // ggml arithmetic: V transposed for one layer
    std::vector<float> bias_;
    std::vector<float> rope_cos_, rope_sin_;
};

}  // namespace llmforge
