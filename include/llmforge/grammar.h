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
#include <mutex>
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
    // A random sentence of the grammar (UTF-8): alternatives and characters drawn uniformly from a generator seeded
    // with `seed`; below max_depth nested rules each rule takes its shortest way out, so the sentence ends.
    std::string sample(uint64_t seed, int max_depth = 24) const;

private:
    friend class GbnfParser;
    std::vector<std::string> rule_names_;
    std::vector<std::vector<uint32_t>> alts_;
    std::vector<Element> elems_;
    std::vector<CharClass> classes_;
    uint32_t start_ = 0;
};

// A regular expression (the ECMAScript subset of JSON Schema's "pattern": alternatives, groups, classes, \d \w \s,
// escapes, quantifiers; ^ and $ only at the ends) as a GBNF grammar whose sentences are the strings it matches whole.
// Back-references, lookaround, \b and anchors inside the pattern are refused with a bad-input Error naming them.
std::string regex_to_gbnf(std::string_view regex);
// The same pattern as one GBNF expression over the text inside a JSON string literal: '"', '\\' and control
// characters appear as their escapes. anchored_start / anchored_end tell whether it began with '^' / ended with '$'
// (JSON Schema's "pattern" searches; an unanchored end lets any text stand there).
std::string regex_to_json_string_gbnf(std::string_view regex, bool& anchored_start, bool& anchored_end);

// JSON Schema → GBNF, with llama.cpp's json-schema-to-grammar semantics and rule names (common/json-schema-to-
// grammar.cpp: the same rules for types, properties in order, required then optional, additionalProperties, enum,
// const, anyOf/oneOf, allOf, $ref/$defs, items/prefixItems, min/maxItems, min/maxLength, integer ranges, formats
// date/time/date-time/uuid), and beyond it: minimum/maximum on numbers, "pattern" as JSON Schema means it (a search,
// with '"', '\\' and control characters escaped), literals with backslashes escaped, no leading zeros in negative
// ranges. Keywords that constrain values but have no grammar here (not, if/then/else, uniqueItems, multipleOf,
// patternProperties, …) are refused by name, with where they are, unless strict is off: then they are dropped (as
// llama.cpp does) and named in `dropped`. Annotations (title, description, default, examples, …) and unknown keywords
// are ignored, as JSON Schema says. Throws a bad-input Error: malformed JSON, an unsupported keyword (strict), an
// unresolvable $ref, a bad pattern, an empty range.
struct JsonSchemaOptions {
    bool strict = true;           // refuse keywords the grammar cannot enforce (else drop them, listed in `dropped`)
    bool compact_spaces = false;  // at most one space between tokens (llama.cpp's compact_spaces)
    std::string root_rule = "root";  // the name of the schema's own rule (another name: to embed it in a larger grammar)
};
std::string json_schema_to_gbnf(std::string_view schema_json, const JsonSchemaOptions& options = {},
                               std::vector<std::string>* dropped = nullptr);

// GBNF for one JSON object, any keys and values (what response_format {"type": "json_object"} asks for). Strings are
// JSON strings (escapes, no raw control characters), numbers JSON numbers; whitespace between tokens is bounded (at
// most a newline and 20 spaces or tabs) so that a model cannot fill its answer with it, and nothing follows the object.
const std::string& json_object_gbnf();

// Follows text through a grammar. The state is a set of parse stacks; each stack's top is a character class still
// to match, or the stack is empty (the text so far is a complete sentence). Stacks are interned, so a set of them
// is a set of ids and equal stacks share one id.
struct GrammarLimits {
    size_t max_stacks = 1 << 16;  // parse stacks alive at once: more means an ambiguous grammar; refused
};

class GrammarVocab;
class Vocab;

class GrammarMatcher {
public:
    using Limits = GrammarLimits;
    explicit GrammarMatcher(std::shared_ptr<const Grammar> grammar, Limits limits = {});

    // Feeds UTF-8 bytes (a token's text; it may end inside a character). Returns false and leaves the state as it was
    // when the grammar cannot continue with them (including invalid UTF-8). Throws a runtime Error if more than
    // limits.max_stacks parse stacks would be alive.
    bool accept(std::string_view bytes);
    // Whether accept(bytes) would succeed, without advancing.
    bool can_accept(std::string_view bytes);
    // Whether the text so far is a complete sentence of the grammar (no character left half-read).
    bool can_end() const;
    // Whether some continuation is still possible (false only after the grammar has been completed and nothing more
    // may follow).
    bool can_continue() const;
    void reset();
    // What may come next, as GBNF terms ("[0-9]", "\"+\"", "the end" when the sentence may end here), sorted,
    // at most max of them (then "…").
    std::string expected(size_t max = 8) const;
    size_t n_stacks() const { return state_.stacks.size(); }
    const Grammar& grammar() const { return *g_; }

private:
    friend class CompiledGrammar;
    friend class GrammarConstraint;
    static constexpr uint32_t kEmpty = 0;  // the empty stack: the sentence is complete
    static constexpr uint32_t kAbove = 1;  // stands for "whatever is below": reached when the top rule is done
    struct Node { uint32_t pos, parent; };
    struct State {
        std::vector<uint32_t> stacks;
        uint32_t partial = 0;  // a character begun: its bits so far, and how many continuation bytes it still needs
        int left = 0;
        uint32_t min_cp = 0;   // the smallest code point its length may encode (shorter forms are overlong)
    };
    uint32_t intern(uint32_t pos, uint32_t parent);
    // Expands stack s until every resulting stack's top is a terminal (or it is empty), into out (deduplicated).
    void expand(uint32_t s, std::vector<uint32_t>& out);
    void step(const std::vector<uint32_t>& in, uint32_t cp, std::vector<uint32_t>& out);
    bool advance(const State& in, unsigned char byte, State& out);
    // The state after bytes, from `from`; whether the grammar takes them all (a character begun must be able to end).
    bool run(const State& from, std::string_view bytes, State& out);
    // After a token's last byte: 2 the grammar goes on (or may end) inside, 1 only through kAbove, 0 no.
    int verdict(const State& s) const;
    // Sorts every token of v from state `from`: accepted (bits set), or — only when uncertain is given — needing the
    // stack below kAbove (listed); the rest are rejected.
    void walk(const State& from, const GrammarVocab& v, std::vector<uint64_t>& accepted, std::vector<int32_t>* uncertain);

    std::shared_ptr<const Grammar> g_;
    Limits limits_;
    std::vector<Node> nodes_;
    std::unordered_map<uint64_t, uint32_t> index_;
    State state_;
    std::vector<uint32_t> seen_;  // per-expansion marks, indexed by node id
    uint32_t epoch_ = 0;
    std::vector<uint32_t> work_;
};

// Every token's bytes, sorted, for computing token masks: one per vocabulary, shared by every grammar.
class GrammarVocab {
public:
    // bytes[i]: token i's text as generation emits it; empty: never allowed by a grammar (control tokens).
    // end_tokens: the tokens that end generation, allowed where the sentence may end.
    GrammarVocab(std::vector<std::string> bytes, std::vector<int32_t> end_tokens);
    // A model's vocabulary: each token's piece as generation emits it (control tokens never), ending with EOS.
    static std::shared_ptr<const GrammarVocab> from(const Vocab& vocab);
    int32_t size() const { return static_cast<int32_t>(bytes_.size()); }
    const std::string& bytes(int32_t id) const { return bytes_[static_cast<size_t>(id)]; }
    const std::vector<int32_t>& end_tokens() const { return end_; }
    const std::vector<int32_t>& sorted() const { return sorted_; }
    const std::vector<uint16_t>& lcp() const { return lcp_; }  // with the previous token in sorted()
    size_t max_len() const { return max_len_; }

private:
    std::vector<std::string> bytes_;
    std::vector<int32_t> end_, sorted_;
    std::vector<uint16_t> lcp_;
    size_t max_len_ = 0;
};

// A grammar against a vocabulary. For the top of a parse stack — its top position and the few below it, up to
// `depth` of them — it keeps what xgrammar calls the context-independent part of the token mask: the tokens accepted
// there whatever the rest of the stack, and the few that get past those positions and so depend on it. Computed when
// a stack top is first met and shared by every sequence that uses the grammar; thread-safe.
class CompiledGrammar {
public:
    CompiledGrammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab, int depth = 4);
    struct Entry {
        std::vector<uint64_t> accepted;  // one bit per token
        std::vector<int32_t> uncertain;
    };
    // top: the positions from the top of a stack down, at most depth of them; kBottom last if the stack ends there.
    static constexpr uint32_t kBottom = UINT32_MAX;
    const Entry& entry(const std::vector<uint32_t>& top) const;
    int depth() const { return depth_; }
    struct Stats {
        size_t entries = 0, uncertain = 0;
        double ms = 0;  // time spent computing entries
    };
    Stats stats() const;
    const std::shared_ptr<const Grammar>& grammar() const { return g_; }
    const GrammarVocab& vocab() const { return *v_; }

private:
    std::shared_ptr<const Grammar> g_;
    std::shared_ptr<const GrammarVocab> v_;
    int depth_;
    mutable std::mutex mu_;
    mutable std::unordered_map<std::string, std::unique_ptr<Entry>> cache_;
    mutable std::unique_ptr<GrammarMatcher> scratch_;
    mutable Stats stats_;
};

// One sequence's constrained decoding: the allowed tokens at each step, and the state advanced by the chosen one.
class GrammarConstraint {
public:
    explicit GrammarConstraint(std::shared_ptr<const CompiledGrammar> compiled, GrammarLimits limits = {});
    // The tokens allowed next, one bit per token id of the vocabulary (1: allowed): those whose bytes the grammar
    // takes from here, and the end tokens where the sentence may end.
    void allowed(std::vector<uint64_t>& mask);
    // Writes the logits into out with every token the grammar does not allow at -infinity (ids past the vocabulary
    // too); extra_end (a chat template's end of turn) keep their logits where the sentence may end. Returns false
    // when no token is allowed (the vocabulary cannot continue the text).
    bool mask(const float* logits, float* out, int64_t n_logits, const std::vector<int32_t>& extra_end = {});
    // Advances by the chosen token. False, state kept, if the grammar does not allow it.
    bool accept(int32_t token);
    // Advances by text already written (a grammar that starts when a trigger appears: the text from the trigger on).
    bool accept_text(std::string_view bytes) { return !finished_ && m_.accept(bytes); }
    bool can_end() const { return m_.can_end(); }
    // Whether accept(token) would succeed for a token that is not an end token (without advancing).
    bool matcher_can_take(int32_t token);
    bool finished() const { return finished_; }  // an end token was accepted
    const GrammarMatcher& matcher() const { return m_; }

private:
    std::shared_ptr<const CompiledGrammar> cg_;
    GrammarMatcher m_;
    bool finished_ = false;
    std::vector<uint64_t> mask_;
    std::vector<uint32_t> top_;
    std::vector<std::pair<int32_t, float>> keep_;
};

}  // namespace llmforge
