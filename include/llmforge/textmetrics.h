// Reference-based text metrics with the definitions of the field's reference tools:
//   BLEU, chrF / chrF++ and TER exactly as sacreBLEU 2.x computes them (Post, 2018; its tokenisers 13a, intl, zh,
//   char, none; its smoothing methods exp, floor, add-k, none; its signature strings), and
//   ROUGE-1/2/…/L/Lsum exactly as Google's rouge-score package computes them (its tokeniser and, with stemming, the
//   Porter stemmer with NLTK's extensions, which rouge-score uses).
//
// Strings are UTF-8; invalid UTF-8 throws a bad-input Error. "Characters" are Unicode code points, as in Python.
//
//   BLEU = BP · exp( (1/N) Σ_n log p_n ),  p_n = clipped n-gram matches / hypothesis n-grams,
//   BP = 1 if c > r else exp(1 − r/c)   (c: hypothesis length, r: closest reference length, summed over the corpus)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace llmforge::metrics {

// ---- text helpers with Python's semantics (what sacreBLEU and rouge-score run on) -------------------------------
std::u32string utf8_to_u32(const std::string& s);  // throws a bad-input Error on invalid UTF-8
std::string u32_to_utf8(const std::u32string& s);
bool py_isspace(char32_t c);                              // str.isspace()
std::string py_lower(const std::string& s);               // str.lower(): full lowercase mapping, final sigma
std::vector<std::string> py_split(const std::string& s);  // str.split()
std::string py_rstrip(const std::string& s);              // str.rstrip()

// ---- BLEU ---------------------------------------------------------------------------------------------------------
// sacreBLEU's tokenisers by name: "13a" (mteval-v13a, the default), "intl" (mteval-v14 international), "zh"
// (Chinese characters split, the rest as 13a), "char", "none". Throws a bad-input Error for another name.
std::string bleu_tokenize(const std::string& line, const std::string& tokenizer);

// The lines of a text file as Python reads them in text mode (\n, \r\n and \r end a line), right-stripped of
// whitespace as sacreBLEU strips them; "-" reads standard input. Throws a bad-input Error for a missing or empty file
// or a line that is not UTF-8 (FILE:LINE).
std::vector<std::string> read_text_lines(const std::string& path);
// A JSONL file of {"prediction": string, "references": [string, …]} per line (blank lines skipped), appended to
// preds/refs. Throws a bad-input Error naming FILE:LINE for malformed JSON, a wrong shape or invalid UTF-8.
void read_rouge_jsonl(const std::string& path, std::vector<std::string>& preds, std::vector<std::vector<std::string>>& refs);

struct BleuOptions {
    std::string tokenize = "13a";
    bool lowercase = false;
    std::string smooth = "exp";  // exp | floor | add-k | none
    double smooth_value = -1;    // < 0: the method's default (floor 0.1, add-k 1)
    int max_order = 4;
    bool effective_order = false;  // sentence-level BLEU turns it on, as sacreBLEU does
};

struct BleuScore {
    double score = 0, bp = 0, ratio = 0;
    std::vector<double> counts, totals, precisions;  // per order (add-k adds its k to orders ≥ 2, as sacreBLEU shows)
    int64_t sys_len = 0, ref_len = 0;
    std::string signature;
    // sacreBLEU's line: "BLEU|nrefs:1|…|version:2.6.0 = 48.5 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = …)"
    std::string format(int width = 1) const;
    std::string verbose() const;  // "82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
};

// f"{v:.{width}f}", as sacreBLEU prints scores.
std::string format_score(double v, int width);

class Bleu {
public:
    explicit Bleu(BleuOptions o = {});
    // refs[k][i]: the k-th reference of segment i (every refs[k] as long as hyps).
    BleuScore corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const;
    BleuScore sentence(const std::string& hyp, const std::vector<std::string>& refs) const;
    // The sufficient statistics of one segment: [hyp_len, ref_len, correct_1..N, total_1..N].
    std::vector<int64_t> segment_stats(const std::string& hyp, const std::vector<std::string>& refs) const;
    BleuScore from_stats(const std::vector<int64_t>& stats, int nrefs) const;
    // BLEU from its sufficient statistics (sacreBLEU's BLEU.compute_bleu).
    static BleuScore compute(std::vector<double> correct, std::vector<double> total, int64_t sys_len, int64_t ref_len,
                             const std::string& smooth, double smooth_value, bool effective_order, int max_order);
    std::string signature(int nrefs) const;
    const BleuOptions& options() const { return o_; }

private:
    std::string preprocess(const std::string& s) const;
    BleuOptions o_;
};

// ---- chrF / chrF++ ------------------------------------------------------------------------------------------------
struct ChrfOptions {
    int char_order = 6, word_order = 0, beta = 2;  // word_order 2: chrF++
    bool lowercase = false;
    bool whitespace = false;    // keep whitespace in character n-grams
    bool eps_smoothing = false;  // chrF++.py / NLTK / Moses-style smoothing instead of the effective order
};

struct ChrfScore {
    double score = 0;
    std::string name;  // chrF2, chrF2++
    std::string signature;
    std::string format(int width = 1) const;
};

class Chrf {
public:
    explicit Chrf(ChrfOptions o = {});
    ChrfScore corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const;
    ChrfScore sentence(const std::string& hyp, const std::vector<std::string>& refs) const;
    // [hyp, ref, match] counts per order (characters first, then words), of the reference with the best F.
    std::vector<int64_t> segment_stats(const std::string& hyp, const std::vector<std::string>& refs) const;
    ChrfScore from_stats(const std::vector<int64_t>& stats, int nrefs) const;
    double f_score(const std::vector<int64_t>& stats) const;
    std::string signature(int nrefs) const;

private:
    ChrfOptions o_;
};

// ---- TER ----------------------------------------------------------------------------------------------------------
struct TerOptions {
    bool normalized = false, no_punct = false, asian_support = false, case_sensitive = false;
};

struct TerScore {
    double score = 0, num_edits = 0, ref_length = 0;
    std::string signature;
    std::string format(int width = 1) const;
};

// Tercom's tokeniser as sacreBLEU reimplements it.
std::string ter_tokenize(const std::string& line, const TerOptions& o);
// The number of edits (insertions, deletions, substitutions and block shifts, Tercom's shift heuristics and beam)
// turning hyp into ref; returns {edits, ref length}.
std::pair<int64_t, int64_t> translation_edit_rate(const std::vector<std::string>& hyp, const std::vector<std::string>& ref);

class Ter {
public:
    explicit Ter(TerOptions o = {});
    TerScore corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const;
    TerScore sentence(const std::string& hyp, const std::vector<std::string>& refs) const;
    std::vector<double> segment_stats(const std::string& hyp, const std::vector<std::string>& refs) const;  // [edits, avg ref len]
    TerScore from_stats(const std::vector<double>& stats, int nrefs) const;
    std::string signature(int nrefs) const;

private:
    TerOptions o_;
};

// The sacreBLEU version whose definitions (and signature format) these metrics reproduce.
inline constexpr const char* kSacreBleuVersion = "2.6.0";

// ---- ROUGE --------------------------------------------------------------------------------------------------------
// rouge-score's tokeniser: lowercase, every run of characters other than [a-z0-9] becomes a space, split, optionally
// Porter-stem tokens longer than 3 characters, keep tokens matching ^[a-z0-9]+$.
std::vector<std::string> rouge_tokenize(const std::string& text, bool stem);
// The Porter stemmer as NLTK's PorterStemmer() (mode NLTK_EXTENSIONS) stems a lowercase word.
std::string porter_stem(const std::string& word);

struct RougeScore {
    double precision = 0, recall = 0, fmeasure = 0;
};

// type: "rouge1".."rouge9", "rougeL", "rougeLsum" (sentences are the non-empty lines). With several references the
// one with the highest F-measure counts (rouge-score's score_multi).
RougeScore rouge(const std::string& type, const std::string& prediction, const std::vector<std::string>& refs, bool stem);

}  // namespace llmforge::metrics
