// Words and sentences through ICU: its break iterators run over the UTF-8 bytes directly (a UTF-8 UText), so every
// boundary is a byte offset. The word iterator of the root locale segments Chinese and Japanese with ICU's dictionary
// (and Thai, Lao, Khmer, Burmese likewise); each segment's rule status says whether it is a word (letters, digits,
// kana, ideographs) or spaces and punctuation.
#include <unicode/brkiter.h>
#include <unicode/uchar.h>
#include <unicode/utf8.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>

#include <algorithm>
#include <memory>

#include "llmforge/error.h"
#include "llmforge/rag.h"
#include "llmforge/textmetrics.h"
#include "llmforge/utf8.h"
#include "rag/rag_internal.h"

namespace llmforge::rag {

namespace {

// One iterator of each kind per thread (creating one loads ICU's rules: too slow to do per text).
icu::BreakIterator& iterator(bool sentence) {
    thread_local std::unique_ptr<icu::BreakIterator> word, sent;
    std::unique_ptr<icu::BreakIterator>& it = sentence ? sent : word;
    if (!it) {
        UErrorCode st = U_ZERO_ERROR;
        it.reset(sentence ? icu::BreakIterator::createSentenceInstance(icu::Locale::getRoot(), st)
                          : icu::BreakIterator::createWordInstance(icu::Locale::getRoot(), st));
        if (U_FAILURE(st) || !it) throw_runtime("ICU: cannot create a %s break iterator: %s", sentence ? "sentence" : "word", u_errorName(st));
    }
    return *it;
}

// Points the iterator at text (kept open until the next call on this thread).
// valid: the caller has checked that text is UTF-8 (ICU's normaliser output, or ASCII).
void set_text(icu::BreakIterator& it, std::string_view text, bool valid = false) {
    if (text.size() > static_cast<size_t>(INT32_MAX)) throw_bad_input("a text of %zu bytes is too long to segment (at most 2 GiB)", text.size());
    if (!valid && !utf8_valid(std::string(text))) throw_bad_input("text to segment is not valid UTF-8");
    thread_local UText* ut = nullptr;
    UErrorCode st = U_ZERO_ERROR;
    ut = utext_openUTF8(ut, text.data(), static_cast<int64_t>(text.size()), &st);
    it.setText(ut, st);
    if (U_FAILURE(st)) throw_runtime("ICU: cannot segment text: %s", u_errorName(st));
}

bool ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Appends the pieces of a folded word between characters that are not letters, marks or digits (general categories
// L, M, N): "don't" and "don’t" both give "don", "t"; "foo_bar" gives "foo", "bar".
void split_alnum(const std::string& w, std::vector<std::string>& out) {
    size_t start = 0;
    int32_t i = 0;
    const int32_t n = static_cast<int32_t>(w.size());
    auto piece = [&](size_t end) {
        if (end > start) out.push_back(w.substr(start, end - start));
    };
    while (i < n) {
        const int32_t at = i;
        UChar32 c;
        U8_NEXT(w.data(), i, n, c);
        const bool keep = c >= 0 && (c < 0x80 ? ascii_alnum(static_cast<unsigned char>(c))
                                              : (U_GET_GC_MASK(c) & (U_GC_L_MASK | U_GC_M_MASK | U_GC_N_MASK)) != 0);
        if (!keep) {
            piece(static_cast<size_t>(at));
            start = static_cast<size_t>(i);
        }
    }
    piece(w.size());
}

}  // namespace

std::vector<std::string> words(std::string_view text) {
    std::vector<std::string> out;
    if (text.empty()) return out;
    // Fold first, then segment: "x³" is the word "x3", "ＡＢＣ" is "abc" (NFKC_Casefold of ASCII is its lower case).
    bool ascii = true;
    for (char c : text) ascii = ascii && c >= 0;
    std::string folded;
    if (ascii) {
        folded.resize(text.size());
        for (size_t i = 0; i < text.size(); ++i) folded[i] = (text[i] >= 'A' && text[i] <= 'Z') ? static_cast<char>(text[i] - 'A' + 'a') : text[i];
    } else {
        if (text.size() > static_cast<size_t>(INT32_MAX / 2)) throw_bad_input("a text of %zu bytes is too long to segment", text.size());
        if (!utf8_valid(std::string(text))) throw_bad_input("text to segment is not valid UTF-8");
        UErrorCode st = U_ZERO_ERROR;
        const icu::Normalizer2* fold = icu::Normalizer2::getNFKCCasefoldInstance(st);
        if (U_FAILURE(st)) throw_runtime("ICU: no NFKC_Casefold normaliser: %s", u_errorName(st));
        const icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), static_cast<int32_t>(text.size())));
        fold->normalize(u, st).toUTF8String(folded);
        if (U_FAILURE(st)) throw_runtime("ICU: cannot normalise text: %s", u_errorName(st));
    }
    icu::BreakIterator& it = iterator(false);
    set_text(it, folded, true);
    std::string w;
    for (int32_t b = it.first(), e = it.next(); e != icu::BreakIterator::DONE; b = e, e = it.next()) {
        if (it.getRuleStatus() < UBRK_WORD_NONE_LIMIT) continue;  // spaces, punctuation, symbols
        w.assign(folded, static_cast<size_t>(b), static_cast<size_t>(e - b));
        split_alnum(w, out);
    }
    return out;
}

Analyzer parse_analyzer(const std::string& name) {
    if (name == "plain") return Analyzer::Plain;
    if (name == "stop") return Analyzer::Stop;
    if (name == "english") return Analyzer::English;
    throw_bad_input("unknown analyzer '%s' (plain, stop or english)", name.c_str());
}

const char* analyzer_name(Analyzer a) { return a == Analyzer::English ? "english" : a == Analyzer::Stop ? "stop" : "plain"; }

// Function words that say little about what a text is about: articles, pronouns, auxiliary and modal verbs, common
// prepositions and conjunctions, question words. Content words that are often short ("up", "all", "only", "more") stay.
const std::vector<std::string>& english_stopwords() {
    static const std::vector<std::string> list = [] {
        std::vector<std::string> w = {
            "a", "an", "the",
            "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
            "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself", "they",
            "them", "their", "theirs", "themselves",
            "this", "that", "these", "those",
            "what", "which", "who", "whom", "whose", "when", "where", "why", "how",
            "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do", "does", "did",
            "doing", "done", "can", "could", "may", "might", "must", "shall", "should", "will", "would",
            "and", "or", "but", "if", "then", "than", "so", "nor", "not", "no",
            "of", "at", "by", "for", "with", "about", "against", "between", "into", "through", "during", "before", "after",
            "above", "below", "to", "from", "in", "on",
            "there", "here", "such", "just", "also", "very", "too"};
        std::sort(w.begin(), w.end());
        return w;
    }();
    return list;
}

std::vector<std::string> terms(std::string_view text, Analyzer a) { return analyze(words(text), a); }

std::vector<std::string> analyze(std::vector<std::string> w, Analyzer a) {
    if (a == Analyzer::Plain) return w;
    const std::vector<std::string>& stop = english_stopwords();
    std::vector<std::string> out;
    out.reserve(w.size());
    for (std::string& x : w) {
        if (std::binary_search(stop.begin(), stop.end(), x)) continue;
        const bool letters = a == Analyzer::English && std::all_of(x.begin(), x.end(), [](char c) { return c >= 'a' && c <= 'z'; });
        out.push_back(letters ? metrics::porter_stem(x) : std::move(x));
    }
    return out;
}

// The segments of text by the word or sentence iterator, as byte ranges; words_only: those ICU marks as words.
static std::vector<std::pair<size_t, size_t>> segments(std::string_view text, bool sentence, bool words_only) {
    std::vector<std::pair<size_t, size_t>> out;
    if (text.empty()) return out;
    icu::BreakIterator& it = iterator(sentence);
    set_text(it, text);
    for (int32_t b = it.first(), e = it.next(); e != icu::BreakIterator::DONE; b = e, e = it.next())
        if (!words_only || it.getRuleStatus() >= UBRK_WORD_NONE_LIMIT) out.emplace_back(static_cast<size_t>(b), static_cast<size_t>(e));
    return out;
}

std::vector<std::pair<size_t, size_t>> word_spans(std::string_view text) { return segments(text, false, true); }

std::vector<std::pair<size_t, size_t>> sentences(std::string_view text) { return segments(text, true, false); }

}  // namespace llmforge::rag
