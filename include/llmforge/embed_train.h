// Contrastive training of embedding models (encoders such as BERT, or decoders with mean / last-token pooling):
// InfoNCE with in-batch negatives (van den Oord et al. 2018; Karpukhin et al. 2020's DPR; sentence-transformers'
// MultipleNegativesRankingLoss), optionally with hard negatives.
//
// A batch holds B (query, positive passage) pairs and K extra negative passages. Every text is embedded by the model
// (pooled as the model says, then L2-normalised), and query i is scored against every passage j of the batch — the B
// positives and the K negatives, M = B + K columns:
//     s_ij = (e(q_i) · e(d_j)) / τ,        loss = (1/B) Σ_i −log softmax_j(s_i)_i
// so each query's own positive must outscore the other queries' positives and the negatives.
//
//   TrainableModel m(load_model("bge-small.gguf"), pool);
//   ContrastiveBatch b = ...;                                  // token ids of queries, positives, negatives
//   ContrastiveResult r = contrastive_step(m, b, {0.05f});    // forward, loss, backward: gradients in m.grad()
//   AdamW::step(...)
#pragma once
#include <cstdint>
#include <vector>

#include "llmforge/model.h"
#include "llmforge/train.h"

namespace llmforge {

// Sentence embeddings e[b] [C] of B padded sequences' hidden states h [B·T, C] (lengths[b] real tokens each), pooled
// as `p` says — the mean over the real tokens (Mean, None), the first token (Cls), the last real token (Last) — and,
// with normalize, divided by their L2 norm. norms [B]: where to keep the pooled vectors' norms (for the backward pass).
void pool_sequences(Pooling p, const float* h, const int32_t* lengths, int64_t B, int64_t T, int64_t C, bool normalize, float* e, float* norms);
// Its backward pass: dh [B·T, C] (overwritten) from de [B, C], the embeddings e and the norms it kept.
void pool_sequences_backward(Pooling p, const float* de, const float* e, const float* norms, const int32_t* lengths, int64_t B, int64_t T,
                             int64_t C, bool normalize, float* dh);

struct InfoNce {
    double loss = 0;      // the mean over the B queries
    int64_t correct = 0;  // queries whose own positive scored highest
};
// InfoNCE of B queries q [B, C] against M ≥ B passages d [M, C] (passage i is query i's positive), temperature tau;
// dq [B, C] and dd [M, C] (null: not wanted) receive ∂loss/∂q and ∂loss/∂d (overwritten). Sums in double.
InfoNce info_nce(const float* q, const float* d, int64_t B, int64_t M, int64_t C, float tau, float* dq, float* dd);

struct ContrastiveBatch {
    std::vector<std::vector<int32_t>> queries, positives;  // B each: positives[i] answers queries[i]
    std::vector<std::vector<int32_t>> negatives;           // K extra passages (hard negatives), shared by all queries
};
struct ContrastiveOptions {
    float temperature = 0.05f;  // τ (sentence-transformers' default scale 20 = 1/0.05)
    bool normalize = true;      // cosine similarity (L2-normalised embeddings); false: dot products
    int32_t pad = 0;            // the token id written into the padding (never attended to: any valid id)
};
struct ContrastiveResult {
    InfoNce nce;
    int64_t tokens = 0;  // real tokens embedded
};
// One forward and backward pass of the InfoNCE loss on the batch: every text in one padded pass of the model (queries,
// then positives, then negatives), the gradients added into m.grad() (scaled by `scale`: 1/accumulation steps).
// With backward false only the loss is computed (evaluation).
ContrastiveResult contrastive_step(TrainableModel& m, const ContrastiveBatch& b, const ContrastiveOptions& o, bool backward = true,
                                   float scale = 1.0f);

// ---- cross-encoders (rerankers): the same objective with a pair's score in place of the similarity
// A reranker reads query and passage together, [CLS] q [SEP] d [SEP] (frame_pair, reranker.h), and scores the pair
// from its [CLS] state h: s = w_out · tanh(W_cls h + b_cls) + b_out. Query i is scored against every passage j of the
// batch (the B positives, then the K negatives):
//     s_ij = score(q_i, d_j),        loss = (1/B) Σ_i −log softmax_j(s_i)_i
// — InfoNCE with the pair's logit in place of the scaled cosine similarity (no temperature). That is B·M pairs; they
// run pair_batch at a time, so memory holds one chunk's activations whatever B·M is: with backward, first every chunk
// forward for the scores, then chunk by chunk (the last one's activations are still there) forward again and backward
// with its ∂loss/∂s — the same values, so the same gradients as one pass.
struct CrossEncoderOptions {
    int32_t cls = -1, sep = -1;  // the vocabulary's [CLS] and [SEP] (BOS and EOS)
    int64_t max_tokens = 512;    // a pair's tokens at most (the passage cut first, as the reranker cuts it)
    int64_t pair_batch = 64;     // pairs per forward pass
    int32_t pad = 0;             // the token id written into the padding
};
// The batch's texts are token ids without [CLS]/[SEP]. Gradients of every weight, the head's (cls, cls.output)
// included, are added into m.grad() (scaled by `scale`).
ContrastiveResult cross_encoder_step(TrainableModel& m, const ContrastiveBatch& b, const CrossEncoderOptions& o, bool backward = true,
                                     float scale = 1.0f);

}  // namespace llmforge
