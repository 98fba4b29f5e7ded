// Sentence embeddings of texts (embedder.h).
#include "llmforge/embedder.h"

#include <algorithm>

#include "llmforge/error.h"
#include "llmforge/transformer.h"
#include "llmforge/utf8.h"

namespace llmforge {

std::vector<int32_t> embedding_tokens(const Vocab& v, const std::string& text, int64_t max_tokens) {
    if (!utf8_valid(text)) throw_bad_input("a text to embed is not valid UTF-8");
    const bool bos = v.add_bos && v.bos >= 0, eos = v.add_eos && v.eos >= 0;
    std::vector<int32_t> body = v.encode(text, false);
    const int64_t room = std::max<int64_t>(1, max_tokens - (bos ? 1 : 0) - (eos ? 1 : 0));
    if (static_cast<int64_t>(body.size()) > room) body.resize(static_cast<size_t>(room));
    std::vector<int32_t> ids;
    if (bos) ids.push_back(v.bos);
    ids.insert(ids.end(), body.begin(), body.end());
    if (eos) ids.push_back(v.eos);
    if (body.empty() && ids.empty()) throw_bad_input("a text to embed has no tokens");
    return ids;
}

Embedder::Embedder(const Model& model, ThreadPool& pool, int64_t max_tokens)
    : model_(model), max_tokens_(max_tokens > 0 ? std::min(max_tokens, model.config.n_ctx) : model.config.n_ctx) {
    if (!model.vocab) throw_bad_input("'%s' has no tokenizer to embed texts with", model.path.c_str());
    if (model.config.pooling == Pooling::Rank)
        throw_bad_input("'%s' is a reranker (a cross-encoder that scores a query with a passage), not an embedding model", model.path.c_str());
    // an f32 cache (exact) and one pass per text: bidirectional attention needs the whole text at once
    tf_ = std::make_unique<Transformer>(model, pool, max_tokens_, max_tokens_, DType::F32, 1, Numerics::Fast);
}

Embedder::~Embedder() = default;

std::vector<float> Embedder::embed_tokens(const std::vector<int32_t>& ids) {
    if (ids.empty()) throw_bad_input("nothing to embed: no tokens");
    if (static_cast<int64_t>(ids.size()) > max_tokens_)
        throw_bad_input("%zu tokens to embed; at most %lld", ids.size(), static_cast<long long>(max_tokens_));
    tf_->reset();
    const std::vector<float>& h = tf_->embed(ids.data(), static_cast<int64_t>(ids.size()));
    return pool_embedding(model_.config, h.data(), static_cast<int64_t>(ids.size()), true);
}

std::vector<float> Embedder::embed(const std::string& text) { return embed_tokens(tokens(text)); }

}  // namespace llmforge
