// Words and sentences through ICU: its break iterators run over the UTF-8 bytes directly (a UTF-8 UText), so every
// boundary is a byte offset. The word iterator of the root locale segments Chinese and Japanese with ICU's dictionary
// (and Thai, Lao, Khmer, Burmese likewise); each segment's rule status says whether it is a word (letters, digits,
// kana, ideographs) or spaces and punctuation.
#include <unicode/brkiter.h>
#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <unicode/utext.h>

#include <memory>

#include "llmforge/error.h"
#include "llmforge/rag.h"
#include "llmforge/utf8.h"

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
void set_text(icu::BreakIterator& it, std::string_view text) {
    if (text.size() > static_cast<size_t>(INT32_MAX)) throw_bad_input("a text of %zu bytes is too long to segment (at most 2 GiB)", text.size());
    if (!utf8_valid(std::string(text))) throw_bad_input("text to segment is not valid UTF-8");
    thread_local UText* ut = nullptr;
    UErrorCode st = U_ZERO_ERROR;
    ut = utext_openUTF8(ut, text.data(), static_cast<int64_t>(text.size()), &st);
    it.setText(ut, st);
    if (U_FAILURE(st)) throw_runtime("ICU: cannot segment text: %s", u_errorName(st));
}

bool ascii_alnum(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Appends the pieces of a folded word between ASCII separators.
void split_ascii(const std::string& w, std::vector<std::string>& out) {
    size_t i = 0;
    while (i < w.size()) {
        while (i < w.size() && w[i] >= 0 && !ascii_alnum(static_cast<unsigned char>(w[i]))) ++i;
        size_t j = i;
        while (j < w.size() && (w[j] < 0 || ascii_alnum(static_cast<unsigned char>(w[j])))) ++j;
        if (j > i) out.push_back(w.substr(i, j - i));
        i = j;
    }
}

}  // namespace

std::vector<std::string> words(std::string_view text) {
    std::vector<std::string> out;
    if (text.empty()) return out;
    icu::BreakIterator& it = iterator(false);
    set_text(it, text);
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* fold = icu::Normalizer2::getNFKCCasefoldInstance(st);
    if (U_FAILURE(st)) throw_runtime("ICU: no NFKC_Casefold normaliser: %s", u_errorName(st));
    std::string w;
    for (int32_t b = it.first(), e = it.next(); e != icu::BreakIterator::DONE; b = e, e = it.next()) {
        if (it.getRuleStatus() < UBRK_WORD_NONE_LIMIT) continue;  // spaces, punctuation, symbols
        const std::string_view seg = text.substr(static_cast<size_t>(b), static_cast<size_t>(e - b));
        bool ascii = true;
        for (char c : seg) ascii = ascii && c >= 0;
        w.clear();
        if (ascii) {  // NFKC_Casefold of ASCII is its lower case
            for (char c : seg) w += (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
        } else {
            icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(seg.data(), static_cast<int32_t>(seg.size())));
            fold->normalize(u, st).toUTF8String(w);
            if (U_FAILURE(st)) throw_runtime("ICU: cannot normalise a word: %s", u_errorName(st));
        }
        split_ascii(w, out);
    }
    return out;
}

std::vector<std::pair<size_t, size_t>> word_spans(std::string_view text) {
    std::vector<std::pair<size_t, size_t>> out;
    if (text.empty()) return out;
    icu::BreakIterator& it = iterator(false);
    set_text(it, text);
    for (int32_t b = it.first(), e = it.next(); e != icu::BreakIterator::DONE; b = e, e = it.next())
        if (it.getRuleStatus() >= UBRK_WORD_NONE_LIMIT) out.emplace_back(static_cast<size_t>(b), static_cast<size_t>(e));
    return out;
}

std::vector<std::pair<size_t, size_t>> sentences(std::string_view text) {
    std::vector<std::pair<size_t, size_t>> out;
    if (text.empty()) return out;
    icu::BreakIterator& it = iterator(true);
    set_text(it, text);
    for (int32_t b = it.first(), e = it.next(); e != icu::BreakIterator::DONE; b = e, e = it.next())
        out.emplace_back(static_cast<size_t>(b), static_cast<size_t>(e));
    return out;
}

}  // namespace llmforge::rag
