// JSON Schema → GBNF: what is refused and why, and numeric ranges checked number by number against arithmetic.
// (Text equality with llama.cpp's converter and validity of samples under ajv: tests/grammar/schema_equivalence.test.mjs.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <nlohmann/json.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "llmforge/error.h"
#include "llmforge/grammar.h"

using namespace llmforge;

namespace {

std::string refusal(const std::string& schema) {
    try {
        json_schema_to_gbnf(schema);
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput) << schema;
        return e.what();
    }
    ADD_FAILURE() << "not refused: " << schema;
    return "";
}

bool accepts(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    GrammarMatcher m(g);
    return m.accept(text) && m.can_end();
}

std::shared_ptr<const Grammar> compile(const std::string& schema) { return Grammar::parse(json_schema_to_gbnf(schema)); }

}  // namespace

TEST(JsonSchema, RefusesWhatItCannotEnforceByName) {
    struct Case {
        const char* schema;
        const char* error;
    };
    const Case cases[] = {
        {R"({"type": "array", "items": {"type": "integer"}, "uniqueItems": true})", "unsupported keyword 'uniqueItems'"},
        {R"({"type": "object", "properties": {"a": {"not": {"type": "string"}}}})", "unsupported keyword 'not' (at /properties/a)"},
        {R"({"type": "number", "multipleOf": 0.5})", "unsupported keyword 'multipleOf'"},
        {R"({"if": {"type": "string"}, "then": {"minLength": 2}})", "unsupported keyword 'if'"},
        {R"({"type": "object", "patternProperties": {"^x": {}}})", "unsupported keyword 'patternProperties'"},
        {R"({"$ref": "#/$defs/missing", "$defs": {}})", "$ref '#/$defs/missing' points at nothing ('missing' not found)"},
        {R"({"$ref": "https://example.com/address.json"})", "remote $ref 'https://example.com/address.json' is not fetched"},
        {R"({"$ref": "other.json#/a"})", "unsupported $ref 'other.json#/a'"},
        {R"({"type": "string", "pattern": "^(a+)\\1$"})", "pattern: regex: at offset 5: back-references are not supported"},
        {R"({"type": "string", "pattern": "^(?=a)b$"})", "lookaround"},
        {R"({"type": "string", "pattern": "^[a-z$"})", "unterminated character class"},
        {R"({"type": "integer", "minimum": 5, "maximum": 3})", "no integer lies between the minimum and the maximum"},
        {R"({"type": "number", "minimum": 0.2, "maximum": 0.8})", "holds no number this grammar can write"},
        {R"({"type": "array", "items": {}, "minItems": 3, "maxItems": 2})", "'minItems' is above 'maxItems'"},
        {R"({"type": "string", "minLength": -1})", "'minLength' must be a non-negative integer"},
        {R"({"type": "kaboom"})", "unrecognized schema"},
        {R"({"type": "object", "properties": {"a": false}})", "schema 'false' matches nothing (at /properties/a)"},
        {R"({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["b"]})", "required property 'b' is not among the properties"},
        {R"({"type": "object", "properties": )", "json schema: not valid JSON"},
        {R"({"enum": []})", "'enum' must be a non-empty array"},
    };
    for (const auto& c : cases) {
        const std::string err = refusal(c.schema);
        EXPECT_NE(err.find(c.error), std::string::npos) << c.schema << "\n  got: " << err;
        EXPECT_EQ(err.find('\n'), std::string::npos) << "one line: " << err;
    }
}

TEST(JsonSchema, LenientDropsAndNamesWhatItCannotEnforce) {
    const std::string schema = R"({"type": "array", "items": {"type": "string", "pattern": "^a+$", "maxLength": 3}, "uniqueItems": true})";
    std::vector<std::string> dropped;
    JsonSchemaOptions o;
    o.strict = false;
    auto g = Grammar::parse(json_schema_to_gbnf(schema, o, &dropped));
    ASSERT_EQ(dropped.size(), 2u);
    EXPECT_EQ(dropped[0], "unsupported keyword 'uniqueItems' (at /): dropped");
    EXPECT_NE(dropped[1].find("'minLength'/'maxLength' together with 'pattern' (put the length in the pattern) (at /items)"), std::string::npos);
    EXPECT_TRUE(accepts(g, R"(["aaaa", "a"])"));
    EXPECT_FALSE(accepts(g, R"(["b"])"));
}

// Every integer in [-1500, 1500] against arithmetic, for closed, half-open and exclusive bounds.
TEST(JsonSchema, IntegerRangesExact) {
    struct Bounds {
        const char* schema;
        long lo, hi;  // inclusive; LONG_MIN / LONG_MAX: open
    };
    const Bounds cases[] = {
        {R"({"type": "integer", "minimum": 0})", 0, LONG_MAX},
        {R"({"type": "integer", "minimum": 7})", 7, LONG_MAX},
        {R"({"type": "integer", "minimum": 123})", 123, LONG_MAX},
        {R"({"type": "integer", "minimum": -123})", -123, LONG_MAX},
        {R"({"type": "integer", "maximum": -5})", LONG_MIN, -5},
        {R"({"type": "integer", "maximum": -120})", LONG_MIN, -120},
        {R"({"type": "integer", "maximum": 99})", LONG_MIN, 99},
        {R"({"type": "integer", "minimum": 15, "maximum": 300})", 15, 300},
        {R"({"type": "integer", "minimum": -1234, "maximum": -17})", -1234, -17},
        {R"({"type": "integer", "minimum": -123, "maximum": 1042})", -123, 1042},
        {R"({"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10})", 1, 9},
        {R"({"type": "integer", "minimum": 2.5, "maximum": 7.5})", 3, 7},
        {R"({"type": "integer", "minimum": 3, "exclusiveMinimum": true, "maximum": 9, "exclusiveMaximum": true})", 4, 8},  // draft 4
    };
    for (const auto& c : cases) {
        auto g = compile(c.schema);
        int wrong = 0;
        for (long v = -1500; v <= 1500; ++v) {
            const bool in = v >= c.lo && v <= c.hi;
            if (accepts(g, std::to_string(v)) != in && ++wrong < 5) ADD_FAILURE() << c.schema << ": " << v << " should be " << (in ? "in" : "out");
        }
        EXPECT_EQ(wrong, 0) << c.schema;
        EXPECT_FALSE(accepts(g, "01")) << c.schema;  // never a leading zero
        EXPECT_FALSE(accepts(g, "-0" + std::to_string(std::abs(c.lo == LONG_MIN ? 5 : c.lo)))) << c.schema;
    }
}

// Numbers with bounds (a grammar the llama.cpp converter does not make): every accepted text is in range, and every
// in-range number written plainly (no exponent, no trailing zeros) is accepted.
TEST(JsonSchema, NumberRangesSoundAndComplete) {
    struct Bounds {
        const char* schema;
        double lo, hi;
        bool lo_ex, hi_ex;
    };
    const double inf = INFINITY;
    const Bounds cases[] = {
        {R"({"type": "number", "minimum": 0})", 0, inf, false, false},
        {R"({"type": "number", "exclusiveMinimum": 0})", 0, inf, true, false},
        {R"({"type": "number", "minimum": -1.5, "exclusiveMaximum": 10})", -1, 10, false, true},
        {R"({"type": "number", "minimum": -20, "maximum": -3})", -20, -3, false, false},
        {R"({"type": "number", "exclusiveMinimum": -7, "exclusiveMaximum": -2})", -7, -2, true, true},
        {R"({"type": "number", "maximum": 1})", -inf, 1, false, false},
        {R"({"type": "number", "exclusiveMaximum": 0})", -inf, 0, false, true},
        {R"({"type": "number", "minimum": 0, "maximum": 1})", 0, 1, false, false},
        {R"({"type": "number", "minimum": 3, "maximum": 3})", 3, 3, false, false},
    };
    for (const auto& c : cases) {
        auto g = compile(c.schema);
        int checked = 0;
        for (int q = -100 * 4; q <= 100 * 4; ++q) {  // quarter steps: 25.25, -0.5, 3, …
            const double v = q / 4.0;
            char buf[64];
            std::snprintf(buf, sizeof buf, "%g", v);
            std::string plain = buf;
            if (plain == "-0") continue;
            const bool in = (c.lo_ex ? v > c.lo : v >= c.lo) && (c.hi_ex ? v < c.hi : v <= c.hi);
            EXPECT_EQ(accepts(g, plain), in) << c.schema << ": " << plain;
            if (plain.find('.') == std::string::npos) {
                // "3.0", "3.00": the same number; accepted only where it is in range
                EXPECT_FALSE(accepts(g, plain + ".0") && !in) << c.schema << ": " << plain << ".0";
            }
            ++checked;
        }
        EXPECT_GT(checked, 700);
        EXPECT_FALSE(accepts(g, "1e3")) << c.schema;  // no exponents: the range is checked digit by digit
    }
    auto g = compile(R"({"type": "number", "exclusiveMinimum": 2, "maximum": 5})");
    EXPECT_TRUE(accepts(g, "2.000001"));
    EXPECT_FALSE(accepts(g, "2.000"));
    EXPECT_TRUE(accepts(g, "5.000"));
    EXPECT_FALSE(accepts(g, "5.001"));
}

TEST(JsonSchema, LiteralsPatternsAndKeysStayValidJson) {
    // a const with a backslash and a quote: the JSON text, escapes and all
    auto c = compile(R"({"const": "a\\b\"c\n"})");
    EXPECT_TRUE(accepts(c, R"("a\\b\"c\n")"));
    EXPECT_FALSE(accepts(c, "\"a\\b\"c\n\""));
    // a pattern naming '"' and '\': their escapes; without anchors, a search
    auto p = compile(R"({"type": "string", "pattern": "x[\"\\\\]y"})");
    EXPECT_TRUE(accepts(p, R"("x\"y")"));
    EXPECT_TRUE(accepts(p, R"("abx\\y!")"));
    EXPECT_FALSE(accepts(p, R"("x"y")"));
    EXPECT_FALSE(accepts(p, R"("xy")"));
    // '.' never writes a raw control character or an unescaped quote
    auto d = compile(R"({"type": "string", "pattern": "^.$"})");
    EXPECT_TRUE(accepts(d, R"("\"")"));
    EXPECT_TRUE(accepts(d, "\"\xC3\xA9\""));
    EXPECT_FALSE(accepts(d, "\"\t\""));
    EXPECT_FALSE(accepts(d, R"(""")"));
    // other keys than the listed ones: never a raw backslash at the start
    auto k = compile(R"({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "integer"}})");
    EXPECT_TRUE(accepts(k, R"({"a": 1, "b": 2})"));
    EXPECT_FALSE(accepts(k, R"({"\": 2})"));
    EXPECT_FALSE(accepts(k, R"({"a": 1, "a": 2})"));
    // prefixItems then items (2020-12)
    auto t = compile(R"({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": {"type": "boolean"}})");
    EXPECT_TRUE(accepts(t, R"(["x", 1])"));
    EXPECT_TRUE(accepts(t, R"(["x", 1, true, false])"));
    EXPECT_FALSE(accepts(t, R"(["x", 1, 2])"));
    // recursive $ref through $defs, and "#" (the whole schema)
    auto r = compile(R"({"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer"}, "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}, "required": ["v"]}}, "$ref": "#/$defs/node"})");
    EXPECT_TRUE(accepts(r, R"({"v": 1, "kids": [{"v": 2}, {"v": 3, "kids": []}]})"));
    EXPECT_FALSE(accepts(r, R"({"v": 1, "kids": [{"w": 2}]})"));
    auto h = compile(R"({"type": "object", "properties": {"name": {"type": "string"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}, "required": ["name", "next"]})");
    EXPECT_TRUE(accepts(h, R"({"name": "a", "next": {"name": "b", "next": null}})"));
    // dates: each month with its days
    auto dt = compile(R"({"type": "string", "format": "date"})");
    EXPECT_TRUE(accepts(dt, R"("2024-01-31")"));
    EXPECT_TRUE(accepts(dt, R"("2024-04-30")"));
    EXPECT_FALSE(accepts(dt, R"("2024-04-31")"));
    EXPECT_FALSE(accepts(dt, R"("2024-02-30")"));
    EXPECT_FALSE(accepts(dt, R"("2024-13-01")"));
}

// ---------------------------------------------------------------------------------------------------------------
// Tool calls (tools.h): the three formats parsed, held back while streaming, and forced by grammar.
#include "llmforge/tools.h"

namespace {
const nlohmann::ordered_json kTools = nlohmann::ordered_json::parse(R"([
  {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties":
      {"city": {"type": "string", "maxLength": 12}, "unit": {"enum": ["c", "f"]}}, "required": ["city", "unit"], "additionalProperties": false}}},
  {"type": "function", "function": {"name": "ping"}}])");
}  // namespace

TEST(Tools, ParsesTheThreeFormats) {
    std::mt19937_64 rng(1);
    auto h = parse_tool_calls("Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": \"c\"}}\n</tool_call>\n"
                              "<tool_call>\n{\"name\": \"ping\", \"arguments\": \"{}\"}\n</tool_call>",
                              ToolCallFormat::Hermes, &kTools, rng);
    ASSERT_EQ(h.calls.size(), 2u);
    EXPECT_EQ(h.content, "Let me look.");
    EXPECT_EQ(h.calls[0].name, "get_weather");
    EXPECT_EQ(h.calls[0].arguments, R"({"city":"Paris","unit":"c"})");
    EXPECT_EQ(h.calls[1].arguments, "{}");  // arguments given as a JSON string: read
    EXPECT_EQ(h.calls[0].id.size(), 29u);
    EXPECT_EQ(h.calls[0].id.rfind("call_", 0), 0u);
    // unknown tool, broken JSON: left as content
    auto bad = parse_tool_calls("<tool_call>{\"name\": \"rm\", \"arguments\": {}}</tool_call> and <tool_call>{oops</tool_call>", ToolCallFormat::Hermes, &kTools, rng);
    EXPECT_TRUE(bad.calls.empty());
    EXPECT_NE(bad.content.find("{oops"), std::string::npos);
    EXPECT_NE(bad.content.find("\"rm\""), std::string::npos);
    // Llama 3: the whole reply, "parameters", after <|python_tag|> or not
    auto l = parse_tool_calls("<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\", \"unit\": \"f\"}}", ToolCallFormat::Llama3, &kTools, rng);
    ASSERT_EQ(l.calls.size(), 1u);
    EXPECT_EQ(l.calls[0].arguments, R"({"city":"Oslo","unit":"f"})");
    EXPECT_TRUE(parse_tool_calls("The answer is {braces}.", ToolCallFormat::Llama3, &kTools, rng).calls.empty());
    // Mistral: [TOOL_CALLS] and a JSON array; its ids are 9 letters and digits
    auto m = parse_tool_calls("[TOOL_CALLS][{\"name\": \"ping\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\", \"unit\": \"c\"}}]",
                              ToolCallFormat::Mistral, &kTools, rng);
    ASSERT_EQ(m.calls.size(), 2u);
    EXPECT_EQ(m.calls[1].name, "get_weather");
    EXPECT_EQ(m.calls[0].id.size(), 9u);
    EXPECT_EQ(m.content, "");
}

TEST(Tools, DetectsFormatsAndHoldsBackPossibleCalls) {
    EXPECT_EQ(detect_tool_format("... <tool_call> ..."), ToolCallFormat::Hermes);
    EXPECT_EQ(detect_tool_format("... [TOOL_CALLS] ..."), ToolCallFormat::Mistral);
    EXPECT_EQ(detect_tool_format("<|python_tag|>"), ToolCallFormat::Llama3);
    EXPECT_EQ(detect_tool_format("{{ messages }}"), ToolCallFormat::Hermes);
    EXPECT_EQ(tool_content_prefix("Sure, <tool_ca", ToolCallFormat::Hermes), 6u);
    EXPECT_EQ(tool_content_prefix("a < b", ToolCallFormat::Hermes), 5u);
    EXPECT_EQ(tool_content_prefix("x <tool_call>\n{", ToolCallFormat::Hermes), 2u);
    EXPECT_EQ(tool_content_prefix("ok [TOOL", ToolCallFormat::Mistral), 3u);
    EXPECT_EQ(tool_content_prefix("  {\"name\"", ToolCallFormat::Llama3), 0u);
    EXPECT_EQ(tool_content_prefix("Hello", ToolCallFormat::Llama3), 5u);
}

TEST(Tools, ForcingGrammarGivesOnlyValidCalls) {
    for (auto f : {ToolCallFormat::Hermes, ToolCallFormat::Llama3, ToolCallFormat::Mistral}) {
        SCOPED_TRACE(tool_format_name(f));
        auto g = Grammar::parse(tool_call_gbnf(kTools, f, "", f != ToolCallFormat::Llama3));
        std::mt19937_64 rng(2);
        for (uint64_t seed = 0; seed < 40; ++seed) {
            const std::string s = g->sample(seed);
            auto r = parse_tool_calls(s, f, &kTools, rng);
            ASSERT_FALSE(r.calls.empty()) << s;
            EXPECT_EQ(r.content, "") << s;
            for (const auto& c : r.calls) {
                auto a = nlohmann::json::parse(c.arguments);
                if (c.name == "get_weather") {
                    EXPECT_TRUE(a["unit"] == "c" || a["unit"] == "f") << s;
                    EXPECT_EQ(a.size(), 2u) << s;
                }
            }
        }
        // a named function only
        auto only = Grammar::parse(tool_call_gbnf(kTools, f, "ping", false));
        for (uint64_t seed = 0; seed < 10; ++seed) {
            auto r = parse_tool_calls(only->sample(seed), f, &kTools, rng);
            ASSERT_EQ(r.calls.size(), 1u);
            EXPECT_EQ(r.calls[0].name, "ping");
        }
    }
    EXPECT_THROW(tool_call_gbnf(kTools, ToolCallFormat::Hermes, "nope", true), Error);
    EXPECT_THROW(validate_tools(nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "a b"}}])")), Error);
    EXPECT_THROW(validate_tools(nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "a"}}, {"type": "function", "function": {"name": "a"}}])")), Error);
    // a strict that is not a boolean (it reached nlohmann's value() as a type_error: a server's 500)
    EXPECT_THROW(validate_tools(nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "a", "strict": "yes"}}])")), Error);
    EXPECT_NO_THROW(validate_tools(nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "a", "strict": true}}])")));
}

TEST(Tools, UnpairedSurrogateEscapesAreRead) {
    std::mt19937_64 rng(3);
    auto r = parse_tool_calls("<tool_call>{\"name\": \"get_weather\", \"arguments\": {\"city\": \"a\\udAff\\ud83d\\ude00\\\\u\", \"unit\": \"c\"}}</tool_call>",
                              ToolCallFormat::Hermes, &kTools, rng);
    ASSERT_EQ(r.calls.size(), 1u);
    EXPECT_EQ(nlohmann::json::parse(r.calls[0].arguments)["city"], "a\xEF\xBF\xBD\xF0\x9F\x98\x80\\u");
    auto cut = parse_tool_calls("<tool_call>{\"name\": \"ping\", \"arguments\": {\"x\": \"\\ud8", ToolCallFormat::Hermes, &kTools, rng);
    EXPECT_TRUE(cut.calls.empty());
}

TEST(JsonSchema, BoundsPastSixteenDigits) {
    // no constraint the grammar's 16 digits can feel: dropped; nothing left: refused; never a double cast out of range
    auto g = compile(R"({"type": "integer", "minimum": -1e300, "maximum": 1e300})");
    EXPECT_TRUE(accepts(g, "-9999999999999999"));
    EXPECT_TRUE(accepts(g, "123"));
    auto n = compile(R"({"type": "number", "minimum": -1e19, "maximum": 5})");
    EXPECT_TRUE(accepts(n, "-123.5"));
    EXPECT_FALSE(accepts(n, "5.5"));
    EXPECT_NE(refusal(R"({"type": "integer", "minimum": 1e20})").find("beyond the 16 digits"), std::string::npos);
    EXPECT_NE(refusal(R"({"type": "number", "maximum": -1e300})").find("beyond the 16 digits"), std::string::npos);
    EXPECT_NE(refusal(R"({"type": "array", "items": {}, "minItems": 18446744073709551615})").find("'minItems' is above 100000"), std::string::npos);
}
