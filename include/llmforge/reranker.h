// Relevance scores of (query, passage) pairs by a cross-encoder (a reranker: BERT with a classification head,
// sentence-transformers' CrossEncoder / BertForSequenceClassification with one label, GGUF pooling type "rank").
//
//   Reranker r(model, pool);
//   float s = r.score("how do I read a file?", passage);   // higher: more relevant
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/threadpool.h"
#include "llmforge/model.h"

namespace llmforge {

class Transformer;

// A pair framed BERT's way: [CLS] query [SEP] passage [SEP], segments 0 up to the first [SEP] and 1 after it; the
// passage cut to fit max_tokens, then the query too when it alone takes more than half. Returns (ids, types). (The
// reranker's framing, and its trainer's: embed train on a reranker.)
std::pair<std::vector<int32_t>, std::vector<int32_t>> frame_pair(int32_t cls, int32_t sep, std::vector<int32_t> query, std::vector<int32_t> passage,
                                                                 int64_t max_tokens);

class Reranker {
public:
    // model: an encoder whose pooling is Rank (its head: cls [C, C] + bias, then cls.output [1, C] + bias); max_tokens:
    // the longest pair (0: the model's context).
    Reranker(const Model& model, ThreadPool& pool, int64_t max_tokens = 0);
    ~Reranker();
    Reranker(const Reranker&) = delete;
    Reranker& operator=(const Reranker&) = delete;
    // A pair as the model reads it, BERT's way: [CLS] query [SEP] passage [SEP], segments 0 up to the first [SEP] and 1
    // after it. The passage is cut to fit max_tokens (then the query, if it alone is too long). A bad-input Error for
    // invalid UTF-8.
    std::pair<std::vector<int32_t>, std::vector<int32_t>> pair_tokens(const std::string& query, const std::string& passage) const;
    // The same for one query with many passages (the query tokenised once).
    std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> pair_tokens(const std::string& query,
                                                                                   const std::vector<std::string>& passages) const;
    // The relevance score (the head's output, a logit: higher is more relevant).
    float score(const std::string& query, const std::string& passage);
    float score_tokens(const std::vector<int32_t>& ids, const std::vector<int32_t>& types);

private:
    const Model& model_;
    int64_t max_tokens_;
    std::unique_ptr<Transformer> tf_;
    std::vector<float> w_cls_, b_cls_, w_out_;
    float b_out_ = 0;
};

}  // namespace llmforge
