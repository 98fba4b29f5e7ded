// Sentence embeddings of texts with one model, as retrieval and `embed train` make them: the text's tokens cut to fit
// (the special tokens the vocabulary adds kept — BERT's [CLS] … [SEP]), one pass, pooled as the model says (the mean,
// [CLS] or the last token), L2-normalised.
//
//   Embedder e(model, pool);                 // an encoder (BERT family) or a decoder
//   std::vector<float> v = e.embed("how do I read a file?");
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "llmforge/model.h"

namespace llmforge {

class Transformer;

// A text's tokens for embedding: the text's own tokens cut so that, with the special tokens the vocabulary adds, there
// are at most max_tokens. A bad-input Error for invalid UTF-8 or a text without tokens.
std::vector<int32_t> embedding_tokens(const Vocab& v, const std::string& text, int64_t max_tokens);

class Embedder {
public:
    // max_tokens: the longest input (0: the model's context); longer texts are cut.
    Embedder(const Model& model, ThreadPool& pool, int64_t max_tokens = 0);
    ~Embedder();
    Embedder(const Embedder&) = delete;
    Embedder& operator=(const Embedder&) = delete;
    std::vector<float> embed(const std::string& text);
    std::vector<float> embed_tokens(const std::vector<int32_t>& ids);
    std::vector<int32_t> tokens(const std::string& text) const { return embedding_tokens(*model_.vocab, text, max_tokens_); }
    int64_t dim() const { return model_.config.n_embd; }
    int64_t max_tokens() const { return max_tokens_; }

private:
    const Model& model_;
    int64_t max_tokens_;
    std::unique_ptr<Transformer> tf_;
};

}  // namespace llmforge
