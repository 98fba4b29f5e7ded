// Questions and query–passage pairs from an index without labels: the inverse cloze task (rag.h).
#include <algorithm>
#include <random>

#include "llmforge/rag.h"

namespace llmforge::rag {

std::vector<ClozeQuestion> cloze_questions(const Index& index, int per_chunk, uint64_t seed, double keep_sentence) {
    std::vector<ClozeQuestion> out;
    if (per_chunk <= 0) return out;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (const Hit& h : index.all_chunks()) {
        const auto spans = sentences(h.text);
        if (spans.size() < 2) continue;
        std::vector<size_t> ok;
        for (size_t i = 0; i < spans.size(); ++i) {
            const size_t n = words(std::string_view(h.text).substr(spans[i].first, spans[i].second - spans[i].first)).size();
            if (n >= 4 && n <= 64) ok.push_back(i);
        }
        std::shuffle(ok.begin(), ok.end(), rng);
        if (static_cast<int>(ok.size()) > per_chunk) ok.resize(static_cast<size_t>(per_chunk));
        for (size_t i : ok) {
            const auto [b, e] = spans[i];
            ClozeQuestion q;
            q.query = one_line(std::string_view(h.text).substr(b, e - b));
            q.passage = h;
            if (u(rng) >= keep_sentence) q.passage.text = h.text.substr(0, b) + h.text.substr(e);
            out.push_back(std::move(q));
        }
    }
    return out;
}

std::vector<QueryPassage> inverse_cloze_pairs(const Index& index, int per_chunk, uint64_t seed, double keep_sentence) {
    std::vector<QueryPassage> out;
    for (ClozeQuestion& q : cloze_questions(index, per_chunk, seed, keep_sentence)) out.push_back({std::move(q.query), passage_text(q.passage)});
    return out;
}

}  // namespace llmforge::rag
