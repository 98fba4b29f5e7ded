#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex_split.h"

#include <pcre2.h>

#include "llmforge/error.h"
#include "llmforge/utf8.h"

namespace llmforge::detail {

namespace {

// Unicode White_Space, the meaning of \s in the regex engines tokenizers were written for.
constexpr const char* kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}";

// Per-thread match state: one match-data block (the first pair is all we read) and a JIT stack large enough for long
// runs of whitespace or letters.
struct ThreadMatch {
    pcre2_match_data* md = nullptr;
    pcre2_jit_stack* stack = nullptr;
    pcre2_match_context* mctx = nullptr;
    ThreadMatch() {
        md = pcre2_match_data_create(1, nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
        mctx = pcre2_match_context_create(nullptr);
        if (!md || !stack || !mctx) throw Error(ErrorKind::Runtime, "out of memory creating regex match state");
        pcre2_jit_stack_assign(mctx, nullptr, stack);
    }
    ~ThreadMatch() {
        pcre2_match_context_free(mctx);
        pcre2_jit_stack_free(stack);
        pcre2_match_data_free(md);
    }
};

ThreadMatch& thread_match() {
    thread_local ThreadMatch tm;
    return tm;
}

}  // namespace

std::string translate_pattern(const std::string& p) {
    std::string out;
    out.reserve(p.size() + 64);
    bool in_class = false;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char e = p[i + 1];
            if (e == 's') {
                out += in_class ? std::string(kWhiteSpace) : "[" + std::string(kWhiteSpace) + "]";
            } else if (e == 'S' && !in_class) {
                out += "[^" + std::string(kWhiteSpace) + "]";
            } else {
                out += c;
                out += e;
            }
            ++i;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = true;
            out += c;
            // a ']' right after '[' or '[^' is a literal member
            if (i + 1 < p.size() && p[i + 1] == '^') { out += '^'; ++i; }
            if (i + 1 < p.size() && p[i + 1] == ']') { out += ']'; ++i; }
            continue;
        }
        if (in_class && c == '[' && i + 1 < p.size() && p[i + 1] == ':') {  // POSIX class [:alpha:]
            const size_t end = p.find(":]", i + 2);
            if (end != std::string::npos) {
                out.append(p, i, end + 2 - i);
                i = end + 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = false;
        out += c;
    }
    return out;
}

std::string escape_literal(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
        out += c;
    }
    return out;
}

struct RegexSplitter::Code {
    pcre2_code* code = nullptr;
    bool jit = false;
    ~Code() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(const SplitRule& rule) : code_(std::make_unique<Code>()), rule_(rule) {
    const std::string pat = translate_pattern(rule.pattern);
    int err = 0;
    PCRE2_SIZE erroff = 0;
    code_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pat.data()), pat.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &erroff, nullptr);
    if (!code_->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        throw Error(ErrorKind::BadInput, "invalid pre-tokenizer regex /" + rule.pattern + "/: " +
                                             reinterpret_cast<const char*>(msg) + " at offset " + std::to_string(erroff));
    }
    code_->jit = pcre2_jit_compile(code_->code, PCRE2_JIT_COMPLETE) == 0;
}

RegexSplitter::~RegexSplitter() = default;
RegexSplitter::RegexSplitter(RegexSplitter&&) noexcept = default;
RegexSplitter& RegexSplitter::operator=(RegexSplitter&&) noexcept = default;

bool RegexSplitter::next_match(std::string_view text, size_t from, size_t& mb, size_t& me) const {
    ThreadMatch& tm = thread_match();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    while (from < text.size()) {
        const int rc = code_->jit ? pcre2_jit_match(code_->code, subject, text.size(), from, 0, tm.md, tm.mctx)
                                  : pcre2_match(code_->code, subject, text.size(), from, 0, tm.md, tm.mctx);
        if (rc == PCRE2_ERROR_NOMATCH) return false;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof(msg));
            throw Error(ErrorKind::Runtime, std::string("regex match failed: ") + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(tm.md);
        mb = ov[0];
        me = ov[1];
        if (me > mb) return true;
        // an empty match carries no piece: look again one character further on
        from = mb + utf8_len(static_cast<unsigned char>(text[mb]));
    }
    return false;
}

void RegexSplitter::split(std::string_view text, size_t base, std::vector<std::pair<size_t, size_t>>& out) const {
    // Walk the text as alternating (gap, match) segments; `is_match` flips when the rule is inverted.
    const SplitBehavior beh = rule_.behavior;
    size_t pend_b = 0, pend_e = 0;  // a segment waiting to be merged (MergedWith*, Contiguous)
    bool have_pend = false, pend_is_match = false;
    auto emit = [&](size_t b, size_t e) { out.emplace_back(base + b, base + e); };
    auto segment = [&](size_t b, size_t e, bool is_match) {
        if (rule_.invert) is_match = !is_match;
        switch (beh) {
            case SplitBehavior::Isolated: emit(b, e); break;
            case SplitBehavior::Removed:
                if (!is_match) emit(b, e);
                break;
            case SplitBehavior::MergedWithPrevious:
                if (is_match && have_pend && !pend_is_match) { emit(pend_b, e); have_pend = false; }
                else {
                    if (have_pend) emit(pend_b, pend_e);
                    if (is_match) { emit(b, e); have_pend = false; }
                    else { pend_b = b; pend_e = e; have_pend = true; pend_is_match = false; }
                }
                break;
            case SplitBehavior::MergedWithNext:
                if (!is_match && have_pend && pend_is_match) { emit(pend_b, e); have_pend = false; }
                else {
                    if (have_pend) emit(pend_b, pend_e);
                    if (is_match) { pend_b = b; pend_e = e; have_pend = true; pend_is_match = true; }
                    else { emit(b, e); have_pend = false; }
                }
                break;
            case SplitBehavior::Contiguous:
                if (have_pend && pend_is_match == is_match && is_match) { pend_e = e; }
                else {
                    if (have_pend) emit(pend_b, pend_e);
                    pend_b = b; pend_e = e; have_pend = true; pend_is_match = is_match;
                }
                break;
        }
    };
    size_t pos = 0, mb = 0, me = 0;
    while (pos < text.size() && next_match(text, pos, mb, me)) {
        if (mb > pos) segment(pos, mb, false);
        segment(mb, me, true);
        pos = me;
    }
    if (pos < text.size()) segment(pos, text.size(), false);
    if (have_pend) emit(pend_b, pend_e);
}

}  // namespace llmforge::detail
