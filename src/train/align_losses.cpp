// The alignment losses and their derivatives (see align.h). Each function is the formula of its paper, written out
// with the derivative beside it; tests/reference/test_align.py checks them through the whole model against PyTorch.
#include <algorithm>
#include <cmath>

#include "llmforge/align.h"
#include "llmforge/error.h"

namespace llmforge::align {

namespace {
// log σ(x) = −log(1 + e^(−x)), stable for both signs
double log_sigmoid(double x) { return x >= 0 ? -std::log1p(std::exp(-x)) : x - std::log1p(std::exp(x)); }
double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + std::exp(-x)) : std::exp(x) / (1.0 + std::exp(x)); }
}  // namespace

BtStats bradley_terry(const std::vector<float>& chosen, const std::vector<float>& rejected, double center, std::vector<float>* dchosen,
                      std::vector<float>* drejected) {
    const size_t P = chosen.size();
    if (P == 0 || rejected.size() != P) throw_bad_input("Bradley–Terry loss: %zu chosen and %zu rejected rewards", P, rejected.size());
    BtStats st;
    if (dchosen) dchosen->assign(P, 0.0f);
    if (drejected) drejected->assign(P, 0.0f);
    for (size_t i = 0; i < P; ++i) {
        const double d = static_cast<double>(chosen[i]) - rejected[i], s = static_cast<double>(chosen[i]) + rejected[i];
        st.loss += -log_sigmoid(d) + center * s * s;
        st.accuracy += d > 0 ? 1.0 : 0.0;
        st.margin += d;
        st.mean_reward += 0.5 * s;
        // d/dd −log σ(d) = −(1 − σ(d)) = −σ(−d)
        const double g = -sigmoid(-d) / static_cast<double>(P), gc = 2.0 * center * s / static_cast<double>(P);
        if (dchosen) (*dchosen)[i] = static_cast<float>(g + gc);
        if (drejected) (*drejected)[i] = static_cast<float>(-g + gc);
    }
    const double inv = 1.0 / static_cast<double>(P);
    st.loss *= inv;
    st.accuracy *= inv;
    st.margin *= inv;
    st.mean_reward *= inv;
    return st;
}

DpoStats dpo(const std::vector<double>& pc, const std::vector<double>& pr, const std::vector<double>& rc, const std::vector<double>& rr,
             double beta, double eps, double alpha, const std::vector<double>* nc, std::vector<double>* dc, std::vector<double>* dr) {
    const size_t P = pc.size();
    if (P == 0 || pr.size() != P || rc.size() != P || rr.size() != P) throw_bad_input("DPO loss: the pair arrays differ in length");
    if (nc && nc->size() != P) throw_bad_input("DPO loss: the chosen answers' token counts differ in length from the pairs");
    if (alpha != 0 && !nc) throw_bad_input("DPO loss: rpo_alpha needs the chosen answers' token counts");
    DpoStats st;
    if (dc) dc->assign(P, 0.0);
    if (dr) dr->assign(P, 0.0);
    for (size_t i = 0; i < P; ++i) {
        const double rwc = beta * (pc[i] - rc[i]), rwr = beta * (pr[i] - rr[i]), h = rwc - rwr;
        st.loss += -(1.0 - eps) * log_sigmoid(h) - eps * log_sigmoid(-h);
        st.accuracy += h > 0 ? 1.0 : 0.0;
        st.margin += h;
        st.chosen_reward += rwc;
        st.rejected_reward += rwr;
        // d/dh: −(1−ε) σ(−h) + ε σ(h);  dh/dπ⁺ = β, dh/dπ⁻ = −β
        const double g = (-(1.0 - eps) * sigmoid(-h) + eps * sigmoid(h)) / static_cast<double>(P);
        if (dc) (*dc)[i] = g * beta;
        if (dr) (*dr)[i] = -g * beta;
        if (nc) {  // RPO: α · (−π⁺ / |y⁺|), averaged over the pairs
            const double n = std::max(1.0, (*nc)[i]);
            st.chosen_nll += -pc[i] / n;
            st.loss += alpha * (-pc[i] / n);
            if (dc) (*dc)[i] += -alpha / (n * static_cast<double>(P));
        }
    }
    const double inv = 1.0 / static_cast<double>(P);
    st.loss *= inv;
    st.accuracy *= inv;
    st.margin *= inv;
    st.chosen_reward *= inv;
    st.rejected_reward *= inv;
    st.chosen_nll *= inv;
    return st;
}

std::vector<double> sequence_logprobs(const std::vector<float>& logp, const std::vector<int32_t>& targets, int64_t B, int64_t T) {
    std::vector<double> s(static_cast<size_t>(B), 0.0);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            if (targets[static_cast<size_t>(b * T + t)] >= 0) s[static_cast<size_t>(b)] += logp[static_cast<size_t>(b * T + t)];
    return s;
}

KlEstimator parse_kl(const std::string& name) {
    if (name == "k1") return KlEstimator::K1;
    if (name == "k2") return KlEstimator::K2;
    if (name == "k3") return KlEstimator::K3;
    throw_bad_input("unknown KL estimator '%s' (k1, k2, k3)", name.c_str());
}

double kl_estimate(KlEstimator k, double logp, double ref_logp) {
    const double lr = logp - ref_logp;  // log(π/ref) at a token sampled from π
    switch (k) {
        case KlEstimator::K1: return lr;
        case KlEstimator::K2: return 0.5 * lr * lr;
        case KlEstimator::K3: return std::expm1(-lr) + lr;  // (ref/π − 1) − log(ref/π)
    }
    return lr;
}

PpoTargets ppo_targets(const std::vector<float>& old_logp, const std::vector<float>& ref_logp, const std::vector<float>& old_values,
                       const std::vector<float>& scores, const std::vector<int32_t>& targets, int64_t B, int64_t T, const PpoConfig& cfg) {
    const size_t N = static_cast<size_t>(B * T);
    if (old_logp.size() != N || ref_logp.size() != N || old_values.size() != N || targets.size() != N || scores.size() != static_cast<size_t>(B))
        throw_bad_input("PPO: roll-out arrays of the wrong size");
    PpoTargets r;
    r.rewards.assign(N, 0.0f);
    r.advantages.assign(N, 0.0f);
    r.returns.assign(N, 0.0f);
    r.kl.assign(N, 0.0f);
    std::vector<double> adv(N, 0.0);
    for (int64_t b = 0; b < B; ++b) {
        std::vector<size_t> pos;
        for (int64_t t = 0; t < T; ++t)
            if (targets[static_cast<size_t>(b * T + t)] >= 0) pos.push_back(static_cast<size_t>(b * T + t));
        if (pos.empty()) continue;
        std::vector<double> rw(pos.size());
        for (size_t i = 0; i < pos.size(); ++i) {
            const double k = kl_estimate(cfg.kl, old_logp[pos[i]], ref_logp[pos[i]]);
            r.kl[pos[i]] = static_cast<float>(k);
            r.mean_kl += k;
            rw[i] = -cfg.beta * k;
        }
        rw.back() += scores[static_cast<size_t>(b)];
        r.mean_score += scores[static_cast<size_t>(b)];
        // GAE: δ_t = r_t + γ V_{t+1} − V_t (V after the last token = 0);  A_t = δ_t + γλ A_{t+1}
        double next_v = 0, next_a = 0;
        for (size_t i = pos.size(); i-- > 0;) {
            const double v = old_values[pos[i]];
            const double delta = rw[i] + cfg.gamma * next_v - v;
            next_a = delta + cfg.gamma * cfg.lambda * next_a;
            next_v = v;
            adv[pos[i]] = next_a;
            r.rewards[pos[i]] = static_cast<float>(rw[i]);
            r.returns[pos[i]] = static_cast<float>(next_a + v);
        }
    }
    r.mean_kl /= static_cast<double>(B);
    r.mean_score /= static_cast<double>(B);
    double mean = 0, var = 0;
    int64_t M = 0;
    for (size_t n = 0; n < N; ++n)
        if (targets[n] >= 0) { mean += adv[n]; ++M; }
    if (M == 0) throw_bad_input("PPO: the roll-outs have no response tokens");
    mean /= static_cast<double>(M);
    for (size_t n = 0; n < N; ++n)
        if (targets[n] >= 0) var += (adv[n] - mean) * (adv[n] - mean);
    var = M > 1 ? var / static_cast<double>(M - 1) : 0.0;  // unbiased, as TRL's masked_whiten
    const double rs = 1.0 / std::sqrt(var + 1e-8);
    for (size_t n = 0; n < N; ++n)
        if (targets[n] >= 0) r.advantages[n] = static_cast<float>(cfg.whiten ? (adv[n] - mean) * rs : adv[n]);
    return r;
}

PpoStats ppo_loss(const std::vector<float>& logp, const std::vector<float>& values, const std::vector<float>& old_logp,
                  const std::vector<float>& old_values, const PpoTargets& tg, const std::vector<int32_t>& targets, const PpoConfig& cfg,
                  std::vector<float>* dlogp, std::vector<float>* dvalues) {
    const size_t N = targets.size();
    if (logp.size() != N || values.size() != N || old_logp.size() != N || old_values.size() != N || tg.advantages.size() != N)
        throw_bad_input("PPO: arrays of the wrong size");
    PpoStats st;
    if (dlogp) dlogp->assign(N, 0.0f);
    if (dvalues) dvalues->assign(N, 0.0f);
    int64_t M = 0;
    for (size_t n = 0; n < N; ++n) M += targets[n] >= 0;
    if (M == 0) throw_bad_input("PPO: no response tokens");
    const double inv = 1.0 / static_cast<double>(M);
    for (size_t n = 0; n < N; ++n) {
        if (targets[n] < 0) continue;
        const double A = tg.advantages[n], lr = static_cast<double>(logp[n]) - old_logp[n], rho = std::exp(lr);
        const double rc = std::clamp(rho, 1.0 - cfg.clip, 1.0 + cfg.clip);
        const double l1 = -A * rho, l2 = -A * rc;
        st.policy_loss += std::max(l1, l2) * inv;
        // the unclipped term carries the gradient when it is the larger (inside the range both are ρ's)
        if (dlogp && l1 >= l2) (*dlogp)[n] = static_cast<float>(-A * rho * inv);
        if (l2 > l1) st.clip_fraction += inv;
        st.approx_kl += 0.5 * lr * lr * inv;  // ½ (log ρ)², as TRL logs it
        st.ratio_mean += rho * inv;
        const double v = values[n], R = tg.returns[n], vo = old_values[n];
        const double vc = std::clamp(v, vo - cfg.value_clip, vo + cfg.value_clip);
        const double e1 = (v - R) * (v - R), e2 = (vc - R) * (vc - R);
        st.value_loss += 0.5 * std::max(e1, e2) * inv;
        if (e2 > e1) st.value_clip_fraction += inv;
        // ½ max(e1, e2): e1 → (v − R); e2 → (vc − R) · dvc/dv (1 inside the clip range, where vc = v and e1 = e2)
        if (dvalues && e1 >= e2) (*dvalues)[n] = static_cast<float>(cfg.vf_coef * (v - R) * inv);
    }
    st.loss = st.policy_loss + cfg.vf_coef * st.value_loss;
    return st;
}

std::vector<double> grpo_advantages(const std::vector<double>& rewards, int64_t group, bool scale) {
    if (group <= 0 || rewards.size() % static_cast<size_t>(group) != 0) throw_bad_input("GRPO: %zu rewards do not form groups of %lld", rewards.size(), static_cast<long long>(group));
    std::vector<double> a(rewards.size());
    for (size_t g0 = 0; g0 < rewards.size(); g0 += static_cast<size_t>(group)) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < group; ++i) mean += rewards[g0 + static_cast<size_t>(i)];
        mean /= static_cast<double>(group);
        for (int64_t i = 0; i < group; ++i) var += (rewards[g0 + static_cast<size_t>(i)] - mean) * (rewards[g0 + static_cast<size_t>(i)] - mean);
        const double sd = group > 1 ? std::sqrt(var / static_cast<double>(group - 1)) : 0.0;
        for (int64_t i = 0; i < group; ++i) {
            const double d = rewards[g0 + static_cast<size_t>(i)] - mean;
            a[g0 + static_cast<size_t>(i)] = scale ? d / (sd + 1e-4) : d;
        }
    }
    return a;
}

GrpoStats grpo_loss(const std::vector<float>& logp, const std::vector<float>& old_logp, const std::vector<float>& ref_logp,
                    const std::vector<double>& adv, const std::vector<int32_t>& targets, int64_t B, int64_t T, const GrpoConfig& cfg,
                    std::vector<float>* dlogp) {
    const size_t N = static_cast<size_t>(B * T);
    if (logp.size() != N || old_logp.size() != N || targets.size() != N || adv.size() != static_cast<size_t>(B) || (cfg.beta != 0 && ref_logp.size() != N))
        throw_bad_input("GRPO: arrays of the wrong size");
    if (cfg.aggregate != "sequence" && cfg.aggregate != "token") throw_bad_input("GRPO: unknown loss aggregation '%s' (sequence, token)", cfg.aggregate.c_str());
    GrpoStats st;
    if (dlogp) dlogp->assign(N, 0.0f);
    int64_t M = 0, rows = 0;
    for (int64_t b = 0; b < B; ++b) {
        int64_t m = 0;
        for (int64_t t = 0; t < T; ++t) m += targets[static_cast<size_t>(b * T + t)] >= 0;
        M += m;
        rows += m > 0;
    }
    if (M == 0) throw_bad_input("GRPO: no response tokens");
    for (int64_t b = 0; b < B; ++b) {
        int64_t m = 0;
        for (int64_t t = 0; t < T; ++t) m += targets[static_cast<size_t>(b * T + t)] >= 0;
        if (m == 0) continue;
        // weight of each token of this row in the loss
        const double w = cfg.aggregate == "sequence" ? 1.0 / (static_cast<double>(m) * static_cast<double>(rows)) : 1.0 / static_cast<double>(M);
        const double A = adv[static_cast<size_t>(b)];
        for (int64_t t = 0; t < T; ++t) {
            const size_t n = static_cast<size_t>(b * T + t);
            if (targets[n] < 0) continue;
            const double lp = logp[n], rho = std::exp(lp - old_logp[n]);
            const double rc = std::clamp(rho, 1.0 - cfg.clip_low, 1.0 + cfg.clip_high);
            const double o1 = rho * A, o2 = rc * A;
            double l = -std::min(o1, o2), g = o1 <= o2 ? -A * rho : 0.0;
            if (o2 < o1) st.clip_fraction += 1.0 / static_cast<double>(M);
            if (cfg.beta != 0) {  // k3 = e^(ref − π) − (ref − π) − 1;  d/dπ = 1 − e^(ref − π)
                const double d = ref_logp[n] - lp;
                const double k3 = std::expm1(d) - d;
                l += cfg.beta * k3;
                g += cfg.beta * -std::expm1(d);
                st.kl += k3 / static_cast<double>(M);
            }
            st.loss += w * l;
            if (dlogp) (*dlogp)[n] = static_cast<float>(w * g);
        }
    }
    return st;
}

}  // namespace llmforge::align
