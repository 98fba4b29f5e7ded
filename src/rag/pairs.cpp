// Questions and query–passage pairs from an index without labels: the inverse cloze task, headings (rag.h).
#include <algorithm>
#include <map>
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

std::vector<QueryPassage> heading_pairs(const Index& index, uint64_t seed) {
    auto last_part = [](const std::string& path) {  // rag index joins a path's headings with " > "
        const size_t cut = path.rfind(" > ");
        return one_line(cut == std::string::npos ? path : path.substr(cut + 3));
    };
    std::vector<std::string> paths;                      // in the index's order
    std::map<std::string, std::vector<std::string>> texts;  // a path's chunks
    std::map<std::string, int> ending;                     // how many paths end in a last part
    for (const Hit& h : index.all_chunks()) {
        if (h.heading.empty()) continue;
        auto [it, fresh] = texts.try_emplace(h.heading);
        it->second.push_back(h.text);
        if (fresh) {
            paths.push_back(h.heading);
            ++ending[last_part(h.heading)];
        }
    }
    std::vector<QueryPassage> out;
    std::mt19937_64 rng(seed);
    for (const std::string& path : paths) {
        std::string query = last_part(path);
        if (ending[query] != 1 || words(query).size() < 2) continue;
        const std::vector<std::string>& t = texts[path];
        const size_t pick = std::uniform_int_distribution<size_t>(0, t.size() - 1)(rng);
        out.push_back({std::move(query), t[pick]});
    }
    return out;
}

}  // namespace llmforge::rag
