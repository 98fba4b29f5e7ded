// JSON Schema → GBNF.
//
// The rules, their names and their order are llama.cpp's json-schema-to-grammar (common/json-schema-to-grammar.cpp,
// commit c392e50), so that a grammar made here reads like the one llama.cpp makes for the same schema, and its test
// cases (tests/grammar/llamacpp_json_schema.json) compare text to text. Where that converter emits a grammar whose
// sentences are not valid JSON, or ignores a keyword, this one differs, and says so in the comment at the place:
//   - literals escape backslashes (a "const" or property name with '\' or a control character),
//   - "pattern" is translated by regex_to_json_string_gbnf ('"', '\' and controls escaped; unanchored ends searched),
//   - the "any other key" rule of additionalProperties never starts a key with a raw '\' or control character,
//   - minimum/maximum on "number", prefixItems followed by "items",
//   - keywords that constrain values but have no grammar here are errors, not silently dropped.
#include "llmforge/error.h"
#include "llmforge/grammar.h"
#include "llmforge/utf8.h"

#include <nlohmann/json.hpp>

#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace llmforge {
namespace {

using ojson = nlohmann::ordered_json;

// Whitespace allowed after every token: nothing, a space, or a newline and up to 20 spaces/tabs of indentation.
const char* const kSpaceRule = R"g(| " " | "\n" [ \t]{0,20})g";

struct Builtin {
    std::string body;
    std::vector<std::string> deps;
};

// The fixed rules every schema grammar draws on (llama.cpp's PRIMITIVE_RULES, the same text).
const std::map<std::string, Builtin>& primitive_rules() {
    static const std::map<std::string, Builtin> m = {
        {"boolean", {R"g(("true" | "false") space)g", {}}},
        {"decimal-part", {"[0-9]{1,16}", {}}},
        {"integral-part", {"[0] | [1-9] [0-9]{0,15}", {}}},
        {"number",
         {R"g(("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space)g", {"integral-part", "decimal-part"}}},
        {"integer", {R"g(("-"? integral-part) space)g", {"integral-part"}}},
        {"value", {"object | array | string | number | boolean | null", {"object", "array", "string", "number", "boolean", "null"}}},
        {"object", {R"g("{" space ( string ":" space value ("," space string ":" space value)* )? "}" space)g", {"string", "value"}}},
        {"array", {R"g("[" space ( value ("," space value)* )? "]" space)g", {"value"}}},
        {"uuid",
         {R"g("\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space)g", {}}},
        {"char", {R"g([^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4}))g", {}}},
        {"string", {R"g("\"" char* "\"" space)g", {"char"}}},
        {"null", {R"g("null" space)g", {}}},
    };
    return m;
}

// "format" values with a grammar (RFC 3339 full-date, full-time, date-time).
const std::map<std::string, Builtin>& format_rules() {
    static const std::map<std::string, Builtin> m = {
        // Each month with its own days (llama.cpp's rule takes 31 days in every month: "2024-02-31"); February stops at
        // 28, as a grammar cannot tell leap years cheaply.
        {"date",
         {R"g([0-9]{4} "-" ( ( "0" [13578] | "1" [02] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ) | ( "0" [469] | "11" ) "-" ( "0" [1-9] | [1-2] [0-9] | "30" ) | "02-" ( "0" [1-9] | "1" [0-9] | "2" [0-8] ) ))g",
          {}}},
        {"time",
         {R"g(([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))g",
          {}}},
        {"date-time", {R"g(date "T" time)g", {"date", "time"}}},
        {"date-string", {R"g("\"" date "\"" space)g", {"date"}}},
        {"time-string", {R"g("\"" time "\"" space)g", {"time"}}},
        {"date-time-string", {R"g("\"" date-time "\"" space)g", {"date-time"}}},
    };
    return m;
}

bool is_reserved(const std::string& name) {
    return name == "root" || primitive_rules().count(name) || format_rules().count(name);
}

// Keywords of JSON Schema's validation and applicator vocabularies that restrict values in ways no rule here
// expresses: refused by name rather than dropped (a grammar that ignored them would let invalid output through).
const std::set<std::string>& unsupported_keywords() {
    static const std::set<std::string> s = {
        "not", "if", "then", "else", "dependentSchemas", "dependentRequired", "dependencies", "patternProperties",
        "propertyNames", "minProperties", "maxProperties", "uniqueItems", "contains", "minContains", "maxContains",
        "multipleOf", "unevaluatedItems", "unevaluatedProperties", "additionalItems", "$dynamicRef", "$recursiveRef",
    };
    return s;
}

// Keywords that change which values match (used to tell a schema of annotations only from an empty one).
const std::set<std::string>& constraint_keywords() {
    static const std::set<std::string> s = {
        "type", "enum", "const", "properties", "additionalProperties", "required", "items", "prefixItems",
        "minItems", "maxItems", "minLength", "maxLength", "pattern", "format", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "anyOf", "oneOf", "allOf", "$ref",
    };
    return s;
}

// A literal matching exactly `text` (already JSON), as GBNF: '"' and '\' escaped, and line breaks (llama.cpp
// escapes only '"', \r and \n; an unescaped '\' would turn the JSON escape "\n" into a raw newline).
std::string literal(const std::string& text) {
    std::string out = "\"";
    for (char c : text) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += c;
        }
    }
    return out + "\"";
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
    return out;
}

std::string sub_name(const std::string& name, const std::string& suffix) { return name + (name.empty() ? "" : "-") + suffix; }

constexpr int64_t kNoMin = INT64_MIN;
constexpr int64_t kNoMax = INT64_MAX;

// item repeated min..max times (max kNoMax: unbounded), separated by sep when given.
std::string repetition(const std::string& item, int64_t min, int64_t max, const std::string& sep = "") {
    const bool bounded = max != kNoMax;
    if (min == 0 && max == 1) return item + "?";
    if (sep.empty()) {
        if (min == 1 && !bounded) return item + "+";
        if (min == 0 && !bounded) return item + "*";
        return item + "{" + std::to_string(min) + "," + (bounded ? std::to_string(max) : "") + "}";
    }
    std::string out = item + " " + repetition("(" + sep + " " + item + ")", min == 0 ? 0 : min - 1, bounded ? max - 1 : max);
    return min == 0 ? "(" + out + ")?" : out;
}

// Decimal integers in [min, max] (either side may be open) as GBNF alternatives, at most 16 digits, without
// leading zeros: llama.cpp's construction (digit ranges for each length, and a common prefix then the spread
// below it), so the same bounds give the same text.
class IntRange {
public:
    static std::string build(int64_t min, int64_t max) {
        IntRange r;
        r.run(min, max, 16, true);
        return r.out_;
    }

private:
    void digit_range(char from, char to) {
        out_ += '[';
        out_ += from;
        if (from != to) {
            out_ += '-';
            out_ += to;
        }
        out_ += ']';
    }

    void more_digits(int64_t min_digits, int64_t max_digits) {
        out_ += "[0-9]";
        if (min_digits == max_digits && min_digits == 1) return;
        out_ += "{" + std::to_string(min_digits);
        if (max_digits != min_digits) {
            out_ += ",";
            if (max_digits != kNoMax) out_ += std::to_string(max_digits);
        }
        out_ += "}";
    }

    // Equal-length digit strings from..to.
    void uniform(const std::string& from, const std::string& to) {
        size_t i = 0;
        while (i < from.size() && i < to.size() && from[i] == to[i]) ++i;
        if (i > 0) out_ += "\"" + from.substr(0, i) + "\"";
        if (i >= from.size() || i >= to.size()) return;
        if (i > 0) out_ += " ";
        const size_t rest = from.size() - i - 1;
        if (rest == 0) {
            out_ += std::string("[") + from[i] + "-" + to[i] + "]";
            return;
        }
        const std::string from_rest = from.substr(i + 1), to_rest = to.substr(i + 1);
        const std::string zeros(rest, '0'), nines(rest, '9');
        bool to_done = false;
        out_ += "(";
        if (from_rest == zeros) {
            digit_range(from[i], static_cast<char>(to[i] - 1));
            out_ += " ";
            more_digits(static_cast<int64_t>(rest), static_cast<int64_t>(rest));
        } else {
            out_ += std::string("[") + from[i] + "] (";
            uniform(from_rest, nines);
            out_ += ")";
            if (from[i] < to[i] - 1) {
                out_ += " | ";
                if (to_rest == nines) {
                    digit_range(static_cast<char>(from[i] + 1), to[i]);
                    to_done = true;
                } else {
                    digit_range(static_cast<char>(from[i] + 1), static_cast<char>(to[i] - 1));
                }
                out_ += " ";
                more_digits(static_cast<int64_t>(rest), static_cast<int64_t>(rest));
            }
        }
        if (!to_done) {
            out_ += " | ";
            digit_range(to[i], to[i]);
            out_ += " ";
            uniform(zeros, to_rest);
        }
        out_ += ")";
    }

    void run(int64_t min, int64_t max, int64_t decimals, bool top) {
        const bool has_min = min != kNoMin, has_max = max != kNoMax;
        if (has_min && has_max) {
            if (min < 0 && max < 0) {
                out_ += "\"-\" (";
                run(-max, -min, decimals, true);
                out_ += ")";
                return;
            }
            if (min < 0) {
                out_ += "\"-\" (";
                run(0, -min, decimals, true);
                out_ += ") | ";
                min = 0;
            }
            std::string lo = std::to_string(min);
            const std::string hi = std::to_string(max);
            for (size_t digits = lo.size(); digits < hi.size(); ++digits) {
                uniform(lo, std::string(digits, '9'));
                lo.assign(digits + 1, '0');  // 10…0, the first number one digit longer
                lo[0] = '1';
                out_ += " | ";
            }
            uniform(lo, hi);
            return;
        }
        const int64_t fewer = std::max<int64_t>(decimals - 1, 1);
        if (has_min) {
            if (min < 0) {
                out_ += "\"-\" (";
                run(kNoMin, -min, decimals, false);
                out_ += ") | [0] | [1-9] ";
                more_digits(0, decimals - 1);
            } else if (min == 0) {
                if (top) {
                    out_ += "[0] | [1-9] ";
                    more_digits(0, fewer);
                } else {
                    more_digits(1, decimals);
                }
            } else if (min <= 9) {
                const char c = static_cast<char>('0' + min);
                const char first = top ? '1' : '0';
                if (c > first) {
                    digit_range(first, static_cast<char>(c - 1));
                    out_ += " ";
                    more_digits(1, fewer);
                    out_ += " | ";
                }
                digit_range(c, '9');
                out_ += " ";
                more_digits(0, fewer);
            } else {
                const std::string s = std::to_string(min);
                const char c = s[0];
                if (c > '1') {
                    digit_range(top ? '1' : '0', static_cast<char>(c - 1));
                    out_ += " ";
                    more_digits(static_cast<int64_t>(s.size()), fewer);
                    out_ += " | ";
                }
                digit_range(c, c);
                out_ += " (";
                run(std::stoll(s.substr(1)), kNoMax, fewer, false);
                out_ += ")";
                if (c < '9') {
                    out_ += " | ";
                    digit_range(static_cast<char>(c + 1), '9');
                    out_ += " ";
                    more_digits(static_cast<int64_t>(s.size()) - 1, fewer);
                }
            }
            return;
        }
        if (max >= 0) {
            if (top) {
                out_ += "\"-\" [1-9] ";
                more_digits(0, fewer);
                out_ += " | ";
            }
            run(0, max, decimals, true);
        } else {
            out_ += "\"-\" (";
            run(-max, kNoMax, decimals, true);  // llama.cpp passes false here, which lets "-08" through
            out_ += ")";
        }
    }

    std::string out_;
};

class SchemaToGbnf {
public:
    SchemaToGbnf(const JsonSchemaOptions& o, std::vector<std::string>* dropped)
        : strict_(o.strict), root_name_(o.root_rule), dropped_(dropped) {
        rules_["space"] = o.compact_spaces ? "\" \"?" : kSpaceRule;
    }

    std::string run(const ojson& schema) {
        root_ = &schema;
        collect_refs(schema, "");
        if (errors_.empty()) visit(schema, "", "");
        if (!errors_.empty()) throw_bad_input("json schema: %s", join(errors_, "; ").c_str());
        std::string out;
        for (const auto& [name, body] : rules_) out += name + " ::= " + body + "\n";
        return out;
    }

private:
    void error(const std::string& path, const std::string& what) {
        if (errors_.size() < 8) errors_.push_back(what + (path.empty() ? "" : " (at " + path + ")"));
    }
    // What strict mode refuses and lenient mode drops.
    void unenforceable(const std::string& path, const std::string& what) {
        if (strict_) return error(path, what);
        if (dropped_) dropped_->push_back(what + " (at " + (path.empty() ? std::string("/") : path) + "): dropped");
    }

    // Adds a rule; a name already taken by a different body gets the first free numeric suffix.
    std::string add_rule(const std::string& name, const std::string& body) {
        std::string esc;
        for (size_t i = 0; i < name.size();) {
            const char c = name[i];
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-') {
                esc += c;
                ++i;
            } else {
                esc += '-';
                while (i < name.size() && !((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
                                            (name[i] >= '0' && name[i] <= '9') || name[i] == '-'))
                    ++i;
            }
        }
        auto it = rules_.find(esc);
        if (it == rules_.end() || it->second == body) {
            rules_[esc] = body;
            return esc;
        }
        for (int i = 0;; ++i) {
            const std::string key = esc + std::to_string(i);
            auto jt = rules_.find(key);
            if (jt == rules_.end() || jt->second == body) {
                rules_[key] = body;
                return key;
            }
        }
    }

    std::string add_builtin(const std::string& name, const Builtin& rule) {
        const std::string n = add_rule(name, rule.body);
        for (const auto& dep : rule.deps) {
            if (rules_.count(dep)) continue;
            auto p = primitive_rules().find(dep);
            if (p != primitive_rules().end()) {
                add_builtin(dep, p->second);
            } else {
                add_builtin(dep, format_rules().at(dep));
            }
        }
        return n;
    }
    std::string primitive(const std::string& name) { return add_builtin(name, primitive_rules().at(name)); }

    // Every "$ref" in the document, resolved to the subschema it points at (local JSON pointers only).
    void collect_refs(const ojson& n, const std::string& path) {
        if (n.is_array()) {
            for (size_t i = 0; i < n.size(); ++i) collect_refs(n[i], path + "/" + std::to_string(i));
            return;
        }
        if (!n.is_object()) return;
        auto r = n.find("$ref");
        if (r == n.end()) {
            for (const auto& kv : n.items()) collect_refs(kv.value(), path + "/" + kv.key());
            return;
        }
        if (!r->is_string()) return error(path, "'$ref' must be a string");
        const std::string ref = *r;
        if (refs_.count(ref)) return;
        if (ref.rfind("http://", 0) == 0 || ref.rfind("https://", 0) == 0)
            return error(path, "remote $ref '" + ref + "' is not fetched (put the definition in $defs)");
        if (ref.empty() || ref[0] != '#') return error(path, "unsupported $ref '" + ref + "' (only '#/...' pointers into this schema)");
        const ojson* target = root_;
        size_t at = 1;
        while (at < ref.size()) {
            if (ref[at] != '/') return error(path, "unsupported $ref '" + ref + "'");
            size_t next = ref.find('/', at + 1);
            if (next == std::string::npos) next = ref.size();
            std::string key;
            for (size_t i = at + 1; i < next; ++i) {  // JSON pointer escapes: ~1 is '/', ~0 is '~'
                if (ref[i] == '~' && i + 1 < next && (ref[i + 1] == '0' || ref[i + 1] == '1')) {
                    key += ref[i + 1] == '1' ? '/' : '~';
                    ++i;
                } else {
                    key += ref[i];
                }
            }
            if (target->is_object() && target->contains(key)) {
                target = &(*target)[key];
            } else if (target->is_array() && !key.empty() && key.find_first_not_of("0123456789") == std::string::npos &&
                       std::stoull(key) < target->size()) {
                target = &(*target)[std::stoull(key)];
            } else {
                return error(path, "$ref '" + ref + "' points at nothing ('" + key + "' not found)");
            }
            at = next;
        }
        refs_[ref] = target;
    }

    std::string resolve_ref(const std::string& ref, const std::string& path) {
        if (ref == "#") return root_name_;
        auto done = ref_rules_.find(ref);
        if (done != ref_rules_.end()) return done->second;
        std::string name = ref.substr(ref.find_last_of('/') + 1);
        if (resolving_.count(ref)) return is_reserved(name) ? name + "-" : name;  // recursion: the rule being made
        auto it = refs_.find(ref);
        if (it == refs_.end()) {
            error(path, "unresolved $ref '" + ref + "'");
            return "";
        }
        resolving_.insert(ref);
        name = visit(*it->second, name, ref);
        resolving_.erase(ref);
        ref_rules_[ref] = name;
        return name;
    }

    std::string union_rule(const std::string& name, const std::vector<ojson>& alts, const std::string& path, const char* key) {
        std::vector<std::string> rules;
        for (size_t i = 0; i < alts.size(); ++i)
            rules.push_back(visit(alts[i], name + (name.empty() ? "alternative-" : "-") + std::to_string(i),
                                  path + "/" + key + "/" + std::to_string(i)));
        return join(rules, " | ");
    }

    // JSON strings other than the given names (property names already listed), as a trie of what they start with:
    // ["] ( [a] ([l] ([s] ... | [^"s] char*) ...) | [^"a] char* )? ["] space. A name's JSON text is the trie's
    // alphabet; where a key leaves the trie its next character is any plain one (llama.cpp's class also lets a raw
    // '\' or control character through there, which is not JSON).
    std::string not_strings(const std::vector<std::string>& names) {
        struct Node {
            std::map<uint32_t, Node> next;
            bool end = false;
        };
        Node trie;
        for (const auto& n : names) {
            std::string text = ojson(n).dump();
            text = text.substr(1, text.size() - 2);
            Node* node = &trie;
            for (size_t i = 0; i < text.size();) {
                const unsigned char c = static_cast<unsigned char>(text[i]);
                const size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : 4;
                uint32_t cp = len == 1 ? c : c & (0x7Fu >> len);
                for (size_t k = 1; k < len && i + k < text.size(); ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
                node = &node->next[cp];
                i += len;
            }
            node->end = true;
        }
        const std::string chr = primitive("char");
        auto put = [](std::string& out, uint32_t cp) {
            if (cp == '\\' || cp == '"' || cp == ']' || cp == '[') {
                out += '\\';
                out += static_cast<char>(cp);
            } else if (cp == '-' || cp == '^') {
                out += cp == '-' ? "\\x2D" : "\\x5E";
            } else {
                utf8_append(out, cp);
            }
        };
        std::string out = "[\"] ( ";
        std::function<void(const Node&)> walk = [&](const Node& node) {
            std::string rejects;
            bool first = true;
            for (const auto& [cp, child] : node.next) {
                put(rejects, cp);
                if (!first) out += " | ";
                first = false;
                out += "[";
                put(out, cp);
                out += "]";
                if (!child.next.empty()) {
                    out += " (";
                    walk(child);
                    out += ")";
                } else if (child.end) {
                    out += " " + chr + "+";
                }
            }
            if (!node.next.empty()) {
                if (!first) out += " | ";
                out += "[^\"" + rejects + "\\\\\\x7F\\x00-\\x1F] " + chr + "*";
            }
        };
        walk(trie);
        out += " )";
        if (!trie.end) out += "?";
        out += " [\"] space";
        return out;
    }

    std::string object_rule(const std::vector<std::pair<std::string, const ojson*>>& properties, const std::set<std::string>& required,
                            const std::string& name, const ojson* additional, const std::string& path) {
        std::vector<std::string> required_props, optional_props, prop_names;
        std::unordered_map<std::string, std::string> kv_rule;
        std::string any_kv;  // the rule for keys not listed, when additionalProperties allows them
        for (const auto& [prop, schema] : properties) {
            const std::string value = visit(*schema, sub_name(name, prop), path + "/properties/" + prop);
            kv_rule[prop] = add_rule(sub_name(name, prop) + "-kv", literal(ojson(prop).dump()) + " space \":\" space " + value);
            (required.count(prop) ? required_props : optional_props).push_back(prop);
            prop_names.push_back(prop);
        }
        for (const auto& r : required)
            if (!kv_rule.count(r)) error(path, "required property '" + r + "' is not among the properties");
        const bool extra = additional && ((additional->is_boolean() && additional->get<bool>()) || additional->is_object());
        if (extra) {
            const std::string sub = sub_name(name, "additional");
            const std::string value = additional->is_object() ? visit(*additional, sub + "-value", path + "/additionalProperties") : primitive("value");
            const std::string key = prop_names.empty() ? primitive("string") : add_rule(sub + "-k", not_strings(prop_names));
            any_kv = add_rule(sub + "-kv", key + " \":\" space " + value);
        }
        // Optional members as a chain: member i, then the members after it, each optional, in order.
        std::vector<std::pair<std::string, bool>> optional;  // (kv rule, is the any-key member)
        std::vector<std::string> optional_keys;
        for (const auto& p : optional_props) {
            optional.push_back({kv_rule[p], false});
            optional_keys.push_back(p);
        }
        if (extra) {
            optional.push_back({any_kv, true});
            optional_keys.push_back("*");
        }
        std::function<std::string(size_t, bool)> chain = [&](size_t i, bool first_optional) {
            const auto& [kv, many] = optional[i];
            const std::string comma = "( \",\" space " + kv + " )";
            std::string out = first_optional ? comma + (many ? "*" : "?") : kv + (many ? " " + comma + "*" : "");
            if (i + 1 < optional.size()) out += " " + add_rule(sub_name(name, optional_keys[i]) + "-rest", chain(i + 1, true));
            return out;
        };
        std::string rule = "\"{\" space ";
        for (size_t i = 0; i < required_props.size(); ++i) rule += (i ? " \",\" space " : "") + kv_rule[required_props[i]];
        if (!optional.empty()) {
            rule += " (";
            if (!required_props.empty()) rule += " \",\" space ( ";
            for (size_t i = 0; i < optional.size(); ++i) rule += (i ? " | " : "") + chain(i, false);
            if (!required_props.empty()) rule += " )";
            rule += " )?";
        }
        return rule + " \"}\" space";
    }

    // minItems/maxItems or minLength/maxLength into min and max (kNoMax when absent): non-negative integers, at most
    // the grammar's repetition limit (a larger count would be refused when the grammar is parsed; said here with the
    // keyword's name), min not above max. False after an error.
    bool counts(const ojson& s, const char* min_key, const char* max_key, const std::string& path, int64_t& min, int64_t& max) {
        constexpr uint64_t kLimit = 100000;
        bool ok = true;
        for (const char* key : {min_key, max_key}) {
            if (!s.contains(key)) continue;
            const ojson& v = s[key];
            if (!v.is_number_unsigned()) {
                error(path, std::string("'") + key + "' must be a non-negative integer");
                ok = false;
            } else if (v.get<uint64_t>() > kLimit) {
                error(path, std::string("'") + key + "' is above " + std::to_string(kLimit) + " (the grammar's repetition limit)");
                ok = false;
            } else {
                (key == min_key ? min : max) = static_cast<int64_t>(v.get<uint64_t>());
            }
        }
        if (ok && min > max) {
            error(path, std::string("'") + min_key + "' is above '" + max_key + "'");
            return false;
        }
        return ok;
    }

    // Reads minimum/maximum and their exclusive forms (draft 4's booleans too) as a closed integer range.
    bool int_bounds(const ojson& s, const std::string& path, int64_t& min, int64_t& max) {
        min = kNoMin;
        max = kNoMax;
        auto num = [&](const char* key, double& v) {
            auto it = s.find(key);
            if (it == s.end() || it->is_boolean()) return false;
            if (!it->is_number()) {
                error(path, std::string("'") + key + "' must be a number");
                return false;
            }
            v = it->get<double>();
            return true;
        };
        auto flag = [&](const char* key) { return s.contains(key) && s[key].is_boolean() && s[key].get<bool>(); };
        double v = 0;
        if (num("minimum", v)) {
            v = clamp_bound(v);
            double lo = std::ceil(v);
            if (flag("exclusiveMinimum") && lo == v) lo += 1;
            min = static_cast<int64_t>(lo);
        } else if (num("exclusiveMinimum", v)) {
            min = static_cast<int64_t>(std::floor(clamp_bound(v))) + 1;
        }
        if (num("maximum", v)) {
            v = clamp_bound(v);
            double hi = std::floor(v);
            if (flag("exclusiveMaximum") && hi == v) hi -= 1;
            max = static_cast<int64_t>(hi);
        } else if (num("exclusiveMaximum", v)) {
            max = static_cast<int64_t>(std::ceil(clamp_bound(v))) - 1;
        }
        if (min != kNoMin && max != kNoMax && min > max) {
            error(path, "no integer lies between the minimum and the maximum");
            return false;
        }
        return within_digits(min, max, path);
    }

    // Bounds past what 16 digits write: a lower bound below -(10^16 - 1) or an upper one above it bounds nothing the
    // grammar can write (dropped); the other way round nothing is left (an error).
    bool within_digits(int64_t& min, int64_t& max, const std::string& path) {
        constexpr int64_t kLimit = 9999999999999999;  // 16 digits
        if ((min != kNoMin && min > kLimit) || (max != kNoMax && max < -kLimit)) {
            error(path, "the range lies beyond the 16 digits this grammar writes");
            return false;
        }
        if (min != kNoMin && min < -kLimit) min = kNoMin;
        if (max != kNoMax && max > kLimit) max = kNoMax;
        return true;
    }

    // A JSON number as an integer bound, clamped before conversion (a double past int64 would not convert).
    static double clamp_bound(double v) { return std::max(-1e17, std::min(1e17, v)); }

    // Decimal numbers (no exponent) between bounds, each of which may be exclusive. A non-integer bound is moved
    // inwards to an integer (the grammar then allows a subset of the range).
    std::string number_range(const ojson& s, const std::string& path) {
        std::optional<double> lo, hi;
        bool lo_ex = false, hi_ex = false;
        auto flag = [&](const char* key) { return s.contains(key) && s[key].is_boolean() && s[key].get<bool>(); };
        struct Key {
            const char* name;
            bool is_min, exclusive;
        };
        for (const Key& k : {Key{"minimum", true, flag("exclusiveMinimum")}, Key{"exclusiveMinimum", true, true},
                             Key{"maximum", false, flag("exclusiveMaximum")}, Key{"exclusiveMaximum", false, true}}) {
            auto it = s.find(k.name);
            if (it == s.end() || it->is_boolean()) continue;  // a draft-4 boolean is read with its partner above
            if (!it->is_number()) {
                error(path, std::string("'") + k.name + "' must be a number");
                return "";
            }
            const double v = clamp_bound(it->get<double>());
            auto& b = k.is_min ? lo : hi;
            bool& bex = k.is_min ? lo_ex : hi_ex;
            if (!b || (k.is_min ? v > *b : v < *b) || (v == *b && k.exclusive)) {  // the tighter bound wins
                b = v;
                bex = k.exclusive;
            }
        }
        int64_t L = 0, H = 0;
        if (lo) {
            const double c = std::ceil(*lo);
            if (c != *lo) lo_ex = false;
            L = static_cast<int64_t>(c);
        }
        if (hi) {
            const double f = std::floor(*hi);
            if (f != *hi) hi_ex = false;
            H = static_cast<int64_t>(f);
        }
        if (lo && hi && (L > H || (L == H && (lo_ex || hi_ex)))) {
            error(path, "the range between the minimum and the maximum holds no number this grammar can write");
            return "";
        }
        {
            int64_t mn = lo ? L : kNoMin, mxv = hi ? H : kNoMax;
            if (!within_digits(mn, mxv, path)) return "";
            if (mn == kNoMin) lo.reset();
            if (mxv == kNoMax) hi.reset();
        }
        const std::string any_frac = "(\".\" [0-9]{1,16})?", zero_frac = "(\".\" [0]{1,16})?", some_frac = "\".\" [0-9]{0,15} [1-9]";
        auto ints = [](int64_t a, int64_t b) {
            std::string s = "(";
            s += IntRange::build(a, b);
            return s += ")";
        };
        // Magnitudes y in [a, b] (b may be open), either end exclusive, a >= 0.
        auto magnitude = [&](int64_t a, bool a_ex, std::optional<int64_t> b, bool b_ex) {
            std::vector<std::string> alts;
            if (!b) {
                if (a_ex) {
                    alts.push_back(ints(a, a) + " " + some_frac);
                    alts.push_back(ints(a + 1, kNoMax) + " " + any_frac);
                } else {
                    alts.push_back(ints(a, kNoMax) + " " + any_frac);
                }
                return alts;
            }
            if (a == *b) {
                if (!a_ex && !b_ex) alts.push_back(ints(a, a) + " " + zero_frac);
                return alts;
            }
            if (a_ex) alts.push_back(ints(a, a) + " " + some_frac);
            const int64_t first = a_ex ? a + 1 : a;
            if (first <= *b - 1) alts.push_back(ints(first, *b - 1) + " " + any_frac);
            if (!b_ex) alts.push_back(ints(*b, *b) + " " + zero_frac);
            return alts;
        };
        std::vector<std::string> alts;
        if (!lo || L < 0) {  // negative numbers: y = -x in (max(-H, 0), -L]
            const bool through_zero = !hi || H >= 0;
            auto neg = magnitude(through_zero ? 0 : -H, through_zero ? true : hi_ex, lo ? std::optional<int64_t>(-L) : std::nullopt, lo_ex);
            if (!neg.empty()) alts.push_back("\"-\" (" + join(neg, " | ") + ")");
        }
        if (!hi || H >= 0) {  // zero and above
            const int64_t a = lo && L >= 0 ? L : 0;
            const bool a_ex = lo && L >= 0 && lo_ex;
            if (!hi || H > a || (H == a && !a_ex && !hi_ex)) {
                auto pos = magnitude(a, a_ex, hi ? std::optional<int64_t>(H) : std::nullopt, hi_ex);
                alts.insert(alts.end(), pos.begin(), pos.end());
            }
        }
        return "(" + join(alts, " | ") + ") space";
    }

    std::string visit(const ojson& schema, const std::string& name, const std::string& path) {
        const std::string rule_name = is_reserved(name) ? name + "-" : name.empty() ? root_name_ : name;
        if (schema.is_boolean()) {
            if (!schema.get<bool>()) {
                error(path, "schema 'false' matches nothing");
                return "";
            }
            return add_rule(rule_name, primitive("value"));
        }
        if (!schema.is_object()) {
            error(path, "a schema must be an object or a boolean, not " + schema.dump());
            return "";
        }
        for (const auto& kv : schema.items())
            if (unsupported_keywords().count(kv.key())) unenforceable(path, "unsupported keyword '" + kv.key() + "'");
        const ojson type = schema.contains("type") ? schema["type"] : ojson();
        const std::string format = schema.contains("format") && schema["format"].is_string() ? schema["format"].get<std::string>() : "";
        auto untyped_or = [&](const char* t) { return type.is_null() || type == t; };

        if (schema.contains("$ref")) {
            if (!schema["$ref"].is_string()) {
                error(path, "'$ref' must be a string");
                return "";
            }
            return add_rule(rule_name, resolve_ref(schema["$ref"], path));
        }
        if (schema.contains("oneOf") || schema.contains("anyOf")) {
            const char* key = schema.contains("oneOf") ? "oneOf" : "anyOf";
            if (!schema[key].is_array() || schema[key].empty()) {
                error(path, std::string("'") + key + "' must be a non-empty array");
                return "";
            }
            return add_rule(rule_name, union_rule(name, schema[key].get<std::vector<ojson>>(), path, key));
        }
        if (type.is_array()) {
            std::vector<ojson> alts;
            for (const auto& t : type) {
                ojson copy = schema;
                copy["type"] = t;
                alts.push_back(copy);
            }
            return add_rule(rule_name, union_rule(name, alts, path, "type"));
        }
        if (schema.contains("const")) return add_rule(rule_name, literal(schema["const"].dump()) + " space");
        if (schema.contains("enum")) {
            if (!schema["enum"].is_array() || schema["enum"].empty()) {
                error(path, "'enum' must be a non-empty array");
                return "";
            }
            std::vector<std::string> values;
            for (const auto& v : schema["enum"]) values.push_back(literal(v.dump()));
            return add_rule(rule_name, "(" + join(values, " | ") + ") space");
        }
        if (untyped_or("object") && (schema.contains("properties") || (schema.contains("additionalProperties") && schema["additionalProperties"] != true))) {
            std::set<std::string> required;
            if (schema.contains("required") && schema["required"].is_array())
                for (const auto& r : schema["required"])
                    if (r.is_string()) required.insert(r.get<std::string>());
            std::vector<std::pair<std::string, const ojson*>> props;
            if (schema.contains("properties")) {
                if (!schema["properties"].is_object()) {
                    error(path, "'properties' must be an object");
                    return "";
                }
                for (const auto& kv : schema["properties"].items()) props.emplace_back(kv.key(), &kv.value());
            }
            const ojson* additional = schema.contains("additionalProperties") ? &schema["additionalProperties"] : nullptr;
            return add_rule(rule_name, object_rule(props, required, name, additional, path));
        }
        if (untyped_or("object") && schema.contains("allOf")) {
            // llama.cpp's reading: the members of every part, required; those of an anyOf inside it, optional.
            std::set<std::string> required;
            std::vector<std::pair<std::string, const ojson*>> props;
            std::function<void(const ojson&, bool)> add = [&](const ojson& part, bool req) {
                if (part.contains("$ref") && part["$ref"].is_string()) {
                    auto it = refs_.find(part["$ref"].get<std::string>());
                    if (it != refs_.end()) add(*it->second, req);
                } else if (part.contains("properties") && part["properties"].is_object()) {
                    for (const auto& kv : part["properties"].items()) {
                        props.emplace_back(kv.key(), &kv.value());
                        if (req) required.insert(kv.key());
                    }
                }
            };
            if (!schema["allOf"].is_array()) {
                error(path, "'allOf' must be an array");
                return "";
            }
            for (const auto& part : schema["allOf"]) {
                if (part.contains("anyOf") && part["anyOf"].is_array()) {
                    for (const auto& alt : part["anyOf"]) add(alt, false);
                } else {
                    add(part, true);
                }
            }
            return add_rule(rule_name, object_rule(props, required, name, nullptr, path));
        }
        if (untyped_or("array") && (schema.contains("items") || schema.contains("prefixItems"))) {
            // A tuple: "prefixItems" (2020-12), or "items" as an array (drafts 4-7); llama.cpp reads a "prefixItems"
            // that is an object as "items".
            const bool prefix = schema.contains("prefixItems") && schema["prefixItems"].is_array();
            const char* key = prefix ? "prefixItems" : schema.contains("items") ? "items" : "prefixItems";
            if (schema[key].is_array()) {
                const ojson& items = schema[key];
                std::string rule = "\"[\" space ";
                for (size_t i = 0; i < items.size(); ++i)
                    rule += (i ? " \",\" space " : "") +
                            visit(items[i], sub_name(name, "tuple-" + std::to_string(i)), path + "/" + key + "/" + std::to_string(i));
                // 2020-12: "items" after "prefixItems" is the schema of the elements after the tuple.
                if (prefix && schema.contains("items") && schema["items"].is_object()) {
                    const std::string rest = visit(schema["items"], sub_name(name, "item"), path + "/items");
                    rule += (items.empty() ? "( " + rest + " ( \",\" space " + rest + " )* )?" : " ( \",\" space " + rest + " )*");
                }
                return add_rule(rule_name, rule + " \"]\" space");
            }
            const std::string item = visit(schema[key], sub_name(name, "item"), path + "/" + key);
            int64_t min = 0, max = kNoMax;
            if (!counts(schema, "minItems", "maxItems", path, min, max)) return "";
            if (max == 0) return add_rule(rule_name, "\"[\" space \"]\" space");
            return add_rule(rule_name, "\"[\" space " + repetition(item, min, max, "\",\" space") + " \"]\" space");
        }
        if (untyped_or("string") && schema.contains("pattern")) {
            if (!schema["pattern"].is_string()) {
                error(path, "'pattern' must be a string");
                return "";
            }
            if (schema.contains("minLength") || schema.contains("maxLength"))
                unenforceable(path, "'minLength'/'maxLength' together with 'pattern' (put the length in the pattern)");
            bool at_start = false, at_end = false;
            std::string expr;
            try {
                expr = regex_to_json_string_gbnf(schema["pattern"].get<std::string>(), at_start, at_end);
            } catch (const Error& e) {
                error(path, std::string("pattern: ") + e.what());
                return "";
            }
            std::string inner = expr;
            if (!at_start || !at_end) {
                const std::string chr = primitive("char");
                inner = (at_start ? "" : chr + "* ") + "(" + expr + ")" + (at_end ? "" : " " + chr + "*");
            }
            return add_rule(rule_name, "\"\\\"\" (" + inner + ") \"\\\"\" space");
        }
        const bool uuid = format.size() >= 4 && format.compare(0, 4, "uuid") == 0 &&
                          (format.size() == 4 || (format.size() == 5 && format[4] >= '1' && format[4] <= '5'));
        if (untyped_or("string") && uuid) return add_builtin(rule_name == root_name_ ? root_name_ : format, primitive_rules().at("uuid"));
        if (untyped_or("string") && format_rules().count(format + "-string")) {
            const std::string prim = format + "-string";
            return add_rule(rule_name, add_builtin(prim, format_rules().at(prim)));
        }
        if (type == "string" && (schema.contains("minLength") || schema.contains("maxLength"))) {
            const std::string chr = primitive("char");
            int64_t min = 0, max = kNoMax;
            if (!counts(schema, "minLength", "maxLength", path, min, max)) return "";
            return add_rule(rule_name, "\"\\\"\" " + repetition(chr, min, max) + " \"\\\"\" space");
        }
        const bool bounded = schema.contains("minimum") || schema.contains("exclusiveMinimum") || schema.contains("maximum") ||
                             schema.contains("exclusiveMaximum");
        if (type == "integer" && bounded) {
            int64_t min = kNoMin, max = kNoMax;
            if (!int_bounds(schema, path, min, max)) return "";
            if (min == kNoMin && max == kNoMax) return add_builtin(rule_name == root_name_ ? root_name_ : "integer", primitive_rules().at("integer"));
            return add_rule(rule_name, "(" + IntRange::build(min, max) + ") space");
        }
        if (type == "number" && bounded) {
            const std::string body = number_range(schema, path);
            return body.empty() ? "" : add_rule(rule_name, body);
        }
        if (schema.empty() || type == "object") return add_rule(rule_name, primitive("object"));
        if (type.is_null()) {
            bool annotations_only = true;
            for (const auto& kv : schema.items())
                if (constraint_keywords().count(kv.key())) annotations_only = false;
            if (annotations_only) return add_rule(rule_name, primitive("value"));
        }
        static const std::set<std::string> kTypes = {"string", "number", "integer", "boolean", "null", "array"};
        if (!type.is_string() || !kTypes.count(type.get<std::string>())) {
            error(path, "unrecognized schema: " + schema.dump());
            return "";
        }
        const std::string t = type.get<std::string>();
        return add_builtin(rule_name == root_name_ ? root_name_ : t, primitive_rules().at(t));
    }

    bool strict_ = true;
    std::string root_name_;
    std::vector<std::string>* dropped_ = nullptr;
    std::map<std::string, std::string> rules_;
    const ojson* root_ = nullptr;
    std::unordered_map<std::string, const ojson*> refs_;
    std::unordered_map<std::string, std::string> ref_rules_;
    std::unordered_set<std::string> resolving_;
    std::vector<std::string> errors_;
};

}  // namespace

std::string json_schema_to_gbnf(std::string_view schema_json, const JsonSchemaOptions& options, std::vector<std::string>* dropped) {
    ojson schema;
    try {
        schema = ojson::parse(schema_json.begin(), schema_json.end());
    } catch (const std::exception& e) {
        throw_bad_input("json schema: not valid JSON: %s", e.what());
    }
    return SchemaToGbnf(options, dropped).run(schema);
}

}  // namespace llmforge
