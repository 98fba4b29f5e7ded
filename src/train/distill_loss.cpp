// The distillation losses of include/llmforge/distill.h and their gradients with respect to the student's logits.
//
// Every divergence is computed on buckets b (the teacher's k tokens, and "the rest" when k < V), from the bucket
// log-probabilities lp_b (teacher) and lq_b (student), in double precision. With g_b = ∂D/∂lq_b, the gradient with
// respect to the student's tempered logits u = z_s/τ follows from ∂lq_b/∂u_j = 1[j ∈ b]·q_j/q_b − q_j (q_j the student's
// token probability, q_b its bucket's):
//   ∂D/∂u_j = g_b(j) · q_j / q_b(j) − q_j · Σ_b g_b,
// where q_j / q_b(j) = 1 for a bucket of one token. And ∂(τ²·D)/∂z_s = τ · ∂D/∂u. The g_b:
//   forward KL  D = Σ p_b (lp_b − lq_b)                         g_b = −p_b
//   reverse KL  D = Σ q_b (lq_b − lp_b)                         g_b = q_b (lq_b − lp_b + 1)
//   JSD(β)      D = β Σ p_b (lp_b − lm_b) + (1−β) Σ q_b (lq_b − lm_b),  m = βp + (1−β)q
//                                                               g_b = (1−β) q_b (lq_b − lm_b)
// (for JSD the terms of ∂lm_b/∂lq_b cancel: β p_b·(1−β)q_b/m_b + (1−β) q_b·(1−β)q_b/m_b = (1−β) q_b).
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/threadpool.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"

namespace llmforge {

Divergence parse_divergence(const std::string& n) {
    if (n == "forward-kl") return Divergence::ForwardKL;
    if (n == "reverse-kl") return Divergence::ReverseKL;
    if (n == "jsd") return Divergence::JSD;
    throw_bad_input("unknown distillation loss '%s' (forward-kl, reverse-kl or jsd)", n.c_str());
}

const char* divergence_name(Divergence d) {
    return d == Divergence::ForwardKL ? "forward-kl" : d == Divergence::ReverseKL ? "reverse-kl" : "jsd";
}

void DistillLossConfig::validate() const {
    if (!(temperature > 0) || !std::isfinite(temperature)) throw_bad_input("the distillation temperature must be positive, not %g", static_cast<double>(temperature));
    if (!(alpha >= 0 && alpha <= 1)) throw_bad_input("--alpha must be in [0, 1], not %g", static_cast<double>(alpha));
    if (divergence == Divergence::JSD && !(beta > 0 && beta < 1)) throw_bad_input("JSD's --beta must be in (0, 1), not %g", static_cast<double>(beta));
}

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// log Σ exp(x_i / tau) over x[0..n)
double logsumexp(const float* x, int64_t n, double inv_tau) {
    double mx = kNegInf;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i] * inv_tau);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(x[i] * inv_tau - mx);
    return mx + std::log(s);
}

// log Σ exp(x_j / tau) over the j outside the set (in[j] == 0): the mass of "the rest" of a top-k partition, summed
// over its own tokens (not 1 − Σ top-k, which cancels to nothing when the top k hold almost all)
double rest_logsumexp(const float* x, int64_t n, double inv_tau, const std::vector<char>& in) {
    double mx = kNegInf;
    for (int64_t j = 0; j < n; ++j)
        if (!in[static_cast<size_t>(j)]) mx = std::max(mx, x[j] * inv_tau);
    double s = 0;
    for (int64_t j = 0; j < n; ++j)
        if (!in[static_cast<size_t>(j)]) s += std::exp(x[j] * inv_tau - mx);
    return mx + std::log(s);
}
}  // namespace

void teacher_topk(const float* z, int64_t V, float tau, int k, int32_t* ids, float* logp, float* log_rest) {
    if (k <= 0 || k > V) throw_bad_input("top-k of %d from a vocabulary of %lld", k, static_cast<long long>(V));
    const double inv = 1.0 / static_cast<double>(tau), lse = logsumexp(z, V, inv);
    thread_local std::vector<int32_t> order;  // scratch kept per thread: distill-cache calls this once per position
    thread_local std::vector<char> in;
    order.resize(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    in.assign(static_cast<size_t>(V), 0);
    for (int i = 0; i < k; ++i) {
        ids[i] = order[static_cast<size_t>(i)];
        logp[i] = static_cast<float>(z[ids[i]] * inv - lse);
        in[static_cast<size_t>(ids[i])] = 1;
    }
    *log_rest = k == V ? -std::numeric_limits<float>::infinity() : static_cast<float>(rest_logsumexp(z, V, inv, in) - lse);
}

double divergence_row(const float* z_s, int64_t V, const int32_t* ids, const float* logp, int64_t k, float log_rest, const DistillLossConfig& c,
                      float weight, float* dz) {
    const double tau = c.temperature, inv = 1.0 / tau, beta = c.beta;
    const double lse = logsumexp(z_s, V, inv);
    const bool full = ids == nullptr;
    const bool has_rest = !full && k < V;
    // the student's bucket log-probabilities
    std::vector<double> lq(static_cast<size_t>(k + 1)), lp(static_cast<size_t>(k + 1)), g(static_cast<size_t>(k + 1), 0.0);
    std::vector<char> in;
    if (has_rest) in.assign(static_cast<size_t>(V), 0);
    for (int64_t b = 0; b < k; ++b) {
        const int64_t j = full ? b : ids[b];
        if (j < 0 || j >= V) throw_bad_input("a teacher token id %lld outside the vocabulary of %lld", static_cast<long long>(j), static_cast<long long>(V));
        lq[static_cast<size_t>(b)] = z_s[j] * inv - lse;
        lp[static_cast<size_t>(b)] = logp[b];
        if (has_rest) in[static_cast<size_t>(j)] = 1;
    }
    const int64_t nb = has_rest ? k + 1 : k;
    if (has_rest) {
        lq[static_cast<size_t>(k)] = rest_logsumexp(z_s, V, inv, in) - lse;
        lp[static_cast<size_t>(k)] = log_rest;
    }
    double D = 0, G = 0;
    double rest_ratio = 0;  // g_rest / q_rest, in a form that stays finite
    for (int64_t b = 0; b < nb; ++b) {
        const double lpb = lp[static_cast<size_t>(b)], lqb = lq[static_cast<size_t>(b)], p = std::exp(lpb), q = std::exp(lqb);
        double gb = 0, ratio = 0;
        switch (c.divergence) {
            case Divergence::ForwardKL:
                if (p > 0) D += p * (lpb - lqb);
                gb = -p;
                ratio = -std::exp(lpb - lqb);
                break;
            case Divergence::ReverseKL:
                if (q > 0) D += q * (lqb - lpb);
                gb = q > 0 ? q * (lqb - lpb + 1) : 0.0;
                ratio = lqb - lpb + 1;
                break;
            case Divergence::JSD: {
                const double m = beta * p + (1 - beta) * q, lm = std::log(m);
                if (p > 0) D += beta * p * (lpb - lm);
                if (q > 0) D += (1 - beta) * q * (lqb - lm);
                gb = q > 0 ? (1 - beta) * q * (lqb - lm) : 0.0;
                ratio = (1 - beta) * (lqb - lm);
                break;
            }
        }
        g[static_cast<size_t>(b)] = gb;
        G += gb;
        if (b == k) rest_ratio = ratio;
    }
    if (dz && weight != 0.0f) {
        const double s = static_cast<double>(weight) * tau;  // ∂(τ²·D)/∂z = τ · ∂D/∂u
        // every token: −q_j·G; then its bucket's share
        for (int64_t j = 0; j < V; ++j) {
            const double qj = std::exp(z_s[j] * inv - lse);
            double d = -qj * G;
            if (has_rest && !in[static_cast<size_t>(j)]) d += qj * rest_ratio;
            dz[j] += static_cast<float>(s * d);
        }
        for (int64_t b = 0; b < k; ++b) {
            const int64_t j = full ? b : ids[b];
            dz[j] += static_cast<float>(s * g[static_cast<size_t>(b)]);
        }
    }
    return D;
}

DistillLoss distill_batch(const float* zs, const int32_t* targets, int64_t N, int64_t V, const float* teacher_logits, const int32_t* ids,
                          const float* logp, const float* log_rest, int64_t k, const DistillLossConfig& c, float scale, float* dz,
                          ThreadPool* pool) {
    c.validate();
    DistillLoss r;
    for (int64_t n = 0; n < N; ++n) r.positions += targets[n] >= 0;
    if (r.positions == 0) throw_bad_input("the batch has no targets");
    const float w_div = scale * c.alpha / static_cast<float>(r.positions);  // divergence_row's gradient carries the τ²
    const float w_ce = scale * (1.0f - c.alpha) / static_cast<float>(r.positions);
    std::vector<double> div(static_cast<size_t>(N), 0.0), ce(static_cast<size_t>(N), 0.0);
    auto rows = [&](int64_t n0, int64_t n1) {
        std::vector<float> tlogp(teacher_logits ? static_cast<size_t>(V) : 0);
        for (int64_t n = n0; n < n1; ++n) {
            const float* z = zs + n * V;
            float* d = dz ? dz + n * V : nullptr;
            if (d) std::fill(d, d + V, 0.0f);
            if (targets[n] < 0) continue;
            if (teacher_logits) {  // the full teacher: its log-probabilities at τ, one bucket per token
                const float* t = teacher_logits + n * V;
                const double inv = 1.0 / static_cast<double>(c.temperature), lse = logsumexp(t, V, inv);
                for (int64_t j = 0; j < V; ++j) tlogp[static_cast<size_t>(j)] = static_cast<float>(t[j] * inv - lse);
                div[static_cast<size_t>(n)] = divergence_row(z, V, nullptr, tlogp.data(), V, 0.0f, c, w_div, d);
            } else {
                div[static_cast<size_t>(n)] = divergence_row(z, V, ids + n * k, logp + n * k, k, log_rest[n], c, w_div, d);
            }
            // the hard label at temperature 1: −log softmax(z)[t]; ∂/∂z = softmax(z) − onehot(t)
            const double lse1 = logsumexp(z, V, 1.0);
            ce[static_cast<size_t>(n)] = lse1 - z[targets[n]];
            if (d && w_ce != 0.0f) {
                for (int64_t j = 0; j < V; ++j) d[j] += static_cast<float>(w_ce * std::exp(z[j] - lse1));
                d[targets[n]] -= w_ce;
            }
        }
    };
    if (pool) pool->parallel_for(N, rows);
    else rows(0, N);
    for (int64_t n = 0; n < N; ++n)
        if (targets[n] >= 0) r.divergence += div[static_cast<size_t>(n)], r.ce += ce[static_cast<size_t>(n)];
    r.divergence /= static_cast<double>(r.positions);
    r.ce /= static_cast<double>(r.positions);
    r.loss = c.alpha * c.temperature * c.temperature * r.divergence + (1.0 - c.alpha) * r.ce;
    return r;
}

}  // namespace llmforge
