// Grammars for constrained decoding: llama.cpp's GBNF, parsed into rules, and a matcher that follows text through
// them as a pushdown automaton over Unicode code points.
//
// GBNF (the syntax of llama.cpp's grammars/ *.gbnf files):
//   rule     ::= name "::=" alternatives          one rule per line; a line may continue after "::=", "|" or
//                                                  anywhere inside parentheses
//   alternatives: sequence ("|" sequence)*        an empty sequence matches the empty string
//   term:  "literal"  [a-z0-9_]  [^"\\]  name  ( alternatives )  .  (any one character)
//   postfix on a term: *  +  ?  {m}  {m,}  {m,n}
//   escapes in literals and classes: \n \r \t \\ \" \[ \] \xHH \uHHHH \UHHHHHHHH;  # starts a comment
// Names are letters, digits and '-'. The start rule is "root" (or the name given).
//
// A parse fails with a bad-input Error naming the line and column (syntax), the rule (undefined reference,
// left recursion: a rule that can reach itself before consuming a character), or the missing start rule.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace llmforge {

// A set of code points: sorted, disjoint, non-adjacent ranges [lo, hi]; negated sets match what the ranges do not.
struct CharClass {
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    bool negated = false;
    bool matches(uint32_t cp) const;
    // Whether some code point in [lo, hi] matches (for a character whose first bytes are known).
    bool matches_any_in(uint32_t lo, uint32_t hi) const;
};

class Grammar {
public:
    // One element of a rule body. Rules are stored flat: each alternative is a run of Terminal/Rule elements closed
    // by End; a position in the grammar is an index into elements().
    struct Element {
        enum Kind : uint8_t { End, Terminal, Rule } kind;
        uint32_t index;  // Terminal: into classes(); Rule: a rule id
    };

    // Parses GBNF text; throws a bad-input Error (see above).
    static std::shared_ptr<const Grammar> parse(std::string_view gbnf, const std::string& start = "root");

    uint32_t start_rule() const { return start_; }
    size_t n_rules() const { return rule_names_.size(); }
    const std::string& rule_name(uint32_t rule) const { return rule_names_[rule]; }
    // The first position of each alternative of a rule.
    const std::vector<uint32_t>& alternatives(uint32_t rule) const { return alts_[rule]; }
    const std::vector<Element>& elements() const { return elems_; }
    const std::vector<CharClass>& classes() const { return classes_; }
    // The grammar written back as GBNF (generated helper rules included), one rule per line.
    std::string to_gbnf() const;

private:
    friend class GbnfParser;
    std::vector<std::string> rule_names_;
    std::vector<std::vector<uint32_t>> alts_;
    std::vector<Element> elems_;
    std::vector<CharClass> classes_;
    uint32_t start_ = 0;
};

// Follows text through a grammar. The state is a set of parse stacks; each stack's top is a character class still
// to match, or the stack is empty (the text so far is a complete sentence). Stacks are interned, so a set of them
// is a set of ids and equal stacks share one id.
struct GrammarLimits {
    size_t max_stacks = 1 << 16;  // parse stacks alive at once: more means an ambiguous grammar; refused
};

class GrammarMatcher {
public:
    using Limits = GrammarLimits;
    explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar, Limits limits = {});

    // Feeds UTF-8 bytes (a token's text; it may end inside a character). Returns false and leaves the state as it was
    // when the grammar cannot continue with them (including invalid UTF-8). Throws a runtime Error if more than
    // limits.max_stacks parse stacks would be alive.
    bool accept(std::string_view bytes);
    bool accept_codepoint(uint32_t cp);
    // Whether the text so far is a complete sentence of the grammar (no character left half-read).
    bool can_end() const;
    // Whether some continuation is still possible (false only after the grammar has been completed and nothing more
    // may follow).
    bool can_continue() const;
    void reset();
    // What may come next, as GBNF terms ("[0-9]", "\"+\"", "the end" when the sentence may end here), sorted,
    // at most max of them (then "…").
    std::string expected(size_t max = 8) const;
    size_t n_stacks() const { return stacks_.size(); }

private:
    static constexpr uint32_t kEmpty = 0;  // the empty stack
    struct Node { uint32_t pos, parent; };
    uint32_t intern(uint32_t pos, uint32_t parent);
    // Expands stack s until every resulting stack's top is a terminal (or it is empty), into out (deduplicated).
    void expand(uint32_t s, std::vector<uint32_t>& out);
    bool step(uint32_t cp, std::vector<uint32_t>& next);

    std::shared_ptr<const Grammar> g_;
    Limits limits_;
    std::vector<Node> nodes_;
    std::unordered_map<uint64_t, uint32_t> index_;
    std::vector<uint32_t> stacks_;
    std::vector<uint32_t> seen_;  // per-expansion marks, indexed by node id
    uint32_t epoch_ = 0;
    std::vector<uint32_t> work_;
    // a character begun but not finished by the bytes so far
    uint32_t partial_ = 0;
    int partial_left_ = 0;
};

}  // namespace llmforge
