// Helpers shared by the text metrics (src/eval/*.cpp); not part of the public API.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace llmforge::metrics::detail {

// re.sub(pattern, replacement, s) with PCRE2 in UTF mode: Python's pattern, its \1 written as $1.
class RegexSub {
public:
    RegexSub(const std::string& pattern, std::string replacement);
    std::string operator()(const std::string& in) const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
    std::string repl_;
};

std::string join_words(const std::vector<std::string>& w);  // ' '.join(w)
std::string py_strip(const std::string& s);                 // str.strip()
std::string fixed(double v, int width);                     // f"{v:.{width}f}"
std::string replace_all(std::string s, const std::string& from, const std::string& to);  // str.replace
// Every reference stream as long as the hypotheses (a bad-input Error otherwise).
void check_corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs);

// Corpus statistics: segment(hyp_i, {refs[k][i]}) summed over the segments (check_corpus first); `size` zeros when
// there are no segments.
template <class Stats, class F>
Stats sum_segments(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs, size_t size, F&& segment) {
    check_corpus(hyps, refs);
    Stats sum(size, 0);
    std::vector<std::string> seg_refs(refs.size());
    for (size_t i = 0; i < hyps.size(); ++i) {
        for (size_t k = 0; k < refs.size(); ++k) seg_refs[k] = refs[k][i];
        const Stats st = segment(hyps[i], seg_refs);
        for (size_t j = 0; j < st.size() && j < size; ++j) sum[j] += st[j];
    }
    return sum;
}

}  // namespace llmforge::metrics::detail
