// The forward pass, written once over the Backend operations. Shapes in comments: n = tokens in this pass,
// C = n_embd, KV = n_head_kv · d_head, F = n_ff.
#include "llmforge/transformer.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <unistd.h>

#include "backend/backend.h"
#include "llmforge/error.h"
#include "forward/forward.h"

namespace llmforge {

std::unique_ptr<KVCache> make_kv_cache(const ModelConfig& cfg, ThreadPool& pool, int64_t n_ctx, int64_t n_batch, KVCacheType kv_type, int n_seq, bool ring) {
    if (n_seq < 1) throw_bad_input("the number of sequences must be at least 1, not %d", n_seq);
    check_kv_type(kv_type.k, "the KV cache's key type");
    check_kv_type(kv_type.v, "the KV cache's value type");
    if (n_ctx <= 0) n_ctx = cfg.n_ctx;
    if (cfg.learned_positions && n_ctx > cfg.n_ctx)
        throw_bad_input("context %lld is longer than the %lld learned positions of this model", static_cast<long long>(n_ctx),
                        static_cast<long long>(cfg.n_ctx));
    // What the buffers take: the K and V caches, and f32 activations for a batch of B rows (x, h, q, att, k, v, the
    // MLP's two, a fused qkv) plus the per-thread attention scratch. Refuse, naming the sizes, what cannot fit.
    const int64_t B = std::max<int64_t>(std::min(std::max<int64_t>(1, n_batch), n_ctx), n_seq);
    const int64_t C = std::max(cfg.n_embd, cfg.q_dim()), KV = cfg.kv_dim(), F = cfg.n_ff, QKV = cfg.q_dim() + 2 * KV;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const int64_t ring_batch = ring ? B : 0;
    const double kv_bytes = KVCache::bytes(cfg, n_ctx, n_seq, kv_type, ring_batch);
    const double act_bytes = 4.0 * (static_cast<double>(B) * static_cast<double>(4 * C + 2 * KV + 2 * F + (cfg.fused_qkv ? QKV : 0)) +
                                    static_cast<double>(pool.size()) * static_cast<double>(n_ctx + 32 + cfg.head_dim() * 66));
    const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
    if (kv_bytes + act_bytes > have)
        throw_bad_input("a context of %lld tokens (× %d sequence%s) needs %.2f GiB for the KV cache and %.2f GiB of buffers, more than the "
                        "%.2f GiB of memory here: lower the context (-c)",
                        static_cast<long long>(n_ctx), n_seq, n_seq == 1 ? "" : "s", kv_bytes / gib, act_bytes / gib, have / gib);
    try {
        return std::make_unique<KVCache>(cfg, n_ctx, n_seq, kv_type, ring_batch);
    } catch (const std::bad_alloc&) {
        throw_runtime("out of memory: allocating %.2f GiB for the KV cache (context %lld × %d sequence%s, %s) and %.2f GiB of buffers failed",
                      kv_bytes / gib, static_cast<long long>(n_ctx), n_seq, n_seq == 1 ? "" : "s", kv_type.name().c_str(), act_bytes / gib);
    }
}

Transformer::Transformer(const Model& model, ThreadPool& pool, int64_t n_ctx, int64_t n_batch, KVCacheType kv_type, int n_seq, Numerics numerics)
    : model_(model), cfg_(model.config), pool_(pool),
      // ggml arithmetic sums over the cache as llama.cpp lays it out: every position in place, no ring
      own_cache_(make_kv_cache(model.config, pool, n_ctx, n_batch, kv_type, n_seq, numerics != Numerics::Ggml)),
      cache_(own_cache_.get()), numerics_(numerics) {
    setup(n_batch);
}

Transformer::Transformer(const Model& model, ThreadPool& pool, KVCache& cache, int64_t n_batch, Numerics numerics)
    : model_(model), cfg_(model.config), pool_(pool), cache_(&cache), numerics_(numerics) {
    if (cache.n_layer() != cfg_.n_layer || cache.kv_dim() != cfg_.kv_dim())
        throw_bad_input("the KV cache was made for another model (%lld layers of %lld, not %lld of %lld)", static_cast<long long>(cache.n_layer()),
                        static_cast<long long>(cache.kv_dim()), static_cast<long long>(cfg_.n_layer), static_cast<long long>(cfg_.kv_dim()));
    if (cfg_.learned_positions && cache.n_ctx() > cfg_.n_ctx)
        throw_bad_input("context %lld is longer than the %lld learned positions of this model", static_cast<long long>(cache.n_ctx()),
                        static_cast<long long>(cfg_.n_ctx));
    setup(n_batch);
}

Transformer::~Transformer() = default;

// The tensors the block description names (a bias only where it has one), the backends, and scratch for n_batch rows.
void Transformer::setup(int64_t n_batch) {
    const int64_t n_ctx = cache_->n_ctx();
    n_batch_ = std::max<int64_t>(std::min(std::max<int64_t>(1, n_batch), n_ctx), cache_->n_seq());  // decode() takes one token of every sequence
    eval_chunk_ = std::min(n_batch_, cache_->max_pass());  // a sliding-window ring takes passes of at most max_pass()
    be_ = backend::make_cpu_backend(pool_, numerics_);
    if (numerics_ != Numerics::BatchInvariant) be_rows_ = backend::make_cpu_backend(pool_, Numerics::BatchInvariant);
    const ModelConfig& c = cfg_;
    w_ = std::make_unique<ModelWeights>(bind_weights(c, [&](const std::string& name) { return &model_.get(name); }));

    const int64_t C = cfg_.n_embd, KV = cfg_.kv_dim(), F = cfg_.n_ff, B = n_batch_;
    try {
        x_.resize(B * C);
        h_.resize(B * C);
        q_.resize(B * std::max(C, cfg_.q_dim()));  // queries, and the rows gathered for the logits
        k_.resize(B * KV);
        v_.resize(B * KV);
        if (c.fused_qkv) qkv_.resize(B * (cfg_.q_dim() + 2 * KV));
        att_.resize(B * cfg_.q_dim());
        ff_a_.resize(B * F);
        ff_b_.resize(B * F);
        rope_cos_.resize(B * cfg_.n_rot() / 2);
        rope_sin_.resize(B * cfg_.n_rot() / 2);
    } catch (const std::bad_alloc&) {
        throw_runtime("out of memory: allocating the buffers for batches of %lld tokens failed", static_cast<long long>(B));
    }
}

void Transformer::check_tokens(const int32_t* tokens, int64_t n, bool room) const {
    if (room && n_past() + n > n_ctx())
        throw_bad_input("%lld tokens do not fit in the context: %lld already used of %lld", static_cast<long long>(n),
                        static_cast<long long>(n_past()), static_cast<long long>(n_ctx()));
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab)
            throw_bad_input("token id %d is outside the vocabulary (0..%lld)", tokens[i], static_cast<long long>(cfg_.n_vocab - 1));
}

const std::vector<float>& Transformer::eval(const int32_t* tokens, int64_t n, bool all_logits) {
    if (n <= 0) throw_bad_input("nothing to evaluate: no tokens");
    if (cfg_.encoder) throw_bad_input("'%s' is an encoder (%s): it makes embeddings, not next-token logits", model_.path.c_str(), cfg_.arch.c_str());
    check_tokens(tokens, n, true);
    const int64_t V = cfg_.n_vocab;
    logits_.assign(static_cast<size_t>((all_logits ? n : 1) * V), 0.0f);
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(eval_chunk_, n - done);
        const bool last = done + m == n;
        const backend::Rows rows{slot_, n_past(), nullptr, nullptr};
        if (all_logits) forward(tokens + done, m, 0, logits_.data() + done * V, rows, *be_);
        else forward(tokens + done, m, last ? m - 1 : m, logits_.data(), rows, *be_);
        done += m;
    }
    return logits_;
}

void Transformer::add_lora(const Model& adapter, float scale) {
    if (!adapter.meta.find("adapter.lora.alpha")) throw_bad_input("the adapter has no adapter.lora.alpha");
    const float alpha = static_cast<float>(adapter.meta.get_float("adapter.lora.alpha", 0));
    int n = 0;
    for (const Tensor& ta : adapter.tensors) {
        if (ta.name.size() < 7 || ta.name.compare(ta.name.size() - 7, 7, ".lora_a") != 0) continue;
        const std::string base = ta.name.substr(0, ta.name.size() - 7);
        const Tensor* w = model_.find(base);
        const Tensor* tb = adapter.find(base + ".lora_b");
        if (!w) throw_bad_input("the adapter adapts '%s', which this model does not have", base.c_str());
        if (!tb) throw_bad_input("the adapter has '%s.lora_a' without '%s.lora_b'", base.c_str(), base.c_str());
        const int64_t r = ta.shape[0];
        if (ta.shape[1] != w->cols() || tb->shape[0] != w->shape[0] || tb->shape[1] != r)
            throw_bad_input("the adapter's shapes for '%s' do not fit the model", base.c_str());
        backend::Lora l;
        l.rank = r;
        l.scale = scale * alpha / static_cast<float>(r);
        l.a.resize(static_cast<size_t>(ta.numel()));
        l.b.resize(static_cast<size_t>(tb->numel()));
        convert_to_f32(ta.dtype, ta.data, l.a.data(), l.a.size());
        convert_to_f32(tb->dtype, tb->data, l.b.data(), l.b.size());
        lora_[w].push_back(std::move(l));
        ++n;
    }
    if (n == 0) throw_bad_input("the adapter holds no .lora_a tensors");
}

void Transformer::linear(backend::Backend& be, const float* x, float* y, int64_t n, const Tensor* w, const Tensor* b) {
    if (observer_) observer_(*w, x, n);
    const std::vector<backend::Lora>* lora = nullptr;
    if (!lora_.empty()) {
        const auto it = lora_.find(w);
        if (it != lora_.end()) lora = &it->second;
    }
    be.linear(x, y, n, backend::Linear{w, b, lora});
}

void Transformer::forward(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits_out, const backend::Rows& rows,
                          backend::Backend& be, float* hidden_out, const uint8_t* want) {
    const int64_t C = cfg_.n_embd;
    const ModelWeights& w = *w_;
    KVCache& kv = *cache_;
    float* x = x_.data();  // [n, C] the residual stream
    float* h = h_.data();  // [n, C] normalised input of a sub-layer

    // Embeddings: token (+ learned position).
    if (w.pos_embd) {
        pos_ids_.resize(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) pos_ids_[static_cast<size_t>(i)] = static_cast<int32_t>(rows.pos_of(i));
    }
    embed_tokens(cfg_, w, be, tokens, w.pos_embd ? pos_ids_.data() : nullptr, n, x, nullptr, nullptr, nullptr, types_);
    // RoPE angles for these positions, shared by every layer and head
    if (cfg_.uses_rope()) rope_angles(cfg_, n, [&](int64_t i) { return rows.pos_of(i); }, rope_cos_.data(), rope_sin_.data());

    // The blocks, in place on x, every layer in the same scratch.
    LayerBuffers scratch{};
    scratch.x = scratch.x_mid = scratch.x_out = x;
    scratch.ln1 = scratch.ln2 = scratch.h = h;
    scratch.q = scratch.q_raw = q_.data();  // QK-norm in place
    scratch.k = scratch.k_raw = k_.data();
    scratch.v = v_.data();
    scratch.qkv = qkv_.data();
    scratch.atty = att_.data();
    scratch.fa = scratch.fact = ff_a_.data();  // the activation in place
    scratch.fb = ff_b_.data();
    AttentionSource src;
    src.cache = &kv;
    src.rows = rows;
    const LinearFn lin = [&](const float* in, float* out, int64_t m, const Tensor* wt, const Tensor* b) { linear(be, in, out, m, wt, b); };
    forward_blocks(cfg_, w, be, lin, n, src, rope_cos_.data(), rope_sin_.data(), [&](int64_t) { return scratch; });
    // every sequence now holds the positions up to its last row's (rows come in position order)
    if (rows.seq) {
        for (int64_t i = 0; i < n; ++i) kv.set_n_past(rows.seq[i], rows.pos[i] + 1);
    } else {
        kv.set_n_past(rows.seq0, rows.pos0 + n);
    }

    // Final norm and the output projection, only for the rows whose logits are wanted.
    if (hidden_out) {
        if (w.out_norm) be.norm(x, hidden_out, n, C, cfg_.norm, cfg_.norm_eps, *w.out_norm, w.out_norm_b);
        else std::copy_n(x, n * C, hidden_out);  // an encoder's blocks end normalised
    } else if (want) {  // decode(): the wanted rows, gathered
        int64_t m = 0;
        for (int64_t i = 0; i < n; ++i)
            if (want[i]) std::copy_n(x + i * C, C, q_.data() + (m++) * C);
        if (m > 0) {
            be.norm(q_.data(), h, m, C, cfg_.norm, cfg_.norm_eps, *w.out_norm, w.out_norm_b);
            output_logits(cfg_, w, be, lin, h, m, logits_out);
        }
    } else if (logits_from < n) {
        const int64_t m = n - logits_from;
        be.norm(x + logits_from * C, h, m, C, cfg_.norm, cfg_.norm_eps, *w.out_norm, w.out_norm_b);
        output_logits(cfg_, w, be, lin, h, m, logits_out);
    }
}

int64_t Transformer::truncate(int64_t n) {
    n = std::max<int64_t>(n, 0);
    if (n < n_past()) cache_->set_n_past(slot_, cache_->can_truncate(slot_, n) ? n : 0);
    return n_past();
}

void Transformer::set_seq(int s) {
    if (s < 0 || s >= n_seq()) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq() - 1);
    slot_ = s;
}

int64_t Transformer::n_past_of(int s) const { return cache_->n_past(s); }

void Transformer::copy_seq(int src, int dst) { cache_->copy_seq(src, dst); }

void Transformer::decode(const int32_t* seqs, const int32_t* tokens, int64_t n, float* logits, const uint8_t* want) {
    if (n <= 0) throw_bad_input("nothing to decode: no sequences");
    if (cfg_.encoder) throw_bad_input("'%s' is an encoder (%s): it makes embeddings, not next-token logits", model_.path.c_str(), cfg_.arch.c_str());
    if (n > n_batch_) throw_bad_input("%lld rows in one step; at most %lld", static_cast<long long>(n), static_cast<long long>(n_batch_));
    if (numerics_ == Numerics::Ggml) throw_bad_input("decode() does not run with ggml arithmetic");
    const int n_seq = cache_->n_seq();
    const int64_t n_ctx = cache_->n_ctx();
    std::vector<int64_t>& pos = decode_pos_;
    pos.resize(static_cast<size_t>(n));
    std::vector<int64_t>& next = decode_next_;  // each sequence's next position in this step
    next.assign(static_cast<size_t>(n_seq), -1);
    for (int64_t i = 0; i < n; ++i) {
        const int s = seqs[i];
        if (s < 0 || s >= n_seq) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq - 1);
        int64_t& p = next[static_cast<size_t>(s)];
        if (p < 0) p = cache_->n_past(s);
        if (p >= n_ctx) throw_bad_input("sequence %d has no room left in its context of %lld", s, static_cast<long long>(n_ctx));
        pos[static_cast<size_t>(i)] = p++;
    }
    check_tokens(tokens, n, false);
    const backend::Rows rows{0, 0, seqs, pos.data()};
    forward(tokens, n, 0, logits, rows, be_rows_ ? *be_rows_ : *be_, nullptr, want);
}

const std::vector<float>& Transformer::embed(const int32_t* tokens, const int32_t* types, int64_t n) {
    if (cfg_.causal || n > eval_chunk_) throw_bad_input("segments are for an encoder's single pass");
    for (int64_t i = 0; i < n; ++i)
        if (types[i] < 0 || types[i] >= std::max<int64_t>(1, cfg_.n_token_types))
            throw_bad_input("token type %d at %lld: the model has %lld", types[i], static_cast<long long>(i), static_cast<long long>(cfg_.n_token_types));
    types_ = types;
    struct Reset {
        const int32_t** p;
        ~Reset() { *p = nullptr; }
    } reset{&types_};
    return embed(tokens, n);
}

const std::vector<float>& Transformer::embed(const int32_t* tokens, int64_t n) {
    if (n <= 0) throw_bad_input("nothing to embed: no tokens");
    check_tokens(tokens, n, true);
    const int64_t C = cfg_.n_embd;
    // Bidirectional attention sees the whole sequence at once: one pass.
    if (!cfg_.causal && n > eval_chunk_)
        throw_bad_input("%lld tokens to embed with bidirectional attention, which needs them in one pass of at most %lld (the batch size)",
                        static_cast<long long>(n), static_cast<long long>(eval_chunk_));
    hidden_.assign(static_cast<size_t>(n * C), 0.0f);
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(eval_chunk_, n - done);
        const backend::Rows rows{slot_, n_past(), nullptr, nullptr};
        forward(tokens + done, m, m, nullptr, rows, *be_, hidden_.data() + done * C);
        done += m;
    }
    return hidden_;
}

std::vector<float> pool_embedding(const ModelConfig& c, const float* h, int64_t n, bool normalize) {
    const int64_t C = c.n_embd;
    std::vector<double> acc(static_cast<size_t>(C), 0.0);
    if (n <= 0) throw_bad_input("nothing to pool: no tokens");
    switch (c.pooling) {
        case Pooling::Cls:
        case Pooling::Rank:  // (a reranker's [CLS] state, before its head)
            for (int64_t j = 0; j < C; ++j) acc[static_cast<size_t>(j)] = h[j];
            break;
        case Pooling::Last:
            for (int64_t j = 0; j < C; ++j) acc[static_cast<size_t>(j)] = h[(n - 1) * C + j];
            break;
        case Pooling::Mean:
        case Pooling::None:  // (a sentence embedding of a model without pooling: the mean)
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = 0; j < C; ++j) acc[static_cast<size_t>(j)] += h[i * C + j];
            for (double& v : acc) v /= static_cast<double>(n);
            break;
    }
    double norm = 0;
    for (double v : acc) norm += v * v;
    norm = normalize ? std::sqrt(norm) : 1.0;
    std::vector<float> e(static_cast<size_t>(C));
    for (int64_t j = 0; j < C; ++j) e[static_cast<size_t>(j)] = static_cast<float>(norm > 0 ? acc[static_cast<size_t>(j)] / norm : 0.0);
    return e;
}

}  // namespace llmforge
