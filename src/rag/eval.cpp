// Retrieval quality: recall@k, MRR@10 and nDCG@10 at the level of documents, with bootstrap intervals over the
// questions.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/progress.h"
#include "llmforge/error.h"
#include "llmforge/rag.h"

namespace llmforge::rag {

std::vector<QaItem> read_qa(const std::string& path) {
    std::ifstream f(path);
    if (!f) throw_bad_input("cannot open '%s'", path.c_str());
    std::vector<QaItem> out;
    std::string line;
    for (size_t no = 1; std::getline(f, line); ++no) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const std::exception&) {
            throw_bad_input("%s:%zu: not a JSON line", path.c_str(), no);
        }
        QaItem q;
        if (!j.is_object() || !j.contains("question") || !j["question"].is_string())
            throw_bad_input("%s:%zu: no string field 'question'", path.c_str(), no);
        q.question = j["question"].get<std::string>();
        const nlohmann::json g = j.value("gold", nlohmann::json());
        if (g.is_string()) q.gold.push_back(g.get<std::string>());
        else if (g.is_array())
            for (const auto& x : g)
                if (x.is_string()) q.gold.push_back(x.get<std::string>());
        if (q.gold.empty()) throw_bad_input("%s:%zu: no gold documents ('gold': a source or a list of them)", path.c_str(), no);
        if (j.contains("answer")) {
            if (!j["answer"].is_string()) throw_bad_input("%s:%zu: 'answer' must be a string", path.c_str(), no);
            q.answer = j["answer"].get<std::string>();
        }
        out.push_back(std::move(q));
    }
    if (out.empty()) throw_bad_input("'%s' holds no questions", path.c_str());
    return out;
}

double recall_at(const std::vector<int>& ranks, size_t n_gold, int k) {
    if (n_gold == 0) return 0;
    size_t hit = 0;
    for (int r : ranks) hit += r <= k;
    return static_cast<double>(hit) / static_cast<double>(n_gold);
}

double reciprocal_rank(const std::vector<int>& ranks, int cutoff) {
    int best = 0;
    for (int r : ranks)
        if (r <= cutoff && (best == 0 || r < best)) best = r;
    return best ? 1.0 / best : 0.0;
}

double ndcg_at(const std::vector<int>& ranks, size_t n_gold, int cutoff) {
    double dcg = 0, ideal = 0;
    for (int r : ranks)
        if (r <= cutoff) dcg += 1.0 / std::log2(r + 1.0);
    for (size_t i = 1; i <= std::min<size_t>(n_gold, static_cast<size_t>(cutoff)); ++i) ideal += 1.0 / std::log2(static_cast<double>(i) + 1.0);
    return ideal > 0 ? dcg / ideal : 0.0;
}

Estimate bootstrap_mean(const std::vector<double>& v, int resamples, uint64_t seed) {
    Estimate e;
    if (v.empty()) return e;
    double s = 0;
    for (double x : v) s += x;
    e.mean = e.lo = e.hi = s / static_cast<double>(v.size());
    if (resamples <= 0) return e;
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, v.size() - 1);
    std::vector<double> means(static_cast<size_t>(resamples));
    for (double& m : means) {
        double t = 0;
        for (size_t i = 0; i < v.size(); ++i) t += v[pick(rng)];
        m = t / static_cast<double>(v.size());
    }
    std::sort(means.begin(), means.end());
    auto at = [&](double q) { return means[std::min(means.size() - 1, static_cast<size_t>(q * static_cast<double>(means.size())))]; };
    e.lo = at(0.025);
    e.hi = at(0.975);
    return e;
}

Estimate bootstrap_ratio(const std::vector<double>& num, const std::vector<double>& den, int resamples, uint64_t seed) {
    Estimate e;
    double n = 0, d = 0;
    for (size_t i = 0; i < num.size(); ++i) {
        n += num[i];
        d += den[i];
    }
    e.mean = e.lo = e.hi = d > 0 ? n / d : 0.0;
    if (resamples <= 0 || num.empty()) return e;
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, num.size() - 1);
    std::vector<double> r;
    for (int k = 0; k < resamples; ++k) {
        double a = 0, b = 0;
        for (size_t i = 0; i < num.size(); ++i) {
            const size_t j = pick(rng);
            a += num[j];
            b += den[j];
        }
        if (b > 0) r.push_back(a / b);  // a resample without a denominator has no ratio
    }
    if (r.empty()) return e;
    std::sort(r.begin(), r.end());
    auto at = [&](double q) { return r[std::min(r.size() - 1, static_cast<size_t>(q * static_cast<double>(r.size())))]; };
    e.lo = at(0.025);
    e.hi = at(0.975);
    return e;
}

bool source_matches(const std::string& source, const std::string& gold) {
    if (source == gold) return true;
    return source.size() > gold.size() && source.compare(source.size() - gold.size(), gold.size(), gold) == 0 &&
           source[source.size() - gold.size() - 1] == '/';
}

RetrievalEval evaluate_retrieval(const Index& index, const std::vector<QaItem>& qa, const EvalOptions& o) {
    RetrievalEval r;
    r.k = o.k;
    const int depth = std::max(o.k, 10);
    QueryOptions qo = o.query;
    qo.k = depth * 8;  // chunks, enough for `depth` distinct documents in all but pathological cases
    std::vector<double> rec, rr, nd;
    Progress progress("evaluating", static_cast<double>(qa.size()), "questions", o.progress);
    for (const QaItem& q : qa) {
        if (o.stop && o.stop->load()) throw_runtime("rag eval: interrupted");
        std::vector<std::string> docs;  // distinct documents in rank order
        for (const Hit& h : index.query(q.question, qo)) {
            if (std::find(docs.begin(), docs.end(), h.source) == docs.end()) docs.push_back(h.source);
            if (static_cast<int>(docs.size()) == depth) break;
        }
        std::vector<int> ranks;
        for (size_t i = 0; i < docs.size(); ++i)
            for (const std::string& g : q.gold)
                if (source_matches(docs[i], g)) {
                    ranks.push_back(static_cast<int>(i + 1));
                    break;
                }
        rec.push_back(recall_at(ranks, q.gold.size(), o.k));
        rr.push_back(reciprocal_rank(ranks));
        nd.push_back(ndcg_at(ranks, q.gold.size()));
        r.ranks.push_back(std::move(ranks));
        progress.add(1);
    }
    progress.finish();
    r.questions = qa.size();
    r.recall = bootstrap_mean(rec, o.bootstrap, o.seed);
    r.mrr = bootstrap_mean(rr, o.bootstrap, o.seed + 1);
    r.rr = rr;
    r.ndcg = bootstrap_mean(nd, o.bootstrap, o.seed + 2);
    return r;
}

}  // namespace llmforge::rag
