// Contrastive training of embedding models: pooling and its backward pass, InfoNCE, one training step (see
// embed_train.h). Shapes: S sequences of T tokens (padded), C = n_embd; B queries, M passages.
#include "llmforge/embed_train.h"

#include <algorithm>
#include <cmath>

#include "llmforge/error.h"
#include "llmforge/reranker.h"

namespace llmforge {

namespace {
// The rows of sequence b that its pooling reads, [first, first + count).
std::pair<int64_t, int64_t> pooled_rows(Pooling p, int32_t len) {
    switch (p) {
        case Pooling::Cls:
        case Pooling::Rank: return {0, 1};
        case Pooling::Last: return {len - 1, 1};
        case Pooling::Mean:
        case Pooling::None: break;
    }
    return {0, len};
}
}  // namespace

// u_b = (1/n) Σ_{t in the pooled rows} h[b, t];  e_b = u_b / |u_b| (normalize) or u_b
void pool_sequences(Pooling p, const float* h, const int32_t* lengths, int64_t B, int64_t T, int64_t C, bool normalize, float* e, float* norms) {
    std::vector<double> acc(static_cast<size_t>(C));
    for (int64_t b = 0; b < B; ++b) {
        const auto [first, count] = pooled_rows(p, lengths[b]);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t t = first; t < first + count; ++t)
            for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(c)] += h[(b * T + t) * C + c];
        double nn = 0;
        for (double& v : acc) {
            v /= static_cast<double>(count);
            nn += v * v;
        }
        const double norm = normalize ? std::sqrt(nn) : 1.0;
        norms[b] = static_cast<float>(norm);
        for (int64_t c = 0; c < C; ++c) e[b * C + c] = static_cast<float>(norm > 0 ? acc[static_cast<size_t>(c)] / norm : 0.0);
    }
}

// du = (de − e (e · de)) / |u| (normalised; else du = de);  dh[b, t] = du / n on the pooled rows, 0 elsewhere
void pool_sequences_backward(Pooling p, const float* de, const float* e, const float* norms, const int32_t* lengths, int64_t B, int64_t T,
                             int64_t C, bool normalize, float* dh) {
    std::fill(dh, dh + B * T * C, 0.0f);
    std::vector<double> du(static_cast<size_t>(C));
    for (int64_t b = 0; b < B; ++b) {
        const float* eb = e + b * C;
        const float* deb = de + b * C;
        double dot = 0;
        for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(eb[c]) * deb[c];
        for (int64_t c = 0; c < C; ++c)
            du[static_cast<size_t>(c)] = normalize ? (norms[b] > 0 ? (deb[c] - eb[c] * dot) / norms[b] : 0.0) : deb[c];
        const auto [first, count] = pooled_rows(p, lengths[b]);
        for (int64_t t = first; t < first + count; ++t)
            for (int64_t c = 0; c < C; ++c) dh[(b * T + t) * C + c] = static_cast<float>(du[static_cast<size_t>(c)] / static_cast<double>(count));
    }
}

// s_ij = q_i · d_j / τ;  p_ij = softmax_j(s_i);  loss = (1/B) Σ_i −log p_ii;  ∂loss/∂s_ij = (p_ij − δ_ij) / B;
// dq_i = Σ_j ∂s_ij d_j / τ;  dd_j = Σ_i ∂s_ij q_i / τ
InfoNce info_nce(const float* q, const float* d, int64_t B, int64_t M, int64_t C, float tau, float* dq, float* dd) {
    if (B < 1 || M < B) throw_bad_input("InfoNCE needs at least one query and a passage per query (%lld queries, %lld passages)",
                                        static_cast<long long>(B), static_cast<long long>(M));
    if (!(tau > 0) || !std::isfinite(tau)) throw_bad_input("the temperature must be a positive number, not %g", static_cast<double>(tau));
    InfoNce r;
    std::vector<double> g(static_cast<size_t>(B * M));  // ∂loss/∂s
    for (int64_t i = 0; i < B; ++i) {
        double* s = g.data() + i * M;
        double mx = -INFINITY;
        for (int64_t j = 0; j < M; ++j) {
            double dot = 0;
            for (int64_t c = 0; c < C; ++c) dot += static_cast<double>(q[i * C + c]) * d[j * C + c];
            s[j] = dot / tau;
            mx = std::max(mx, s[j]);
        }
        int64_t best = 0;
        for (int64_t j = 1; j < M; ++j)
            if (s[j] > s[best]) best = j;
        r.correct += best == i;
        double sum = 0;
        for (int64_t j = 0; j < M; ++j) sum += std::exp(s[j] - mx);
        r.loss += std::log(sum) - (s[i] - mx);
        for (int64_t j = 0; j < M; ++j) s[j] = (std::exp(s[j] - mx) / sum - (j == i ? 1.0 : 0.0)) / static_cast<double>(B);
    }
    r.loss /= static_cast<double>(B);
    std::vector<double> acc(static_cast<size_t>(C));
    if (dq)
        for (int64_t i = 0; i < B; ++i) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t j = 0; j < M; ++j)
                for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(c)] += g[static_cast<size_t>(i * M + j)] * d[j * C + c];
            for (int64_t c = 0; c < C; ++c) dq[i * C + c] = static_cast<float>(acc[static_cast<size_t>(c)] / tau);
        }
    if (dd)
        for (int64_t j = 0; j < M; ++j) {
            std::fill(acc.begin(), acc.end(), 0.0);
            for (int64_t i = 0; i < B; ++i)
                for (int64_t c = 0; c < C; ++c) acc[static_cast<size_t>(c)] += g[static_cast<size_t>(i * M + j)] * q[i * C + c];
            for (int64_t c = 0; c < C; ++c) dd[j * C + c] = static_cast<float>(acc[static_cast<size_t>(c)] / tau);
        }
    return r;
}

ContrastiveResult contrastive_step(TrainableModel& m, const ContrastiveBatch& b, const ContrastiveOptions& o, bool backward, float scale) {
    const int64_t B = static_cast<int64_t>(b.queries.size());
    if (B == 0 || b.positives.size() != b.queries.size())
        throw_bad_input("a contrastive batch needs as many positives as queries, at least one (%zu queries, %zu positives)", b.queries.size(),
                        b.positives.size());
    const ModelConfig& cfg = m.config();
    // every text of the batch as one padded pass: queries, positives, negatives
    std::vector<const std::vector<int32_t>*> seqs;
    for (const auto& s : b.queries) seqs.push_back(&s);
    for (const auto& s : b.positives) seqs.push_back(&s);
    for (const auto& s : b.negatives) seqs.push_back(&s);
    const int64_t S = static_cast<int64_t>(seqs.size()), M = S - B, C = cfg.n_embd;
    int64_t T = 0;
    ContrastiveResult r;
    for (const auto* s : seqs) {
        if (s->empty()) throw_bad_input("a text of the batch has no tokens");
        T = std::max<int64_t>(T, static_cast<int64_t>(s->size()));
        r.tokens += static_cast<int64_t>(s->size());
    }
    std::vector<int32_t> ids(static_cast<size_t>(S * T), o.pad), lengths(static_cast<size_t>(S));
    for (int64_t i = 0; i < S; ++i) {
        std::copy(seqs[static_cast<size_t>(i)]->begin(), seqs[static_cast<size_t>(i)]->end(), ids.begin() + i * T);
        lengths[static_cast<size_t>(i)] = static_cast<int32_t>(seqs[static_cast<size_t>(i)]->size());
    }
    const float* h = m.forward_hidden(ids.data(), lengths.data(), S, T);
    std::vector<float> e(static_cast<size_t>(S * C)), norms(static_cast<size_t>(S));
    pool_sequences(cfg.pooling, h, lengths.data(), S, T, C, o.normalize, e.data(), norms.data());
    std::vector<float> de(backward ? static_cast<size_t>(S * C) : 0);
    r.nce = info_nce(e.data(), e.data() + B * C, B, M, C, o.temperature, backward ? de.data() : nullptr, backward ? de.data() + B * C : nullptr);
    if (!backward) return r;
    if (scale != 1.0f)
        for (float& v : de) v *= scale;
    std::vector<float> dh(static_cast<size_t>(S * T * C));
    pool_sequences_backward(cfg.pooling, de.data(), e.data(), norms.data(), lengths.data(), S, T, C, o.normalize, dh.data());
    m.backward_hidden(dh.data());
    return r;
}

// ---- cross-encoders ----------------------------------------------------------------------------------------------------

ContrastiveResult cross_encoder_step(TrainableModel& m, const ContrastiveBatch& b, const CrossEncoderOptions& o, bool backward, float scale) {
    const int64_t B = static_cast<int64_t>(b.queries.size()), M = static_cast<int64_t>(b.positives.size() + b.negatives.size());
    if (B == 0 || b.positives.size() != b.queries.size())
        throw_bad_input("a contrastive batch needs as many positives as queries, at least one (%zu queries, %zu positives)", b.queries.size(),
                        b.positives.size());
    const ModelConfig& cfg = m.config();
    if (!cfg.encoder || cfg.pooling != Pooling::Rank) throw_bad_input("cross-encoder training needs a reranker (pooling rank)");
    if (o.cls < 0 || o.sep < 0) throw_bad_input("the reranker's vocabulary has no [CLS]/[SEP] (BOS/EOS) tokens to frame a pair with");
    if (o.pair_batch < 1) throw_bad_input("pairs per pass must be at least 1");
    const int64_t C = cfg.n_embd;
    // the head's parameters: W_cls [C, C], b_cls [C], w_out [1, C], b_out [1]
    size_t off[4] = {0, 0, 0, 0};
    int found = 0;
    const char* names[4] = {"cls.weight", "cls.bias", "cls.output.weight", "cls.output.bias"};
    for (const auto& p : m.params())
        for (int k = 0; k < 4; ++k)
            if (p.name == names[k]) off[k] = p.offset, ++found;
    if (found != 4) throw_runtime("cross-encoder training: the reranker's head is not among the trainable parameters");
    auto passage = [&](int64_t j) -> const std::vector<int32_t>& {
        return j < B ? b.positives[static_cast<size_t>(j)] : b.negatives[static_cast<size_t>(j - B)];
    };
    // the pairs, row-major (i, j)
    const int64_t P = B * M;
    std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> pairs(static_cast<size_t>(P));
    ContrastiveResult r;
    for (int64_t i = 0; i < B; ++i)
        for (int64_t j = 0; j < M; ++j) {
            if (b.queries[static_cast<size_t>(i)].empty() || passage(j).empty()) throw_bad_input("a text of the batch has no tokens");
            auto& pr = pairs[static_cast<size_t>(i * M + j)];
            pr = frame_pair(o.cls, o.sep, b.queries[static_cast<size_t>(i)], passage(j), o.max_tokens);
            r.tokens += static_cast<int64_t>(pr.first.size());
        }
    const int64_t chunks = (P + o.pair_batch - 1) / o.pair_batch;
    std::vector<int32_t> ids, types, lengths;
    std::vector<double> t_act;  // tanh(W_cls h + b_cls) of each pair of the chunk, [S, C]
    std::vector<double> score(static_cast<size_t>(P));
    // chunk k: the padded pass, then the head on each pair's [CLS] row; h: the hidden states [S·T, C]
    auto run = [&](int64_t k, int64_t& S, int64_t& T) -> const float* {
        const int64_t p0 = k * o.pair_batch, p1 = std::min(P, p0 + o.pair_batch);
        S = p1 - p0;
        T = 0;
        for (int64_t p = p0; p < p1; ++p) T = std::max<int64_t>(T, static_cast<int64_t>(pairs[static_cast<size_t>(p)].first.size()));
        ids.assign(static_cast<size_t>(S * T), o.pad);
        types.assign(static_cast<size_t>(S * T), 0);
        lengths.resize(static_cast<size_t>(S));
        for (int64_t s = 0; s < S; ++s) {
            const auto& [pi, pt] = pairs[static_cast<size_t>(p0 + s)];
            std::copy(pi.begin(), pi.end(), ids.begin() + s * T);
            std::copy(pt.begin(), pt.end(), types.begin() + s * T);
            lengths[static_cast<size_t>(s)] = static_cast<int32_t>(pi.size());
        }
        const float* h = m.forward_hidden(ids.data(), lengths.data(), S, T, types.data());
        const float* W = m.data() + off[0];
        const float* bW = m.data() + off[1];
        const float* w_out = m.data() + off[2];
        const float b_out = m.data()[off[3]];
        t_act.assign(static_cast<size_t>(S * C), 0.0);
        for (int64_t s = 0; s < S; ++s) {
            const float* h0 = h + s * T * C;  // the [CLS] row
            double sc = b_out;
            for (int64_t c = 0; c < C; ++c) {
                double a = bW[c];
                for (int64_t e = 0; e < C; ++e) a += static_cast<double>(W[c * C + e]) * h0[e];
                const double t = std::tanh(a);
                t_act[static_cast<size_t>(s * C + c)] = t;
                sc += static_cast<double>(w_out[c]) * t;
            }
            score[static_cast<size_t>(p0 + s)] = sc;
        }
        return h;
    };
    int64_t S = 0, T = 0;
    const float* h = nullptr;
    for (int64_t k = 0; k < chunks; ++k) h = run(k, S, T);
    // the loss: softmax over each query's row of scores; g = ∂loss/∂s = (softmax − onehot) / B
    std::vector<double> g(static_cast<size_t>(P));
    for (int64_t i = 0; i < B; ++i) {
        const double* s = score.data() + i * M;
        const double mx = *std::max_element(s, s + M);
        r.nce.correct += std::max_element(s, s + M) - s == i;
        double sum = 0;
        for (int64_t j = 0; j < M; ++j) sum += std::exp(s[j] - mx);
        r.nce.loss += std::log(sum) - (s[i] - mx);
        for (int64_t j = 0; j < M; ++j) g[static_cast<size_t>(i * M + j)] = (std::exp(s[j] - mx) / sum - (j == i ? 1.0 : 0.0)) / static_cast<double>(B);
    }
    r.nce.loss /= static_cast<double>(B);
    if (!backward) return r;
    // backward, the last chunk first (its activations are the ones kept); per pair with γ = scale · g:
    //   db_out += γ;  dw_out += γ t;  da = γ w_out ⊙ (1 − t²);  dW_cls += da hᵀ;  db_cls += da;  dh[CLS] = W_clsᵀ da
    std::vector<float> dh;
    std::vector<double> da(static_cast<size_t>(C)), dh0(static_cast<size_t>(C));
    for (int64_t k = chunks - 1; k >= 0; --k) {
        if (k != chunks - 1) h = run(k, S, T);
        const int64_t p0 = k * o.pair_batch;
        const float* W = m.data() + off[0];
        const float* w_out = m.data() + off[2];
        float* gW = m.grad() + off[0];
        float* gb = m.grad() + off[1];
        float* gw_out = m.grad() + off[2];
        float* gb_out = m.grad() + off[3];
        dh.assign(static_cast<size_t>(S * T * C), 0.0f);
        for (int64_t s = 0; s < S; ++s) {
            const double gamma = g[static_cast<size_t>(p0 + s)] * scale;
            const float* h0 = h + s * T * C;
            *gb_out += static_cast<float>(gamma);
            for (int64_t c = 0; c < C; ++c) {
                const double t = t_act[static_cast<size_t>(s * C + c)];
                gw_out[c] += static_cast<float>(gamma * t);
                da[static_cast<size_t>(c)] = gamma * w_out[c] * (1.0 - t * t);
                gb[c] += static_cast<float>(da[static_cast<size_t>(c)]);
            }
            std::fill(dh0.begin(), dh0.end(), 0.0);
            for (int64_t c = 0; c < C; ++c) {
                const double dac = da[static_cast<size_t>(c)];
                for (int64_t e = 0; e < C; ++e) {
                    gW[c * C + e] += static_cast<float>(dac * h0[e]);
                    dh0[static_cast<size_t>(e)] += static_cast<double>(W[c * C + e]) * dac;
                }
            }
            for (int64_t e = 0; e < C; ++e) dh[static_cast<size_t>(s * T * C + e)] = static_cast<float>(dh0[static_cast<size_t>(e)]);
        }
        m.backward_hidden(dh.data());
    }
    return r;
}

}  // namespace llmforge
