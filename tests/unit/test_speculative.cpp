// Speculative decoding: the acceptance rule against its closed form, and generation with a draft against the target's
// own distribution (a χ² test on 10⁵ samples) and, greedily, token for token.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "core/threadpool.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"
#include "llmforge/generate.h"
#include "llmforge/model.h"
#include "llmforge/sampler.h"
#include "llmforge/transformer.h"

using namespace llmforge;

namespace {
// The χ² quantile at 1 − α for df degrees of freedom, by the Wilson–Hilferty approximation (z: the normal quantile).
double chi2_quantile(double df, double z) {
    const double a = 2.0 / (9.0 * df);
    return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}
constexpr double kZ99 = 2.3263478740;  // the normal's 0.99 quantile

// Pearson's statistic of observed counts against expected probabilities; cells expecting fewer than 5 are pooled.
std::pair<double, int> chi2(const std::map<std::vector<int32_t>, double>& expected_p, const std::map<std::vector<int32_t>, int64_t>& observed, int64_t n) {
    double stat = 0, pooled_e = 0, pooled_o = 0;
    int cells = 0;
    for (const auto& [k, p] : expected_p) {
        const double e = p * static_cast<double>(n);
        const auto it = observed.find(k);
        const double o = it == observed.end() ? 0.0 : static_cast<double>(it->second);
        if (e < 5) {
            pooled_e += e, pooled_o += o;
            continue;
        }
        stat += (o - e) * (o - e) / e;
        ++cells;
    }
    if (pooled_e > 0) stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, ++cells;
    for (const auto& [k, o] : observed)
        if (!expected_p.count(k)) stat += 1e9;  // an outcome the target cannot produce
    return {stat, cells - 1};
}
}  // namespace

// One position: x ~ q, then the rule. The kept share is Σ_x q(x)·min(1, p(x)/q(x)) = Σ_x min(p(x), q(x)) (Leviathan et
// al. 2023, §3.3), and the emitted token is distributed as p whatever q is.
TEST(Speculative, AcceptanceRuleMatchesItsClosedForm) {
    std::mt19937_64 rng(5);
    for (int trial = 0; trial < 3; ++trial) {
        const int V = 6;
        std::vector<float> p(V), q(V);
        std::gamma_distribution<float> g(0.7f);
        for (int i = 0; i < V; ++i) p[i] = g(rng), q[i] = g(rng);
        if (trial == 2) q[0] = 0, p[V - 1] = 0;  // tokens one side cannot produce
        double sp = 0, sq = 0;
        for (int i = 0; i < V; ++i) sp += p[i], sq += q[i];
        for (int i = 0; i < V; ++i) p[i] /= static_cast<float>(sp), q[i] /= static_cast<float>(sq);
        double closed = 0;
        for (int i = 0; i < V; ++i) closed += std::min(p[i], q[i]);
        SamplerParams sp_;
        sp_.seed = 77 + trial;
        Sampler s(sp_);
        std::discrete_distribution<int> draw_q(q.begin(), q.end());
        const int64_t N = 200000;
        int64_t kept = 0;
        std::vector<int64_t> count(V, 0);
        for (int64_t t = 0; t < N; ++t) {
            const int32_t x = draw_q(rng);
            int32_t next = -1;
            const int64_t a = speculative_accept({p, p}, {q}, {x}, s, &next);
            kept += a;
            ++count[static_cast<size_t>(a == 1 ? x : next)];
        }
        const double rate = static_cast<double>(kept) / N, sd = std::sqrt(closed * (1 - closed) / N);
        EXPECT_NEAR(rate, closed, 5 * sd) << "trial " << trial;
        double stat = 0;
        int cells = 0;
        for (int i = 0; i < V; ++i) {
            const double e = p[i] * N;
            if (e == 0) {
                EXPECT_EQ(count[i], 0) << "token " << i << " has probability 0 under p";
                continue;
            }
            stat += (count[i] - e) * (count[i] - e) / e;
            ++cells;
        }
        EXPECT_LT(stat, chi2_quantile(cells - 1, kZ99)) << "trial " << trial << ": the emitted tokens do not follow p";
    }
}

// Sampling with a draft: the first three tokens of 10⁵ generations follow the target's own sampling distribution
// (computed exactly by enumerating the target's top-k continuations); a χ² test at p > 0.01.
TEST(Speculative, SamplingWithADraftKeepsTheTargetsDistribution) {
    const ModelConfig tc = preset("llama-tiny");
    const Model target = init_random(tc, DType::F32, 21);
    const Model draft = prune_layers(target, {0, 1});  // close to the target, not equal: both paths of the rule run
    ThreadPool pool(1);
    Transformer tf(target, pool, 64, 64, DType::F32, 1, Numerics::BatchInvariant), df(draft, pool, 64, 64, DType::F32);
    const Vocab& vocab = *target.vocab;
    GenerateParams gp;
    gp.n_predict = 3;
    gp.sampling.temp = 0.05f;  // random weights give nearly flat logits: sharpen them so that target and draft differ
    gp.sampling.top_k = 4;
    gp.sampling.top_p = 1.0f;
    gp.sampling.min_p = 0.0f;
    const std::string prompt = "ab";
    // the target's exact distribution over the first three tokens
    std::map<std::vector<int32_t>, double> exact;
    Sampler s(gp.sampling);
    const std::vector<int32_t> start = vocab.encode(prompt, true);
    std::function<void(std::vector<int32_t>, double)> walk = [&](std::vector<int32_t> seq, double prob) {
        const size_t made = seq.size() - start.size();
        if (made == 3 || (made > 0 && vocab.is_eog(seq.back()))) {
            std::vector<int32_t> out(seq.begin() + static_cast<long>(start.size()), seq.end());
            if (!out.empty() && vocab.is_eog(out.back())) out.pop_back();
            exact[out] += prob;
            return;
        }
        tf.reset();
        const std::vector<float> lg = tf.eval(seq);
        std::vector<float> p;
        s.distribution(lg.data(), tc.n_vocab, seq, p);
        for (int32_t t = 0; t < tc.n_vocab; ++t)
            if (p[static_cast<size_t>(t)] > 0) {
                std::vector<int32_t> next = seq;
                next.push_back(t);
                walk(next, prob * p[static_cast<size_t>(t)]);
            }
    };
    walk(start, 1.0);
    ASSERT_GT(exact.size(), 20u);
    SpeculativeParams sp;
    sp.draft_max = 3;
    sp.draft_min_p = 0.0f;
    const int64_t N = 100000;
    std::map<std::vector<int32_t>, int64_t> seen;
    SpeculativeStats total;
    for (int64_t i = 0; i < N; ++i) {
        tf.reset();
        df.reset();
        gp.sampling.seed = static_cast<uint64_t>(i) + 1;
        const GenerateResult r = generate_speculative(tf, df, vocab, prompt, gp, sp);
        ++seen[r.tokens];
        total.drafted += r.speculative.drafted;
        total.accepted += r.speculative.accepted;
    }
    const auto [stat, df_] = chi2(exact, seen, N);
    EXPECT_LT(stat, chi2_quantile(df_, kZ99)) << df_ << " degrees of freedom";
    // both paths of the rule ran: some proposals kept, some rejected
    EXPECT_GT(total.accepted, 0);
    EXPECT_LT(total.accepted, total.drafted);
    std::printf("χ² %.1f on %d degrees of freedom (critical at p = 0.01: %.1f); %lld of %lld proposals kept\n", stat, df_, chi2_quantile(df_, kZ99),
                static_cast<long long>(total.accepted), static_cast<long long>(total.drafted));
}

// Greedy with a draft: the same tokens as without one (the target's batch-invariant numerics make its batched
// verification compute what one-token passes compute), for drafts that agree often and rarely.
TEST(Speculative, GreedyWithADraftEqualsWithout) {
    for (const char* name : {"llama-tiny", "gpt2-tiny"}) {
        ModelConfig tc = preset(name), dc = tc;
        dc.n_layer = 1;
        const Model target = init_random(tc, DType::F32, 31), draft = init_random(dc, DType::F32, 32);
        ThreadPool pool(2);
        Transformer a(target, pool, 128, 64, DType::F16, 1, Numerics::BatchInvariant), b(target, pool, 128, 64, DType::F16, 1, Numerics::BatchInvariant);
        Transformer d(draft, pool, 128, 64, DType::F16), self(target, pool, 128, 64, DType::F16);
        GenerateParams gp;
        gp.n_predict = 40;
        gp.sampling.temp = 0;
        SpeculativeParams sp;
        sp.draft_min_p = 0;
        for (int i = 0; i < 10; ++i) {
            const std::string prompt = std::string(1, static_cast<char>('a' + i)) + " then " + std::to_string(i * 37);
            a.reset();
            const GenerateResult plain = generate(a, *target.vocab, prompt, gp);
            for (Transformer* dr : {&d, &self}) {
                b.reset();
                dr->reset();
                const GenerateResult s = generate_speculative(b, *dr, *target.vocab, prompt, gp, sp);
                EXPECT_EQ(s.tokens, plain.tokens) << name << " prompt " << i << (dr == &self ? " (the target as its own draft)" : "");
                if (dr == &self) {
                    EXPECT_EQ(s.speculative.accepted, s.speculative.drafted) << "the target as its own draft keeps everything";
                }
            }
        }
    }
}

// A draft must share the target's tokenizer.
TEST(Speculative, DraftWithAnotherVocabularyIsRefused) {
    ModelConfig tc = preset("llama-tiny"), dc = tc;
    dc.n_vocab = 600;
    const Model target = init_random(tc, DType::F32, 1), draft = init_random(dc, DType::F32, 2);
    try {
        check_draft(target, draft);
        FAIL() << "accepted a draft with another vocabulary";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("share the target's tokenizer"), std::string::npos) << e.what();
    }
}
