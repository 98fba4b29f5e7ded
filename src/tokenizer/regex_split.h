// Regex splitting for pre-tokenisers, on PCRE2 with its JIT. Patterns are Unicode-aware (\p{L}, \p{N}, case folding)
// and accept invalid UTF-8 in the subject: bytes that form no character simply never match a class like \p{L}.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "llmforge/bpe.h"

namespace llmforge::detail {

class RegexSplitter {
public:
    // Throws a bad-input Error naming the pattern and PCRE2's message if the pattern does not compile.
    explicit RegexSplitter(const SplitRule& rule);
    ~RegexSplitter();
    RegexSplitter(RegexSplitter&&) noexcept;
    RegexSplitter& operator=(RegexSplitter&&) noexcept;

    // The next non-empty match at or after `from`: false if none, else [mb, me).
    bool next_match(std::string_view text, size_t from, size_t& mb, size_t& me) const;
    // Splits text[0, size) per the rule's behaviour; appends (begin, end) offsets, shifted by `base`.
    void split(std::string_view text, size_t base, std::vector<std::pair<size_t, size_t>>& out) const;
    const SplitRule& rule() const { return rule_; }

private:
    struct Code;
    std::unique_ptr<Code> code_;
    SplitRule rule_;
};

// `\s` in Rust's regex and Oniguruma is Unicode White_Space; PCRE2's also takes U+180E. Rewrites \s and \S so the
// pattern means what the tokenizer's authors meant.
std::string translate_pattern(const std::string& pattern);
// A literal string as a PCRE2 pattern.
std::string escape_literal(const std::string& s);

}  // namespace llmforge::detail
