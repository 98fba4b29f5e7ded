// Perplexity as llama.cpp's llama-perplexity computes it, and the KL divergence between two models.
//
// Chunk method (llama.cpp's default): the text's tokens are cut into chunks of n_ctx; each chunk is evaluated on its
// own with its first token replaced by BOS, and only the second half of each chunk is scored, so that every scored
// token sees at least n_ctx/2 tokens of context:
//     for each chunk, for j in [n_ctx/2, n_ctx − 1):  nll += −log softmax(logits_j)[token_{j+1}]
// The running estimate exp(nll / count) is printed after each chunk; the final ± is the standard error of the mean
// negative log-likelihood propagated through exp: ppl · sqrt((E[nll²] − E[nll]²) / (count − 1)).
#include <algorithm>
#include <cmath>

#include "llmforge/error.h"
#include "llmforge/eval.h"
#include "llmforge/tokenizer.h"
#include "llmforge/transformer.h"

namespace llmforge {

namespace {

// log softmax(logits)[tok] with llama.cpp's arithmetic: max and exps in float, the sum in double.
double log_softmax_at(const float* logits, int64_t n_vocab, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
    return static_cast<double>(logits[tok] - max_logit) - std::log(sum_exp);
}

// Full log-softmax in double (for the KL divergence).
void log_softmax(const float* logits, int64_t n_vocab, std::vector<double>& out) {
    out.resize(static_cast<size_t>(n_vocab));
    double mx = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
    double s = 0;
    for (int64_t i = 0; i < n_vocab; ++i) s += std::exp(static_cast<double>(logits[i]) - mx);
    const double lse = mx + std::log(s);
    for (int64_t i = 0; i < n_vocab; ++i) out[static_cast<size_t>(i)] = static_cast<double>(logits[i]) - lse;
}

// One forward pass: tokens [start, start + len) of the text (the first replaced by BOS when bos), scoring the
// predictions of logits rows [j0, j1) (row j predicts text token start + j + 1).
struct Window {
    int64_t start, len, j0, j1;
    bool bos;
    int64_t cell = 0;  // where llama-perplexity puts the window in its KV cache (several chunks share one batch)
};

struct Plan {
    std::vector<Window> windows;
    int64_t ctx = 0;           // the context the model runs with
    int64_t batch = 0;         // tokens per forward pass
    bool float_probs = false;  // llama.cpp's --ppl-stride method takes −log of a float probability
};

int64_t pad32(int64_t n) { return (n + 31) / 32 * 32; }

Plan plan_chunks(int64_t n_tokens, const PerplexityOptions& o) {
    if (o.n_ctx < 2) throw_bad_input("the context (-c) must be at least 2 tokens");
    const auto ll = [](int64_t v) { return static_cast<long long>(v); };
    Plan p;
    if (o.stride > 0 && o.llama_stride > 0) throw_bad_input("give --stride or --ppl-stride, not both");
    if (o.llama_stride > 0) {
        // llama.cpp's perplexity_v2: windows of n_ctx every S tokens, each scoring its last S predictions. (llama.cpp
        // swaps in BOS only after a window has been evaluated, so the windows run on the text's own tokens.)
        // llama-perplexity sizes its context for the chunk method first (n_batch / n_ctx sequences of n_ctx), then
        // widens it by S/2 for this method, and uses that padded to 32 cells (its KV cache's padding) as the window;
        // its batch is min(n_batch, that first context). With -b equal to -c the window is -c + S/2, padded.
        const int64_t S = o.llama_stride, n_seq = std::max<int64_t>(1, o.n_batch / o.n_ctx);
        const int64_t C = pad32(n_seq * o.n_ctx + S / 2);
        p.batch = std::min(o.n_batch, n_seq * o.n_ctx);
        if (S >= C) throw_bad_input("--ppl-stride %lld must be smaller than the context %lld", ll(S), ll(C));
        if (n_tokens < 2 * C)
            throw_bad_input("you need at least %lld tokens to evaluate perplexity with a context of %lld (-c %lld widened by --ppl-stride/2; the text has %lld)",
                            ll(2 * C), ll(C), ll(o.n_ctx), ll(n_tokens));
        const int64_t n = (n_tokens - C + S - 1) / S;
        for (int64_t i = 0; i < n; ++i) p.windows.push_back({i * S, C, C - S - 1, C - 1, false});
        p.float_probs = true;
        p.ctx = C;
    } else if (o.stride > 0) {
        // Hugging Face's sliding window: windows of up to n_ctx tokens every S tokens, each scoring the tokens the
        // previous windows did not; every token but the first is scored once, with up to n_ctx − 1 tokens of context.
        const int64_t S = o.stride;
        if (S > o.n_ctx) throw_bad_input("--stride %lld must not exceed the context %lld", ll(S), ll(o.n_ctx));
        if (n_tokens < 2) throw_bad_input("the text has %lld token(s): nothing to predict", ll(n_tokens));
        int64_t prev_end = 0;
        for (int64_t begin = 0; begin < n_tokens; begin += S) {
            const int64_t end = std::min(begin + o.n_ctx, n_tokens);
            const int64_t first_target = std::max<int64_t>(prev_end, begin + 1);
            p.windows.push_back({begin, end - begin, first_target - 1 - begin, end - 1 - begin, false});
            prev_end = end;
            if (end == n_tokens) break;
        }
    } else {
        const int64_t C = o.n_ctx;
        if (n_tokens < 2 * C)
            throw_bad_input("you need at least %lld tokens to evaluate perplexity with a context of %lld (the text has %lld)", ll(2 * C),
                            ll(C), ll(n_tokens));
        const int64_t n = n_tokens / C;
        // llama-perplexity evaluates n_batch / n_ctx chunks at once, as separate sequences in one KV cache
        const int64_t n_seq = std::max<int64_t>(1, o.n_batch / C);
        for (int64_t i = 0; i < n; ++i) p.windows.push_back({i * C, C, C / 2, C - 1, o.add_bos, (i % n_seq) * C});
        p.ctx = C;
    }
    if (!p.ctx) p.ctx = o.n_ctx;
    if (!p.batch) p.batch = std::min(o.n_batch, p.ctx);
    if (o.max_chunks >= 0 && static_cast<int64_t>(p.windows.size()) > o.max_chunks) p.windows.resize(static_cast<size_t>(o.max_chunks));
    if (p.windows.empty()) throw_bad_input("no chunk to evaluate");
    return p;
}

// −log P(tok) as llama.cpp's perplexity_v2 computes it: softmax into floats, then a float log.
double nll_float_prob(const float* logits, int64_t n_vocab, int32_t tok) {
    float max_logit = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) max_logit = std::max(max_logit, logits[i]);
    double sum_exp = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max_logit);
    const float prob = static_cast<float>(static_cast<double>(std::exp(logits[tok] - max_logit)) / sum_exp);
    return static_cast<double>(-std::log(prob));
}

void check_tokens(const Model& m, const std::vector<int32_t>& tokens) {
    for (int32_t t : tokens)
        if (t < 0 || t >= m.config.n_vocab) throw_bad_input("token id %d is outside the vocabulary (%lld)", t, static_cast<long long>(m.config.n_vocab));
}

// Runs every chunk through the model(s) and hands each scored position to visit(logits rows…, target token).
template <class Visit>
void for_each_scored(const std::vector<const Model*>& models, const std::vector<int32_t>& tokens, const PerplexityOptions& o,
                     ThreadPool& pool, const Plan& p, Visit&& visit, const std::function<void(int64_t)>& chunk_done) {
    // perplexity runs the chunks, so it owns their KV caches (one per model; every position in place with ggml
    // arithmetic, as llama.cpp lays them out) and runs each model's forward pass over its cache
    const Numerics numerics = o.ggml_arithmetic ? Numerics::Ggml : Numerics::Fast;
    std::vector<std::unique_ptr<KVCache>> caches;
    std::vector<std::unique_ptr<Transformer>> tfs;
    for (const Model* m : models) {
        caches.push_back(make_kv_cache(m->config, pool, p.ctx, p.batch, o.kv_type, 1, numerics != Numerics::Ggml));
        tfs.push_back(std::make_unique<Transformer>(*m, pool, *caches.back(), p.batch, numerics));
    }
    const int32_t bos = models[0]->vocab ? models[0]->vocab->bos : 1;
    std::vector<int32_t> chunk;
    std::vector<const float*> rows(models.size());
    std::vector<std::vector<float>> logits(models.size());
    for (size_t c = 0; c < p.windows.size(); ++c) {
        const Window& w = p.windows[c];
        chunk.assign(tokens.begin() + w.start, tokens.begin() + w.start + w.len);
        if (w.bos) chunk[0] = bos;
        for (size_t k = 0; k < tfs.size(); ++k) {
            caches[k]->set_n_past(0, 0);         // a fresh chunk
            caches[k]->ggml_cell_offset = w.cell;  // where llama-perplexity puts it in its cache
            logits[k] = tfs[k]->eval(chunk, true);
        }
        for (int64_t j = w.j0; j < w.j1; ++j) {
            for (size_t k = 0; k < models.size(); ++k) rows[k] = logits[k].data() + j * models[k]->config.n_vocab;
            visit(rows, tokens[static_cast<size_t>(w.start + j + 1)]);
        }
        chunk_done(static_cast<int64_t>(c));
    }
}

int64_t token_bytes(const Model& m, int32_t tok) { return m.vocab ? static_cast<int64_t>(m.vocab->token_to_piece(tok).size()) : 0; }

// The running sums of a perplexity computation and the result they fill in.
struct Tally {
    PerplexityResult r;
    const Model& model;
    const ChunkCallback& on_chunk;
    double nll = 0, nll2 = 0;

    Tally(const Model& m, const std::vector<int32_t>& tokens, const Plan& p, const ChunkCallback& cb) : model(m), on_chunk(cb) {
        r.n_ctx = p.ctx;
        r.n_chunks = static_cast<int64_t>(p.windows.size());
        r.n_tokens = static_cast<int64_t>(tokens.size());
    }
    void add(double v, int32_t target) {  // v = −log P(target)
        nll += v;
        nll2 += v * v;
        ++r.count;
        r.bytes += token_bytes(model, target);
    }
    void chunk_done(int64_t c) {
        r.running_ppl.push_back(std::exp(nll / static_cast<double>(r.count)));
        if (on_chunk) on_chunk(c, r.n_chunks, r);
    }
    PerplexityResult& finish() {
        const double n = static_cast<double>(r.count);
        r.nll = nll / n;
        r.ppl = std::exp(r.nll);
        const double var = nll2 / n - r.nll * r.nll;
        r.ppl_err = var > 0 && r.count > 1 ? std::sqrt(var / (n - 1)) * r.ppl : 0.0;
        r.bits_per_byte = r.bytes > 0 ? nll / std::log(2.0) / static_cast<double>(r.bytes) : 0.0;
        return r;
    }
};

}  // namespace

int64_t perplexity_chunks(int64_t n_tokens, const PerplexityOptions& o) { return static_cast<int64_t>(plan_chunks(n_tokens, o).windows.size()); }

PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, const PerplexityOptions& o, ThreadPool& pool,
                            const ChunkCallback& on_chunk) {
    check_tokens(model, tokens);
    const Plan p = plan_chunks(static_cast<int64_t>(tokens.size()), o);
    Tally t(model, tokens, p, on_chunk);
    const int64_t V = model.config.n_vocab;
    for_each_scored({&model}, tokens, o, pool, p,
                    [&](const std::vector<const float*>& rows, int32_t target) {
                        t.add(p.float_probs ? nll_float_prob(rows[0], V, target) : -log_softmax_at(rows[0], V, target), target);
                    },
                    [&](int64_t c) { t.chunk_done(c); });
    return t.finish();
}

PerplexityResult kl_divergence(const Model& base, const Model& model, const std::vector<int32_t>& tokens, const PerplexityOptions& o,
                               ThreadPool& pool, const ChunkCallback& on_chunk) {
    if (base.config.n_vocab != model.config.n_vocab)
        throw_bad_input("the two models have different vocabularies (%lld and %lld tokens)", static_cast<long long>(base.config.n_vocab),
                        static_cast<long long>(model.config.n_vocab));
    check_tokens(model, tokens);
    const Plan p = plan_chunks(static_cast<int64_t>(tokens.size()), o);
    Tally t(model, tokens, p, on_chunk);
    const int64_t V = model.config.n_vocab;
    double base_nll = 0, kl_sum = 0, kl2_sum = 0, dp_sum = 0, dp2_sum = 0;
    int64_t same = 0;
    std::vector<double> kls, lb, lm;
    for_each_scored({&base, &model}, tokens, o, pool, p,
                    [&](const std::vector<const float*>& rows, int32_t target) {
                        log_softmax(rows[0], V, lb);
                        log_softmax(rows[1], V, lm);
                        double kl = 0;
                        size_t top_b = 0, top_m = 0;
                        for (size_t i = 0; i < lb.size(); ++i) {
                            kl += std::exp(lb[i]) * (lb[i] - lm[i]);
                            if (lb[i] > lb[top_b]) top_b = i;
                            if (lm[i] > lm[top_m]) top_m = i;
                        }
                        kl = std::max(kl, 0.0);
                        kls.push_back(kl);
                        kl_sum += kl;
                        kl2_sum += kl * kl;
                        same += top_b == top_m;
                        const size_t tg = static_cast<size_t>(target);
                        t.add(-lm[tg], target);
                        base_nll += -lb[tg];
                        const double dp = std::exp(lm[tg]) - std::exp(lb[tg]);
                        dp_sum += dp;
                        dp2_sum += dp * dp;
                    },
                    [&](int64_t c) { t.chunk_done(c); });
    PerplexityResult& r = t.finish();
    r.has_kl = true;
    const double n = static_cast<double>(r.count);
    r.base_ppl = std::exp(base_nll / n);
    r.kl_mean = kl_sum / n;
    const double var = kl2_sum / n - r.kl_mean * r.kl_mean;
    r.kl_err = var > 0 && r.count > 1 ? std::sqrt(var / (n - 1)) : 0.0;
    std::sort(kls.begin(), kls.end());
    auto pct = [&](double q) { return kls[std::min(kls.size() - 1, static_cast<size_t>(q * static_cast<double>(kls.size() - 1) + 0.5))]; };
    r.kl_median = pct(0.5);
    r.kl_p99 = pct(0.99);
    r.kl_max = kls.back();
    r.same_top = static_cast<double>(same) / n;
    r.dp_mean = dp_sum / n;
    r.dp_rms = std::sqrt(dp2_sum / n);
    return r;
}

}  // namespace llmforge
