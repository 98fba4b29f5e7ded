// Cross-encoder relevance scores (reranker.h).
#include "llmforge/reranker.h"

#include <algorithm>
#include <cmath>

#include "llmforge/dtype.h"
#include "llmforge/error.h"
#include "llmforge/transformer.h"
#include "llmforge/utf8.h"

namespace llmforge {

namespace {
std::vector<float> f32_of(const Model& m, const std::string& name, size_t n) {
    const Tensor& t = m.get(name);
    if (t.dtype != DType::F32 && t.dtype != DType::F16 && t.dtype != DType::BF16)
        throw_bad_input("'%s': the reranker's head tensor '%s' is %s; f32, f16 or bf16 are supported", m.path.c_str(), name.c_str(), dtype_name(t.dtype));
    std::vector<float> v(n);
    convert_to_f32(t.dtype, t.data, v.data(), n);
    return v;
}
}  // namespace

std::pair<std::vector<int32_t>, std::vector<int32_t>> frame_pair(int32_t cls, int32_t sep, std::vector<int32_t> q, std::vector<int32_t> p,
                                                                 int64_t max_tokens) {
    const int64_t room = max_tokens - 3;  // [CLS] q [SEP] p [SEP]
    if (room < 2) throw_bad_input("the reranker's context (%lld tokens) is too small for a pair", static_cast<long long>(max_tokens));
    if (static_cast<int64_t>(q.size()) > room / 2 && static_cast<int64_t>(q.size() + p.size()) > room)
        q.resize(static_cast<size_t>(std::max<int64_t>(room / 2, room - static_cast<int64_t>(p.size()))));
    if (static_cast<int64_t>(q.size() + p.size()) > room) p.resize(static_cast<size_t>(room - static_cast<int64_t>(q.size())));
    std::vector<int32_t> ids, types;
    ids.push_back(cls);
    ids.insert(ids.end(), q.begin(), q.end());
    ids.push_back(sep);
    types.assign(ids.size(), 0);
    ids.insert(ids.end(), p.begin(), p.end());
    ids.push_back(sep);
    types.resize(ids.size(), 1);
    return {ids, types};
}

Reranker::Reranker(const Model& model, ThreadPool& pool, int64_t max_tokens)
    : model_(model), max_tokens_(max_tokens > 0 ? std::min(max_tokens, model.config.n_ctx) : model.config.n_ctx) {
    const ModelConfig& c = model.config;
    if (!c.encoder || c.pooling != Pooling::Rank)
        throw_bad_input("'%s' is not a reranker (a cross-encoder with a classification head: GGUF pooling type rank, or "
                        "BertForSequenceClassification with one label)", model.path.c_str());
    if (!model.vocab) throw_bad_input("'%s' has no tokenizer", model.path.c_str());
    const size_t C = static_cast<size_t>(c.n_embd);
    w_cls_ = f32_of(model, "cls.weight", C * C);
    b_cls_ = f32_of(model, "cls.bias", C);
    w_out_ = f32_of(model, "cls.output.weight", C);
    b_out_ = f32_of(model, "cls.output.bias", 1)[0];
    // an f32 cache (exact) and one pass per pair: bidirectional attention needs the whole pair at once
    tf_ = std::make_unique<Transformer>(model, pool, max_tokens_, max_tokens_, DType::F32, 1, Numerics::Fast);
}

Reranker::~Reranker() = default;

std::pair<std::vector<int32_t>, std::vector<int32_t>> Reranker::pair_tokens(const std::string& query, const std::string& passage) const {
    return pair_tokens(query, std::vector<std::string>{passage}).front();
}

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> Reranker::pair_tokens(const std::string& query,
                                                                                         const std::vector<std::string>& passages) const {
    std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
    if (passages.empty()) return out;
    if (!utf8_valid(query)) throw_bad_input("a text to rerank is not valid UTF-8");
    const Vocab& v = *model_.vocab;
    const int32_t cls = v.bos, sep = v.eos;  // a BERT vocabulary: [CLS] and [SEP]
    if (cls < 0 || sep < 0) throw_bad_input("%s: the vocabulary has no [CLS]/[SEP] (BOS/EOS) tokens to frame a pair with", model_.path.c_str());
    const std::vector<int32_t> q = v.encode(query, false);  // once for all the passages
    for (const std::string& p : passages) {
        if (!utf8_valid(p)) throw_bad_input("a text to rerank is not valid UTF-8");
        out.push_back(frame_pair(cls, sep, q, v.encode(p, false), max_tokens_));
    }
    return out;
}

float Reranker::score_tokens(const std::vector<int32_t>& ids, const std::vector<int32_t>& types) {
    if (ids.empty() || ids.size() != types.size()) throw_bad_input("a pair to rerank needs as many token types as tokens");
    if (static_cast<int64_t>(ids.size()) > max_tokens_)
        throw_bad_input("%zu tokens to rerank; at most %lld", ids.size(), static_cast<long long>(max_tokens_));
    tf_->reset();
    const std::vector<float>& h = tf_->embed(ids.data(), types.data(), static_cast<int64_t>(ids.size()));
    // [CLS]'s state → tanh(W_cls h + b_cls) → w_out · · + b_out
    const size_t C = static_cast<size_t>(model_.config.n_embd);
    double s = b_out_;
    for (size_t i = 0; i < C; ++i) {
        double a = b_cls_[i];
        for (size_t j = 0; j < C; ++j) a += static_cast<double>(w_cls_[i * C + j]) * h[j];
        s += static_cast<double>(w_out_[i]) * std::tanh(a);
    }
    return static_cast<float>(s);
}

float Reranker::score(const std::string& query, const std::string& passage) {
    const auto [ids, types] = pair_tokens(query, passage);
    return score_tokens(ids, types);
}

}  // namespace llmforge
