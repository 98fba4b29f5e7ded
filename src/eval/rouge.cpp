// ROUGE (Lin, 2004) with the definitions of Google's rouge-score package, and the Porter stemmer it uses.
//
//   ROUGE-N:  P = |matched n-grams| / |prediction n-grams|,  R = |matched n-grams| / |reference n-grams|
//   ROUGE-L:  P = LCS / |prediction|,  R = LCS / |reference|             (LCS: longest common subsequence)
//   ROUGE-Lsum: summary-level LCS (the union of each reference sentence's LCS with every predicted sentence,
//             each token counted at most as often as it occurs on both sides)
//   F = 2PR / (P + R)
#include <algorithm>
#include <set>
#include <unordered_map>

#include "llmforge/error.h"
#include "llmforge/textmetrics.h"

namespace llmforge::metrics {

// ---- Porter stemmer (M. F. Porter, "An algorithm for suffix stripping", 1980), with NLTK's extensions -------------

namespace {

class Porter {
public:
    std::string stem(const std::string& word) const {
        static const std::unordered_map<std::string, std::string> irregular = {
            {"sky", "sky"}, {"skies", "sky"}, {"dying", "die"}, {"lying", "lie"}, {"tying", "tie"}, {"news", "news"},
            {"innings", "inning"}, {"inning", "inning"}, {"outings", "outing"}, {"outing", "outing"},
            {"cannings", "canning"}, {"canning", "canning"}, {"howe", "howe"}, {"proceed", "proceed"},
            {"exceed", "exceed"}, {"succeed", "succeed"}};
        auto it = irregular.find(word);
        if (it != irregular.end()) return it->second;
        if (word.size() <= 2) return word;
        std::string w = step1a(word);
        w = step1b(w);
        w = step1c(w);
        w = step2(w);
        w = step3(w);
        w = step4(w);
        w = step5a(w);
        return step5b(w);
    }

private:
    enum Cond { kNone, kMGt0, kMGt1, kMEq1Cvc, kNotLsz, kIonSt, kYCons, kLogi, kLl };
    struct Rule {
        const char* suffix;  // "*d": ends in a double consonant
        const char* repl;
        Cond cond;
    };

    static bool cons(const std::string& w, size_t i) {
        const char c = w[i];
        if (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u') return false;
        if (c == 'y') return i == 0 ? true : !cons(w, i - 1);
        return true;
    }
    // m in [C](VC){m}[V]
    static int measure(const std::string& s) {
        int m = 0;
        for (size_t i = 1; i < s.size(); ++i)
            if (!cons(s, i - 1) && cons(s, i)) ++m;
        return m;
    }
    static bool has_vowel(const std::string& s) {
        for (size_t i = 0; i < s.size(); ++i)
            if (!cons(s, i)) return true;
        return false;
    }
    static bool ends_double(const std::string& w) { return w.size() >= 2 && w.back() == w[w.size() - 2] && cons(w, w.size() - 1); }
    static bool ends_cvc(const std::string& w) {
        const size_t n = w.size();
        if (n >= 3 && cons(w, n - 3) && !cons(w, n - 2) && cons(w, n - 1) && w.back() != 'w' && w.back() != 'x' && w.back() != 'y')
            return true;
        return n == 2 && !cons(w, 0) && cons(w, 1);  // NLTK's extension for two-letter stems
    }
    static bool ends_with(const std::string& w, const std::string& s) { return w.size() >= s.size() && w.compare(w.size() - s.size(), s.size(), s) == 0; }

    static bool holds(Cond c, const std::string& stem, const std::string& word) {
        switch (c) {
            case kNone: return true;
            case kMGt0: return measure(stem) > 0;
            case kMGt1: return measure(stem) > 1;
            case kMEq1Cvc: return measure(stem) == 1 && ends_cvc(stem);
            case kNotLsz: return word.back() != 'l' && word.back() != 's' && word.back() != 'z';
            case kIonSt: return measure(stem) > 1 && (stem.back() == 's' || stem.back() == 't');
            case kYCons: return stem.size() > 1 && cons(stem, stem.size() - 1);
            case kLogi: return measure(word.substr(0, word.size() - 3)) > 0;
            case kLl: return measure(word.substr(0, word.size() - 1)) > 1;
        }
        return false;
    }

    // The first rule whose suffix matches decides: applied if its condition holds, else the word stays.
    template <size_t N>
    static std::string apply(const std::string& w, const Rule (&rules)[N]) {
        for (const Rule& r : rules) {
            const std::string suf = r.suffix;
            if (suf == "*d") {
                if (!ends_double(w)) continue;
                const std::string stem = w.substr(0, w.size() - 2);
                return holds(r.cond, stem, w) ? stem + w.back() : w;
            }
            if (ends_with(w, suf)) {
                const std::string stem = w.substr(0, w.size() - suf.size());
                return holds(r.cond, stem, w) ? stem + r.repl : w;
            }
        }
        return w;
    }

    static std::string step1a(const std::string& w) {
        if (ends_with(w, "ies") && w.size() == 4) return w.substr(0, 1) + "ie";
        static const Rule rules[] = {{"sses", "ss", kNone}, {"ies", "i", kNone}, {"ss", "ss", kNone}, {"s", "", kNone}};
        return apply(w, rules);
    }
    static std::string step1b(const std::string& w) {
        if (ends_with(w, "ied")) return w.substr(0, w.size() - 3) + (w.size() == 4 ? "ie" : "i");
        if (ends_with(w, "eed")) {
            const std::string stem = w.substr(0, w.size() - 3);
            return measure(stem) > 0 ? stem + "ee" : w;
        }
        std::string mid;
        bool ok = false;
        for (const char* suf : {"ed", "ing"}) {
            if (ends_with(w, suf)) {
                mid = w.substr(0, w.size() - std::string(suf).size());
                if (has_vowel(mid)) {
                    ok = true;
                    break;
                }
            }
        }
        if (!ok) return w;
        static const Rule rules[] = {{"at", "ate", kNone}, {"bl", "ble", kNone}, {"iz", "ize", kNone}, {"*d", "", kNotLsz}, {"", "e", kMEq1Cvc}};
        return apply(mid, rules);
    }
    static std::string step1c(const std::string& w) {
        static const Rule rules[] = {{"y", "i", kYCons}};
        return apply(w, rules);
    }
    static std::string step2(const std::string& w) {
        if (ends_with(w, "alli") && measure(w.substr(0, w.size() - 4)) > 0) return step2(w.substr(0, w.size() - 4) + "al");
        static const Rule rules[] = {
            {"ational", "ate", kMGt0}, {"tional", "tion", kMGt0}, {"enci", "ence", kMGt0}, {"anci", "ance", kMGt0},
            {"izer", "ize", kMGt0},    {"bli", "ble", kMGt0},     {"alli", "al", kMGt0},   {"entli", "ent", kMGt0},
            {"eli", "e", kMGt0},       {"ousli", "ous", kMGt0},   {"ization", "ize", kMGt0}, {"ation", "ate", kMGt0},
            {"ator", "ate", kMGt0},    {"alism", "al", kMGt0},    {"iveness", "ive", kMGt0}, {"fulness", "ful", kMGt0},
            {"ousness", "ous", kMGt0}, {"aliti", "al", kMGt0},    {"iviti", "ive", kMGt0}, {"biliti", "ble", kMGt0},
            {"fulli", "ful", kMGt0},   {"logi", "log", kLogi}};
        return apply(w, rules);
    }
    static std::string step3(const std::string& w) {
        static const Rule rules[] = {{"icate", "ic", kMGt0}, {"ative", "", kMGt0}, {"alize", "al", kMGt0}, {"iciti", "ic", kMGt0},
                                     {"ical", "ic", kMGt0},  {"ful", "", kMGt0},   {"ness", "", kMGt0}};
        return apply(w, rules);
    }
    static std::string step4(const std::string& w) {
        static const Rule rules[] = {
            {"al", "", kMGt1},  {"ance", "", kMGt1}, {"ence", "", kMGt1}, {"er", "", kMGt1},   {"ic", "", kMGt1},
            {"able", "", kMGt1}, {"ible", "", kMGt1}, {"ant", "", kMGt1}, {"ement", "", kMGt1}, {"ment", "", kMGt1},
            {"ent", "", kMGt1}, {"ion", "", kIonSt}, {"ou", "", kMGt1},   {"ism", "", kMGt1},  {"ate", "", kMGt1},
            {"iti", "", kMGt1}, {"ous", "", kMGt1},  {"ive", "", kMGt1},  {"ize", "", kMGt1}};
        return apply(w, rules);
    }
    static std::string step5a(const std::string& w) {
        if (!ends_with(w, "e")) return w;
        const std::string stem = w.substr(0, w.size() - 1);
        const int m = measure(stem);
        if (m > 1 || (m == 1 && !ends_cvc(stem))) return stem;
        return w;
    }
    static std::string step5b(const std::string& w) {
        static const Rule rules[] = {{"ll", "l", kLl}};
        return apply(w, rules);
    }
};

}  // namespace

std::string porter_stem(const std::string& word) {
    static const Porter p;
    return p.stem(py_lower(word));
}

// ---- ROUGE --------------------------------------------------------------------------------------------------------

std::vector<std::string> rouge_tokenize(const std::string& text, bool stem) {
    const std::string low = py_lower(text);
    std::vector<std::string> out;
    std::string cur;
    auto flush = [&] {
        if (cur.empty()) return;
        out.push_back(stem && cur.size() > 3 ? porter_stem(cur) : cur);
        cur.clear();
    };
    for (char c : low) {
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) cur += c;
        else flush();
    }
    flush();
    return out;
}

namespace {

using Tokens = std::vector<std::string>;

double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

RougeScore make(double p, double r) { return {p, r, fmeasure(p, r)}; }

RougeScore score_ngrams(const Tokens& target, const Tokens& pred, int n) {
    auto grams = [n](const Tokens& t) {
        std::unordered_map<std::string, int64_t> c;
        for (size_t i = 0; i + static_cast<size_t>(n) <= t.size(); ++i) {
            std::string k = t[i];
            for (int j = 1; j < n; ++j) k += '\x01' + t[i + static_cast<size_t>(j)];
            ++c[k];
        }
        return c;
    };
    const auto tg = grams(target), pg = grams(pred);
    int64_t inter = 0, tc = 0, pc = 0;
    for (const auto& [k, c] : tg) {
        tc += c;
        auto it = pg.find(k);
        if (it != pg.end()) inter += std::min(c, it->second);
    }
    for (const auto& kv : pg) pc += kv.second;
    return make(static_cast<double>(inter) / static_cast<double>(std::max<int64_t>(pc, 1)),
                static_cast<double>(inter) / static_cast<double>(std::max<int64_t>(tc, 1)));
}

std::vector<std::vector<int>> lcs_table(const Tokens& ref, const Tokens& can) {
    std::vector<std::vector<int>> t(ref.size() + 1, std::vector<int>(can.size() + 1, 0));
    for (size_t i = 1; i <= ref.size(); ++i)
        for (size_t j = 1; j <= can.size(); ++j)
            t[i][j] = ref[i - 1] == can[j - 1] ? t[i - 1][j - 1] + 1 : std::max(t[i - 1][j], t[i][j - 1]);
    return t;
}

RougeScore score_lcs(const Tokens& target, const Tokens& pred) {
    if (target.empty() || pred.empty()) return {};
    const double lcs = lcs_table(target, pred).back().back();
    return make(lcs / static_cast<double>(pred.size()), lcs / static_cast<double>(target.size()));
}

// Indices into ref of one longest common subsequence (rouge-score's backtracking order).
std::vector<size_t> lcs_indices(const Tokens& ref, const Tokens& can) {
    const auto t = lcs_table(ref, can);
    std::vector<size_t> out;
    size_t i = ref.size(), j = can.size();
    while (i > 0 && j > 0) {
        if (ref[i - 1] == can[j - 1]) {
            out.push_back(i - 1);
            --i;
            --j;
        } else if (t[i][j - 1] > t[i - 1][j]) {
            --j;
        } else {
            --i;
        }
    }
    std::reverse(out.begin(), out.end());
    return out;
}

RougeScore summary_level_lcs(const std::vector<Tokens>& ref_sents, const std::vector<Tokens>& can_sents) {
    if (ref_sents.empty() || can_sents.empty()) return {};
    size_t m = 0, n = 0;
    std::unordered_map<std::string, int64_t> cnt_r, cnt_c;
    for (const auto& s : ref_sents) {
        m += s.size();
        for (const auto& t : s) ++cnt_r[t];
    }
    for (const auto& s : can_sents) {
        n += s.size();
        for (const auto& t : s) ++cnt_c[t];
    }
    if (!m || !n) return {};
    int64_t hits = 0;
    for (const auto& r : ref_sents) {
        std::set<size_t> uni;
        for (const auto& c : can_sents)
            for (size_t i : lcs_indices(r, c)) uni.insert(i);
        for (size_t i : uni) {
            const std::string& t = r[i];
            if (cnt_c[t] > 0 && cnt_r[t] > 0) {
                ++hits;
                --cnt_c[t];
                --cnt_r[t];
            }
        }
    }
    return make(static_cast<double>(hits) / static_cast<double>(n), static_cast<double>(hits) / static_cast<double>(m));
}

std::vector<Tokens> sentences(const std::string& text, bool stem) {
    std::vector<Tokens> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t nl = text.find('\n', start);
        if (nl == std::string::npos) nl = text.size();
        if (nl > start) out.push_back(rouge_tokenize(text.substr(start, nl - start), stem));
        start = nl + 1;
    }
    return out;
}

RougeScore rouge_one(const std::string& type, const std::string& pred, const std::string& target, bool stem) {
    if (type == "rougeL") return score_lcs(rouge_tokenize(target, stem), rouge_tokenize(pred, stem));
    if (type == "rougeLsum") return summary_level_lcs(sentences(target, stem), sentences(pred, stem));
    if (type.size() == 6 && type.compare(0, 5, "rouge") == 0 && type[5] >= '1' && type[5] <= '9')
        return score_ngrams(rouge_tokenize(target, stem), rouge_tokenize(pred, stem), type[5] - '0');
    throw_bad_input("unknown ROUGE type '%s' (rouge1..rouge9, rougeL, rougeLsum)", type.c_str());
}

}  // namespace

RougeScore rouge(const std::string& type, const std::string& prediction, const std::vector<std::string>& refs, bool stem) {
    if (refs.empty()) throw_bad_input("ROUGE: no references given");
    RougeScore best;
    bool first = true;
    for (const auto& r : refs) {
        const RougeScore s = rouge_one(type, prediction, r, stem);
        if (first || s.fmeasure > best.fmeasure) best = s;
        first = false;
    }
    return best;
}

}  // namespace llmforge::metrics
