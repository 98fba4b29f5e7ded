// The Transformer's training forward and backward passes, each layer's two directions side by side (as in llm.c).
// Shapes: B sequences of T tokens, N = B·T rows; C = n_embd, H heads of HD dims, KV = kv heads · HD, F = n_ff, V = vocab.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "core/kernels.h"
#include "core/weight_types.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/train.h"
#include "forward/forward.h"

namespace llmforge {

struct TrainableModel::Layer {
    // offsets into the parameter buffer, kNone for what the block description does not have (fused qkv or separate
    // q/k/v; the gate of a gated MLP; biases)
    size_t norm1, norm1_b, qkv, bqkv, q, k, v, bq, bk, bv, q_norm, k_norm, o, bo, norm2, norm2_b, gate, b_gate, up, b_up, down, b_down;
    size_t post1, post2;  // post-norms
    size_t out1, out1_b, out2, out2_b;  // norms after the residual adds (BERT): x_mid = LN(x + attn), x_out = LN(x_mid + MLP)
};

struct TrainableModel::Acts {
    std::vector<float> x;                 // [L+1, N, C] residual stream: x[l] enters block l, x[L] leaves the last
    std::vector<float> x_mid;             // [L, N, C] after the attention sub-layer
    std::vector<float> ln1, ln2;          // [L, N, C] normalised inputs of the two sub-layers (post-norm: the sums before the norms)
    std::vector<float> ln1_mean, ln1_rstd, ln2_mean, ln2_rstd;  // [L, N]
    std::vector<float> q, k, v;           // [L, N, Q], [L, N, KV], [L, N, KV] (after RoPE); Q = n_head · head_dim
    std::vector<float> q_raw, k_raw;      // QK-norm: the projections before it, [L, N, Q], [L, N, KV]
    std::vector<float> rstd_q, rstd_k;    // QK-norm: each head's 1/rms, [L, N·H], [L, N·HKV]
    std::vector<float> att;               // [L, B, H, T, T] attention probabilities (row t uses columns 0..t)
    std::vector<float> atty;              // [L, N, Q] attention output before the projection
    std::vector<float> fa, fb, fact;      // [L, N, F] MLP: pre-activation (GPT-2 up / LLaMA gate), LLaMA up, activation
    std::vector<float> attn_proj, mlp_proj;  // post-norms: [L, N, C] the sub-layers' projections before their norms
    std::vector<float> rstd_pa, rstd_pf;     // [L, N] and their 1/rms
    std::vector<float> logit_th;          // final soft-cap: [N, V] tanh(z / cap)
    std::vector<float> lnf, lnf_mean, lnf_rstd;  // [N, C], [N], [N]
    std::vector<float> emb, emb_mean, emb_rstd;  // an embedding norm (BERT): the sum before it [N, C], its statistics [N]
    std::vector<float> logits;            // [N, V]: logits → probabilities (forward) → d logits (backward)
    std::vector<float> losses;            // [N]
    // backward scratch
    std::vector<float> dx, dres, dln, dq, dk, dv, dq_raw, dk_raw, datty, dfa, dfb, dfact, dqkv, tmp1, dproj;
};


// ---- construction --------------------------------------------------------------------------------------------------

TrainableModel::TrainableModel(const Model& init, ThreadPool& pool, bool decay_embeddings, bool frozen_view)
    : cfg_(init.config), pool_(pool), frozen_(frozen_view) {
    cfg_.validate();
    if (cfg_.encoder) lm_head_ = false;  // (trained through forward_hidden / backward_hidden)
    size_t off = 0;
    for (const auto& [name, shape] : expected_tensors(cfg_)) {
        Param p;
        p.name = name;
        p.shape = shape;
        p.offset = off;
        p.numel = 1;
        for (int64_t d : shape) p.numel *= static_cast<size_t>(d);
        const bool embedding = name == "token_embd.weight" || name == "position_embd.weight";
        p.decay = shape.size() == 2 && (!embedding || decay_embeddings);
        off += p.numel;
        params_.push_back(std::move(p));
    }
    auto at = [&](const std::string& name) -> size_t {
        for (const Param& p : params_)
            if (p.name == name) return p.offset;
        throw_bad_input("model has no parameter '%s'", name.c_str());
    };
    // Frozen weights (LoRA follows) are read where they are, with no copy and no gradients: f32 tensors (of a
    // memory-mapped file) in place, matrices of the other weight types — f16, bf16 and the quantised types (QLoRA) —
    // in their own type, widened tile by tile as they are multiplied; only vectors of other types (norms) are widened
    // here, once.
    if (frozen_view) {
        for (const Param& p : params_) {
            const Tensor& t = init.get(p.name);
            if (t.dtype == DType::F32) {
                view_[p.offset] = static_cast<const float*>(t.data);
            } else if (p.shape.size() == 2 && find_weight_type(t.dtype)) {
                frozen_mats_[p.offset] = t;
            } else {
                widened_.emplace_back(p.numel);
                convert_to_f32(t.dtype, t.data, widened_.back().data(), p.numel);
                view_[p.offset] = widened_.back().data();
            }
        }
        view_storage_ = init.storage;
    } else {
        data_.assign(off, 0.0f);
        if (!frozen_view) grad_.assign(off, 0.0f);
        for (const Param& p : params_) {
            const Tensor& t = init.get(p.name);
            convert_to_f32(t.dtype, t.data, data_.data() + p.offset, p.numel);
        }
    }
    const ModelConfig& c = cfg_;
    auto bias = [&](bool has, const std::string& name) { return has ? at(name + ".bias") : kNone; };
    tok_embd_ = at("token_embd.weight");
    if (c.learned_positions) pos_embd_ = at("position_embd.weight");
    if (c.n_token_types > 0) tok_types_ = at("token_types.weight");
    if (c.embd_norm) {
        embd_norm_ = at("token_embd_norm.weight");
        embd_norm_b_ = bias(c.norm_bias(), "token_embd_norm");
    }
    if (c.encoder) {  // no final norm, no output head
        out_norm_ = out_norm_b_ = output_ = kNone;
        return;
    }
    out_norm_ = at("output_norm.weight");
    out_norm_b_ = bias(c.norm_bias(), "output_norm");
    tied_ = true;
    for (const Param& p : params_)
        if (p.name == "output.weight") { tied_ = false; output_ = p.offset; }
    if (tied_) output_ = tok_embd_;
}

TrainableModel::~TrainableModel() = default;

void TrainableModel::ensure_acts(int64_t B, int64_t T) {
    if (acts_ && B == B_ && T == T_ && acts_recompute_ == recompute_) return;
    if (cfg_.learned_positions && T > cfg_.n_ctx)
        throw_bad_input("sequence length %lld exceeds the model's %lld positions", static_cast<long long>(T), static_cast<long long>(cfg_.n_ctx));
    acts_ = std::make_unique<Acts>();
    Acts& a = *acts_;
    // every block's intermediates, or (recomputing) those of one block at a time: only the residual stream x is kept
    // for every block
    const size_t L = recompute_ ? 1 : static_cast<size_t>(cfg_.n_layer), N = static_cast<size_t>(B * T), C = static_cast<size_t>(cfg_.n_embd),
                 KV = static_cast<size_t>(cfg_.kv_dim()), F = static_cast<size_t>(cfg_.n_ff), V = static_cast<size_t>(cfg_.n_vocab),
                 H = static_cast<size_t>(cfg_.n_head), Q = static_cast<size_t>(cfg_.q_dim());
    a.x.resize(static_cast<size_t>(cfg_.n_layer + 1) * N * C);
    a.x_mid.resize(L * N * C);
    a.ln1.resize(L * N * C);
    a.ln2.resize(L * N * C);
    a.ln1_mean.resize(L * N);
    a.ln1_rstd.resize(L * N);
    a.ln2_mean.resize(L * N);
    a.ln2_rstd.resize(L * N);
    a.q.resize(L * N * Q);
    if (cfg_.qk_norm) {
        a.q_raw.resize(L * N * Q);
        a.k_raw.resize(L * N * KV);
        a.rstd_q.resize(L * N * H);
        a.rstd_k.resize(L * N * static_cast<size_t>(cfg_.n_head_kv));
    }
    a.k.resize(L * N * KV);
    a.v.resize(L * N * KV);
    a.att.resize(L * static_cast<size_t>(B) * H * static_cast<size_t>(T * T));
    a.atty.resize(L * N * Q);
    a.fa.resize(L * N * F);
    a.fb.resize(L * N * F);  // gated MLP: the up projection; GELU: tanh inside it, for the backward pass
    a.fact.resize(L * N * F);
    if (cfg_.post_norms) {
        a.attn_proj.resize(L * N * C);
        a.mlp_proj.resize(L * N * C);
        a.rstd_pa.resize(L * N);
        a.rstd_pf.resize(L * N);
    }
    if (cfg_.final_softcap > 0) a.logit_th.resize(N * V);
    a.lnf.resize(N * C);
    a.lnf_mean.resize(N);
    a.lnf_rstd.resize(N);
    if (cfg_.embd_norm) {
        a.emb.resize(N * C);
        a.emb_mean.resize(N);
        a.emb_rstd.resize(N);
    }
    a.logits.resize(cfg_.encoder ? 0 : N * V);
    a.losses.resize(N);
    B_ = B;
    T_ = T;
    acts_recompute_ = recompute_;
    if (cfg_.uses_rope()) {  // RoPE angles of every row (position t = row mod T), as the inference path computes them
        const size_t half = static_cast<size_t>(cfg_.n_rot() / 2);
        rope_cos_.resize(static_cast<size_t>(B * T) * half);
        rope_sin_.resize(static_cast<size_t>(B * T) * half);
        rope_angles(cfg_, B * T, [T](int64_t i) { return i % T; }, rope_cos_.data(), rope_sin_.data());
    }
}

// Block l's parameters as offsets (kNone where the description has none): those of the tensors the forward pass bound.
TrainableModel::Layer TrainableModel::layer_offsets(int64_t l) const {
    const BlockWeights& w = weights_->blocks[static_cast<size_t>(l)];
    auto off = [&](const Tensor* t) { return t ? view_offset_.at(t) : kNone; };
    return Layer{off(w.attn_norm), off(w.attn_norm_b), off(w.wqkv), off(w.bqkv), off(w.wq),     off(w.wk),   off(w.wv),
                 off(w.bq),        off(w.bk),          off(w.bv),   off(w.q_norm), off(w.k_norm), off(w.wo),  off(w.bo),
                 off(w.ffn_norm),  off(w.ffn_norm_b),  off(w.w_gate), off(w.b_gate), off(w.w_up), off(w.b_up), off(w.w_down),
                 off(w.b_down),    off(w.attn_post_norm), off(w.ffn_post_norm), off(w.attn_out_norm), off(w.attn_out_norm_b),
                 off(w.layer_out_norm), off(w.layer_out_norm_b)};
}

// A base weight as f32 values: the master weights, or a frozen f32 (or widened) one; frozen matrices of other types
// are multiplied through their tiles (lin_fwd, lin_bwd) and have no f32 array.
const float* TrainableModel::P(size_t off) const {
    if (view_.empty() && frozen_mats_.empty()) return (lora_ ? base_ : data_).data() + off;
    const auto it = view_.find(off);
    if (it == view_.end()) throw_runtime("a frozen %s weight has no f32 array", frozen_mats_.count(off) ? "quantised" : "unknown");
    return it->second;
}

// Views of the (base) weights as tensors, for the forward pass; their offsets find their gradients.
void TrainableModel::bind_views() {
    // bound already, unless the buffers moved since (LoRA or a head added)
    const std::tuple<const float*, const float*, size_t, bool> key{data_.data(), base_.data(), data_.size(), lora_};
    if (weights_ && key == bound_key_) return;
    bound_key_ = key;
    std::vector<Param> ps;  // the model's own weights (a head's live in data_, read by the head's code)
    for (const Param& p : lora_ ? base_params_ : params_)
        if (head_.n_out == 0 || p.name.compare(0, head_.name.size() + 1, head_.name + ".") != 0) ps.push_back(p);
    views_.assign(ps.size(), Tensor{});
    view_offset_.clear();
    std::unordered_map<std::string, const Tensor*> by_name;
    for (size_t i = 0; i < ps.size(); ++i) {
        Tensor& t = views_[i];
        const auto fz = frozen_mats_.find(ps[i].offset);
        if (fz != frozen_mats_.end()) {  // a frozen matrix in its own type
            t = fz->second;
        } else {
            t.name = ps[i].name;
            t.dtype = DType::F32;
            t.shape = ps[i].shape;
            t.data = P(ps[i].offset);
        }
        view_offset_[&t] = ps[i].offset;
        by_name[t.name] = &t;
    }
    weights_ = std::make_unique<ModelWeights>(bind_weights(cfg_, [&](const std::string& name) {
        const auto it = by_name.find(name);
        if (it == by_name.end()) throw_bad_input("model has no parameter '%s'", name.c_str());
        return it->second;
    }));
}

// The backward pass of the norm the block description names (LayerNorm or RMSNorm).
void TrainableModel::norm_bwd(const float* dy, const float* x, size_t w, size_t b, const float* mean, const float* rstd, float* dx, int64_t N) {
    if (cfg_.norm == NormKind::LayerNorm) be_->norm_backward(dy, x, P(w), mean, rstd, dx, G(w), G(b), N, cfg_.n_embd);
    else be_->norm_backward(dy, x, P(w), nullptr, rstd, dx, G(w), nullptr, N, cfg_.n_embd);
}

// Block l's buffers for the forward pass: the residual stream's rows of block l (kept for every block) and, for the
// rest, block l's own (or, recomputing, the one block's that all share).
LayerBuffers TrainableModel::layer_buffers(int64_t l) {
    Acts& a = *acts_;
    const int64_t B = B_, T = T_, N = B * T, C = cfg_.n_embd, KV = cfg_.kv_dim(), F = cfg_.n_ff, H = cfg_.n_head, Q = cfg_.q_dim(),
                  HKV = cfg_.n_head_kv, s = recompute_ ? 0 : l;
    LayerBuffers b{};
    b.x = a.x.data() + l * N * C;
    b.ln1 = a.ln1.data() + s * N * C;
    b.mean1 = a.ln1_mean.data() + s * N;
    b.rstd1 = a.ln1_rstd.data() + s * N;
    b.q = a.q.data() + s * N * Q;
    if (cfg_.qk_norm) {
        b.q_raw = a.q_raw.data() + s * N * Q;
        b.k_raw = a.k_raw.data() + s * N * KV;
        b.rstd_q = a.rstd_q.data() + s * N * H;
        b.rstd_k = a.rstd_k.data() + s * N * HKV;
    }
    b.k = a.k.data() + s * N * KV;
    b.v = a.v.data() + s * N * KV;
    b.qkv = a.tmp1.data();
    b.probs = a.att.data() + s * B * H * T * T;
    b.atty = a.atty.data() + s * N * Q;
    b.x_mid = a.x_mid.data() + s * N * C;
    b.ln2 = a.ln2.data() + s * N * C;
    b.mean2 = a.ln2_mean.data() + s * N;
    b.rstd2 = a.ln2_rstd.data() + s * N;
    b.fa = a.fa.data() + s * N * F;
    b.fb = a.fb.data() + s * N * F;
    b.fact = a.fact.data() + s * N * F;
    b.x_out = a.x.data() + (l + 1) * N * C;
    if (cfg_.post_norms) {
        b.attn_proj = a.attn_proj.data() + s * N * C;
        b.mlp_proj = a.mlp_proj.data() + s * N * C;
        b.rstd_pa = a.rstd_pa.data() + s * N;
        b.rstd_pf = a.rstd_pf.data() + s * N;
    }
    return b;
}

// ---- forward -------------------------------------------------------------------------------------------------------

// The embeddings and the blocks, every intermediate kept; then the final norm into lnf where the model has one.
void TrainableModel::forward_trunk(const int32_t* inputs, const int32_t* lengths, int64_t B, int64_t T, const int32_t* types) {
    const int64_t N = B * T, C = cfg_.n_embd, KV = cfg_.kv_dim(), V = cfg_.n_vocab, Q = cfg_.q_dim(), QKV = Q + 2 * KV;
    for (int64_t n = 0; n < N; ++n)
        if (inputs[n] < 0 || inputs[n] >= V)
            throw_bad_input("token id %d at position %lld is outside the vocabulary of %lld", inputs[n], static_cast<long long>(n),
                            static_cast<long long>(V));
    lengths_.clear();
    if (lengths) {
        for (int64_t b = 0; b < B; ++b)
            if (lengths[b] < 1 || lengths[b] > T)
                throw_bad_input("sequence %lld has %d real tokens, outside 1..%lld", static_cast<long long>(b), lengths[b], static_cast<long long>(T));
        lengths_.assign(lengths, lengths + B);
    }
    types_.clear();
    if (types) {
        if (tok_types_ == kNone) throw_bad_input("this model has no segment embedding: it takes no token types");
        for (int64_t n = 0; n < N; ++n)
            if (types[n] < 0 || types[n] >= cfg_.n_token_types)
                throw_bad_input("token type %d at position %lld is outside 0..%lld", types[n], static_cast<long long>(n),
                                static_cast<long long>(cfg_.n_token_types - 1));
        types_.assign(types, types + N);
    }
    ensure_acts(B, T);
    Acts& a = *acts_;
    inputs_.assign(inputs, inputs + N);

    // the weights as the forward pass reads them (views of the master weights: their buffers move when LoRA or a head
    // is added) and the training backend in the current precision
    bind_views();
    if (!be_ || be_prec_ != matmul_) {
        be_ = backend::make_cpu_training_backend(pool_, matmul_);
        be_prec_ = matmul_;
    }
    const ModelWeights& w = *weights_;
    // embeddings: x = wte[token] (· √C) (+ wpe[position])
    if (w.pos_embd) {
        pos_ids_.resize(static_cast<size_t>(N));
        for (int64_t n = 0; n < N; ++n) pos_ids_[static_cast<size_t>(n)] = static_cast<int32_t>(n % T);
    }
    embed_tokens(cfg_, w, *be_, inputs, w.pos_embd ? pos_ids_.data() : nullptr, N, a.x.data(), a.emb.data(), a.emb_mean.data(), a.emb_rstd.data(),
                 types_.empty() ? nullptr : types_.data());
    // the blocks, every layer's intermediates kept for the backward pass
    a.tmp1.resize(static_cast<size_t>(cfg_.fused_qkv ? N * QKV : 0));
    AttentionSource src;
    src.B = B;
    src.T = T;
    src.lengths = lengths_.empty() ? nullptr : lengths_.data();
    const LinearFn lin = [&](const float* in, float* out, int64_t n, const Tensor* wt, const Tensor* bias) {
        lin_fwd(wt, bias, in, out, n);
    };
    forward_blocks(cfg_, w, *be_, lin, N, src, rope_cos_.data(), rope_sin_.data(), [this](int64_t l) { return layer_buffers(l); });
    // the final norm
    const float* xL = a.x.data() + cfg_.n_layer * N * C;
    if (w.out_norm) be_->norm(xL, a.lnf.data(), N, C, cfg_.norm, cfg_.norm_eps, *w.out_norm, w.out_norm_b, a.lnf_mean.data(), a.lnf_rstd.data());
}

const float* TrainableModel::forward_hidden(const int32_t* inputs, const int32_t* lengths, int64_t B, int64_t T, const int32_t* types) {
    forward_trunk(inputs, lengths, B, T, types);
    targets_.assign(static_cast<size_t>(B * T), -1);
    n_targets_ = 0;
    return cfg_.encoder ? acts_->x.data() + cfg_.n_layer * B * T * cfg_.n_embd : acts_->lnf.data();
}

float TrainableModel::forward(const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T) {
    if (cfg_.encoder)
        throw_bad_input("'%s' is an encoder: it has no next-token head to train (embed train trains it contrastively)", cfg_.arch.c_str());
    const int64_t N = B * T, C = cfg_.n_embd, V = cfg_.n_vocab;
    for (int64_t n = 0; n < N; ++n)
        if (targets[n] >= V)
            throw_bad_input("token id %d at position %lld is outside the vocabulary of %lld", targets[n], static_cast<long long>(n), static_cast<long long>(V));
    forward_trunk(inputs, nullptr, B, T);
    targets_.assign(targets, targets + N);
    Acts& a = *acts_;
    const ModelWeights& w = *weights_;
    const LinearFn lin = [&](const float* in, float* out, int64_t n, const Tensor* wt, const Tensor* bias) {
        lin_fwd(wt, bias, in, out, n);
    };
    // logits, and softmax fused with cross-entropy: the logits buffer becomes the probabilities
    if (head_.n_out > 0) {  // y = h·Wᵀ + b on the final hidden state
        const int64_t O = head_.n_out;
        head_values_.assign(static_cast<size_t>(N * O), 0.0f);
        const float* W = data_.data() + head_.w;
        const float* hb = data_.data() + head_.b;
        pool_.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t j = 0; j < O; ++j) {
                    double acc = hb[j];
                    for (int64_t c = 0; c < C; ++c) acc += static_cast<double>(a.lnf[static_cast<size_t>(n * C + c)]) * W[j * C + c];
                    head_values_[static_cast<size_t>(n * O + j)] = static_cast<float>(acc);
                }
        });
    }
    std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
    const bool ent = want_entropy_ && lm_head_;
    if (ent) entropy_.assign(static_cast<size_t>(N), 0.0f);
    else entropy_.clear();
    if (lm_head_) {
        output_logits(cfg_, w, *be_, lin, a.lnf.data(), N, a.logits.data(), cfg_.final_softcap > 0 ? a.logit_th.data() : nullptr);
        if (keep_logits_) kept_logits_.assign(a.logits.begin(), a.logits.begin() + N * V);
        pool_.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n) {
                float* z = a.logits.data() + n * V;
                if (inv_temp_ != 1.0f)
                    for (int64_t i = 0; i < V; ++i) z[i] *= inv_temp_;
                float mx = -INFINITY;
                for (int64_t i = 0; i < V; ++i) mx = std::max(mx, z[i]);
                const float zt = targets[n] >= 0 ? z[targets[n]] : 0.0f;
                const double sum = kernels::exp_shift_sum(z, z, V, mx);  // unnormalised probabilities, in place
                const float inv = static_cast<float>(1.0 / sum);
                // −log p_target = log Σ exp(z − max) − (z_target − max)
                if (targets[n] >= 0) row_loss[static_cast<size_t>(n)] = std::log(sum) - static_cast<double>(zt - mx);
                if (ent) {  // H = log S − Σ e log e / S with e = exp(z − max), S = Σ e
                    double el = 0;
                    for (int64_t i = 0; i < V; ++i)
                        if (z[i] > 0) el += static_cast<double>(z[i]) * std::log(static_cast<double>(z[i]));
                    entropy_[static_cast<size_t>(n)] = static_cast<float>(std::log(sum) - el / sum);
                }
                for (int64_t i = 0; i < V; ++i) z[i] *= inv;
            }
        });
    }
    n_targets_ = 0;
    double loss = 0;
    for (int64_t n = 0; n < N; ++n) {
        a.losses[static_cast<size_t>(n)] = static_cast<float>(row_loss[static_cast<size_t>(n)]);
        if (targets[n] >= 0) {
            loss += row_loss[static_cast<size_t>(n)];
            ++n_targets_;
        }
    }
    if (!lm_head_) return 0.0f;
    if (n_targets_ == 0) {
        if (head_.n_out > 0) return 0.0f;
        throw_bad_input("the batch has no targets");
    }
    return static_cast<float>(loss / static_cast<double>(n_targets_));
}

std::vector<float> TrainableModel::token_logprobs() const {
    if (!acts_) throw_runtime("token_logprobs() without a forward()");
    std::vector<float> r(acts_->losses.size());
    for (size_t i = 0; i < r.size(); ++i) r[i] = -acts_->losses[i];
    return r;
}

const std::vector<float>& TrainableModel::token_entropy() const {
    if (entropy_.empty()) throw_runtime("token_entropy(): enable set_compute_entropy() before forward()");
    return entropy_;
}

void TrainableModel::add_head(const std::string& name, int64_t n_out, uint64_t seed, float std, const Model* init) {
    if (head_.n_out > 0) throw_bad_input("the model already has a head ('%s')", head_.name.c_str());
    if (n_out <= 0) throw_bad_input("a head needs at least one output");
    const int64_t C = cfg_.n_embd;
    head_.name = name;
    head_.n_out = n_out;
    head_.w = data_.size();
    head_.b = head_.w + static_cast<size_t>(n_out * C);
    const size_t end = head_.b + static_cast<size_t>(n_out);
    data_.resize(end, 0.0f);
    if (!frozen_ || lora_) grad_.resize(end, 0.0f);  // frozen without LoRA: inference only (no gradients)
    params_.push_back(Param{name + ".weight", {n_out, C}, head_.w, static_cast<size_t>(n_out * C), true});
    params_.push_back(Param{name + ".bias", {n_out}, head_.b, static_cast<size_t>(n_out), false});
    if (init) {
        for (size_t k = params_.size() - 2; k < params_.size(); ++k) {
            const Param& p = params_[k];
            const Tensor* t = init->find(p.name);
            if (!t) throw_bad_input("the model has no tensor '%s'", p.name.c_str());
            if (t->shape != p.shape) throw_bad_input("tensor '%s' has the wrong shape for a head of %lld outputs", p.name.c_str(), static_cast<long long>(n_out));
            convert_to_f32(t->dtype, t->data, data_.data() + p.offset, p.numel);
        }
    } else {
        std::mt19937_64 rng(seed);
        std::normal_distribution<float> nd(0.0f, std);
        for (int64_t i = 0; i < n_out * C; ++i) data_[head_.w + static_cast<size_t>(i)] = std > 0 ? nd(rng) : 0.0f;
    }
}

// ---- backward ------------------------------------------------------------------------------------------------------

void TrainableModel::backward(float scale) {
    if (!acts_) throw_runtime("backward() without a forward()");
    if (frozen_ && !lora_) throw_runtime("backward() on frozen weights: enable LoRA first");
    Acts& a = *acts_;
    const int64_t N = B_ * T_, V = cfg_.n_vocab;
    if (!lm_head_) throw_runtime("backward(): the language-model head is off (use backward_custom)");
    if (n_targets_ == 0) throw_bad_input("the batch has no targets");
    // d loss / d logits = (p − onehot(target)) / (number of targets)  (/ τ)
    const float inv = scale / static_cast<float>(n_targets_) * inv_temp_;
    pool_.parallel_for(N, [&](int64_t n0, int64_t n1) {
        for (int64_t n = n0; n < n1; ++n) {
            float* z = a.logits.data() + n * V;
            if (targets_[static_cast<size_t>(n)] < 0) { std::fill(z, z + V, 0.0f); continue; }
            z[targets_[static_cast<size_t>(n)]] -= 1.0f;
            for (int64_t i = 0; i < V; ++i) z[i] *= inv;
        }
    });
    backward_from_dlogits(true, nullptr);
}

const float* TrainableModel::logits() const {
    if (!keep_logits_ || kept_logits_.empty()) throw_runtime("logits(): enable set_keep_logits() before forward()");
    return kept_logits_.data();
}

void TrainableModel::backward_logits(const float* dz) {
    if (!acts_) throw_runtime("backward() without a forward()");
    if (frozen_ && !lora_) throw_runtime("backward() on frozen weights: enable LoRA first");
    if (!lm_head_) throw_runtime("backward_logits(): the language-model head is off");
    Acts& a = *acts_;
    std::copy(dz, dz + B_ * T_ * cfg_.n_vocab, a.logits.begin());
    backward_from_dlogits(true, nullptr);
}

void TrainableModel::backward_custom(const float* dlogp, const float* dhead) {
    if (!acts_) throw_runtime("backward() without a forward()");
    if (frozen_ && !lora_) throw_runtime("backward() on frozen weights: enable LoRA first");
    if (dhead && head_.n_out == 0) throw_runtime("backward_custom(): the model has no head");
    Acts& a = *acts_;
    const int64_t N = B_ * T_, V = cfg_.n_vocab;
    const bool have = dlogp && lm_head_;
    if (have)  // ∂L/∂z_i = ∂L/∂log p_t · (1[i = t] − p_i)
        pool_.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n) {
                float* z = a.logits.data() + n * V;
                const int32_t t = targets_[static_cast<size_t>(n)];
                const float c = dlogp[n];
                if (t < 0 || c == 0.0f) { std::fill(z, z + V, 0.0f); continue; }
                z[t] -= 1.0f;
                const float m = -c * inv_temp_;  // the logits were divided by τ
                for (int64_t i = 0; i < V; ++i) z[i] *= m;
            }
        });
    backward_from_dlogits(have, dhead);
}

// The gradient reaching a sub-layer's projection: dx itself, or through its post-norm y = RMSNorm(proj) · w.
const float* TrainableModel::post_bwd(size_t w, const std::vector<float>& proj, const std::vector<float>& rstd, int64_t l) {
    Acts& a = *acts_;
    if (w == kNone) return a.dx.data();
    const int64_t N = B_ * T_, C = cfg_.n_embd;
    a.dproj.assign(static_cast<size_t>(N * C), 0.0f);
    be_->norm_backward(a.dx.data(), proj.data() + l * N * C, P(w), nullptr, rstd.data() + l * N, a.dproj.data(), G(w), nullptr, N, C);
    return a.dproj.data();
}

void TrainableModel::backward_from_dlogits(bool have_dlogits, const float* dhead) {
    if (lora_ && !adapters_on_) throw_runtime("backward() with the adapters switched off");
    Acts& a = *acts_;
    const int64_t N = B_ * T_, C = cfg_.n_embd, V = cfg_.n_vocab;
    a.dln.assign(static_cast<size_t>(N * C), 0.0f);
    if (have_dlogits && cfg_.final_softcap > 0) be_->softcap_backward(a.logits.data(), a.logit_th.data(), N * V);
    if (have_dlogits) lin_bwd(output_, kNone, a.logits.data(), a.lnf.data(), a.dln.data(), N, C, V);
    if (dhead) {  // head: dh += Σ_j dy_j W_j;  dW_j += Σ_n dy[n, j] h[n];  db_j += Σ_n dy[n, j]
        const int64_t O = head_.n_out;
        const float* W = data_.data() + head_.w;
        float* gW = grad_.data() + head_.w;
        float* gb = grad_.data() + head_.b;
        pool_.parallel_for(N, [&](int64_t n0, int64_t n1) {
            for (int64_t n = n0; n < n1; ++n)
                for (int64_t j = 0; j < O; ++j) {
                    const float d = dhead[n * O + j];
                    if (d != 0.0f)
                        for (int64_t c = 0; c < C; ++c) a.dln[static_cast<size_t>(n * C + c)] += d * W[j * C + c];
                }
        });
        for (int64_t j = 0; j < O; ++j) {
            std::vector<double> acc(static_cast<size_t>(C), 0.0);
            double bsum = 0;
            for (int64_t n = 0; n < N; ++n) {
                const double d = dhead[n * O + j];
                if (d == 0.0) continue;
                bsum += d;
                for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(c)] += d * a.lnf[static_cast<size_t>(n * C + c)];
            }
            for (int64_t c = 0; c < C; ++c) gW[j * C + c] += static_cast<float>(acc[static_cast<size_t>(c)]);
            gb[j] += static_cast<float>(bsum);
        }
    }
    a.dx.assign(static_cast<size_t>(N * C), 0.0f);  // d loss / d residual stream
    const float* xL = a.x.data() + cfg_.n_layer * N * C;
    norm_bwd(a.dln.data(), xL, out_norm_, out_norm_b_, a.lnf_mean.data(), a.lnf_rstd.data(), a.dx.data(), N);
    backward_blocks();
}

void TrainableModel::backward_hidden(const float* dh) {
    if (!acts_) throw_runtime("backward_hidden() without a forward_hidden()");
    if (frozen_ && !lora_) throw_runtime("backward() on frozen weights: enable LoRA first");
    if (lora_ && !adapters_on_) throw_runtime("backward() with the adapters switched off");
    Acts& a = *acts_;
    const int64_t N = B_ * T_, C = cfg_.n_embd;
    if (out_norm_ == kNone) {  // an encoder: the hidden states are the last block's output
        a.dx.assign(dh, dh + N * C);
    } else {
        a.dx.assign(static_cast<size_t>(N * C), 0.0f);
        norm_bwd(dh, a.x.data() + cfg_.n_layer * N * C, out_norm_, out_norm_b_, a.lnf_mean.data(), a.lnf_rstd.data(), a.dx.data(), N);
    }
    backward_blocks();
}

// From dx = ∂loss/∂x[L] back through the blocks (post-norm blocks: through their norms first) to the embeddings.
void TrainableModel::backward_blocks() {
    Acts& a = *acts_;
    const int64_t B = B_, T = T_, N = B * T, C = cfg_.n_embd, KV = cfg_.kv_dim(), F = cfg_.n_ff, H = cfg_.n_head, HKV = cfg_.n_head_kv,
                  HD = cfg_.head_dim(), Q = cfg_.q_dim(), QKV = Q + 2 * KV;
    const bool post = cfg_.post_ln;
    // post-norm: y = LN(s) with s = the sub-layer's input + its output; dx ← ∂loss/∂s (the sum's gradient reaches both)
    auto through_out_norm = [&](size_t w, size_t b, const float* sum, const float* mean, const float* rstd) {
        a.dres.assign(static_cast<size_t>(N * C), 0.0f);
        norm_bwd(a.dx.data(), sum, w, b, mean, rstd, a.dres.data(), N);
        a.dx.swap(a.dres);
    };
    AttentionSource src;
    src.B = B;
    src.T = T;
    src.lengths = lengths_.empty() ? nullptr : lengths_.data();
    const LinearFn lin = [&](const float* in, float* out, int64_t n, const Tensor* wt, const Tensor* bias) { lin_fwd(wt, bias, in, out, n); };
    for (int64_t l = cfg_.n_layer - 1; l >= 0; --l) {
        const Layer Ly = layer_offsets(l);
        // recomputing: block l's forward again from its kept input (the same operations on the same values, so the same
        // bits as the first time); the last block's intermediates are still there from forward()
        const int64_t s = recompute_ ? 0 : l;
        if (recompute_ && l < cfg_.n_layer - 1)
            forward_blocks(cfg_, *weights_, *be_, lin, N, src, rope_cos_.data(), rope_sin_.data(), [this](int64_t i) { return layer_buffers(i); }, l, l + 1);
        const float* x = a.x.data() + l * N * C;
        const float* ln1 = a.ln1.data() + s * N * C;
        const float* q = a.q.data() + s * N * Q;
        const float* k = a.k.data() + s * N * KV;
        const float* v = a.v.data() + s * N * KV;
        const float* att = a.att.data() + s * B * H * T * T;
        const float* atty = a.atty.data() + s * N * Q;
        const float* xm = a.x_mid.data() + s * N * C;
        const float* ln2 = a.ln2.data() + s * N * C;
        const float* fa = a.fa.data() + s * N * F;
        const float* fact = a.fact.data() + s * N * F;

        // MLP sub-layer: x_out = x_mid + Post(down(act(ln2))); dx flows to x_mid unchanged plus through the MLP
        // (post-norm: x_out = LN(x_mid + down(act(x_mid))))
        if (post) through_out_norm(Ly.out2, Ly.out2_b, ln2, a.ln2_mean.data() + s * N, a.ln2_rstd.data() + s * N);
        const float* mlp_in = post ? xm : ln2;
        a.dfact.resize(static_cast<size_t>(N * F));
        lin_bwd(Ly.down, Ly.b_down, post_bwd(Ly.post2, a.mlp_proj, a.rstd_pf, s), fact, a.dfact.data(), N, F, C, false);
        a.dfa.resize(static_cast<size_t>(N * F));
        a.dln.assign(static_cast<size_t>(N * C), 0.0f);
        if (cfg_.mlp == MlpKind::Gelu) {  // act = GELU(up), the exact one (BERT)
            be_->gelu_erf_backward(a.dfact.data(), fa, a.dfa.data(), N * F);
            lin_bwd(Ly.up, Ly.b_up, a.dfa.data(), mlp_in, a.dln.data(), N, C, F);
        } else if (!cfg_.gated_mlp()) {  // act = GELU(up), its tanh kept in fb
            be_->gelu_backward(a.dfact.data(), fa, a.fb.data() + s * N * F, a.dfa.data(), N * F);
            lin_bwd(Ly.up, Ly.b_up, a.dfa.data(), mlp_in, a.dln.data(), N, C, F);
        } else {  // act = silu(gate) · up or GELU(gate) · up
            a.dfb.resize(static_cast<size_t>(N * F));
            be_->glu_backward(cfg_.mlp, a.dfact.data(), fa, a.fb.data() + s * N * F, a.dfa.data(), a.dfb.data(), N * F);
            lin_bwd(Ly.gate, Ly.b_gate, a.dfa.data(), mlp_in, a.dln.data(), N, C, F);
            lin_bwd(Ly.up, Ly.b_up, a.dfb.data(), mlp_in, a.dln.data(), N, C, F);
        }
        if (post) be_->add(a.dx.data(), a.dln.data(), N * C);
        else norm_bwd(a.dln.data(), xm, Ly.norm2, Ly.norm2_b, a.ln2_mean.data() + s * N, a.ln2_rstd.data() + s * N, a.dx.data(), N);

        // attention sub-layer: x_mid = x + o(attention(ln1)) (post-norm: x_mid = LN(x + o(attention(x))))
        if (post) through_out_norm(Ly.out1, Ly.out1_b, ln1, a.ln1_mean.data() + s * N, a.ln1_rstd.data() + s * N);
        const float* attn_in = post ? x : ln1;
        a.datty.resize(static_cast<size_t>(N * Q));
        lin_bwd(Ly.o, Ly.bo, post_bwd(Ly.post1, a.attn_proj, a.rstd_pa, s), atty, a.datty.data(), N, Q, C, false);
        a.dq.assign(static_cast<size_t>(N * Q), 0.0f);
        a.dk.assign(static_cast<size_t>(N * KV), 0.0f);
        a.dv.assign(static_cast<size_t>(N * KV), 0.0f);
        backend::AttentionShape shape{H, HKV, HD};
        shape.scale = cfg_.attention_scale();
        shape.softcap = cfg_.attn_softcap;
        shape.causal = cfg_.causal;
        shape.lengths = src.lengths;
        be_->attention_backward(a.datty.data(), q, k, v, att, a.dq.data(), a.dk.data(), a.dv.data(), B, T, shape);
        a.dln.assign(static_cast<size_t>(N * C), 0.0f);
        if (cfg_.uses_rope()) {  // the rotation's transpose: rotate back by the angle
            be_->rope_backward(a.dq.data(), N, H, HD, cfg_.n_rot(), cfg_.rope_style, rope_cos_.data(), rope_sin_.data());
            be_->rope_backward(a.dk.data(), N, HKV, HD, cfg_.n_rot(), cfg_.rope_style, rope_cos_.data(), rope_sin_.data());
        }
        // QK-norm: back through each head's RMSNorm (rows of HD) to the projections
        float* dq = a.dq.data();
        float* dk = a.dk.data();
        if (cfg_.qk_norm) {
            a.dq_raw.assign(static_cast<size_t>(N * Q), 0.0f);
            a.dk_raw.assign(static_cast<size_t>(N * KV), 0.0f);
            be_->norm_backward(dq, a.q_raw.data() + s * N * Q, P(Ly.q_norm), nullptr, a.rstd_q.data() + s * N * H, a.dq_raw.data(), G(Ly.q_norm),
                               nullptr, N * H, HD);
            be_->norm_backward(dk, a.k_raw.data() + s * N * KV, P(Ly.k_norm), nullptr, a.rstd_k.data() + s * N * HKV, a.dk_raw.data(),
                               G(Ly.k_norm), nullptr, N * HKV, HD);
            dq = a.dq_raw.data();
            dk = a.dk_raw.data();
        }
        if (cfg_.fused_qkv) {
            a.dqkv.resize(static_cast<size_t>(N * QKV));
            for (int64_t n = 0; n < N; ++n) {
                std::memcpy(a.dqkv.data() + n * QKV, dq + n * Q, static_cast<size_t>(Q) * sizeof(float));
                std::memcpy(a.dqkv.data() + n * QKV + Q, dk + n * KV, static_cast<size_t>(KV) * sizeof(float));
                std::memcpy(a.dqkv.data() + n * QKV + Q + KV, a.dv.data() + n * KV, static_cast<size_t>(KV) * sizeof(float));
            }
            lin_bwd(Ly.qkv, Ly.bqkv, a.dqkv.data(), attn_in, a.dln.data(), N, C, QKV);
        } else {
            lin_bwd(Ly.q, Ly.bq, dq, attn_in, a.dln.data(), N, C, Q);
            lin_bwd(Ly.k, Ly.bk, dk, attn_in, a.dln.data(), N, C, KV);
            lin_bwd(Ly.v, Ly.bv, a.dv.data(), attn_in, a.dln.data(), N, C, KV);
        }
        if (post) be_->add(a.dx.data(), a.dln.data(), N * C);
        else norm_bwd(a.dln.data(), x, Ly.norm1, Ly.norm1_b, a.ln1_mean.data() + s * N, a.ln1_rstd.data() + s * N, a.dx.data(), N);
    }
    // embeddings (frozen under LoRA), scaled by √C where the forward pass scaled them; through BERT's embedding norm
    // first, each row's segment embedding row taking its gradient
    if (!lora_) {
        const float* de = a.dx.data();
        if (embd_norm_ != kNone) {
            a.dres.assign(static_cast<size_t>(N * C), 0.0f);
            norm_bwd(a.dx.data(), a.emb.data(), embd_norm_, embd_norm_b_, a.emb_mean.data(), a.emb_rstd.data(), a.dres.data(), N);
            de = a.dres.data();
        }
        be_->embed_backward(de, inputs_.data(), N, C, cfg_.embd_scale ? std::sqrt(static_cast<float>(C)) : 1.0f, G(tok_embd_));
        if (cfg_.learned_positions) be_->embed_backward(de, pos_ids_.data(), N, C, 1.0f, G(pos_embd_));
        if (tok_types_ != kNone) {  // each row's segment (row 0 where none was given)
            const std::vector<int32_t> zeros(types_.empty() ? static_cast<size_t>(N) : 0, 0);
            be_->embed_backward(de, types_.empty() ? zeros.data() : types_.data(), N, C, 1.0f, G(tok_types_));
        }
    }
}

// ---- linear layers with optional LoRA adapters -----------------------------------------------------------------------
// y = x Wᵀ + b + s · (x Aᵀ) Bᵀ, s = alpha / rank. u = s · x Aᵀ [N, r] is kept for the backward pass.
void TrainableModel::lin_fwd(const Tensor* w, const Tensor* b, const float* x, float* y, int64_t N) {
    be_->linear(x, y, N, backend::Linear{w, b, nullptr});
    if (!lora_ || !adapters_on_) return;
    const int64_t I = w->cols(), O = w->shape[0];
    const auto it = lora_index_.find(view_offset_.at(w));
    if (it == lora_index_.end()) return;
    const LoraSlot& sl = lora_slots_[it->second];
    const int64_t r = lora_cfg_.rank;
    std::vector<float>& u = lora_u_[it->second];
    u.resize(static_cast<size_t>(N * r));
    be_->matmul(x, false, data_.data() + sl.a, false, u.data(), N, r, I, false);  // x Aᵀ
    const float sc = lora_cfg_.scale();
    for (float& v : u) v *= sc;
    be_->matmul(u.data(), false, data_.data() + sl.b, false, y, N, O, r, true);  // y += u Bᵀ
}

// Base: dx (+)= dy W, and dW, db unless frozen. LoRA: dB += dyᵀ u;  du = s · dy B;  dA += duᵀ x;  dx += du A.
void TrainableModel::lin_bwd(size_t w, size_t b, const float* dy, const float* x, float* dx, int64_t N, int64_t I, int64_t O, bool accumulate_dx) {
    const auto fz = frozen_mats_.find(w);
    if (fz != frozen_mats_.end()) {  // a frozen matrix in its own type (QLoRA): dx only, through its tiles
        if (dx) be_->linear_backward_frozen(dy, fz->second, dx, N, accumulate_dx);
    } else {
        be_->linear_backward(dy, x, P(w), dx, G(w), b == kNone ? nullptr : G(b), N, I, O, accumulate_dx);
    }
    if (!lora_) return;
    const auto it = lora_index_.find(w);
    if (it == lora_index_.end()) return;
    const LoraSlot& sl = lora_slots_[it->second];
    const int64_t r = lora_cfg_.rank;
    const std::vector<float>& u = lora_u_[it->second];
    const float* A = data_.data() + sl.a;
    const float* Bm = data_.data() + sl.b;
    be_->matmul(dy, true, u.data(), true, grad_.data() + sl.b, O, r, N, true);  // dB [O, r]
    std::vector<float>& du = lora_du_;
    du.resize(static_cast<size_t>(N * r));
    be_->matmul(dy, false, Bm, true, du.data(), N, r, O, false);  // dy B [N, r]
    const float sc = lora_cfg_.scale();
    for (float& v : du) v *= sc;
    be_->matmul(du.data(), true, x, true, grad_.data() + sl.a, r, I, N, true);  // dA [r, I]
    if (dx) be_->matmul(du.data(), false, A, true, dx, N, I, r, true);          // dx += du A
}

void TrainableModel::enable_lora(const LoraConfig& c, const Model* adapter) {
    if (lora_) throw_bad_input("LoRA is already enabled");
    if (head_.n_out > 0) throw_bad_input("enable LoRA before adding a head");
    if (c.rank <= 0 || !(c.alpha > 0)) throw_bad_input("LoRA needs a positive rank and alpha");
    lora_cfg_ = c;
    const bool all = c.targets.size() == 1 && c.targets[0] == "all";
    std::vector<std::string> targets = c.targets;
    if (targets.empty() || all) {  // the attention projections (and, for "all", the MLP's) this block has
        targets = cfg_.fused_qkv ? std::vector<std::string>{"attn_qkv", "attn_output"} : std::vector<std::string>{"attn_q", "attn_k", "attn_v", "attn_output"};
        if (all) {
            if (cfg_.gated_mlp()) targets.push_back("ffn_gate");
            targets.push_back("ffn_up");
            targets.push_back("ffn_down");
        }
    }
    lora_cfg_.targets = targets;
    base_params_ = std::move(params_);
    base_ = std::move(data_);
    std::vector<float>().swap(grad_);  // no gradients for the frozen weights
    params_.clear();
    lora_slots_.clear();
    size_t off = 0;
    for (int64_t l = 0; l < cfg_.n_layer; ++l)
        for (const std::string& t : targets) {
            const std::string name = "blk." + std::to_string(l) + "." + t + ".weight";
            const Param* bp = nullptr;
            for (const Param& p : base_params_)
                if (p.name == name) bp = &p;
            if (!bp) throw_bad_input("LoRA target '%s' is not a weight of this %s model", t.c_str(), cfg_.arch.c_str());
            const int64_t out = bp->shape[0], in = bp->shape[1];
            LoraSlot sl;
            sl.in = in;
            sl.out = out;
            sl.a = off;
            params_.push_back(Param{name + ".lora_a", {c.rank, in}, off, static_cast<size_t>(c.rank * in), true});
            off += static_cast<size_t>(c.rank * in);
            sl.b = off;
            params_.push_back(Param{name + ".lora_b", {out, c.rank}, off, static_cast<size_t>(out * c.rank), true});
            off += static_cast<size_t>(out * c.rank);
            lora_index_[bp->offset] = lora_slots_.size();
            lora_slots_.push_back(sl);
        }
    data_.assign(off, 0.0f);
    grad_.assign(off, 0.0f);
    lora_u_.assign(lora_slots_.size(), {});
    if (adapter) {
        for (const Param& p : params_) {
            const Tensor* t = adapter->find(p.name);
            if (!t) throw_bad_input("the adapter has no tensor '%s'", p.name.c_str());
            if (t->shape != p.shape) throw_bad_input("the adapter's '%s' has the wrong shape", p.name.c_str());
            convert_to_f32(t->dtype, t->data, data_.data() + p.offset, p.numel);
        }
    } else {  // A ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform with a = √5), B = 0: the adapter starts as a no-op
        for (size_t k = 0; k < lora_slots_.size(); ++k) {
            const LoraSlot& sl = lora_slots_[k];
            std::mt19937_64 rng(c.seed * 1000003ull + k);
            const float bound = 1.0f / std::sqrt(static_cast<float>(sl.in));
            std::uniform_real_distribution<float> ud(-bound, bound);
            for (int64_t i = 0; i < c.rank * sl.in; ++i) data_[sl.a + static_cast<size_t>(i)] = ud(rng);
            if (c.init_b_std > 0) {
                std::normal_distribution<float> nd(0.0f, c.init_b_std);
                for (int64_t i = 0; i < c.rank * sl.out; ++i) data_[sl.b + static_cast<size_t>(i)] = nd(rng);
            }
        }
    }
    lora_ = true;
}

Model TrainableModel::merged_model() const {
    if (!lora_) throw_runtime("merged_model() without LoRA");
    auto merged = std::make_shared<std::vector<float>>(base_);
    if (!view_.empty()) {
        size_t total = 0;
        for (const Param& p : base_params_) total = std::max(total, p.offset + p.numel);
        merged->resize(total);
        for (const Param& p : base_params_) {
            const auto fz = frozen_mats_.find(p.offset);
            if (fz != frozen_mats_.end()) convert_to_f32(fz->second.dtype, fz->second.data, merged->data() + p.offset, p.numel);
            else std::memcpy(merged->data() + p.offset, view_.at(p.offset), p.numel * sizeof(float));
        }
    }
    for (const auto& [w, k] : lora_index_) {
        const LoraSlot& sl = lora_slots_[k];
        std::vector<float> d(static_cast<size_t>(sl.out * sl.in));
        // ΔW[o, i] = s · Σ_r B[o, r] A[r, i]
        kernels::gemm(data_.data() + sl.b, false, data_.data() + sl.a, true, d.data(), sl.out, sl.in, lora_cfg_.rank, false,
                      kernels::Precision::F32, pool_);
        const float sc = lora_cfg_.scale();
        float* W = merged->data() + w;
        for (size_t i = 0; i < d.size(); ++i) W[i] += sc * d[i];
    }
    Model m;
    m.config = cfg_;
    m.format = "train";
    m.storage.push_back(merged);
    for (const Param& p : base_params_) {
        Tensor t;
        t.name = p.name;
        t.dtype = DType::F32;
        t.shape = p.shape;
        t.data = merged->data() + p.offset;
        m.add(std::move(t));
    }
    if (head_.n_out > 0)  // the head (trained beside the adapters) goes with the merged model
        for (const Param& p : params_)
            if (p.offset >= head_.w) {
                Tensor t = m.own(p.name, DType::F32, p.shape, std::vector<uint8_t>(reinterpret_cast<const uint8_t*>(data_.data() + p.offset),
                                                                                 reinterpret_cast<const uint8_t*>(data_.data() + p.offset + p.numel)));
                m.add(std::move(t));
            }
    return m;
}

void TrainableModel::zero_grad() {
    pool_.parallel_for(static_cast<int64_t>(grad_.size()), [&](int64_t b, int64_t e) {
        std::memset(grad_.data() + b, 0, static_cast<size_t>(e - b) * sizeof(float));
    });
}

double TrainableModel::grad_norm() const {
    // per-thread partial sums added in thread order: the same result for a given thread count
    std::vector<double> part(static_cast<size_t>(pool_.size()), 0.0);
    pool_.run([&](int ith, int nth) {
        const size_t n = grad_.size(), b = n * static_cast<size_t>(ith) / static_cast<size_t>(nth), e = n * static_cast<size_t>(ith + 1) / static_cast<size_t>(nth);
        double s = 0;
        for (size_t i = b; i < e; ++i) s += static_cast<double>(grad_[i]) * grad_[i];
        part[static_cast<size_t>(ith)] = s;
    });
    double s = 0;
    for (double x : part) s += x;
    return std::sqrt(s);
}

double TrainableModel::clip_grad_norm(double max_norm) {
    const double norm = grad_norm();
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        pool_.parallel_for(static_cast<int64_t>(grad_.size()), [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) grad_[static_cast<size_t>(i)] = static_cast<float>(grad_[static_cast<size_t>(i)] * coef);
        });
    return norm;
}

Model TrainableModel::to_model(bool gradients) const {
    Model m;
    m.config = cfg_;
    m.format = gradients ? "gradients" : "train";  // gradients: written without the families' offsets (Gemma's norms)
    if (lora_) {  // the adapter, with llama.cpp's adapter metadata
        m.meta.set("general.type", gguf::Value::str("adapter"));
        m.meta.set("adapter.type", gguf::Value::str("lora"));
        m.meta.set("adapter.lora.alpha", gguf::Value::f32(lora_cfg_.alpha));
    }
    const float* base = gradients ? grad_.data() : data_.data();
    for (const Param& p : params_) {
        Tensor t;
        t.name = p.name;
        t.dtype = DType::F32;
        t.shape = p.shape;
        t.data = base + p.offset;
        m.add(std::move(t));
    }
    return m;
}

// ---- AdamW and schedules -------------------------------------------------------------------------------------------

namespace {
// AdamW on n values: the constants in registers and the buffers unaliased, so that the compiler vectorises the loop,
// square root and division included (this file is built with -fno-math-errno); the same IEEE operations in the same
// order as one value at a time, so the same bits.
void adamw_update(float* __restrict p, const float* __restrict g, float* __restrict m, float* __restrict v, int64_t n, float b1, float b2,
                  float eps, float decay, float step_size, float bc2_sqrt) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (int64_t i = 0; i < n; ++i) {
        const float gi = g[i];
        const float mi = b1 * m[i] + c1 * gi;
        const float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * decay - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps);
    }
}
}  // namespace

void AdamW::step(TrainableModel& model, float lr, ThreadPool& pool) {
    ++t_;
    const double bc1 = 1.0 - std::pow(static_cast<double>(cfg_.beta1), static_cast<double>(t_));
    const double bc2 = 1.0 - std::pow(static_cast<double>(cfg_.beta2), static_cast<double>(t_));
    const float step_size = static_cast<float>(lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    float* p = model.data();
    const float* g = model.grad();
    const auto& params = model.params();
    // one pass over the flat buffers, split evenly over the threads; each slice walks the tensors it overlaps
    pool.parallel_for(static_cast<int64_t>(model.n_params()), [&](int64_t b, int64_t e) {
        for (const TrainableModel::Param& prm : params) {
            const int64_t lo = std::max<int64_t>(b, static_cast<int64_t>(prm.offset));
            const int64_t hi = std::min<int64_t>(e, static_cast<int64_t>(prm.offset + prm.numel));
            if (lo >= hi) continue;
            const float decay = prm.decay ? 1.0f - lr * cfg_.weight_decay : 1.0f;
            adamw_update(p + lo, g + lo, m_.data() + lo, v_.data() + lo, hi - lo, cfg_.beta1, cfg_.beta2, cfg_.eps, decay, step_size, bc2_sqrt);
        }
    });
}

float LrSchedule::at(int64_t step) const {
    if (warmup > 0 && step < warmup) return lr_max * static_cast<float>(step + 1) / static_cast<float>(warmup);
    const double span = static_cast<double>(std::max<int64_t>(1, total - warmup));
    const double prog = std::min(1.0, static_cast<double>(step - warmup) / span);
    switch (kind) {
        case Kind::Constant: return lr_max;
        case Kind::Cosine: return static_cast<float>(lr_min + 0.5 * (lr_max - lr_min) * (1.0 + std::cos(M_PI * prog)));
        case Kind::Linear: return static_cast<float>(lr_max + (lr_min - lr_max) * prog);
        case Kind::WSD: {
            const double start = 1.0 - decay_frac;
            if (prog < start) return lr_max;
            return static_cast<float>(lr_max + (lr_min - lr_max) * (prog - start) / std::max(1e-9, static_cast<double>(decay_frac)));
        }
    }
    return lr_max;
}

LrSchedule::Kind LrSchedule::parse(const std::string& name) {
    if (name == "constant") return Kind::Constant;
    if (name == "cosine") return Kind::Cosine;
    if (name == "linear") return Kind::Linear;
    if (name == "wsd") return Kind::WSD;
    throw_bad_input("unknown learning-rate schedule '%s' (constant, cosine, linear, wsd)", name.c_str());
}

}  // namespace llmforge
