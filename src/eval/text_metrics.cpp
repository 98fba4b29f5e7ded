// Python-semantics text helpers, sacreBLEU's tokenisers and BLEU. See include/llmforge/textmetrics.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <memory>
#include <unordered_map>

#include "eval/text_internal.h"
#include "llmforge/error.h"
#include "llmforge/textmetrics.h"
#include "llmforge/utf8.h"

namespace llmforge::metrics {

using detail::RegexSub;
using detail::join_words;
using detail::fixed;
using detail::py_strip;
using detail::replace_all;

// ---- UTF-8 / Python helpers ---------------------------------------------------------------------------------------

std::u32string utf8_to_u32(const std::string& s) {
    std::u32string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
        utf8proc_int32_t cp;
        const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                                    static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
        if (n <= 0) throw_bad_input("invalid UTF-8 at byte %zu of a %zu-byte line", i, s.size());
        out.push_back(static_cast<char32_t>(cp));
        i += static_cast<size_t>(n);
    }
    return out;
}

std::string u32_to_utf8(const std::u32string& s) {
    std::string out;
    out.reserve(s.size());
    utf8proc_uint8_t buf[4];
    for (char32_t c : s) {
        const utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
        out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
    }
    return out;
}

bool py_isspace(char32_t c) {
    // Python's str.isspace(): bidirectional class WS, B or S, or general category Zs.
    if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

bool is_cased(char32_t c) {
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return true;
    const auto i = static_cast<utf8proc_int32_t>(c);
    return utf8proc_tolower(i) != i || utf8proc_toupper(i) != i;
}

bool is_case_ignorable(char32_t c) {
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
        case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_SK: return true;
        default: break;
    }
    return c == U'\'' || c == U'.' || c == U':' || c == U'^' || c == U'`' || c == 0xB7 || c == 0x2018 ||
           c == 0x2019 || c == 0x2024 || c == 0x2027;
}

// Σ lowercases to ς at the end of a word (Unicode's Final_Sigma condition, which str.lower() applies).
bool final_sigma(const std::u32string& s, size_t i) {
    size_t j = i;
    bool before = false;
    while (j > 0) {
        --j;
        if (is_case_ignorable(s[j])) continue;
        before = is_cased(s[j]);
        break;
    }
    if (!before) return false;
    for (size_t k = i + 1; k < s.size(); ++k) {
        if (is_case_ignorable(s[k])) continue;
        return !is_cased(s[k]);
    }
    return true;
}

}  // namespace

std::string py_lower(const std::string& s) {
    bool ascii = true;
    for (unsigned char ch : s) ascii = ascii && ch < 0x80;
    if (ascii) {
        std::string out = s;
        for (char& ch : out) if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
        return out;
    }
    const std::u32string u = utf8_to_u32(s);
    std::u32string out;
    out.reserve(u.size());
    for (size_t i = 0; i < u.size(); ++i) {
        const char32_t c = u[i];
        if (c == 0x130) {  // İ: the one unconditional multi-character lowercase mapping (SpecialCasing.txt)
            out.push_back(U'i');
            out.push_back(0x307);
        } else if (c == 0x3A3) {
            out.push_back(final_sigma(u, i) ? 0x3C2 : 0x3C3);
        } else {
            out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
        }
    }
    return u32_to_utf8(out);
}

namespace {

// Whitespace at byte i of a UTF-8 string: its length in bytes, or 0.
size_t space_at(const std::string& s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return py_isspace(c) ? 1 : 0;
    if (c < 0xC2 || c > 0xE3) return 0;  // every non-ASCII space is U+0085..U+3000
    utf8proc_int32_t cp;
    const utf8proc_ssize_t n = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(s.data() + i),
                                                static_cast<utf8proc_ssize_t>(s.size() - i), &cp);
    if (n <= 0) return 0;
    return py_isspace(static_cast<char32_t>(cp)) ? static_cast<size_t>(n) : 0;
}

}  // namespace

std::vector<std::string> py_split(const std::string& s) {
    std::vector<std::string> out;
    size_t i = 0, start = std::string::npos;
    while (i < s.size()) {
        const size_t w = space_at(s, i);
        if (w) {
            if (start != std::string::npos) out.push_back(s.substr(start, i - start));
            start = std::string::npos;
            i += w;
        } else {
            if (start == std::string::npos) start = i;
            ++i;
        }
    }
    if (start != std::string::npos) out.push_back(s.substr(start));
    return out;
}

std::string py_rstrip(const std::string& s) {
    // the last non-space character ends the result; find it going forward (UTF-8 is not walkable backwards cheaply
    // when checking multi-byte spaces)
    size_t end = 0, i = 0;
    while (i < s.size()) {
        const size_t w = space_at(s, i);
        if (w) {
            i += w;
        } else {
            ++i;
            end = i;
        }
    }
    return s.substr(0, end);
}

std::string detail::join_words(const std::vector<std::string>& w) {
    std::string out;
    for (size_t i = 0; i < w.size(); ++i) {
        if (i) out += ' ';
        out += w[i];
    }
    return out;
}

// ---- regex substitution (PCRE2; the patterns are Python's, with Python's replacement \1 written as $1) --------------

struct detail::RegexSub::Impl {
    pcre2_code* code = nullptr;
    ~Impl() { pcre2_code_free(code); }
};

detail::RegexSub::RegexSub(const std::string& pattern, std::string replacement) : impl_(std::make_shared<Impl>()), repl_(std::move(replacement)) {
    int err = 0;
    PCRE2_SIZE off = 0;
    impl_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF, &err, &off, nullptr);
    if (!impl_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        throw Error(ErrorKind::Runtime, "regex '" + pattern + "': " + reinterpret_cast<const char*>(msg));
    }
    pcre2_jit_compile(impl_->code, PCRE2_JIT_COMPLETE);
}

std::string detail::RegexSub::operator()(const std::string& in) const {
    std::string out(in.size() * 2 + 64, '\0');
    for (int attempt = 0; attempt < 2; ++attempt) {
        PCRE2_SIZE len = out.size();
        const int rc = pcre2_substitute(impl_->code, reinterpret_cast<PCRE2_SPTR>(in.data()), in.size(), 0,
                                        PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH, nullptr, nullptr,
                                        reinterpret_cast<PCRE2_SPTR>(repl_.data()), repl_.size(),
                                        reinterpret_cast<PCRE2_UCHAR*>(out.data()), &len);
        if (rc >= 0) {
            out.resize(len);
            return out;
        }
        if (rc == PCRE2_ERROR_NOMEMORY) {
            out.assign(len + 1, '\0');
            continue;
        }
        if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21) throw_bad_input("invalid UTF-8 in a line of text");
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        throw Error(ErrorKind::Runtime, std::string("regex substitution: ") + reinterpret_cast<const char*>(msg));
    }
    throw Error(ErrorKind::Runtime, "regex substitution: output did not fit");
}

// ---- sacreBLEU's tokenisers ---------------------------------------------------------------------------------------

namespace {


// The language-dependent part of mteval-v13a (sacreBLEU's TokenizerRegexp), shared by 13a and zh.
std::string tokenize_re(const std::string& line) {
    static const RegexSub subs[] = {
        RegexSub(R"(([\{-\~\[-\` -\&\(-\+\:-\@\/]))", " $1 "),  // punctuation and symbols
        RegexSub(R"(([^0-9])([\.,]))", "$1 $2 "),               // period and comma unless preceded by a digit
        RegexSub(R"(([\.,])([^0-9]))", " $1 $2"),               // … unless followed by a digit
        RegexSub(R"(([0-9])(-))", "$1 $2 "),                    // dash after a digit
    };
    std::string s = line;
    for (const auto& r : subs) s = r(s);
    return join_words(py_split(s));
}

std::string tokenize_13a(std::string line) {
    line = replace_all(line, "<skipped>", "");
    line = replace_all(line, "-\n", "");
    line = replace_all(line, "\n", " ");
    if (line.find('&') != std::string::npos) {
        line = replace_all(line, "&quot;", "\"");
        line = replace_all(line, "&amp;", "&");
        line = replace_all(line, "&lt;", "<");
        line = replace_all(line, "&gt;", ">");
    }
    return tokenize_re(" " + line + " ");
}

std::string tokenize_intl(const std::string& line) {
    static const RegexSub subs[] = {
        RegexSub(R"((\P{N})(\p{P}))", "$1 $2 "),  // punctuation after a non-digit
        RegexSub(R"((\p{P})(\P{N}))", " $1 $2"),  // punctuation before a non-digit
        RegexSub(R"((\p{S}))", " $1 "),           // symbols
    };
    std::string s = line;
    for (const auto& r : subs) s = r(s);
    return join_words(py_split(s));
}

// sacreBLEU's zh tokenizer's "Chinese character" test. Its table is compared as Python strings, and two entries are
// written with five hex digits after \u (U+20000.., U+2F800..), which Python reads as a four-digit escape followed
// by a digit: those ranges therefore are U+2001..U+2A6D and U+2F81..U+2FA1. Reproduced as sacreBLEU behaves.
bool zh_is_chinese(char32_t c) {
    static const std::pair<char32_t, char32_t> ranges[] = {
        {0x3400, 0x4DB5}, {0x4E00, 0x9FA5}, {0x9FA6, 0x9FBB}, {0xF900, 0xFA2D}, {0xFA30, 0xFA6A}, {0xFA70, 0xFAD9},
        {0x2001, 0x2A6D}, {0x2F81, 0x2FA1}, {0xFF00, 0xFFEF}, {0x2E80, 0x2EFF}, {0x3000, 0x303F}, {0x31C0, 0x31EF},
        {0x2F00, 0x2FDF}, {0x2FF0, 0x2FFF}, {0x3100, 0x312F}, {0x31A0, 0x31BF}, {0xFE10, 0xFE1F}, {0xFE30, 0xFE4F},
        {0x2600, 0x26FF}, {0x2700, 0x27BF}, {0x3200, 0x32FF}, {0x3300, 0x33FF},
    };
    for (const auto& [a, b] : ranges)
        if (c >= a && c <= b) return true;
    return false;
}

}  // namespace

std::string detail::py_strip(const std::string& s) {
    const std::string r = py_rstrip(s);
    size_t i = 0;
    while (i < r.size()) {
        const size_t w = space_at(r, i);
        if (!w) break;
        i += w;
    }
    return r.substr(i);
}

namespace {

std::string tokenize_zh(const std::string& line) {
    const std::u32string u = utf8_to_u32(py_strip(line));
    std::u32string out;
    out.reserve(u.size() * 2);
    for (char32_t c : u) {
        if (zh_is_chinese(c)) {
            out.push_back(U' ');
            out.push_back(c);
            out.push_back(U' ');
        } else {
            out.push_back(c);
        }
    }
    return tokenize_re(u32_to_utf8(out));
}

std::string tokenize_char(const std::string& line) {
    const std::u32string u = utf8_to_u32(line);
    std::u32string out;
    for (size_t i = 0; i < u.size(); ++i) {
        if (i) out.push_back(U' ');
        out.push_back(u[i]);
    }
    return u32_to_utf8(out);
}

}  // namespace

std::string bleu_tokenize(const std::string& line, const std::string& tokenizer) {
    if (tokenizer == "13a") return tokenize_13a(line);
    if (tokenizer == "intl") return tokenize_intl(line);
    if (tokenizer == "zh") return tokenize_zh(line);
    if (tokenizer == "char") return tokenize_char(line);
    if (tokenizer == "none") return line;
    throw_bad_input("unknown BLEU tokenizer '%s' (13a, intl, zh, char or none)", tokenizer.c_str());
}

// ---- BLEU ---------------------------------------------------------------------------------------------------------

namespace {

// N-grams as strings of their words joined by '\x01' (a byte no tokenised word holds).
using NgramCounts = std::unordered_map<std::string, int64_t>;

int64_t extract_ngrams(const std::string& line, int max_order, NgramCounts& out) {
    const std::vector<std::string> w = py_split(line);
    for (int n = 1; n <= max_order; ++n) {
        for (size_t i = 0; i + static_cast<size_t>(n) <= w.size(); ++i) {
            std::string key = w[i];
            for (int k = 1; k < n; ++k) {
                key += '\x01';
                key += w[i + static_cast<size_t>(k)];
            }
            key += static_cast<char>('0' + n);  // the order, so equal strings of different orders stay apart
            ++out[key];
        }
    }
    return static_cast<int64_t>(w.size());
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), f, v);
    return buf;
}



}  // namespace

Bleu::Bleu(BleuOptions o) : o_(std::move(o)) {
    if (o_.smooth != "exp" && o_.smooth != "floor" && o_.smooth != "add-k" && o_.smooth != "none")
        throw_bad_input("unknown BLEU smoothing '%s' (exp, floor, add-k or none)", o_.smooth.c_str());
    if (o_.max_order < 1 || o_.max_order > 9) throw_bad_input("BLEU max n-gram order must be 1..9");
    bleu_tokenize("", o_.tokenize);  // validates the name
}

std::string Bleu::preprocess(const std::string& s) const {
    return bleu_tokenize(py_rstrip(o_.lowercase ? py_lower(s) : s), o_.tokenize);
}

std::vector<int64_t> Bleu::segment_stats(const std::string& hyp, const std::vector<std::string>& refs) const {
    const int N = o_.max_order;
    NgramCounts ref_ngrams;
    std::vector<int64_t> ref_lens;
    bool first = true;
    for (const auto& r : refs) {
        NgramCounts this_ref;
        ref_lens.push_back(extract_ngrams(preprocess(r), N, this_ref));
        if (first) {
            ref_ngrams = std::move(this_ref);
            first = false;
        } else {
            for (const auto& [k, c] : this_ref) {
                auto& slot = ref_ngrams[k];
                slot = std::max(slot, c);
            }
        }
    }
    NgramCounts hyp_ngrams;
    const int64_t hyp_len = extract_ngrams(preprocess(hyp), N, hyp_ngrams);
    // closest reference length; ties go to the shorter reference
    int64_t closest_diff = -1, ref_len = -1;
    for (int64_t rl : ref_lens) {
        const int64_t diff = std::llabs(hyp_len - rl);
        if (closest_diff == -1 || diff < closest_diff) {
            closest_diff = diff;
            ref_len = rl;
        } else if (diff == closest_diff && rl < ref_len) {
            ref_len = rl;
        }
    }
    std::vector<int64_t> stats(2 + 2 * static_cast<size_t>(N), 0);
    stats[0] = hyp_len;
    stats[1] = ref_len;
    for (const auto& [k, c] : hyp_ngrams) {
        const int n = k.back() - '0' - 1;
        stats[2 + static_cast<size_t>(N + n)] += c;
        auto it = ref_ngrams.find(k);
        if (it != ref_ngrams.end()) stats[2 + static_cast<size_t>(n)] += std::min(c, it->second);
    }
    return stats;
}

BleuScore Bleu::compute(std::vector<double> correct, std::vector<double> total, int64_t sys_len, int64_t ref_len,
                        const std::string& smooth, double smooth_value, bool effective_order, int max_order) {
    if (smooth_value < 0) smooth_value = smooth == "floor" ? 0.1 : smooth == "add-k" ? 1.0 : 0.0;
    BleuScore s;
    s.sys_len = sys_len;
    s.ref_len = ref_len;
    s.bp = 1.0;
    if (sys_len < ref_len) s.bp = sys_len > 0 ? std::exp(1.0 - static_cast<double>(ref_len) / static_cast<double>(sys_len)) : 0.0;
    s.ratio = ref_len ? static_cast<double>(sys_len) / static_cast<double>(ref_len) : 0.0;
    s.precisions.assign(static_cast<size_t>(max_order), 0.0);
    bool any = false;
    for (double c : correct) any = any || c != 0;
    if (!any) {
        s.counts = correct;
        s.totals = total;
        return s;  // no match at all: 0 (sacreBLEU #141)
    }
    double smooth_mteval = 1.0;
    int eff_order = max_order;
    for (int n = 1; n <= max_order; ++n) {
        const size_t i = static_cast<size_t>(n - 1);
        if (smooth == "add-k" && n > 1) {
            correct[i] += smooth_value;
            total[i] += smooth_value;
        }
        if (total[i] == 0) break;
        if (effective_order) eff_order = n;
        if (correct[i] == 0) {
            if (smooth == "exp") {
                smooth_mteval *= 2;
                s.precisions[i] = 100.0 / (smooth_mteval * total[i]);
            } else if (smooth == "floor") {
                s.precisions[i] = 100.0 * smooth_value / total[i];
            }
        } else {
            s.precisions[i] = 100.0 * correct[i] / total[i];
        }
    }
    double sum = 0;
    for (int n = 0; n < eff_order; ++n) {
        const double p = s.precisions[static_cast<size_t>(n)];
        sum += p == 0.0 ? -9999999999.0 : std::log(p);
    }
    s.score = s.bp * std::exp(sum / eff_order);
    s.counts = std::move(correct);
    s.totals = std::move(total);
    return s;
}

std::string Bleu::signature(int nrefs) const {
    std::string smooth = o_.smooth;
    if (o_.smooth == "floor" || o_.smooth == "add-k") {
        const double v = o_.smooth_value < 0 ? (o_.smooth == "floor" ? 0.1 : 1.0) : o_.smooth_value;
        smooth += "[" + fmt("%.2f", v) + "]";
    }
    return "nrefs:" + (nrefs < 0 ? std::string("var") : std::to_string(nrefs)) + "|case:" + (o_.lowercase ? "lc" : "mixed") +
           "|eff:" + (o_.effective_order ? "yes" : "no") + "|tok:" + o_.tokenize + "|smooth:" + smooth +
           "|version:" + kSacreBleuVersion;
}

BleuScore Bleu::from_stats(const std::vector<int64_t>& stats, int nrefs) const {
    const size_t N = static_cast<size_t>(o_.max_order);
    std::vector<double> correct(N), total(N);
    for (size_t n = 0; n < N; ++n) {
        correct[n] = static_cast<double>(stats[2 + n]);
        total[n] = static_cast<double>(stats[2 + N + n]);
    }
    BleuScore s = compute(correct, total, stats[0], stats[1], o_.smooth, o_.smooth_value, o_.effective_order, o_.max_order);
    s.signature = signature(nrefs);
    return s;
}

BleuScore Bleu::corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) const {
    const auto sum = detail::sum_segments<std::vector<int64_t>>(hyps, refs, 2 + 2 * static_cast<size_t>(o_.max_order),
                                                                [&](const std::string& h, const std::vector<std::string>& r) { return segment_stats(h, r); });
    return from_stats(sum, static_cast<int>(refs.size()));
}

BleuScore Bleu::sentence(const std::string& hyp, const std::vector<std::string>& refs) const {
    if (refs.empty()) throw_bad_input("no references given");
    return from_stats(segment_stats(hyp, refs), static_cast<int>(refs.size()));
}

std::string BleuScore::verbose() const {
    std::string p;
    for (size_t i = 0; i < precisions.size(); ++i) p += (i ? "/" : "") + fmt("%.1f", precisions[i]);
    return p + " (BP = " + fmt("%.3f", bp) + " ratio = " + fmt("%.3f", ratio) + " hyp_len = " + std::to_string(sys_len) +
           " ref_len = " + std::to_string(ref_len) + ")";
}

std::string BleuScore::format(int width) const { return "BLEU|" + signature + " = " + fixed(score, width) + " " + verbose(); }

std::string format_score(double v, int width) { return fixed(v, width); }

std::string detail::replace_all(std::string s, const std::string& from, const std::string& to) {
    size_t pos = 0;
    while ((pos = s.find(from, pos)) != std::string::npos) {
        s.replace(pos, from.size(), to);
        pos += to.size();
    }
    return s;
}

void detail::check_corpus(const std::vector<std::string>& hyps, const std::vector<std::vector<std::string>>& refs) {
    if (refs.empty()) throw_bad_input("no references given");
    for (const auto& r : refs)
        if (r.size() != hyps.size())
            throw_bad_input("the hypotheses have %zu lines but a reference has %zu: system and reference streams must have the same length",
                            hyps.size(), r.size());
}

std::string detail::fixed(double v, int width) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.*f", width, v);
    return buf;
}

std::string ChrfScore::format(int width) const { return name + "|" + signature + " = " + fixed(score, width); }
std::string TerScore::format(int width) const { return "TER|" + signature + " = " + fixed(score, width); }

// ---- the text readers of `llmforge bleu` / `rouge` (textmetrics.h) ----------------------------------------------------

std::vector<std::string> read_text_lines(const std::string& path) {
    std::string data;
    if (path == "-") {
        data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
        std::ifstream f(path, std::ios::binary);
        if (!f) throw_bad_input("cannot open '%s'", path.c_str());
        data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    }
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t i = 0; i <= data.size(); ++i) {
        if (i == data.size() || data[i] == '\n' || data[i] == '\r') {
            if (i == data.size() && start == i) break;  // no line after the last newline
            std::string line = data.substr(start, i - start);
            if (!utf8_valid(line)) throw_bad_input("%s:%zu: invalid UTF-8", path.c_str(), lines.size() + 1);
            lines.push_back(py_rstrip(line));
            if (i < data.size() && data[i] == '\r' && i + 1 < data.size() && data[i + 1] == '\n') ++i;
            start = i + 1;
        }
    }
    if (lines.empty()) throw_bad_input("'%s' is empty: there is nothing to score", path.c_str());
    return lines;
}

void read_rouge_jsonl(const std::string& path, std::vector<std::string>& preds, std::vector<std::vector<std::string>>& refs) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw_bad_input("cannot open '%s'", path.c_str());
    std::string line;
    size_t n = 0;
    while (std::getline(f, line)) {
        ++n;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const nlohmann::json::exception& e) {
            throw_bad_input("%s:%zu: malformed JSON: %s", path.c_str(), n, e.what());
        }
        if (!j.is_object() || !j.contains("prediction") || !j["prediction"].is_string() || !j.contains("references") ||
            !j["references"].is_array() || j["references"].empty())
            throw_bad_input("%s:%zu: expected {\"prediction\": string, \"references\": [string, …]}", path.c_str(), n);
        preds.push_back(j["prediction"].get<std::string>());
        refs.emplace_back();
        for (const auto& r : j["references"]) {
            if (!r.is_string()) throw_bad_input("%s:%zu: references must be strings", path.c_str(), n);
            refs.back().push_back(r.get<std::string>());
        }
        if (!utf8_valid(preds.back())) throw_bad_input("%s:%zu: invalid UTF-8", path.c_str(), n);
        for (const auto& r : refs.back())
            if (!utf8_valid(r)) throw_bad_input("%s:%zu: invalid UTF-8", path.c_str(), n);
    }
    if (preds.empty()) throw_bad_input("'%s' holds no items", path.c_str());
}

}  // namespace llmforge::metrics
