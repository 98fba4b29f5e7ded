// Grounded answers: the prompt with numbered sources, the citations in an answer, snippets and relevance.
#include <algorithm>
#include <cmath>
#include <set>

#include "llmforge/rag.h"

namespace llmforge::rag {

const char* const kGroundedInstruction =
    "Answer the question using only the numbered sources. Cite the source of each statement as [n], the number of the "
    "source. If the sources do not contain the answer, say that they do not.";

std::string source_label(const Hit& h) {
    // the heading path when it already starts with the title
    if (h.heading.empty()) return h.title;
    if (h.title.empty() || h.heading.compare(0, h.title.size(), h.title) == 0) return h.heading;
    return h.title + " > " + h.heading;
}

std::string grounded_prompt(const std::string& question, const std::vector<Hit>& sources) {
    std::string s = "Sources:\n";
    for (size_t i = 0; i < sources.size(); ++i) {
        const Hit& h = sources[i];
        s += "\n[" + std::to_string(i + 1) + "] " + source_label(h) + "\n";
        std::string_view t = h.text;
        while (!t.empty() && (t.back() == '\n' || t.back() == ' ' || t.back() == '\r' || t.back() == '\t')) t.remove_suffix(1);
        s.append(t.data(), t.size());
        s += "\n";
    }
    return s + "\nQuestion: " + question;
}

namespace {
// Calls f(begin, end, numbers) for each citation mark "[n]", "[n, m]" … in a (end: one past its ']').
template <class F>
void each_mark(std::string_view a, F f) {
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] != '[') continue;
        // "[" number ((","|" "|", ") number)* "]"
        std::vector<long> nums;
        size_t j = i + 1;
        bool ok = false;
        for (;;) {
            while (j < a.size() && a[j] == ' ') ++j;
            size_t d = j;
            long v = 0;
            while (d < a.size() && a[d] >= '0' && a[d] <= '9' && d - j < 6) v = v * 10 + (a[d++] - '0');
            if (d == j) break;
            nums.push_back(v);
            j = d;
            while (j < a.size() && a[j] == ' ') ++j;
            if (j < a.size() && a[j] == ',') {
                ++j;
                continue;
            }
            ok = j < a.size() && a[j] == ']';
            break;
        }
        if (!ok) continue;
        f(i, j + 1, nums);
        i = j;
    }
}
}  // namespace

std::vector<int> citations(std::string_view a, size_t n_sources) {
    std::vector<int> out;
    std::set<int> seen;
    each_mark(a, [&](size_t, size_t, const std::vector<long>& nums) {
        for (long v : nums)
            if (v >= 1 && static_cast<size_t>(v) <= n_sources && seen.insert(static_cast<int>(v)).second) out.push_back(static_cast<int>(v));
    });
    return out;
}

std::string strip_citations(std::string_view a) {
    std::string out;
    size_t at = 0;
    each_mark(a, [&](size_t b, size_t e, const std::vector<long>&) {
        std::string_view keep = a.substr(at, b - at);
        while (!keep.empty() && keep.back() == ' ') keep.remove_suffix(1);
        out.append(keep.data(), keep.size());
        at = e;
    });
    out.append(a.data() + at, a.size() - at);
    return out;
}

std::string cite_answer(const std::string& answer, int n) {
    const std::string mark = " [" + std::to_string(n) + "]";
    std::string out;
    size_t i = 0;
    while (i < answer.size()) {
        size_t e = answer.find("\n\n", i);  // a paragraph ends at a blank line
        if (e == std::string::npos) e = answer.size();
        std::string_view p(answer.data() + i, e - i);
        size_t t = p.size();
        while (t > 0 && (p[t - 1] == ' ' || p[t - 1] == '\n' || p[t - 1] == '\r' || p[t - 1] == '\t')) --t;
        out.append(p.data(), t);
        if (t > 0) out += mark;
        out.append(p.data() + t, p.size() - t);
        // the blank line(s) that follow
        size_t k = e;
        while (k < answer.size() && answer[k] == '\n') ++k;
        out.append(answer, e, k - e);
        i = k;
    }
    return out;
}

std::string best_snippet(const Hit& h, const std::string& question, size_t max_bytes) {
    const std::string& t = h.text;
    std::vector<std::string> q = words(question);
    std::sort(q.begin(), q.end());
    q.erase(std::unique(q.begin(), q.end()), q.end());
    size_t from = 0;
    size_t best = 0;
    for (const auto& [b, e] : sentences(t)) {
        std::vector<std::string> w = words(std::string_view(t).substr(b, e - b));
        std::sort(w.begin(), w.end());
        w.erase(std::unique(w.begin(), w.end()), w.end());
        size_t shared = 0;
        for (const std::string& x : w) shared += std::binary_search(q.begin(), q.end(), x) ? 1 : 0;
        if (shared > best) {
            best = shared;
            from = b;
        }
    }
    return one_line(std::string_view(t).substr(from), max_bytes);
}

std::string one_line(std::string_view t, size_t max_bytes) {
    std::string s;  // whitespace runs become one space; whole characters only
    bool cut = false;
    for (size_t i = 0; i < t.size();) {
        const unsigned char c = static_cast<unsigned char>(t[i]);
        if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
            if (!s.empty() && s.back() != ' ') s += ' ';
            ++i;
            continue;
        }
        size_t n = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        n = std::min(n, t.size() - i);
        if (s.size() + n > max_bytes) {
            cut = true;
            break;
        }
        s.append(t.data() + i, n);
        i += n;
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    if (cut) s += "…";
    return s;
}

double lead(const std::vector<Hit>& ranking) {
    if (ranking.empty() || ranking[0].score == 0) return 0;
    for (size_t i = 1; i < ranking.size(); ++i)
        if (ranking[i].source != ranking[0].source) return (ranking[0].score - ranking[i].score) / std::fabs(ranking[0].score);
    return 1;
}

bool relevant(const Hit& h, const Relevance& r) {
    return (h.bm25_rank > 0 && h.bm25 >= r.min_bm25) || (h.dense_rank > 0 && h.similarity >= r.min_similarity);
}

}  // namespace llmforge::rag
