// GBNF grammars: the parser (text → flat rules), the checks (undefined rules, left recursion) and the matcher (a
// pushdown automaton over code points whose state is a set of interned parse stacks). See grammar.h.
#include "llmforge/grammar.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>
#include <random>

#include "llmforge/error.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"

namespace llmforge {

// ---------------------------------------------------------------------------------------------------------------
// CharClass

bool CharClass::matches(uint32_t cp) const {
    // ranges are sorted: binary search for the last range starting at or before cp
    auto it = std::upper_bound(ranges.begin(), ranges.end(), cp, [](uint32_t c, const auto& r) { return c < r.first; });
    bool in = it != ranges.begin() && cp <= std::prev(it)->second;
    return in != negated;
}

bool CharClass::matches_any_in(uint32_t lo, uint32_t hi) const {
    if (!negated) {
        for (const auto& [a, b] : ranges)
            if (a <= hi && lo <= b) return true;
        return false;
    }
    // negated: some code point of [lo, hi] lies outside every range; ranges are disjoint, sorted, non-adjacent
    uint32_t next = lo;  // the smallest code point of [lo, hi] not yet known to be covered
    for (const auto& [a, b] : ranges) {
        if (b < next) continue;
        if (a > next) return true;  // next itself is uncovered
        if (b >= hi) return false;
        next = b + 1;
    }
    return next <= hi;
}

static void normalise(CharClass& c) {
    auto& r = c.ranges;
    std::sort(r.begin(), r.end());
    std::vector<std::pair<uint32_t, uint32_t>> out;
    for (const auto& x : r) {
        if (!out.empty() && x.first <= out.back().second + 1)
            out.back().second = std::max(out.back().second, x.second);
        else
            out.push_back(x);
    }
    r = std::move(out);
}

// ---------------------------------------------------------------------------------------------------------------
// Parser

class GbnfParser {
public:
    GbnfParser(std::string_view src) : src_(src) {}

    std::shared_ptr<const Grammar> run(const std::string& start) {
        space(true);
        while (pos_ < src_.size()) {
            size_t at = pos_;
            std::string name = word();
            if (name.empty()) fail(at, "expected a rule name");
            space(false);
            if (src_.compare(pos_, 3, "::=") != 0) fail(pos_, "expected '::=' after the rule name '" + name + "'");
            pos_ += 3;
            space(true);
            uint32_t id = rule_id(name, at);
            if (defined_[id]) fail(at, "rule '" + name + "' is defined twice");
            defined_[id] = true;
            bodies_[id] = alternatives(name, false);
            space(false);
            if (pos_ < src_.size() && src_[pos_] != '\n' && src_[pos_] != '\r')
                fail(pos_, std::string("unexpected '") + src_[pos_] + "' in rule '" + name + "'");
            space(true);
        }
        for (uint32_t i = 0; i < names_.size(); ++i)
            if (!defined_[i]) fail(first_use_[i], "undefined rule '" + names_[i] + "'");
        auto it = ids_.find(start);
        if (it == ids_.end()) throw_bad_input("grammar: no rule '%s' to start from", start.c_str());
        auto g = std::make_shared<Grammar>();
        g->start_ = it->second;
        g->rule_names_ = names_;
        g->classes_ = std::move(classes_);
        g->alts_.resize(names_.size());
        for (uint32_t r = 0; r < names_.size(); ++r)
            for (const auto& seq : bodies_[r]) {
                g->alts_[r].push_back(static_cast<uint32_t>(g->elems_.size()));
                g->elems_.insert(g->elems_.end(), seq.begin(), seq.end());
                g->elems_.push_back({Grammar::Element::End, 0});
            }
        check_left_recursion(*g);
        return g;
    }

private:
    using Seq = std::vector<Grammar::Element>;
    static constexpr size_t kMaxElements = size_t(1) << 22;  // a bound on repetition unrolling
    static constexpr uint32_t kMaxRepeat = 100000;

    [[noreturn]] void fail(size_t at, const std::string& what) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < at && i < src_.size(); ++i) {
            if (src_[i] == '\n') { ++line; col = 1; } else { ++col; }
        }
        throw_bad_input("grammar: line %zu, column %zu: %s", line, col, what.c_str());
    }

    static bool word_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    }

    // Spaces, tabs and comments; line ends too when newline_ok.
    void space(bool newline_ok) {
        while (pos_ < src_.size()) {
            char c = src_[pos_];
            if (c == ' ' || c == '\t') {
                ++pos_;
            } else if (c == '#') {
                while (pos_ < src_.size() && src_[pos_] != '\n' && src_[pos_] != '\r') ++pos_;
            } else if ((c == '\n' || c == '\r') && newline_ok) {
                ++pos_;
            } else {
                break;
            }
        }
    }

    std::string word() {
        size_t b = pos_;
        while (pos_ < src_.size() && word_char(src_[pos_])) ++pos_;
        return std::string(src_.substr(b, pos_ - b));
    }

    uint32_t rule_id(const std::string& name, size_t at) {
        auto [it, fresh] = ids_.emplace(name, static_cast<uint32_t>(names_.size()));
        if (fresh) {
            names_.push_back(name);
            defined_.push_back(false);
            generated_rule_.push_back(false);
            made_in_.push_back(static_cast<uint32_t>(names_.size() - 1));
            first_use_.push_back(at);
            bodies_.emplace_back();
        }
        return it->second;
    }

    uint32_t new_rule(const std::string& base, std::vector<Seq> body) {
        std::string name;
        do {
            name = base + "-" + std::to_string(++generated_);
        } while (ids_.count(name));
        uint32_t id = rule_id(name, pos_);
        defined_[id] = true;
        generated_rule_[id] = true;
        made_in_[id] = ids_.at(base);
        bodies_[id] = std::move(body);
        return id;
    }

    uint32_t hex(size_t n) {
        uint32_t v = 0;
        for (size_t i = 0; i < n; ++i) {
            if (pos_ >= src_.size()) fail(pos_, "unexpected end of the grammar in an escape");
            char c = src_[pos_];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (d < 0) fail(pos_, "expected " + std::to_string(n) + " hexadecimal digits");
            v = v * 16 + static_cast<uint32_t>(d);
            ++pos_;
        }
        if (v > 0x10FFFF) fail(pos_, "code point beyond U+10FFFF");
        return v;
    }

    // One character of a literal or a class: an escape or a UTF-8 sequence.
    uint32_t character() {
        if (pos_ >= src_.size()) fail(pos_, "unexpected end of the grammar");
        unsigned char c = static_cast<unsigned char>(src_[pos_]);
        if (c == '\\') {
            ++pos_;
            if (pos_ >= src_.size()) fail(pos_, "unexpected end of the grammar after '\\'");
            char e = src_[pos_++];
            switch (e) {
                case 'x': return hex(2);
                case 'u': return hex(4);
                case 'U': return hex(8);
                case 'n': return '\n';
                case 'r': return '\r';
                case 't': return '\t';
                case '\\': case '"': case '[': case ']': return static_cast<unsigned char>(e);
                default: fail(pos_ - 2, std::string("unknown escape '\\") + e + "'");
            }
        }
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || pos_ + n > src_.size()) fail(pos_, "invalid UTF-8 in the grammar");
        uint32_t cp = n == 1 ? c : c & (0x7F >> n);
        for (size_t i = 1; i < n; ++i) {
            unsigned char d = static_cast<unsigned char>(src_[pos_ + i]);
            if ((d & 0xC0) != 0x80) fail(pos_, "invalid UTF-8 in the grammar");
            cp = (cp << 6) | (d & 0x3F);
        }
        pos_ += n;
        return cp;
    }

    Grammar::Element terminal(CharClass c) {
        normalise(c);
        classes_.push_back(std::move(c));
        return {Grammar::Element::Terminal, static_cast<uint32_t>(classes_.size() - 1)};
    }

    std::vector<Seq> alternatives(const std::string& rule, bool nested) {
        std::vector<Seq> alts;
        alts.push_back(sequence(rule, nested));
        while (pos_ < src_.size() && src_[pos_] == '|') {
            ++pos_;
            space(true);
            alts.push_back(sequence(rule, nested));
        }
        return alts;
    }

    void grow(size_t add) {
        total_ += add;
        if (total_ > kMaxElements)
            throw_bad_input("grammar: more than %zu elements after unrolling repetitions (the limit)", kMaxElements);
    }

    Seq sequence(const std::string& rule, bool nested) {
        Seq seq;
        size_t last = SIZE_MAX;  // where the last term begins in seq
        while (pos_ < src_.size()) {
            char c = src_[pos_];
            size_t at = pos_;
            if (c == '"') {
                ++pos_;
                last = seq.size();
                while (true) {
                    if (pos_ >= src_.size()) fail(at, "unterminated string literal");
                    if (src_[pos_] == '"') { ++pos_; break; }
                    if (src_[pos_] == '\n' || src_[pos_] == '\r') fail(at, "unterminated string literal");
                    uint32_t cp = character();
                    CharClass cc;
                    cc.ranges.push_back({cp, cp});
                    seq.push_back(terminal(std::move(cc)));
                }
                grow(seq.size() - last);
            } else if (c == '[') {
                ++pos_;
                CharClass cc;
                if (pos_ < src_.size() && src_[pos_] == '^') { cc.negated = true; ++pos_; }
                while (true) {
                    if (pos_ >= src_.size()) fail(at, "unterminated character class");
                    if (src_[pos_] == ']') { ++pos_; break; }
                    uint32_t lo = character(), hi = lo;
                    if (pos_ + 1 < src_.size() && src_[pos_] == '-' && src_[pos_ + 1] != ']') {
                        ++pos_;
                        hi = character();
                        if (hi < lo) fail(at, "a character range that runs backwards");
                    }
                    cc.ranges.push_back({lo, hi});
                }
                last = seq.size();
                seq.push_back(terminal(std::move(cc)));
                grow(1);
            } else if (c == '.') {
                ++pos_;
                CharClass any;
                any.negated = true;  // matches every code point
                last = seq.size();
                seq.push_back(terminal(std::move(any)));
                grow(1);
            } else if (word_char(c)) {
                std::string name = word();
                last = seq.size();
                seq.push_back({Grammar::Element::Rule, rule_id(name, at)});
                grow(1);
            } else if (c == '(') {
                ++pos_;
                space(true);
                auto body = alternatives(rule, true);
                if (pos_ >= src_.size() || src_[pos_] != ')') fail(at, "unclosed '('");
                ++pos_;
                last = seq.size();
                seq.push_back({Grammar::Element::Rule, new_rule(rule, std::move(body))});
                grow(1);
            } else if (c == '*' || c == '+' || c == '?') {
                if (last == SIZE_MAX) fail(at, std::string("'") + c + "' with nothing before it to repeat");
                ++pos_;
                repeat(rule, seq, last, c == '+' ? 1 : 0, c == '?' ? 1 : UINT32_MAX);
            } else if (c == '{') {
                if (last == SIZE_MAX) fail(at, "'{' with nothing before it to repeat");
                ++pos_;
                space(false);
                uint32_t lo = number(at), hi = lo;
                space(false);
                if (pos_ < src_.size() && src_[pos_] == ',') {
                    ++pos_;
                    space(false);
                    hi = (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') ? number(at) : UINT32_MAX;
                    space(false);
                }
                if (pos_ >= src_.size() || src_[pos_] != '}') fail(at, "expected '}' to close a repetition");
                ++pos_;
                if (hi < lo) fail(at, "a repetition {m,n} with n < m");
                repeat(rule, seq, last, lo, hi);
            } else {
                break;
            }
            space(nested);
        }
        return seq;
    }

    uint32_t number(size_t at) {
        if (pos_ >= src_.size() || src_[pos_] < '0' || src_[pos_] > '9') fail(at, "expected a number in a repetition");
        uint64_t v = 0;
        while (pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '9') {
            v = v * 10 + static_cast<uint64_t>(src_[pos_++] - '0');
            if (v > kMaxRepeat) fail(at, "a repetition count above " + std::to_string(kMaxRepeat) + " (the limit)");
        }
        return static_cast<uint32_t>(v);
    }

    // Replaces seq[last..] (one term) by the term repeated min..max times (max UINT32_MAX: unbounded).
    void repeat(const std::string& rule, Seq& seq, size_t last, uint32_t min, uint32_t max) {
        Seq term(seq.begin() + static_cast<std::ptrdiff_t>(last), seq.end());
        seq.resize(last);
        grow(term.size() * (min + (max == UINT32_MAX ? 1 : max - min)));
        for (uint32_t i = 0; i < min; ++i) seq.insert(seq.end(), term.begin(), term.end());
        if (max == UINT32_MAX) {
            // R ::= term R |
            uint32_t r = new_rule(rule, {});
            Seq more = term;
            more.push_back({Grammar::Element::Rule, r});
            bodies_[r] = {more, Seq{}};
            seq.push_back({Grammar::Element::Rule, r});
        } else if (max > min) {
            // opt_1 ::= term | ;  opt_k ::= term opt_{k-1} |
            uint32_t prev = UINT32_MAX;
            for (uint32_t k = 0; k < max - min; ++k) {
                Seq body = term;
                if (prev != UINT32_MAX) body.push_back({Grammar::Element::Rule, prev});
                prev = new_rule(rule, {body, Seq{}});
            }
            seq.push_back({Grammar::Element::Rule, prev});
        }
    }

    // Left recursion: a rule that can reach itself before reading a character. Where the way back ends each
    // alternative it passes through (a repetition of a term that can be empty: R ::= T R |), the matcher's stacks do
    // not grow and expansion stops on stacks already seen, so that is allowed. A way back with a reference that has
    // more after it would push without end: refused, as llama.cpp refuses left recursion.
    void check_left_recursion(const Grammar& g) {
        const auto& el = g.elements();
        const uint32_t n = static_cast<uint32_t>(g.n_rules());
        std::vector<char> nullable(n, 0);
        for (bool changed = true; changed;) {
            changed = false;
            for (uint32_t r = 0; r < n; ++r) {
                if (nullable[r]) continue;
                for (uint32_t p : g.alternatives(r)) {
                    while (el[p].kind == Grammar::Element::Rule && nullable[el[p].index]) ++p;
                    if (el[p].kind == Grammar::Element::End) { nullable[r] = 1; changed = true; break; }
                }
            }
        }
        struct Edge { uint32_t to; bool tail; };
        std::vector<std::vector<Edge>> left(n);  // the rules each rule can start with
        for (uint32_t r = 0; r < n; ++r)
            for (uint32_t p : g.alternatives(r))
                for (; el[p].kind == Grammar::Element::Rule; ++p) {
                    left[r].push_back({el[p].index, el[p + 1].kind == Grammar::Element::End});
                    if (!nullable[el[p].index]) break;
                }
        // strongly connected components (Tarjan's, iterative: unrolled repetitions make long chains)
        std::vector<uint32_t> index(n, UINT32_MAX), low(n, 0), comp(n, UINT32_MAX), stack;
        std::vector<char> on(n, 0);
        uint32_t next = 0, n_comp = 0;
        std::vector<std::pair<uint32_t, size_t>> call;  // (rule, next edge)
        for (uint32_t root = 0; root < n; ++root) {
            if (index[root] != UINT32_MAX) continue;
            call.push_back({root, 0});
            index[root] = low[root] = next++;
            stack.push_back(root);
            on[root] = 1;
            while (!call.empty()) {
                auto& [v, e] = call.back();
                if (e < left[v].size()) {
                    const uint32_t w = left[v][e++].to;
                    if (index[w] == UINT32_MAX) {
                        index[w] = low[w] = next++;
                        stack.push_back(w);
                        on[w] = 1;
                        call.push_back({w, 0});
                    } else if (on[w]) {
                        low[v] = std::min(low[v], index[w]);
                    }
                    continue;
                }
                const uint32_t done = v;
                call.pop_back();
                if (!call.empty()) low[call.back().first] = std::min(low[call.back().first], low[done]);
                if (low[done] == index[done]) {
                    uint32_t w;
                    do {
                        w = stack.back();
                        stack.pop_back();
                        on[w] = 0;
                        comp[w] = n_comp;
                    } while (w != done);
                    ++n_comp;
                }
            }
        }
        // a reference with more after it, inside a cycle: refused, naming a rule the user wrote if the cycle has one
        for (uint32_t r = 0; r < n; ++r)
            for (const Edge& e : left[r]) {
                if (e.tail || comp[e.to] != comp[r]) continue;
                for (uint32_t q = 0; q < n; ++q)
                    if (comp[q] == comp[r] && !generated_rule_[q])
                        throw_bad_input("grammar: left recursion in rule '%s' (it can reach itself before reading a character)",
                                        g.rule_name(q).c_str());
                throw_bad_input("grammar: left recursion in rule '%s' (it can reach itself before reading a character)",
                                g.rule_name(made_in_[r]).c_str());
            }
    }

    std::string_view src_;
    size_t pos_ = 0;
    size_t total_ = 0;
    uint32_t generated_ = 0;
    std::unordered_map<std::string, uint32_t> ids_;
    std::vector<std::string> names_;
    std::vector<bool> defined_;
    std::vector<bool> generated_rule_;  // made for a group or a repetition, not written by the user
    std::vector<uint32_t> made_in_;     // the user's rule a generated one was made in (itself for the user's rules)
    std::vector<size_t> first_use_;
    std::vector<std::vector<Seq>> bodies_;
    std::vector<CharClass> classes_;
};

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, const std::string& start) {
    return GbnfParser(gbnf).run(start);
}

static void put_char(std::string& out, uint32_t cp, bool in_class) {
    auto hexs = [&](const char* pre, uint32_t v, int digits) {
        static const char* h = "0123456789ABCDEF";
        out += pre;
        for (int i = digits - 1; i >= 0; --i) out += h[(v >> (4 * i)) & 0xF];
    };
    if (cp == '\n') { out += "\\n"; return; }
    if (cp == '\r') { out += "\\r"; return; }
    if (cp == '\t') { out += "\\t"; return; }
    if (cp == '\\' || cp == '"' || (in_class && (cp == ']' || cp == '[' || cp == '-' || cp == '^'))) {
        if (cp == '-' || cp == '^') { hexs("\\x", cp, 2); return; }
        out += '\\';
        out += static_cast<char>(cp);
        return;
    }
    if (cp < 0x20 || cp == 0x7F) { hexs("\\x", cp, 2); return; }
    if (cp < 0x80) { out += static_cast<char>(cp); return; }
    if (cp >= 0xD800 && cp <= 0xDFFF) { hexs("\\u", cp, 4); return; }
    utf8_append(out, cp);
}

// A class as GBNF: [a-z], [^"\\], '.', or a one-character literal.
static std::string class_gbnf(const CharClass& cc) {
    std::string out;
    if (cc.negated && cc.ranges.empty()) return ".";
    if (!cc.negated && cc.ranges.size() == 1 && cc.ranges[0].first == cc.ranges[0].second) {
        out += '"';
        put_char(out, cc.ranges[0].first, false);
        return out + '"';
    }
    out += cc.negated ? "[^" : "[";
    for (const auto& [a, b] : cc.ranges) {
        put_char(out, a, true);
        if (b != a) {
            out += '-';
            put_char(out, b, true);
        }
    }
    return out + ']';
}

std::string Grammar::to_gbnf() const {
    std::string out;
    for (uint32_t r = 0; r < n_rules(); ++r) {
        out += rule_names_[r] + " ::=";
        bool first_alt = true;
        for (uint32_t p : alts_[r]) {
            out += first_alt ? " " : " | ";
            first_alt = false;
            bool first = true;
            bool in_literal = false;
            for (; elems_[p].kind != Element::End; ++p) {
                const Element& e = elems_[p];
                const CharClass* cc = e.kind == Element::Terminal ? &classes_[e.index] : nullptr;
                bool single = cc && !cc->negated && cc->ranges.size() == 1 && cc->ranges[0].first == cc->ranges[0].second;
                if (in_literal && !single) { out += '"'; in_literal = false; }
                if (!in_literal && !first) out += ' ';
                first = false;
                if (e.kind == Element::Rule) {
                    out += rule_names_[e.index];
                } else if (single) {
                    if (!in_literal) { out += '"'; in_literal = true; }
                    put_char(out, cc->ranges[0].first, false);
                } else {
                    out += class_gbnf(*cc);
                }
            }
            if (in_literal) out += '"';
            if (first) out += "\"\"";  // an empty alternative, written so that the line cannot run on
        }
        out += '\n';
    }
    return out;
}

std::string Grammar::sample(uint64_t seed, int max_depth) const {
    std::mt19937_64 rng(seed);
    // The fewest characters each rule can produce (a fixpoint; rules that cannot end stay at "infinite").
    const size_t kInf = SIZE_MAX / 4;
    std::vector<size_t> shortest(n_rules(), kInf);
    auto alt_cost = [&](uint32_t pos) {
        size_t c = 0;
        for (; elems_[pos].kind != Element::End; ++pos)
            c += elems_[pos].kind == Element::Terminal ? 1 : shortest[elems_[pos].index];
        return std::min(c, kInf);
    };
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t r = 0; r < n_rules(); ++r)
            for (uint32_t a : alts_[r])
                if (size_t c = alt_cost(a); c < shortest[r]) {
                    shortest[r] = c;
                    changed = true;
                }
    }
    static const uint32_t kExtra[] = {'\t', '\n', 0xE9, 0x4E2D, 0x1F600, 0x3B1, 0x20AC};
    auto pick_char = [&](const CharClass& cc, std::string& out) {
        uint32_t cp = 0;
        bool found = false;
        if (!cc.negated && !cc.ranges.empty()) {
            for (int tries = 0; tries < 16 && !found; ++tries) {
                const auto& [lo, hi] = cc.ranges[rng() % cc.ranges.size()];
                cp = lo + static_cast<uint32_t>(rng() % (uint64_t(hi) - lo + 1));
                found = !(cp >= 0xD800 && cp <= 0xDFFF);
            }
        }
        for (int tries = 0; tries < 64 && !found; ++tries) {
            cp = rng() % 4 == 0 ? kExtra[rng() % std::size(kExtra)] : 0x20 + static_cast<uint32_t>(rng() % 95);
            found = cc.matches(cp);
        }
        for (uint32_t c = 0; !found && c <= 0x10FFFF; ++c)
            if (!(c >= 0xD800 && c <= 0xDFFF) && cc.matches(c)) {
                found = true;
                cp = c;
            }
        if (!found) throw_bad_input("grammar: a character class that matches nothing");
        utf8_append(out, cp);
    };
    std::string out;
    std::function<void(uint32_t, int)> expand = [&](uint32_t rule, int depth) {
        const auto& alts = alts_[rule];
        uint32_t pos = alts[rng() % alts.size()];
        if (depth >= max_depth) {
            for (uint32_t a : alts)
                if (alt_cost(a) < alt_cost(pos)) pos = a;
        }
        for (; elems_[pos].kind != Element::End; ++pos) {
            if (elems_[pos].kind == Element::Terminal) {
                pick_char(classes_[elems_[pos].index], out);
            } else {
                expand(elems_[pos].index, depth + 1);
            }
        }
    };
    if (shortest[start_] >= kInf) throw_bad_input("grammar: rule '%s' has no finite sentence", rule_names_[start_].c_str());
    expand(start_, 0);
    return out;
}

const std::string& json_object_gbnf() {
    static const std::string g =
        "root ::= object\n"
        "value ::= object | array | string | number | \"true\" | \"false\" | \"null\"\n"
        "object ::= \"{\" ws ( member ( \",\" ws member )* )? \"}\"\n"
        "member ::= string ws \":\" ws value ws\n"
        "array ::= \"[\" ws ( value ws ( \",\" ws value ws )* )? \"]\"\n"
        "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" ( [\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4} ) )* \"\\\"\"\n"
        "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,15} ) ( \".\" [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,3} )?\n"
        "ws ::= ( \" \" | \"\\n\" ) [ \\t]{0,20} |\n";
    return g;
}

// ---------------------------------------------------------------------------------------------------------------
// Regular expressions → GBNF

namespace {

// A recursive-descent reader of the ECMAScript regular-expression subset JSON Schema's "pattern" uses, writing GBNF
// as it goes: alternatives, groups, classes, escapes and quantifiers map one to one; what GBNF cannot say
// (back-references, lookaround, anchors inside the pattern) is refused by name.
class RegexToGbnf {
public:
    // json: write the strings as the inside of a JSON string literal ('"', '\\' and control characters escaped).
    RegexToGbnf(std::string_view re, bool json) : re_(re), json_(json) {}

    // The expression for the pattern; anchored_*: whether it began with '^' / ended with '$'.
    std::string run(bool& anchored_start, bool& anchored_end) {
        size_t b = 0, e = re_.size();
        anchored_start = b < e && re_[b] == '^';
        if (anchored_start) ++b;
        anchored_end = e > b && re_[e - 1] == '$' && (e < 2 || re_[e - 2] != '\\');
        if (anchored_end) --e;
        re_ = re_.substr(b, e - b);
        offset_ = b;
        std::string out = alternatives();
        if (pos_ < re_.size()) fail(pos_, re_[pos_] == ')' ? "unbalanced ')'" : "unexpected character");
        return out.empty() ? std::string("\"\"") : out;
    }

private:
    [[noreturn]] void fail(size_t at, const std::string& what) const {
        throw_bad_input("regex: at offset %zu: %s", at + offset_, what.c_str());
    }

    // One character as a GBNF literal; in JSON mode, as the JSON string text that stands for it.
    std::string literal(uint32_t cp) const {
        std::string s = "\"";
        if (json_ && (cp == '"' || cp == '\\' || cp < 0x20)) {
            s += json_escape(cp);
        } else {
            put_char(s, cp, false);
        }
        return s + "\"";
    }

    static std::string escape_literal(uint32_t cp) {
        std::string s = "\"";
        s += json_escape(cp);
        s += '"';
        return s;
    }

    // The JSON escape of '"', '\\' or a control character, as GBNF literal text (its backslash doubled).
    static std::string json_escape(uint32_t cp) {
        switch (cp) {
            case '"': return "\\\\\\\"";
            case '\\': return "\\\\\\\\";
            case '\n': return "\\\\n";
            case '\r': return "\\\\r";
            case '\t': return "\\\\t";
            case 0x08: return "\\\\b";
            case 0x0C: return "\\\\f";
            default: {
                static const char* h = "0123456789abcdef";
                return std::string("\\\\u00") + h[cp >> 4] + h[cp & 0xF];
            }
        }
    }

    std::string alternatives() {
        std::vector<std::string> alts{sequence()};
        while (pos_ < re_.size() && re_[pos_] == '|') {
            ++pos_;
            alts.push_back(sequence());
        }
        if (alts.size() == 1) return alts[0];
        std::string out;
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + (alts[i].empty() ? std::string("\"\"") : alts[i]);
        return out;
    }

    // Terms separated by spaces; single characters in a row with no quantifier are merged into one literal ("abc").
    std::string sequence() {
        std::string out, text;  // text: the literal being merged, without its quotes
        auto flush = [&] {
            if (!text.empty()) out += (out.empty() ? "\"" : " \"") + text + "\"";
            text.clear();
        };
        while (pos_ < re_.size() && re_[pos_] != '|' && re_[pos_] != ')') {
            std::string atom = this->atom();
            const bool plain = atom_is_literal_;
            const std::string q = quantifier();
            if (plain && q.empty()) {
                text += atom.substr(1, atom.size() - 2);
                continue;
            }
            flush();
            out += (out.empty() ? "" : " ") + atom + q;
        }
        flush();
        return out;
    }

    std::string quantifier() {
        if (pos_ >= re_.size()) return "";
        std::string q;
        const char c = re_[pos_];
        if (c == '*' || c == '+' || c == '?') {
            q = std::string(1, c);
            ++pos_;
        } else if (c == '{') {
            size_t end = re_.find('}', pos_);
            std::string body = end == std::string_view::npos ? "" : std::string(re_.substr(pos_ + 1, end - pos_ - 1));
            bool ok = !body.empty() && body.find_first_not_of("0123456789,") == std::string::npos && std::count(body.begin(), body.end(), ',') <= 1 &&
                      body[0] != ',';
            if (!ok) return "";  // ECMAScript reads a '{' that starts no quantifier as itself
            q = "{" + body + "}";
            pos_ = end + 1;
        } else {
            return "";
        }
        if (pos_ < re_.size() && re_[pos_] == '?') ++pos_;  // lazy: the same strings
        if (pos_ < re_.size() && (re_[pos_] == '*' || re_[pos_] == '+' || re_[pos_] == '?' || re_[pos_] == '{'))
            fail(pos_, "a quantifier after a quantifier");
        return q;
    }

    uint32_t utf8_char() {
        unsigned char c = static_cast<unsigned char>(re_[pos_]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || pos_ + n > re_.size()) fail(pos_, "invalid UTF-8");
        uint32_t cp = n == 1 ? c : c & (0x7Fu >> n);
        for (size_t i = 1; i < n; ++i) cp = (cp << 6) | (static_cast<unsigned char>(re_[pos_ + i]) & 0x3F);
        pos_ += n;
        return cp;
    }

    uint32_t hex(size_t n) {
        if (pos_ + n > re_.size()) fail(pos_, "a hexadecimal escape cut short");
        uint32_t v = 0;
        for (size_t i = 0; i < n; ++i) {
            char c = re_[pos_ + i];
            int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
            if (d < 0) fail(pos_, "expected a hexadecimal digit");
            v = v * 16 + static_cast<uint32_t>(d);
        }
        pos_ += n;
        return v;
    }

    using Ranges = std::vector<std::pair<uint32_t, uint32_t>>;

    // After a backslash: a class shorthand (\d \w \s and their negations), its ranges added to `shorthand` and
    // true returned (with `negated` set); or one character, in cp, and false.
    bool escape(uint32_t& cp, Ranges& shorthand, bool& negated) {
        if (pos_ >= re_.size()) fail(pos_, "a pattern ending in '\\'");
        const char e = re_[pos_++];
        negated = e == 'D' || e == 'W' || e == 'S';
        switch (e) {
            case 'd': case 'D': shorthand.push_back({'0', '9'}); return true;
            case 'w': case 'W':
                shorthand.insert(shorthand.end(), {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}});
                return true;
            case 's': case 'S': shorthand.insert(shorthand.end(), {{'\t', '\r'}, {' ', ' '}}); return true;
            case 'n': cp = '\n'; return false;
            case 'r': cp = '\r'; return false;
            case 't': cp = '\t'; return false;
            case 'f': cp = 0x0C; return false;
            case 'v': cp = 0x0B; return false;
            case '0': cp = 0; return false;
            case 'x': cp = hex(2); return false;
            case 'u': cp = hex(4); return false;
            case 'b': case 'B': fail(pos_ - 2, "word boundaries (\\b, \\B) are not supported");
            case 'k': fail(pos_ - 2, "back-references are not supported");
            case 'p': case 'P': fail(pos_ - 2, "Unicode property classes (\\p, \\P) are not supported");
            default:
                if (e >= '1' && e <= '9') fail(pos_ - 2, "back-references are not supported");
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) fail(pos_ - 2, std::string("unknown escape '\\") + e + "'");
                --pos_;
                negated = false;
                cp = utf8_char();  // an escaped symbol stands for itself
                return false;
        }
    }

    static Ranges normalised(Ranges r) {
        std::sort(r.begin(), r.end());
        Ranges out;
        for (auto [lo, hi] : r) {
            if (!out.empty() && lo <= out.back().second + 1) {
                out.back().second = std::max(out.back().second, hi);
            } else {
                out.push_back({lo, hi});
            }
        }
        return out;
    }

    static std::string class_text(const Ranges& r, bool negated, const char* extra = "") {
        std::string out = negated ? "[^" : "[";
        for (auto [lo, hi] : r) {
            put_char(out, lo, true);
            if (hi != lo) {
                if (hi > lo + 1) out += '-';
                put_char(out, hi, true);
            }
        }
        return out + extra + "]";
    }

    // A set of characters as GBNF. In JSON mode '"' and '\\' become their escapes and control characters too when
    // the set names them (a negated set, or '.', leaves control characters out: a subset of what it matches).
    std::string write_set(const Ranges& ranges, bool negated) const {
        Ranges r = normalised(ranges);
        if (!json_) {
            if (r.empty()) return negated ? "." : "[^\\x00-\\U0010FFFF]";  // [^] any character; [] none
            return class_text(r, negated);
        }
        auto contains = [&](uint32_t cp) {
            for (auto [lo, hi] : r)
                if (cp >= lo && cp <= hi) return true;
            return false;
        };
        std::vector<std::string> alts;
        if (negated) {
            alts.push_back(class_text(r, true, "\"\\\\\\x00-\\x1F"));
            if (!contains('"')) alts.push_back(escape_literal('"'));
            if (!contains('\\')) alts.push_back(escape_literal('\\'));
        } else {
            Ranges plain;
            for (auto [lo, hi] : r) {  // minus 0x00-0x1F, '"' and '\\'
                for (uint32_t cut : {0x1Fu, uint32_t('"'), uint32_t('\\')}) {
                    if (lo > hi) break;
                    if (cut == 0x1F) {
                        lo = std::max(lo, 0x20u);
                    } else if (lo <= cut && cut <= hi) {
                        if (lo < cut) plain.push_back({lo, cut - 1});
                        lo = cut + 1;
                    }
                }
                if (lo <= hi) plain.push_back({lo, hi});
            }
            if (!plain.empty()) alts.push_back(class_text(plain, false));
            for (uint32_t cp = 0; cp < 0x20; ++cp)
                if (contains(cp)) alts.push_back(escape_literal(cp));
            for (uint32_t cp : {uint32_t('"'), uint32_t('\\')})
                if (contains(cp)) alts.push_back(escape_literal(cp));
        }
        if (alts.empty()) return "[^\\x00-\\U0010FFFF]";
        if (alts.size() == 1) return alts[0];
        std::string out = "(";
        for (size_t i = 0; i < alts.size(); ++i) out += (i ? " | " : "") + alts[i];
        return out + ")";
    }

    std::string char_class() {  // after '['
        const size_t at = pos_ - 1;
        bool negated = false;
        if (pos_ < re_.size() && re_[pos_] == '^') {
            negated = true;
            ++pos_;
        }
        Ranges set;
        while (true) {
            if (pos_ >= re_.size()) fail(at, "unterminated character class");
            if (re_[pos_] == ']') break;  // ECMAScript: "[]" matches nothing, "[^]" anything
            uint32_t lo = 0;
            bool neg = false;
            if (re_[pos_] == '\\') {
                ++pos_;
                if (escape(lo, set, neg)) {
                    if (neg) fail(pos_ - 2, "a negated shorthand (\\D, \\W, \\S) inside a class is not supported");
                    continue;
                }
            } else {
                lo = utf8_char();
            }
            uint32_t hi = lo;
            if (pos_ + 1 < re_.size() && re_[pos_] == '-' && re_[pos_ + 1] != ']') {
                ++pos_;
                if (re_[pos_] == '\\') {
                    ++pos_;
                    Ranges sh;
                    if (escape(hi, sh, neg)) fail(pos_ - 2, "a class shorthand cannot end a range");
                } else {
                    hi = utf8_char();
                }
                if (hi < lo) fail(at, "a character range that runs backwards");
            }
            set.push_back({lo, hi});
        }
        ++pos_;  // ']'
        return write_set(set, negated);
    }

    std::string atom() {
        atom_is_literal_ = false;
        const size_t at = pos_;
        const char c = re_[pos_];
        if (c == '(') {
            ++pos_;
            if (pos_ < re_.size() && re_[pos_] == '?') {
                if (pos_ + 1 < re_.size() && re_[pos_ + 1] == ':') {
                    pos_ += 2;
                } else if (pos_ + 1 < re_.size() && re_[pos_ + 1] == '<' && pos_ + 2 < re_.size() && re_[pos_ + 2] != '=' && re_[pos_ + 2] != '!') {
                    size_t end = re_.find('>', pos_);
                    if (end == std::string_view::npos) fail(at, "unterminated group name");
                    pos_ = end + 1;  // a named group: the name changes nothing here
                } else {
                    fail(at, "lookaround ((?=, (?!, (?<=, (?<!) is not supported");
                }
            }
            std::string inner = alternatives();
            if (pos_ >= re_.size() || re_[pos_] != ')') fail(at, "unclosed '('");
            ++pos_;
            std::string group = "(";
            group += inner.empty() ? "\"\"" : inner;
            group += ')';
            atom_is_literal_ = false;  // (the atoms inside set it)
            return group;
        }
        if (c == '[') {
            ++pos_;
            return char_class();
        }
        if (c == '.') {
            ++pos_;
            return write_set({{'\n', '\n'}, {'\r', '\r'}, {0x2028, 0x2029}}, true);
        }
        if (c == '^' || c == '$') fail(at, "anchors ('^', '$') are supported only at the ends of the pattern");
        if (c == '*' || c == '+' || c == '?') fail(at, std::string("'") + c + "' with nothing before it to repeat");
        if (c == '\\') {
            ++pos_;
            uint32_t cp = 0;
            bool neg = false;
            Ranges sh;
            if (escape(cp, sh, neg)) return write_set(sh, neg);
            atom_is_literal_ = true;
            return literal(cp);
        }
        atom_is_literal_ = true;
        return literal(utf8_char());
    }

    std::string_view re_;
    bool json_ = false;
    bool atom_is_literal_ = false;  // the last atom was one character, written as a literal
    size_t pos_ = 0, offset_ = 0;
};

}  // namespace

std::string regex_to_gbnf(std::string_view regex) {
    bool anchored_start = false, anchored_end = false;
    return "root ::= " + RegexToGbnf(regex, false).run(anchored_start, anchored_end) + "\n";
}

std::string regex_to_json_string_gbnf(std::string_view regex, bool& anchored_start, bool& anchored_end) {
    return RegexToGbnf(regex, true).run(anchored_start, anchored_end);
}

// ---------------------------------------------------------------------------------------------------------------
// Matcher

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> grammar, Limits limits)
    : g_(std::move(grammar)), limits_(limits) {
    reset();
}

uint32_t GrammarMatcher::intern(uint32_t pos, uint32_t parent) {
    uint64_t key = (uint64_t(pos) << 32) | parent;
    auto [it, fresh] = index_.emplace(key, static_cast<uint32_t>(nodes_.size()));
    if (fresh) {
        nodes_.push_back({pos, parent});
        seen_.push_back(0);
    }
    return it->second;
}

void GrammarMatcher::expand(uint32_t s, std::vector<uint32_t>& out) {
    const auto& el = g_->elements();
    work_.clear();
    work_.push_back(s);
    while (!work_.empty()) {
        uint32_t t = work_.back();
        work_.pop_back();
        if (seen_[t] == epoch_) continue;
        seen_[t] = epoch_;
        if (t == kEmpty || t == kAbove) {
            out.push_back(t);
            continue;
        }
        Node n = nodes_[t];
        const Grammar::Element& e = el[n.pos];
        if (e.kind == Grammar::Element::End) {
            work_.push_back(n.parent);
        } else if (e.kind == Grammar::Element::Terminal) {
            out.push_back(t);
        } else {
            // a rule: continue after it once it is done (nothing to keep if it ends the alternative)
            uint32_t cont = el[n.pos + 1].kind == Grammar::Element::End ? n.parent : intern(n.pos + 1, n.parent);
            for (uint32_t a : g_->alternatives(e.index)) work_.push_back(intern(a, cont));
        }
    }
    if (out.size() > limits_.max_stacks)
        throw_runtime("grammar: more than %zu parse stacks alive at once (the limit): the grammar is too ambiguous",
                      limits_.max_stacks);
}

void GrammarMatcher::reset() {
    nodes_.clear();
    index_.clear();
    seen_.clear();
    nodes_.push_back({UINT32_MAX, 0});  // kEmpty
    nodes_.push_back({UINT32_MAX, 0});  // kAbove
    seen_.assign(2, 0);
    epoch_ = 1;
    state_ = State{};
    for (uint32_t a : g_->alternatives(g_->start_rule())) expand(intern(a, kEmpty), state_.stacks);
    ++epoch_;
}

void GrammarMatcher::step(const std::vector<uint32_t>& in, uint32_t cp, std::vector<uint32_t>& out) {
    const auto& el = g_->elements();
    const auto& cls = g_->classes();
    out.clear();
    for (uint32_t s : in) {
        if (s == kEmpty || s == kAbove) continue;
        const Node n = nodes_[s];
        if (!cls[el[n.pos].index].matches(cp)) continue;
        expand(el[n.pos + 1].kind == Grammar::Element::End ? n.parent : intern(n.pos + 1, n.parent), out);
    }
    ++epoch_;
}

bool GrammarMatcher::advance(const State& in, unsigned char b, State& out) {
    uint32_t cp;
    if (in.left > 0) {
        if ((b & 0xC0) != 0x80) return false;
        cp = (in.partial << 6) | (b & 0x3F);
        if (in.left > 1) {
            // refuse overlong forms, surrogates and code points past U+10FFFF as soon as the bits show them
            const int rest = 6 * (in.left - 1);
            const uint32_t lo = cp << rest, hi = lo | ((1u << rest) - 1);
            if (hi < in.min_cp || lo > 0x10FFFF || (lo >= 0xD800 && hi <= 0xDFFF)) return false;
            out.stacks = in.stacks;
            out.partial = cp;
            out.left = in.left - 1;
            out.min_cp = in.min_cp;
            return true;
        }
        if (cp < in.min_cp) return false;
    } else if (b < 0x80) {
        cp = b;
    } else {
        // lead bytes: 110xxxxx (not C0, C1: overlong), 1110xxxx, 11110xxx (F0..F4)
        int n = (b >> 5) == 0x6 ? 1 : (b >> 4) == 0xE ? 2 : (b >> 3) == 0x1E ? 3 : -1;
        if (n < 0 || b == 0xC0 || b == 0xC1 || b > 0xF4) return false;
        out.stacks = in.stacks;
        out.partial = b & (0x3Fu >> n);
        out.left = n;
        out.min_cp = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
        return true;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    step(in.stacks, cp, out.stacks);
    out.partial = 0;
    out.left = 0;
    out.min_cp = 0;
    return !out.stacks.empty();
}

int GrammarMatcher::verdict(const State& s) const {
    if (s.left == 0) {
        bool above = false;
        for (uint32_t t : s.stacks) {
            if (t != kAbove) return 2;  // a terminal to match next, or the complete sentence
            above = true;
        }
        return above ? 2 : 0;  // the top rule done exactly at the token's end: the stack below goes on after it
    }
    // a character begun: some stack must take one of the code points it can still become
    uint32_t lo = s.partial << (6 * s.left), hi = lo | ((1u << (6 * s.left)) - 1);
    lo = std::max(lo, s.min_cp);
    hi = std::min<uint32_t>(hi, 0x10FFFF);
    const auto& el = g_->elements();
    const auto& cls = g_->classes();
    bool above = false;
    for (uint32_t t : s.stacks) {
        if (t == kAbove) above = true;
        else if (t != kEmpty && cls[el[nodes_[t].pos].index].matches_any_in(lo, hi)) return 2;
    }
    return above ? 1 : 0;
}

bool GrammarMatcher::run(const State& from, std::string_view bytes, State& cur) {
    cur = from;
    State next;
    for (unsigned char b : bytes) {
        if (!advance(cur, b, next)) return false;
        std::swap(cur, next);
    }
    return verdict(cur) == 2;
}

bool GrammarMatcher::accept(std::string_view bytes) {
    State cur;
    if (!run(state_, bytes, cur)) return false;
    state_ = std::move(cur);
    return true;
}

bool GrammarMatcher::can_accept(std::string_view bytes) {
    State cur;
    return run(state_, bytes, cur);
}

bool GrammarMatcher::can_end() const {
    return state_.left == 0 && std::find(state_.stacks.begin(), state_.stacks.end(), kEmpty) != state_.stacks.end();
}

std::string GrammarMatcher::expected(size_t max) const {
    std::vector<std::string> what;
    for (uint32_t s : state_.stacks) {
        std::string w = s == kEmpty ? "the end" : class_gbnf(g_->classes()[g_->elements()[nodes_[s].pos].index]);
        if (std::find(what.begin(), what.end(), w) == what.end()) what.push_back(w);
    }
    std::sort(what.begin(), what.end());
    std::string out;
    for (size_t i = 0; i < what.size() && i < max; ++i) out += (i ? " " : "") + what[i];
    if (what.size() > max) out += " …";
    return out;
}

bool GrammarMatcher::can_continue() const {
    for (uint32_t s : state_.stacks)
        if (s != kEmpty) return true;
    return false;
}

void GrammarMatcher::walk(const State& from, const GrammarVocab& v, std::vector<uint64_t>& accepted,
                          std::vector<int32_t>* uncertain) {
    accepted.assign((static_cast<size_t>(v.size()) + 63) / 64, 0);
    const auto& sorted = v.sorted();
    const auto& lcp = v.lcp();
    const size_t L = v.max_len();
    // st[d]: the state after the first d bytes of the current token; above[d]: whether kAbove was reached within them
    std::vector<State> st(L + 1);
    std::vector<char> above(L + 1, 0);
    st[0] = from;
    auto has_above = [](const State& s) { return std::find(s.stacks.begin(), s.stacks.end(), kAbove) != s.stacks.end(); };
    above[0] = has_above(from);
    size_t valid = 0;  // st[0..valid] belong to the previous token's prefix
    auto set = [&](int32_t id) { accepted[static_cast<size_t>(id) >> 6] |= uint64_t(1) << (id & 63); };
    for (size_t i = 0; i < sorted.size(); ++i) {
        const std::string& b = v.bytes(sorted[i]);
        size_t d = std::min<size_t>(lcp[i], valid);
        bool dead = false;
        while (d < b.size()) {
            if (!advance(st[d], static_cast<unsigned char>(b[d]), st[d + 1])) {
                dead = true;
                break;
            }
            ++d;
            above[d] = above[d - 1] || has_above(st[d]);
        }
        valid = d;
        if (!dead) {
            int verd = verdict(st[d]);
            if (verd == 2) set(sorted[i]);
            else if (uncertain && (verd == 1 || above[d])) uncertain->push_back(sorted[i]);
            continue;
        }
        // every following token that shares the refused prefix b[0..d] is refused (or uncertain) the same way
        size_t j = i;
        do {
            if (uncertain && above[d]) uncertain->push_back(sorted[j]);
            ++j;
        } while (j < sorted.size() && lcp[j] > d);
        i = j - 1;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Token masks

std::shared_ptr<const GrammarVocab> GrammarVocab::from(const Vocab& vocab) {
    std::vector<std::string> bytes(static_cast<size_t>(vocab.size()));
    for (int32_t i = 0; i < vocab.size(); ++i) bytes[size_t(i)] = vocab.token_to_piece(i, false);
    std::vector<int32_t> end;
    if (vocab.eos >= 0 && vocab.eos < vocab.size()) {
        end.push_back(vocab.eos);
        bytes[size_t(vocab.eos)].clear();
    }
    return std::make_shared<GrammarVocab>(std::move(bytes), std::move(end));
}

GrammarVocab::GrammarVocab(std::vector<std::string> bytes, std::vector<int32_t> end_tokens)
    : bytes_(std::move(bytes)), end_(std::move(end_tokens)) {
    for (int32_t i = 0; i < size(); ++i)
        if (!bytes_[static_cast<size_t>(i)].empty()) sorted_.push_back(i);
    std::sort(sorted_.begin(), sorted_.end(), [&](int32_t a, int32_t b) { return bytes_[size_t(a)] < bytes_[size_t(b)]; });
    lcp_.resize(sorted_.size(), 0);
    for (size_t i = 0; i < sorted_.size(); ++i) {
        const std::string& s = bytes_[size_t(sorted_[i])];
        max_len_ = std::max(max_len_, s.size());
        if (i == 0) continue;
        const std::string& p = bytes_[size_t(sorted_[i - 1])];
        size_t k = 0;
        while (k < s.size() && k < p.size() && s[k] == p[k] && k < 65535) ++k;
        lcp_[i] = static_cast<uint16_t>(k);
    }
    for (int32_t e : end_)
        if (e < 0 || e >= size()) throw_bad_input("grammar: end token %d is outside the vocabulary of %d", e, size());
}

CompiledGrammar::CompiledGrammar(std::shared_ptr<const Grammar> grammar, std::shared_ptr<const GrammarVocab> vocab, int depth)
    : g_(std::move(grammar)), v_(std::move(vocab)), depth_(std::max(depth, 1)) {}

const CompiledGrammar::Entry& CompiledGrammar::entry(const std::vector<uint32_t>& top) const {
    const std::string key(reinterpret_cast<const char*>(top.data()), top.size() * sizeof(uint32_t));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
    const auto t0 = std::chrono::steady_clock::now();
    if (!scratch_ || scratch_->nodes_.size() > (size_t(1) << 22)) scratch_ = std::make_unique<GrammarMatcher>(g_);
    // the stack's top as far as the key goes; below it kAbove ("whatever is below"), or the real bottom
    size_t n = top.size();
    uint32_t node = GrammarMatcher::kAbove;
    if (n > 0 && top[n - 1] == kBottom) {
        node = GrammarMatcher::kEmpty;
        --n;
    }
    for (size_t i = n; i-- > 0;) node = scratch_->intern(top[i], node);
    auto e = std::make_unique<Entry>();
    GrammarMatcher::State from;
    from.stacks.push_back(node);
    scratch_->walk(from, *v_, e->accepted, &e->uncertain);
    stats_.entries += 1;
    stats_.uncertain += e->uncertain.size();
    stats_.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return *cache_.emplace(key, std::move(e)).first->second;
}

CompiledGrammar::Stats CompiledGrammar::stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
}

GrammarConstraint::GrammarConstraint(std::shared_ptr<const CompiledGrammar> compiled, GrammarLimits limits)
    : cg_(std::move(compiled)), m_(cg_->grammar(), limits) {}

void GrammarConstraint::allowed(std::vector<uint64_t>& mask) {
    const GrammarVocab& v = cg_->vocab();
    const size_t words = (static_cast<size_t>(v.size()) + 63) / 64;
    if (finished_) {
        mask.assign(words, 0);
        return;
    }
    if (m_.state_.left > 0) {
        m_.walk(m_.state_, v, mask, nullptr);  // inside a character: no position's entry applies; walk from here
    } else {
        mask.assign(words, 0);
        GrammarMatcher::State one, out;
        for (uint32_t s : m_.state_.stacks) {
            if (s == GrammarMatcher::kEmpty) continue;
            // the key: the positions of the stack's top few nodes
            top_.clear();
            for (uint32_t t = s; static_cast<int>(top_.size()) < cg_->depth(); t = m_.nodes_[t].parent) {
                if (t == GrammarMatcher::kEmpty) {
                    top_.push_back(CompiledGrammar::kBottom);
                    break;
                }
                top_.push_back(m_.nodes_[t].pos);
            }
            const CompiledGrammar::Entry& e = cg_->entry(top_);
            for (size_t w = 0; w < words; ++w) mask[w] |= e.accepted[w];
            // the tokens that run past the top rule: try them on this stack
            one.stacks.assign(1, s);
            for (int32_t u : e.uncertain)
                if (!(mask[size_t(u) >> 6] >> (u & 63) & 1) && m_.run(one, v.bytes(u), out)) mask[size_t(u) >> 6] |= uint64_t(1) << (u & 63);
        }
    }
    if (m_.can_end())
        for (int32_t e : v.end_tokens()) mask[size_t(e) >> 6] |= uint64_t(1) << (e & 63);
}

bool GrammarConstraint::mask(const float* logits, float* out, int64_t n_logits, const std::vector<int32_t>& extra_end) {
    allowed(mask_);
    // the extra end tokens' logits, read before out (which may be logits itself) is written
    keep_.clear();
    if (can_end())
        for (int32_t e : extra_end)
            if (e >= 0 && e < n_logits) keep_.emplace_back(e, logits[e]);
    const int64_t n = std::min<int64_t>(n_logits, cg_->vocab().size());
    bool any = false;
    for (int64_t i = 0; i < n_logits; ++i) {
        const bool ok = i < n && (mask_[size_t(i) >> 6] >> (i & 63) & 1);
        out[i] = ok ? logits[i] : -INFINITY;
        any = any || (ok && out[i] != -INFINITY);
    }
    for (const auto& [e, v] : keep_) {
        out[e] = v;
        any = any || v != -INFINITY;
    }
    return any;
}

bool GrammarConstraint::matcher_can_take(int32_t token) {
    const GrammarVocab& v = cg_->vocab();
    if (finished_ || token < 0 || token >= v.size() || v.bytes(token).empty()) return false;
    return m_.can_accept(v.bytes(token));
}

bool GrammarConstraint::accept(int32_t token) {
    const GrammarVocab& v = cg_->vocab();
    if (finished_ || token < 0 || token >= v.size()) return false;
    if (std::find(v.end_tokens().begin(), v.end_tokens().end(), token) != v.end_tokens().end()) {
        if (!m_.can_end()) return false;
        finished_ = true;
        return true;
    }
    const std::string& b = v.bytes(token);
    return !b.empty() && m_.accept(b);
}

}  // namespace llmforge
