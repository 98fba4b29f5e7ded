// Speculative decoding (include/llmforge/generate.h): the draft proposes, the target verifies in one batched pass,
// rejection sampling keeps the target's distribution.
//
// A round, with `pending` the last emitted token that neither model has run yet:
//   1. the draft runs the tokens it has not seen (pending among them) and proposes x_0 … x_{n−1}, each drawn from its
//      own sampling distribution q_i (the same sampler settings as the target's), stopping early at a token it gives
//      less than draft_min_p itself;
//   2. the target runs [pending, x_0, …, x_{n−1}] in one pass: row i's logits give p_i, its distribution for the
//      token after x_{<i};
//   3. speculative_accept keeps a prefix x_{<a} and draws the token after it; both caches are cut back to what was
//      kept.
// So a round costs one target pass for up to n + 1 tokens, where plain decoding costs one pass per token.
#include <algorithm>
#include <chrono>
#include <cmath>

#include "infer/emit.h"
#include "llmforge/error.h"
#include "llmforge/generate.h"

namespace llmforge {

void SpeculativeParams::validate() const {
    if (draft_max < 1 || draft_max > 256) throw_bad_input("--draft-max must be in [1, 256], not %d", draft_max);
    if (!(draft_min_p >= 0 && draft_min_p <= 1)) throw_bad_input("--draft-min-p must be in [0, 1], not %g", static_cast<double>(draft_min_p));
}

int64_t speculative_accept(const std::vector<std::vector<float>>& p, const std::vector<std::vector<float>>& q, const std::vector<int32_t>& x,
                           Sampler& sampler, int32_t* next) {
    const int64_t n = static_cast<int64_t>(x.size());
    if (static_cast<int64_t>(q.size()) != n || static_cast<int64_t>(p.size()) != n + 1) throw_runtime("speculative_accept: %lld tokens need %lld draft and %lld target rows", static_cast<long long>(n), static_cast<long long>(n), static_cast<long long>(n + 1));
    for (int64_t i = 0; i < n; ++i) {
        const std::vector<float>& pi = p[static_cast<size_t>(i)];
        const std::vector<float>& qi = q[static_cast<size_t>(i)];
        const size_t t = static_cast<size_t>(x[static_cast<size_t>(i)]);
        const double pt = pi[t], qt = qi[t];
        // accept with probability min(1, p/q): u < p/q, i.e. u·q < p (q > 0: the draft drew x from q)
        if (sampler.uniform() * qt < pt) continue;
        std::vector<float> residual(pi.size());
        double mass = 0;
        for (size_t j = 0; j < pi.size(); ++j) {
            residual[j] = std::max(0.0f, pi[j] - qi[j]);
            mass += residual[j];
        }
        // (a rejection implies p(x) < q(x), hence p ≠ q and the residual has mass; guard rounding anyway)
        *next = mass > 0 ? sampler.draw(residual.data(), static_cast<int64_t>(residual.size())) : sampler.draw(pi.data(), static_cast<int64_t>(pi.size()));
        return i;
    }
    const std::vector<float>& last = p[static_cast<size_t>(n)];
    *next = sampler.draw(last.data(), static_cast<int64_t>(last.size()));
    return n;
}

void check_draft(const Model& target, const Model& draft) {
    const int64_t V = target.config.n_vocab, Vd = draft.config.n_vocab;
    if (draft.config.encoder) throw_bad_input("the draft model is an encoder: it cannot propose tokens");
    if (V != Vd)
        throw_bad_input("the draft's vocabulary (%lld tokens) differs from the target's (%lld): a draft must share the target's tokenizer",
                        static_cast<long long>(Vd), static_cast<long long>(V));
    if (target.vocab && draft.vocab) {
        const Vocab &a = *target.vocab, &b = *draft.vocab;
        for (int32_t i = 0; i < std::min(a.size(), b.size()); ++i)
            if (a.pieces[static_cast<size_t>(i)] != b.pieces[static_cast<size_t>(i)])
                throw_bad_input("the draft's token %d ('%s') differs from the target's ('%s'): a draft must share the target's tokenizer", i,
                                b.pieces[static_cast<size_t>(i)].c_str(), a.pieces[static_cast<size_t>(i)].c_str());
    }
}

namespace {
// Cuts a cache back to n positions; where a sliding-window ring can no longer do that, runs the kept tokens again.
void cut(Transformer& tf, const std::vector<int32_t>& tokens, int64_t n) {
    if (tf.truncate(n) == n) return;
    tf.reset();
    if (n > 0) tf.eval(tokens.data(), n);
}

double softmax_prob(const float* z, int64_t V, int32_t id) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, z[i]);
    double s = 0;
    for (int64_t i = 0; i < V; ++i) s += std::exp(static_cast<double>(z[i] - mx));
    return std::exp(static_cast<double>(z[id] - mx)) / s;
}
}  // namespace

void speculative_round(Transformer& tf, Transformer& draft, const std::vector<int32_t>& history, int64_t max_new, Sampler& sampler,
                       Sampler& draft_sampler, const SpeculativeParams& spec, SpeculativeStats& stats, std::vector<int32_t>& out) {
    const int64_t H = static_cast<int64_t>(history.size());
    if (H == 0 || tf.n_past() != H - 1) throw_runtime("speculative_round: the target's cache must hold the history but its last token");
    if (draft.n_past() > H) throw_runtime("speculative_round: the draft's cache runs ahead of the history");
    if (max_new < 1) throw_runtime("speculative_round: no room for a token");
    const int64_t V = tf.model().config.n_vocab;
    const bool greedy = sampler.params().temp <= 0;
    // 1. the draft catches up (pending included) and proposes
    const int64_t room = tf.n_ctx() - tf.n_past();  // positions for pending and the proposals
    const int64_t n_max = std::min<int64_t>({spec.draft_max, room - 1, max_new - 1});
    std::vector<int32_t> xs;
    std::vector<std::vector<float>> p, q;
    std::vector<int32_t> h = history;  // history and the proposals so far (one copy for the whole round)
    if (n_max > 0) {
        const std::vector<float>* dl = &draft.eval(history.data() + draft.n_past(), H - draft.n_past());
        for (int64_t i = 0; i < n_max; ++i) {
            std::vector<float> qi;
            draft_sampler.distribution(dl->data(), V, h, qi);
            const int32_t x = greedy ? static_cast<int32_t>(std::max_element(qi.begin(), qi.end()) - qi.begin()) : draft_sampler.draw(qi.data(), V);
            if (spec.draft_min_p > 0 && softmax_prob(dl->data(), V, x) < spec.draft_min_p) break;  // the draft is unsure: stop here
            xs.push_back(x);
            q.push_back(std::move(qi));
            h.push_back(x);
            if (i + 1 < n_max) dl = &draft.eval(&x, 1);
        }
    }
    // 2. the target runs pending and the proposals in one pass
    const int64_t n = static_cast<int64_t>(xs.size()), base = tf.n_past();
    std::vector<int32_t> verify(1, history.back());
    verify.insert(verify.end(), xs.begin(), xs.end());
    const std::vector<float>& lg = tf.eval(verify, true);
    p.resize(static_cast<size_t>(n + 1));
    for (int64_t i = 0; i <= n; ++i) {  // row i: after history and x_{<i}
        h.resize(static_cast<size_t>(H + i));
        sampler.distribution(lg.data() + i * V, V, h, p[static_cast<size_t>(i)]);
        h.push_back(i < n ? xs[static_cast<size_t>(i)] : 0);
    }
    // 3. keep a prefix, draw the token after it, cut both caches back to what was kept
    int32_t next = -1;
    const int64_t a = speculative_accept(p, q, xs, sampler, &next);
    ++stats.rounds;
    stats.drafted += n;
    stats.accepted += a;
    out.assign(xs.begin(), xs.begin() + a);
    out.push_back(next);
    h.resize(static_cast<size_t>(H + a));  // what the caches keep: history and the kept proposals
    cut(tf, h, base + 1 + a);
    if (draft.n_past() > H + a) cut(draft, h, H + a);
}

GenerateResult generate_speculative(Transformer& tf, Transformer& draft, const Vocab& vocab, const std::string& prompt, const GenerateParams& params,
                                    const SpeculativeParams& spec, const std::function<bool(const std::string&)>& on_text) {
    using clock = std::chrono::steady_clock;
    spec.validate();
    if (params.grammar) throw_bad_input("a draft model does not combine with a grammar yet");
    check_draft(tf.model(), draft.model());
    GenerateResult r;
    r.prompt_tokens = vocab.encode(prompt, params.add_special, params.parse_special);
    if (r.prompt_tokens.empty()) throw_bad_input("the prompt is empty");
    if (tf.n_past() != 0 || draft.n_past() != 0) throw_runtime("generate_speculative: the caches must start empty");
    const int64_t P = static_cast<int64_t>(r.prompt_tokens.size());
    if (P > tf.n_ctx()) throw_bad_input("the prompt is %lld tokens, longer than the context of %lld tokens", static_cast<long long>(P), static_cast<long long>(tf.n_ctx()));
    if (draft.n_ctx() < tf.n_ctx())
        throw_bad_input("the draft's context (%lld) is shorter than the target's (%lld)", static_cast<long long>(draft.n_ctx()), static_cast<long long>(tf.n_ctx()));
    const int64_t V = tf.model().config.n_vocab;
    std::vector<int32_t> history = r.prompt_tokens;  // emitted tokens included
    Sampler sampler(params.sampling);
    SamplerParams dp = params.sampling;
    dp.seed = params.sampling.seed ^ 0x9e3779b97f4a7c15ULL;  // the draft's own random stream
    Sampler draft_sampler(dp);
    TokenEmitter out{vocab, r, history, on_text, {}};

    auto t0 = clock::now();
    const std::vector<float>& first = tf.eval(r.prompt_tokens);
    r.prompt_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    t0 = clock::now();
    std::vector<int32_t> queue(1, sampler.sample(first.data(), V, history)), round;
    r.stop_reason = "length";
    int64_t produced = 0;
    auto budget_left = [&] { return params.n_predict < 0 ? INT64_MAX : params.n_predict - produced; };
    for (size_t qi = 0;;) {
        if (!out.emit(queue[qi])) break;
        ++produced;
        if (budget_left() <= 0) break;  // no need to run the last token
        if (++qi < queue.size()) continue;
        if (tf.n_past() >= tf.n_ctx()) { r.stop_reason = "context"; break; }
        speculative_round(tf, draft, history, budget_left(), sampler, draft_sampler, spec, r.speculative, round);
        queue.swap(round);
        qi = 0;
    }
    out.finish();
    r.gen_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    return r;
}

}  // namespace llmforge
