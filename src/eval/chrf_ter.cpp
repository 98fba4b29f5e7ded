// chrF / chrF++ (Popović 2015, 2017) and TER (Snover et al. 2006) with sacreBLEU's definitions.
#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "eval/text_internal.h"
#include "llmforge/error.h"
#include "llmforge/textmetrics.h"

namespace llmforge::metrics {

using detail::RegexSub;
using detail::replace_all;
using detail::sum_segments;


// ---- chrF ---------------------------------------------------------------------------------------------------------

namespace {

using CharCounts = std::unordered_map<std::u32string, int64_t>;
using WordCounts = std::unordered_map<std::string, int64_t>;

// Character n-grams of orders 1..max_order (code points; whitespace removed unless kept).
std::vector<CharCounts> char_ngrams(const std::string& line, int max_order, bool whitespace) {
    std::u32string u = utf8_to_u32(line);
    if (!whitespace) u.erase(std::remove_if(u.begin(), u.end(), py_isspace), u.end());
    std::vector<CharCounts> out(static_cast<size_t>(max_order));
    for (int n = 1; n <= max_order; ++n)
        for (size_t i = 0; i + static_cast<size_t>(n) <= u.size(); ++i) ++out[static_cast<size_t>(n - 1)][u.substr(i, static_cast<size_t>(n))];
    return out;
}

// chrF++'s words: split on whitespace, and one ASCII punctuation character at the end (else at the start) of a word
// of two or more characters becomes a word of its own.
std::vector<std::string> chrf_words(const std::string& sent) {
    static const std::string puncts = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
    std::vector<std::string> out;
    for (const std::string& w : py_split(sent)) {
        const std::u32string u = utf8_to_u32(w);
        if (u.size() == 1) {
            out.push_back(w);
        } else if (u.back() < 0x80 && puncts.find(static_cast<char>(u.back())) != std::string::npos) {
            out.push_back(w.substr(0, w.size() - 1));
            out.push_back(w.substr(w.size() - 1));
        } else if (u.front() < 0x80 && puncts.find(static_cast<char>(u.front())) != std::string::npos) {
            out.push_back(w.substr(0, 1));
            out.push_back(w.substr(1));
        } else {
            out.push_back(w);
        }
    }
    return out;
}

WordCounts word_ngrams(const std::vector<std::string>& w, int n) {
    WordCounts out;
    for (size_t i = 0; i + static_cast<size_t>(n) <= w.size(); ++i) {
        std::string key = w[i];
        for (int k = 1; k < n; ++k) key += " " + w[i + static_cast<size_t>(k)];
        ++out[key];
    }
    return out;
}

template <class Counts>
void match_stats(const Counts& hyp, const Counts& ref, std::vector<int64_t>& out) {
    int64_t match = 0, hyp_count = 0, ref_count = 0;
    for (const auto& [ng, c] : hyp) {
        hyp_count += c;
        auto it = ref.find(ng);
        if (it != ref.end()) match += std::min(c, it->second);
    }
    for (const auto& kv : ref) ref_count += kv.second;
    out.push_back(ref.empty() ? 0 : hyp_count);  // hits do not count where the reference has no n-gram of this order
    out.push_back(ref_count);
    out.push_back(match);
}

}  // namespace

Chrf::Chrf(ChrfOptions o) : o_(o) {
    if (o_.char_order < 0 || o_.word_order < 0 || o_.char_order + o_.word_order < 1) throw_bad_input("chrF: the n-gram orders must be ≥ 0 and not both 0");
    if (o_.beta < 0) throw_bad_input("chrF: beta must be ≥ 0");
}

double Chrf::f_score(const std::vector<int64_t>& st) const {
    const double eps = 1e-16;
    const int order = o_.char_order + o_.word_order;
    const double factor = static_cast<double>(o_.beta) * o_.beta;
    double score = 0, avg_prec = 0, avg_rec = 0;
    int effective_order = 0;
    for (int i = 0; i < order; ++i) {
        const int64_t n_hyp = st[3 * static_cast<size_t>(i)], n_ref = st[3 * static_cast<size_t>(i) + 1],
                      n_match = st[3 * static_cast<size_t>(i) + 2];
        const double prec = n_hyp > 0 ? static_cast<double>(n_match) / static_cast<double>(n_hyp) : eps;
        const double rec = n_ref > 0 ? static_cast<double>(n_match) / static_cast<double>(n_ref) : eps;
        const double denom = factor * prec + rec;
        score += denom > 0 ? (1 + factor) * prec * rec / denom : eps;
        if (n_hyp > 0 && n_ref > 0) {
            avg_prec += prec;
            avg_rec += rec;
            ++effective_order;
        }
    }
    if (o_.eps_smoothing) return 100 * score / order;
    if (effective_order == 0) {
        avg_prec = avg_rec = 0;
    } else {
        avg_prec /= effective_order;
        avg_rec /= effective_order;
    }
    if (avg_prec + avg_rec != 0) {
        score = (1 + factor) * avg_prec * avg_rec;
        score /= factor * avg_prec + avg_rec;
        return 100 * score;
    }
    return 0.0;
}

std::vector<int64_t> Chrf::segment_stats(const std::string& hyp_in, const std::vector<std::string>& refs) const {
    if (refs.empty()) throw_bad_input("no references given");
    const std::string hyp = o_.lowercase ? py_lower(hyp_in) : hyp_in;
    const auto hyp_chars = char_ngrams(hyp, o_.char_order, o_.whitespace);
    std::vector<WordCounts> hyp_words;
    if (o_.word_order > 0) {
        const auto w = chrf_words(hyp);
        for (int n = 1; n <= o_.word_order; ++n) hyp_words.push_back(word_ngrams(w, n));
    }
    std::vector<int64_t> best;
    double best_f = -1.0;
    for (const auto& ref_in : refs) {
        const std::string ref = o_.lowercase ? py_lower(ref_in) : ref_in;
        const auto ref_chars = char_ngrams(ref, o_.char_order, o_.whitespace);
        std::vector<int64_t> st;
        for (size_t n = 0; n < ref_chars.size(); ++n) match_stats(hyp_chars[n], ref_chars[n], st);
        if (o_.word_order > 0) {
            const auto w = chrf_words(ref);
            for (int n = 1; n <= o_.word_order; ++n) match_stats(hyp_words[static_cast<size_t>(n - 1)], word_ngrams(w, n), st);
        }
        const double f = f_score(st);
        if (f > best_f) {
            best_f = f;
            best = std::move(st);
        }
    }
    return best;
}

std::string Chrf::signature(int nrefs) const {
    return "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs)) + "|case:" + (o_.lowercase ? "lc" : "mixed") +
           "|eff:" + (o_.eps_smoothing ? "no" : "yes") + "|nc:" + std::to_string(o_.char_order) + "|nw:" +
           std::to_string(o_.word_order) + "|space:" + (o_.whitespace ? "yes" : "no") + "|version:" + kSacreBleuVersion;
}

ChrfScore Chrf::from_stats(const std::vector<int64_t>& stats, int nrefs) const {
    ChrfScore s;
    s.score = f_score(stats);
    s.name = "chrF" + std::to_string(o_.beta) + std::string(static_cast<size_t>(o_.word_order), '+');
    s.signature = signature(nrefs);
    return s;
}

ChrfScore Chrf::corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const {
    const auto sum = sum_segments<std::vector<int64_t>>(hyps, refs, 3 * static_cast<size_t>(o_.char_order + o_.word_order),
                                                        [&](const std::string& h, const std::vector<std::string>& r) { return segment_stats(h, r); });
    return from_stats(sum, static_cast<int>(refs.size()));
}

ChrfScore Chrf::sentence(const std::string& hyp, const std::vector<std::string>& refs) const {
    return from_stats(segment_stats(hyp, refs), static_cast<int>(refs.size()));
}

// ---- TER ----------------------------------------------------------------------------------------------------------

namespace {

// Tercom's normaliser (src/ter/core/Normalizer.java) as sacreBLEU's TercomTokenizer writes it.
std::string ter_normalize_western(std::string s) {
    s = replace_all(s, "\n-", "");  // end-of-line hyphenation
    s = replace_all(s, "\n", " ");
    s = replace_all(s, "&quot;", "\"");
    s = replace_all(s, "&amp;", "&");
    s = replace_all(s, "&lt;", "<");
    s = replace_all(s, "&gt;", ">");
    s = " " + s + " ";
    static const RegexSub subs[] = {
        RegexSub(R"(([\{-\~\[-\` -\&\(-\+\:-\@\/]))", " $1 "),  // punctuation
        RegexSub("'s ", " 's "),                                 // possessives
        RegexSub("'s$", " 's"),
        RegexSub(R"(([^0-9])([\.,]))", "$1 $2 "),  // period and comma unless preceded by a digit
        RegexSub(R"(([\.,])([^0-9]))", " $1 $2"),  // … unless followed by a digit
        RegexSub(R"(([0-9])(-))", "$1 $2 "),       // dash after a digit
    };
    for (const auto& r : subs) s = r(s);
    return s;
}

const char* const kAsianPunct = R"(([\x{3001}\x{3002}\x{3008}-\x{3011}\x{3014}-\x{301f}\x{ff61}-\x{ff65}\x{30fb}]))";
const char* const kFullWidthPunct = R"(([\x{ff0e}\x{ff0c}\x{ff1f}\x{ff1a}\x{ff1b}\x{ff01}\x{ff02}\x{ff08}\x{ff09}]))";

std::string ter_normalize_asian(std::string s) {
    static const RegexSub subs[] = {
        RegexSub(R"(([\x{4e00}-\x{9fff}\x{3400}-\x{4dbf}]))", " $1 "),  // CJK ideographs, one token each
        RegexSub(R"(([\x{31c0}-\x{31ef}\x{2e80}-\x{2eff}]))", " $1 "),  // strokes, radicals
        RegexSub(R"(([\x{3300}-\x{33ff}\x{f900}-\x{faff}\x{fe30}-\x{fe4f}]))", " $1 "),
        RegexSub(R"(([\x{3200}-\x{3f22}]))", " $1 "),
        // kana runs are split off only where the pattern allows (as written in sacreBLEU, i.e. at the start)
        RegexSub(R"((^|^[\x{3040}-\x{309f}])([\x{3040}-\x{309f}]+)(?=$|^[\x{3040}-\x{309f}]))", "$1 $2 "),
        RegexSub(R"((^|^[\x{30a0}-\x{30ff}])([\x{30a0}-\x{30ff}]+)(?=$|^[\x{30a0}-\x{30ff}]))", "$1 $2 "),
        RegexSub(R"((^|^[\x{31f0}-\x{31ff}])([\x{31f0}-\x{31ff}]+)(?=$|^[\x{31f0}-\x{31ff}]))", "$1 $2 "),
        RegexSub(kAsianPunct, " $1 "),
        RegexSub(kFullWidthPunct, " $1 "),
    };
    for (const auto& r : subs) s = r(s);
    return s;
}

}  // namespace

std::string ter_tokenize(const std::string& sent_in, const TerOptions& o) {
    if (sent_in.empty()) return "";
    std::string s = o.case_sensitive ? sent_in : py_lower(sent_in);
    if (o.normalized) {
        s = ter_normalize_western(s);
        if (o.asian_support) s = ter_normalize_asian(s);
    }
    if (o.no_punct) {
        static const RegexSub punct(R"([\.,\?:;!\"\(\)])", "");
        static const RegexSub asian(kAsianPunct, ""), full(kFullWidthPunct, "");
        s = punct(s);
        if (o.asian_support) s = full(asian(s));
    }
    return detail::join_words(py_split(s));
}

namespace {

constexpr int kMaxShiftSize = 10, kMaxShiftDist = 50, kBeamWidth = 25, kMaxShiftCandidates = 1000;
constexpr int64_t kInf = 10000000000000000LL;
enum Op : char { kNop = ' ', kSub = 's', kIns = 'i', kDel = 'd', kUndef = 'x' };

// Levenshtein distance between a hypothesis and the reference, restricted to a beam around the (length-ratio)
// diagonal as Tercom does; returns the distance and the edit trace (hyp → ref).
class BeamEditDistance {
public:
    explicit BeamEditDistance(const std::vector<int>& ref) : ref_(ref) {}

    int64_t operator()(const std::vector<int>& h, std::string* trace) {
        const size_t nh = h.size(), nr = ref_.size();
        cost_.assign((nh + 1) * (nr + 1), kInf);
        op_.assign((nh + 1) * (nr + 1), kUndef);
        for (size_t j = 0; j <= nr; ++j) {
            cost_[j] = static_cast<int64_t>(j);
            op_[j] = kIns;
        }
        const double ratio = nh ? static_cast<double>(nr) / static_cast<double>(nh) : 1.0;
        const int64_t beam = kBeamWidth < ratio / 2 ? static_cast<int64_t>(std::ceil(ratio / 2 + kBeamWidth)) : kBeamWidth;
        for (size_t i = 1; i <= nh; ++i) {
            const int64_t diag = static_cast<int64_t>(std::floor(static_cast<double>(i) * ratio));
            const size_t min_j = static_cast<size_t>(std::max<int64_t>(0, diag - beam));
            size_t max_j = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(nr) + 1, diag + beam));
            if (i == nh) max_j = nr + 1;
            int64_t* row = &cost_[i * (nr + 1)];
            const int64_t* up = &cost_[(i - 1) * (nr + 1)];
            char* orow = &op_[i * (nr + 1)];
            for (size_t j = min_j; j < max_j; ++j) {
                if (j == 0) {
                    row[0] = up[0] + 1;
                    orow[0] = kDel;
                    continue;
                }
                const bool same = h[i - 1] == ref_[j - 1];
                const int64_t c[3] = {up[j - 1] + (same ? 0 : 1), up[j] + 1, row[j - 1] + 1};
                const char o[3] = {same ? kNop : kSub, kDel, kIns};
                for (int k = 0; k < 3; ++k)
                    if (row[j] > c[k]) {
                        row[j] = c[k];
                        orow[j] = o[k];
                    }
            }
        }
        if (trace) {
            trace->clear();
            size_t i = nh, j = nr;
            while (i > 0 || j > 0) {
                const char op = op_[i * (nr + 1) + j];
                trace->push_back(op);
                if (op == kSub || op == kNop) {
                    --i;
                    --j;
                } else if (op == kIns) {
                    --j;
                } else if (op == kDel) {
                    --i;
                } else {
                    throw Error(ErrorKind::Runtime, "TER: the edit-distance beam left the trace undefined");
                }
            }
            std::reverse(trace->begin(), trace->end());
        }
        return cost_[nh * (nr + 1) + nr];
    }

private:
    const std::vector<int>& ref_;
    std::vector<int64_t> cost_;
    std::vector<char> op_;
};

std::vector<int> slice(const std::vector<int>& v, size_t a, size_t b) {
    a = std::min(a, v.size());
    b = std::min(b, v.size());
    return a < b ? std::vector<int>(v.begin() + static_cast<std::ptrdiff_t>(a), v.begin() + static_cast<std::ptrdiff_t>(b)) : std::vector<int>{};
}

std::vector<int> perform_shift(const std::vector<int>& w, size_t start, size_t length, size_t target) {
    std::vector<std::vector<int>> parts;
    if (target < start) {
        parts = {slice(w, 0, target), slice(w, start, start + length), slice(w, target, start), slice(w, start + length, w.size())};
    } else if (target > start + length) {
        parts = {slice(w, 0, start), slice(w, start + length, target), slice(w, start, start + length), slice(w, target, w.size())};
    } else {
        parts = {slice(w, 0, start), slice(w, start + length, length + target), slice(w, start, start + length), slice(w, length + target, w.size())};
    }
    std::vector<int> out;
    out.reserve(w.size());
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

// One round of Tercom's greedy shift search: the shift that lowers the edit distance most (ties: longer, earlier
// source, earlier target). Returns the gain (≤ 0: none) and the shifted words.
int64_t best_shift(const std::vector<int>& h, const std::vector<int>& r, BeamEditDistance& ed, int& checked, std::vector<int>& out) {
    std::string inv;
    const int64_t pre = ed(h, &inv);
    // alignment from the flipped trace (ref → hyp)
    std::vector<int64_t> align(r.size(), -1);
    std::vector<int> ref_err, hyp_err;
    int64_t ph = -1, pr = -1;
    for (char op : inv) {
        if (op == kIns) op = kDel;
        else if (op == kDel) op = kIns;
        if (op == kNop || op == kSub) {
            ++ph;
            ++pr;
            align[static_cast<size_t>(pr)] = ph;
            hyp_err.push_back(op == kSub);
            ref_err.push_back(op == kSub);
        } else if (op == kIns) {
            ++ph;
            hyp_err.push_back(1);
        } else {
            ++pr;
            align[static_cast<size_t>(pr)] = ph;
            ref_err.push_back(1);
        }
    }
    bool have = false;
    int64_t b_score = 0, b_len = 0, b_negstart = 0, b_negidx = 0;
    const size_t nh = h.size(), nr = r.size();
    auto any_err = [](const std::vector<int>& e, size_t a, size_t len) {
        for (size_t k = a; k < std::min(e.size(), a + len); ++k)
            if (e[k]) return true;
        return false;
    };
    for (size_t sh = 0; sh < nh; ++sh) {
        for (size_t sr = 0; sr < nr; ++sr) {
            if (std::llabs(static_cast<int64_t>(sr) - static_cast<int64_t>(sh)) > kMaxShiftDist) continue;
            size_t length = 0;
            while (h[sh + length] == r[sr + length] && length < static_cast<size_t>(kMaxShiftSize)) {
                ++length;
                // candidate (sh, sr, length)
                if (any_err(hyp_err, sh, length) && any_err(ref_err, sr, length) &&
                    !(static_cast<int64_t>(sh) <= align[sr] && align[sr] < static_cast<int64_t>(sh + length))) {
                    int64_t prev_idx = -1;
                    for (int64_t offset = -1; offset < static_cast<int64_t>(length); ++offset) {
                        int64_t idx;
                        const int64_t pos = static_cast<int64_t>(sr) + offset;
                        if (pos == -1) idx = 0;
                        else if (pos < static_cast<int64_t>(nr)) idx = align[static_cast<size_t>(pos)] + 1;
                        else break;
                        if (idx == prev_idx) continue;
                        prev_idx = idx;
                        std::vector<int> shifted = perform_shift(h, sh, length, static_cast<size_t>(idx));
                        const int64_t gain = pre - ed(shifted, nullptr);
                        ++checked;
                        const int64_t cand[4] = {gain, static_cast<int64_t>(length), -static_cast<int64_t>(sh), -idx};
                        const int64_t best[4] = {b_score, b_len, b_negstart, b_negidx};
                        if (!have || std::lexicographical_compare(best, best + 4, cand, cand + 4)) {
                            have = true;
                            b_score = gain;
                            b_len = cand[1];
                            b_negstart = cand[2];
                            b_negidx = cand[3];
                            out = std::move(shifted);
                        }
                    }
                    // the candidate budget is checked after each pair that got past the filters, as sacreBLEU does
                    if (checked >= kMaxShiftCandidates) goto done;
                }
                if (nh == sh + length || nr == sr + length) break;
            }
        }
    }
done:
    if (!have) {
        out = h;
        return 0;
    }
    return b_score;
}

}  // namespace

std::pair<int64_t, int64_t> translation_edit_rate(const std::vector<std::string>& hyp, const std::vector<std::string>& ref) {
    if (ref.empty()) return {static_cast<int64_t>(hyp.size()), 0};
    std::unordered_map<std::string, int> ids;
    auto intern = [&](const std::vector<std::string>& w) {
        std::vector<int> out;
        out.reserve(w.size());
        for (const auto& s : w) out.push_back(ids.emplace(s, static_cast<int>(ids.size())).first->second);
        return out;
    };
    const std::vector<int> r = intern(ref);
    std::vector<int> h = intern(hyp);
    BeamEditDistance ed(r);
    int64_t shifts = 0;
    int checked = 0;
    std::vector<int> next;
    while (true) {
        const int64_t delta = best_shift(h, r, ed, checked, next);
        if (checked >= kMaxShiftCandidates) break;
        if (delta <= 0) break;
        ++shifts;
        h.swap(next);
    }
    return {shifts + ed(h, nullptr), static_cast<int64_t>(ref.size())};
}

Ter::Ter(TerOptions o) : o_(o) {}

std::vector<double> Ter::segment_stats(const std::string& hyp, const std::vector<std::string>& refs) const {
    if (refs.empty()) throw_bad_input("no references given");
    const std::vector<std::string> h = py_split(ter_tokenize(py_rstrip(hyp), o_));
    double ref_lengths = 0;
    int64_t best = static_cast<int64_t>(1e16);
    for (const auto& ref : refs) {
        // sacreBLEU tokenises each reference twice (once when caching the references, once more when extracting their
        // words); with --ter-normalized the second pass changes some (e.g. "i's ." → "i 's ."). Reproduced.
        const std::string once = ter_tokenize(py_rstrip(ref), o_);
        const auto [edits, len] = translation_edit_rate(h, py_split(ter_tokenize(py_rstrip(once), o_)));
        ref_lengths += static_cast<double>(len);
        best = std::min(best, edits);
    }
    return {static_cast<double>(best), ref_lengths / static_cast<double>(refs.size())};
}

std::string Ter::signature(int nrefs) const {
    return "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs)) + "|case:" + (o_.case_sensitive ? "mixed" : "lc") +
           "|tok:tercom|norm:" + (o_.normalized ? "yes" : "no") + "|punct:" + (o_.no_punct ? "no" : "yes") +
           "|asian:" + (o_.asian_support ? "yes" : "no") + "|version:" + kSacreBleuVersion;
}

TerScore Ter::from_stats(const std::vector<double>& st, int nrefs) const {
    TerScore s;
    s.num_edits = st.empty() ? 0 : st[0];
    s.ref_length = st.size() < 2 ? 0 : st[1];
    double score = 0;
    if (s.ref_length > 0) score = s.num_edits / s.ref_length;
    else if (s.num_edits > 0) score = 1.0;  // empty reference(s), non-empty hypothesis
    s.score = 100 * score;
    s.signature = signature(nrefs);
    return s;
}

TerScore Ter::corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const {
    const auto sum = sum_segments<std::vector<double>>(hyps, refs, 2, [&](const std::string& h, const std::vector<std::string>& r) { return segment_stats(h, r); });
    return from_stats(sum, static_cast<int>(refs.size()));
}

TerScore Ter::sentence(const std::string& hyp, const std::vector<std::string>& refs) const {
    return from_stats(segment_stats(hyp, refs), static_cast<int>(refs.size()));
}

}  // namespace llmforge::metrics
