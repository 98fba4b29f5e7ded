#include "llmforge/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "llmforge/error.h"

namespace llmforge {

void SamplerParams::validate() const {
    auto bad = [](const char* name, const char* range, double v) { throw_bad_input("sampling: %s must be %s, not %g", name, range, v); };
    if (!(temp >= 0)) bad("temp", "at least 0 (0: greedy)", temp);
    if (top_k < 0) bad("top_k", "at least 0 (0: off)", top_k);
    if (!(top_p >= 0 && top_p <= 1)) bad("top_p", "in [0, 1] (1: off)", top_p);
    if (!(min_p >= 0 && min_p <= 1)) bad("min_p", "in [0, 1] (0: off)", min_p);
    if (!(repeat_penalty > 0) || !std::isfinite(repeat_penalty)) bad("repeat_penalty", "greater than 0 (1: off)", repeat_penalty);
    if (repeat_last_n < -1) bad("repeat_last_n", "at least -1 (-1: all)", repeat_last_n);
}

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) { p.validate(); }

int32_t Sampler::sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history) {
    const int32_t greedy = chain(logits, n_vocab, history);
    if (greedy >= 0) return greedy;
    if (cands_.empty()) return 0;  // everything masked: the caller checks for this first
    const double u = uniform();
    double cum = 0;
    for (const auto& c : cands_) {
        cum += c.p;
        if (u < cum) return c.id;
    }
    return cands_.back().id;
}

void Sampler::distribution(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history, std::vector<float>& probs) {
    probs.assign(static_cast<size_t>(n_vocab), 0.0f);
    const int32_t greedy = chain(logits, n_vocab, history);
    if (greedy >= 0) {
        probs[static_cast<size_t>(greedy)] = 1.0f;
        return;
    }
    for (const auto& c : cands_) probs[static_cast<size_t>(c.id)] = c.p;
}

int32_t Sampler::draw(const float* probs, int64_t n_vocab) {
    double total = 0;
    int32_t last = -1;
    for (int64_t i = 0; i < n_vocab; ++i)
        if (probs[i] > 0) total += probs[i], last = static_cast<int32_t>(i);
    if (last < 0) throw_runtime("draw(): a distribution with no mass");
    const double u = uniform() * total;
    double cum = 0;
    for (int64_t i = 0; i < n_vocab; ++i) {
        cum += probs[i];
        if (probs[i] > 0 && u < cum) return static_cast<int32_t>(i);
    }
    return last;
}

int32_t Sampler::chain(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history) {
    cands_.resize(static_cast<size_t>(n_vocab));
    for (int64_t i = 0; i < n_vocab; ++i) cands_[i] = {static_cast<int32_t>(i), logits[i], 0.0f};
    for (int32_t b : p_.banned)
        if (b >= 0 && b < n_vocab) cands_[static_cast<size_t>(b)].logit = -INFINITY;

    if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0) {
        const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min(history.size(), static_cast<size_t>(p_.repeat_last_n));
        std::unordered_set<int32_t> seen(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
        for (int32_t id : seen) {
            if (id < 0 || id >= n_vocab) continue;
            float& l = cands_[id].logit;
            l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
        }
    }

    if (p_.temp <= 0.0f) {  // greedy: the first of the highest logits
        size_t best = 0;
        for (size_t i = 1; i < cands_.size(); ++i)
            if (cands_[i].logit > cands_[best].logit) best = i;
        return cands_[best].id;
    }

    // Tokens a grammar or a ban masked (logit -inf) have probability 0 whatever the filters: dropped before any sort.
    cands_.erase(std::remove_if(cands_.begin(), cands_.end(), [](const Cand& c) { return c.logit == -INFINITY; }), cands_.end());
    if (cands_.empty()) return -1;

    auto by_logit = [](const Cand& a, const Cand& b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
    size_t keep = cands_.size();
    if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
        keep = static_cast<size_t>(p_.top_k);
        std::partial_sort(cands_.begin(), cands_.begin() + static_cast<std::ptrdiff_t>(keep), cands_.end(), by_logit);
    } else if (p_.top_p < 1.0f || p_.min_p > 0.0f) {
        // top-p and min-p keep a prefix of the sorted order: sort only as far as that prefix reaches (well inside
        // it, so that rounding cannot move its end past the sorted part). The normaliser is over every token.
        const size_t n = cands_.size();
        float mx = -INFINITY;
        for (const auto& c : cands_) mx = std::max(mx, c.logit);
        double sum = 0;
        for (const auto& c : cands_) sum += std::exp(static_cast<double>(c.logit - mx));
        for (size_t k = std::min<size_t>(n, 256);; k = std::min(n, k * 8)) {
            std::partial_sort(cands_.begin(), cands_.begin() + static_cast<std::ptrdiff_t>(k), cands_.end(), by_logit);
            if (k == n) break;
            double cum = 0;
            const float p0 = static_cast<float>(std::exp(static_cast<double>(cands_[0].logit - mx)) / sum);
            size_t end = k;
            for (size_t i = 0; i < k; ++i) {
                const float pi = static_cast<float>(std::exp(static_cast<double>(cands_[i].logit - mx)) / sum);
                if (p_.min_p > 0.0f && i > 0 && pi < p_.min_p * p0) {
                    end = i;
                    break;
                }
                cum += pi;
                if (p_.top_p < 1.0f && cum >= p_.top_p) {
                    end = i + 1;
                    break;
                }
            }
            if (end + 1 < k / 2) break;
        }
    }
    cands_.resize(keep);

    auto softmax = [&](float t) {  // (cands_ is sorted when a filter follows; plain sampling needs no order)
        float mx = cands_[0].logit;
        for (const auto& c : cands_) mx = std::max(mx, c.logit);
        double sum = 0;
        for (auto& c : cands_) { c.p = std::exp((c.logit - mx) / t); sum += c.p; }
        for (auto& c : cands_) c.p = static_cast<float>(c.p / sum);
    };
    softmax(1.0f);
    if (p_.top_p < 1.0f) {  // smallest prefix whose probability mass reaches top_p
        double cum = 0;
        size_t n = 0;
        while (n < cands_.size()) {
            cum += cands_[n].p;
            ++n;
            if (cum >= p_.top_p) break;
        }
        cands_.resize(std::max<size_t>(1, n));
    }
    if (p_.min_p > 0.0f) {  // drop tokens less likely than min_p × the most likely one
        const float cut = p_.min_p * cands_[0].p;
        size_t n = 1;
        while (n < cands_.size() && cands_[n].p >= cut) ++n;
        cands_.resize(n);
    }
    softmax(p_.temp);
    return -1;
}

}  // namespace llmforge
