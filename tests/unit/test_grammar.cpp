// GBNF grammars: parsing, the checks, and the matcher's verdicts against llama.cpp's own integration cases
// (tests/grammar/llamacpp_integration.json: llama.cpp c392e50's tests/test-grammar-integration.cpp as data).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

#include "llmforge/error.h"
#include "llmforge/grammar.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"
#include "test_util.h"

using namespace llmforge;

namespace {

nlohmann::json cases() {
    return nlohmann::json::parse(test::read_file(std::string(LLMFORGE_SOURCE_DIR) + "/tests/grammar/llamacpp_integration.json"));
}

// llama.cpp's match_string: every code point must be accepted, then some stack must be empty.
bool matches(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    GrammarMatcher m(g);
    return m.accept(text) && m.can_end();
}

// The same text fed one byte at a time (tokens that end inside a character).
bool matches_bytewise(const std::shared_ptr<const Grammar>& g, const std::string& text) {
    GrammarMatcher m(g);
    for (char c : text)
        if (!m.accept(std::string_view(&c, 1))) return false;
    return m.can_end();
}

std::string error_of(const std::string& gbnf) {
    try {
        Grammar::parse(gbnf);
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::BadInput);
        return e.what();
    }
    return "";
}

}  // namespace

TEST(Grammar, LlamaCppIntegrationCasesSameVerdicts) {
    auto data = cases();
    int n_cases = 0, n_strings = 0;
    for (const auto& c : data["cases"]) {
        if (!c.contains("grammar")) continue;  // JSON-schema cases: with the schema compiler
        SCOPED_TRACE(c["name"].get<std::string>());
        auto g = Grammar::parse(c["grammar"].get<std::string>());
        for (const auto& s : c["accept"]) {
            EXPECT_TRUE(matches(g, s)) << "should accept: " << s;
            EXPECT_TRUE(matches_bytewise(g, s)) << "should accept byte by byte: " << s;
            ++n_strings;
        }
        for (const auto& s : c["reject"]) {
            EXPECT_FALSE(matches(g, s)) << "should reject: " << s;
            EXPECT_FALSE(matches_bytewise(g, s)) << "should reject byte by byte: " << s;
            ++n_strings;
        }
        // the grammar printed back parses to a grammar with the same verdicts
        auto again = Grammar::parse(g->to_gbnf());
        for (const auto& s : c["accept"]) EXPECT_TRUE(matches(again, s)) << g->to_gbnf();
        for (const auto& s : c["reject"]) EXPECT_FALSE(matches(again, s)) << g->to_gbnf();
        ++n_cases;
    }
    EXPECT_GE(n_cases, 11);
    EXPECT_GE(n_strings, 100);
}

TEST(Grammar, LlamaCppInvalidGrammarsRefused) {
    auto data = cases();
    ASSERT_GE(data["invalid"].size(), 6u);
    for (const auto& c : data["invalid"]) {
        std::string err = error_of(c["grammar"]);
        EXPECT_NE(err.find(c["error"].get<std::string>()), std::string::npos) << c["name"] << ": " << err;
    }
}

TEST(Grammar, SyntaxErrorsNameLineAndColumn) {
    struct Case { const char* gbnf; const char* says; };
    for (const Case& c : std::vector<Case>{
             {"root ::= \"abc", "line 1, column 10: unterminated string literal"},
             {"root ::= [a-z", "line 1, column 10: unterminated character class"},
             {"root ::= (\"a\"", "line 1, column 10: unclosed '('"},
             {"root ::= \"a\"\nx := \"b\"", "line 2, column 3: expected '::='"},
             {"root ::= * \"a\"", "line 1, column 10: '*' with nothing before it to repeat"},
             {"root ::= \"a\"{3,2}", "a repetition {m,n} with n < m"},
             {"root ::= \"\\q\"", "unknown escape '\\q'"},
             {"root ::= [z-a]", "a character range that runs backwards"},
             {"root ::= \"a\" )", "unexpected ')' in rule 'root'"},
             {"root ::= \"a\"\nroot ::= \"b\"", "rule 'root' is defined twice"},
             {"root ::= \"a\"{1000000}", "a repetition count above"},
             {"root ::= \"\\U00110000\"", "code point beyond U+10FFFF"},
         }) {
        std::string err = error_of(c.gbnf);
        EXPECT_NE(err.find(c.says), std::string::npos) << c.gbnf << " → " << err;
    }
    // a different start rule
    auto g = Grammar::parse("greeting ::= \"hi\"", "greeting");
    EXPECT_TRUE(matches(g, "hi"));
    EXPECT_NE(error_of("greeting ::= \"hi\"").find("no rule 'root'"), std::string::npos);
}

TEST(Grammar, SyntaxDetails) {
    // comments, line continuation after ::= and |, newlines inside parentheses, escapes, classes, '.', repetitions
    auto g = Grammar::parse(
        "# a comment line\n"
        "root ::=   # comment after ::=\n"
        "   item (\n"
        "     \",\" item   # inside a group\n"
        "   )* |\n"
        "   \"\\x41\\u00e9\\U0001F600\"\n"
        "item ::= [a-c\\]\\x2d]{1,3} \".\"? | [^a-z\\n]\n");
    EXPECT_TRUE(matches(g, "a"));
    EXPECT_TRUE(matches(g, "abc,]-.,b"));
    EXPECT_TRUE(matches(g, "A\xC3\xA9\xF0\x9F\x98\x80"));
    EXPECT_TRUE(matches(g, "Z,\xE2\x82\xAC"));  // [^a-z\n] takes any other character, multi-byte ones too
    EXPECT_FALSE(matches(g, "abca"));         // at most three
    EXPECT_FALSE(matches(g, "a,"));
    EXPECT_FALSE(matches(g, "z"));
    EXPECT_FALSE(matches(g, "\n"));
    EXPECT_FALSE(matches(g, ""));
    // {m}, {m,}, {,n} are llama.cpp's forms; an empty alternative matches the empty string
    auto r = Grammar::parse("root ::= \"ab\"{2} \"c\"{2,} x\nx ::= \"d\" | ");
    EXPECT_TRUE(matches(r, "ababcc"));
    EXPECT_TRUE(matches(r, "ababcccccd"));
    EXPECT_FALSE(matches(r, "abcc"));
    EXPECT_FALSE(matches(r, "ababc"));
    EXPECT_FALSE(matches(r, "ababccdd"));
    auto dot = Grammar::parse("root ::= . .");
    EXPECT_TRUE(matches(dot, "\xF0\x9F\x98\x80x"));  // '.' is one character, not one byte
    EXPECT_FALSE(matches(dot, "x"));
}

TEST(Grammar, MatcherStatesAndUtf8) {
    auto g = Grammar::parse("root ::= \"{\" [\xC3\xA0-\xC3\xBF]* \"}\" ");
    GrammarMatcher m(g);
    EXPECT_FALSE(m.can_end());
    EXPECT_TRUE(m.accept("{"));
    EXPECT_FALSE(m.accept("x"));                 // refused, and the state is kept
    EXPECT_TRUE(m.accept("\xC3"));               // a character begun that can become one of à..ÿ
    EXPECT_FALSE(m.can_end());
    EXPECT_FALSE(m.accept("\x80"));              // U+00C0 is outside the class
    EXPECT_TRUE(m.accept("\xA9"));               // é
    EXPECT_FALSE(m.accept("\xC4"));              // U+0100..U+013F: no member of the class starts so
    EXPECT_FALSE(m.accept("\xFF"));              // never valid UTF-8
    EXPECT_TRUE(m.accept("}"));
    EXPECT_TRUE(m.can_end());
    EXPECT_FALSE(m.can_continue());              // nothing may follow the closing brace
    EXPECT_FALSE(m.accept("}"));
    m.reset();
    EXPECT_TRUE(m.accept("{\xC3\xA0\xC3\xBF}"));
    EXPECT_TRUE(m.can_end());
    // overlong forms, surrogates and code points past U+10FFFF are not characters, whatever the class
    auto brace = Grammar::parse("root ::= [^a]*");
    for (const char* bad : {"\xC1\xBB", "\xC0\x80", "\xE0\x81\xBB", "\xE0\x9F", "\xF0\x80\x81\xBB", "\xF0\x8F", "\xED\xA0\x80", "\xED\xA0",
                            "\xF4\x90\x80\x80", "\xF4\x90", "\xF5\x80\x80\x80", "\xFF", "\x80"}) {
        GrammarMatcher b(brace);
        EXPECT_FALSE(b.accept(bad)) << test::hex(bad);
    }
    for (const char* good : {"\xC2\x80", "\xE0\xA0\x80", "\xED\x9F\xBF", "\xEE\x80\x80", "\xF0\x90\x80\x80", "\xF4\x8F\xBF\xBF", "\xF4\x8F"}) {
        GrammarMatcher b(brace);
        EXPECT_TRUE(b.accept(good)) << test::hex(good);
    }
    // a negated class with a partial character: U+2028 excluded, its neighbours allowed
    auto list = Grammar::parse("root ::= [^\\u2028]");
    GrammarMatcher l(list);
    EXPECT_TRUE(l.accept("\xE2\x80"));            // can still become U+2000..U+203F other than U+2028
    EXPECT_FALSE(l.accept("\xA8"));
    EXPECT_TRUE(l.accept("\xA9"));
    EXPECT_TRUE(l.can_end());
}

TEST(Grammar, RecursionIsBoundedAndAmbiguityLimited) {
    // deep right recursion and nesting: the stacks stay few
    auto json_like = Grammar::parse("root ::= value\nvalue ::= \"[\" ( value (\",\" value)* )? \"]\" | [0-9]+");
    GrammarMatcher m(json_like);
    std::string deep(2000, '[');
    EXPECT_TRUE(m.accept(deep));
    EXPECT_TRUE(m.accept("1"));
    EXPECT_TRUE(m.accept(std::string(2000, ']')));
    EXPECT_TRUE(m.can_end());
    EXPECT_LE(m.n_stacks(), 2u);
    // a repeated term that can be empty: the repetition reaches itself, but only at the end of its alternatives, so
    // the stacks do not grow; allowed (llama.cpp's check does not see it either), and it matches what it should
    auto nullable = Grammar::parse("root ::= (\"a\"?)* \"b\"");
    EXPECT_TRUE(matches(nullable, "aaab"));
    EXPECT_TRUE(matches(nullable, "b"));
    EXPECT_FALSE(matches(nullable, "aaa"));
    auto tail = Grammar::parse("root ::= x \"b\"\nx ::= y x | \"c\"\ny ::= z\nz ::= \"q\" | ");
    EXPECT_TRUE(matches(tail, "qqcb"));
    EXPECT_TRUE(matches(tail, "cb"));
    EXPECT_FALSE(matches(tail, "qqb"));
    // but one with more after the way back is refused
    EXPECT_NE(error_of("root ::= x\nx ::= y x \"d\" | \"c\"\ny ::= \"q\" | ").find("left recursion in rule"), std::string::npos);
    // an optional term repeated a bounded number of times is fine
    auto bounded = Grammar::parse("root ::= (\"a\"?){0,3} \"b\"");
    EXPECT_TRUE(matches(bounded, "aaab"));
    EXPECT_TRUE(matches(bounded, "b"));
    EXPECT_FALSE(matches(bounded, "aaaab"));
    // an ambiguous grammar: after n x's any number 0..n of y's may be owed, one stack each; past the limit, refused
    auto amb = Grammar::parse("root ::= a\na ::= \"x\" a \"y\" | \"x\" a | \"\"\n");
    GrammarMatcher::Limits lim;
    lim.max_stacks = 64;
    GrammarMatcher a(amb, lim);
    EXPECT_TRUE(a.accept("xx"));
    size_t two = a.n_stacks();
    EXPECT_TRUE(a.accept("xx"));
    EXPECT_GT(a.n_stacks(), two);  // grows with every x
    try {
        a.accept(std::string(100, 'x'));
        ADD_FAILURE() << "no limit";
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Runtime);
        EXPECT_NE(std::string(e.what()).find("more than 64 parse stacks"), std::string::npos) << e.what();
    }
    GrammarMatcher b(amb);
    EXPECT_TRUE(b.accept("xxxxyyy"));
    EXPECT_TRUE(b.can_end());
    EXPECT_FALSE(b.accept("yy"));
}

TEST(Grammar, CliChecksGrammarsAndTexts) {
    if (!std::getenv("LLMFORGE_BIN")) GTEST_SKIP() << "LLMFORGE_BIN not set";
    const std::string g = test::tmp_path("sum.gbnf"), bad = test::tmp_path("bad.gbnf"), text = test::tmp_path("sum.txt");
    {
        std::ofstream(g) << "root ::= num (\"+\" num)*\nnum ::= [0-9]+\n";
        std::ofstream(bad) << "root ::= num\n";
        std::ofstream(text) << "12+3+";
    }
    std::string err;
    EXPECT_EQ(test::run_cli("grammar " + g, &err), 0) << err;
    EXPECT_EQ(test::run_cli("grammar " + g + " 12+34", &err), 0) << err;
    // a text that leaves the grammar: exit 1, one line saying where and what was expected
    EXPECT_EQ(test::run_cli("grammar " + g + " 12-3", &err), 1);
    EXPECT_NE(err.find("at byte 2 (line 1, column 3): \"-\" is not allowed here; expected \"+\" [0-9] the end"), std::string::npos) << err;
    EXPECT_EQ(test::run_cli("grammar " + g + " -f " + text, &err), 1);
    EXPECT_NE(err.find("the text ends before the grammar is complete; expected [0-9]"), std::string::npos) << err;
    // a bad grammar or a missing file: exit 2, one line naming the file
    EXPECT_EQ(test::run_cli("grammar " + bad, &err), 2);
    EXPECT_NE(err.find("bad.gbnf: grammar: line 1, column 10: undefined rule 'num'"), std::string::npos) << err;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_EQ(test::run_cli("grammar " + test::tmp_path("absent.gbnf"), &err), 2);
    for (const auto& p : {g, bad, text}) std::remove(p.c_str());
}

namespace {

// Grammars of our own for the mask tests: JSON-like objects with strings and numbers, text in two scripts, a list.
const char* kMaskGrammars[] = {
    "root ::= object\n"
    "object ::= \"{\" ws ( pair ( \",\" ws pair )* )? \"}\"\n"
    "pair ::= string \":\" ws value\n"
    "value ::= object | string | number | \"true\" | \"false\" | \"null\"\n"
    "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt] )* \"\\\"\" ws\n"
    "number ::= \"-\"? [0-9]+ ( \".\" [0-9]+ )? ws\n"
    "ws ::= [ \\n]?\n",
    "root ::= ( [a-zA-Z ,.]+ | [ぁ-ゟ一-鿿]+ )+ \"。\"\n",
    "root ::= item{1,4}\nitem ::= \"- \" [^\\n]+ \"\\n\"\n",
};

bool bit(const std::vector<uint64_t>& m, int32_t t) { return (m[size_t(t) >> 6] >> (t & 63)) & 1; }

}  // namespace

// The token mask equals trying every token of the vocabulary on the matcher, along random constrained walks, for
// a SentencePiece vocabulary with byte fallback (tokens that split characters), a byte-level BPE one, and stories260K.
TEST(GrammarMask, EqualsTryingEveryToken) {
    REQUIRE_GOLDEN();
    const std::string gd = test::golden_dir();
    std::mt19937 rng(11);
    int split_chosen = 0, steps = 0;
    for (const std::string& path : {gd + "/stories260K/stories260K.gguf", gd + "/vocab/ggml-vocab-llama-spm.gguf", gd + "/vocab/ggml-vocab-gpt-2.gguf"}) {
        auto gv = GrammarVocab::from(Vocab::load(path));
        for (const char* text : kMaskGrammars) {
            SCOPED_TRACE(path + "\n" + text);
            auto g = Grammar::parse(text);
            for (int walk = 0; walk < 2; ++walk) {
                // depth 1: most tokens run past the top position and are tried on the stack; depth 4: few do
                auto cg = std::make_shared<CompiledGrammar>(g, gv, walk == 0 ? 1 : 4);
                GrammarConstraint c(cg);
                GrammarMatcher ref(g);
                std::vector<uint64_t> mask;
                for (int step = 0; step < 14 && !c.finished(); ++step) {
                    c.allowed(mask);
                    std::vector<int32_t> allowed, split;  // split: tokens that end inside a character
                    int wrong = 0;
                    for (int32_t t = 0; t < gv->size(); ++t) {
                        const bool is_end = std::find(gv->end_tokens().begin(), gv->end_tokens().end(), t) != gv->end_tokens().end();
                        const std::string& b = gv->bytes(t);
                        const bool want = is_end ? ref.can_end() : !b.empty() && ref.can_accept(b);
                        if (want != bit(mask, t) && ++wrong <= 3) ADD_FAILURE() << "token " << t << " '" << b << "': mask " << bit(mask, t) << ", matcher " << want;
                        if (want && !is_end) {
                            allowed.push_back(t);
                            if (!b.empty() && static_cast<unsigned char>(b.back()) >= 0x80 && !utf8_valid(b)) split.push_back(t);
                        }
                    }
                    ASSERT_EQ(wrong, 0) << "at step " << step;
                    if (allowed.empty()) break;
                    const auto& from = (!split.empty() && rng() % 3 == 0) ? split : allowed;
                    const int32_t t = from[rng() % from.size()];
                    split_chosen += &from == &split;
                    ++steps;
                    ASSERT_TRUE(c.accept(t));
                    ASSERT_TRUE(ref.accept(gv->bytes(t)));
                }
            }
        }
    }
    EXPECT_GE(steps, 100);
    EXPECT_GE(split_chosen, 5);  // masks taken from inside a character
}

TEST(GrammarMask, EndTokensAndApply) {
    // a toy vocabulary: the end token is allowed only where the sentence is complete, -inf elsewhere
    auto gv = std::make_shared<GrammarVocab>(std::vector<std::string>{"", "a", "b", "ab", "\xC3", "\xA9", "c"}, std::vector<int32_t>{0});
    auto cg = std::make_shared<CompiledGrammar>(Grammar::parse("root ::= \"a\" \"b\"? [é]?"), gv);
    GrammarConstraint c(cg);
    std::vector<float> logits(9, 1.0f);
    EXPECT_TRUE(c.mask(logits.data(), logits.data(), 9, {6}));  // the extra end token: not yet (no sentence is complete)
    EXPECT_TRUE(std::isinf(logits[0]) && std::isinf(logits[2]) && std::isinf(logits[4]) && std::isinf(logits[6]));
    EXPECT_EQ(logits[1], 1.0f);
    EXPECT_EQ(logits[3], 1.0f);
    EXPECT_TRUE(std::isinf(logits[7]) && std::isinf(logits[8]));  // past the vocabulary
    EXPECT_FALSE(c.accept(0));  // the end, too early
    EXPECT_TRUE(c.accept(1));
    std::vector<uint64_t> m;
    c.allowed(m);
    EXPECT_EQ(m[0], (1u << 0) | (1u << 2) | (1u << 4));  // end, "b", the first byte of é
    EXPECT_TRUE(c.accept(4));
    c.allowed(m);
    EXPECT_EQ(m[0], 1u << 5);  // only the byte that completes é; not the end (a character is half-read)
    EXPECT_TRUE(c.accept(5));
    c.allowed(m);
    EXPECT_EQ(m[0], 1u << 0);
    // an extra end token (a chat template's end of turn, here id 6) keeps its logit, in place, where the sentence may
    // end — and only there
    std::vector<float> l2(7, 2.0f);
    EXPECT_TRUE(c.mask(l2.data(), l2.data(), 7, {6}));
    EXPECT_EQ(l2[6], 2.0f);
    EXPECT_EQ(l2[0], 2.0f);
    EXPECT_TRUE(std::isinf(l2[1]));
    EXPECT_TRUE(c.accept(0));
    EXPECT_TRUE(c.finished());
    c.allowed(m);
    EXPECT_EQ(m[0], 0u);
}

// generate with a grammar at temperature 1: every output that ends parses as one JSON object (nlohmann's parser, not
// ours, is the judge); the ones cut off by -n say so. The strings are bounded so that a story model finishes some.
TEST(GrammarMask, GenerateAlwaysValidJson) {
    REQUIRE_GOLDEN();
    if (!std::getenv("LLMFORGE_BIN")) GTEST_SKIP() << "LLMFORGE_BIN not set";
    const std::string gfile = test::tmp_path("object.gbnf"), out = test::tmp_path("gen.json");
    std::ofstream(gfile) << "root ::= \"{\" ws ( member ( \",\" ws member ){0,3} )? \"}\"\n"
                            "member ::= string ws \":\" ws value ws\n"
                            "value ::= string | number | \"true\" | \"false\" | \"null\" | \"[\" ws ( value ws ( \",\" ws value ws ){0,2} )? \"]\"\n"
                            "string ::= \"\\\"\" ( [^\"\\\\\\x00-\\x1f] | \"\\\\\" [\"\\\\/bfnrt] ){0,12} \"\\\"\"\n"
                            "number ::= \"-\"? ( \"0\" | [1-9] [0-9]{0,5} ) ( \".\" [0-9]{1,4} )?\n"
                            "ws ::= \" \"?\n";
    int complete = 0, cut = 0;
    for (int seed = 1; seed <= 12; ++seed) {
        const std::string cmd = std::string(std::getenv("LLMFORGE_BIN")) + " generate -m " + test::golden_dir() +
                                "/stories260K/stories260K.gguf -p 'Once upon a time' -n 120 --temp 1 --seed " + std::to_string(seed) +
                                " --grammar-file " + gfile + " --json > " + out + " 2>/dev/null";
        ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
        const auto r = nlohmann::json::parse(test::read_file(out));
        if (!r["grammar_complete"].get<bool>()) {
            EXPECT_EQ(r["stop_reason"], "length");
            ++cut;
            continue;
        }
        const auto v = nlohmann::json::parse(r["text"].get<std::string>());  // throws if it is not JSON
        EXPECT_TRUE(v.is_object()) << r["text"];
        ++complete;
    }
    EXPECT_GE(complete, 4) << complete << " complete, " << cut << " cut off";
    std::remove(gfile.c_str());
    std::remove(out.c_str());
}

// chat --grammar: each answer follows the grammar and ends with it, turn after turn.
TEST(GrammarMask, ChatAnswersFollowTheGrammar) {
    REQUIRE_GOLDEN();
    if (!std::getenv("LLMFORGE_BIN")) GTEST_SKIP() << "LLMFORGE_BIN not set";
    const std::string in = test::tmp_path("chat_in.txt"), out = test::tmp_path("chat_out.jsonl");
    std::ofstream(in) << "Tell me a story\nAnother one\nAnd a third\n";
    const std::string cmd = std::string(std::getenv("LLMFORGE_BIN")) + " chat -m " + test::golden_dir() +
                            "/stories260K/stories260K.gguf --seed 2 --jsonl --grammar 'root ::= \"Answer: \" [a-z ]{1,30} \".\"' < " + in +
                            " > " + out + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    std::istringstream lines(test::read_file(out));
    std::string line;
    int n = 0;
    while (std::getline(lines, line)) {
        if (line.empty()) continue;
        const auto j = nlohmann::json::parse(line);
        const std::string text = j["text"];
        EXPECT_TRUE(j["grammar_complete"].get<bool>()) << text;
        EXPECT_EQ(text.rfind("Answer: ", 0), 0u) << text;
        EXPECT_EQ(text.back(), '.') << text;
        EXPECT_EQ(text.find_first_not_of("abcdefghijklmnopqrstuvwxyz ", 8), text.size() - 1) << text;
        ++n;
    }
    EXPECT_EQ(n, 3);
    std::remove(in.c_str());
    std::remove(out.c_str());
}

// eval --grammar: generative answers follow the grammar (here: a number, so exact match against "42" is decided by
// the model's choice of digits only) and end with it rather than at a newline.
TEST(GrammarMask, EvalGenerationFollowsTheGrammar) {
    REQUIRE_GOLDEN();
    if (!std::getenv("LLMFORGE_BIN")) GTEST_SKIP() << "LLMFORGE_BIN not set";
    const std::string task = test::tmp_path("gram_task.jsonl"), out = test::tmp_path("gram_eval.json");
    std::ofstream(task) << "{\"prompt\": \"Once upon a time\", \"references\": [\"42\"]}\n{\"prompt\": \"The cat\", \"references\": [\"no\"]}\n";
    const std::string cmd = std::string(std::getenv("LLMFORGE_BIN")) + " eval -m " + test::golden_dir() +
                            "/stories260K/stories260K.gguf --task " + task + " --json --items --grammar 'root ::= [0-9]{2}' > " + out + " 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    const auto j = nlohmann::json::parse(test::read_file(out));
    ASSERT_EQ(j["items"].size(), 2u) << j.dump();
    for (const auto& it : j["items"]) {
        const std::string g = it["generation"];
        EXPECT_EQ(g.size(), 2u) << g;
        EXPECT_TRUE(std::isdigit(static_cast<unsigned char>(g[0])) && std::isdigit(static_cast<unsigned char>(g[1]))) << g;
    }
    EXPECT_EQ(j["items"][1]["score"], 0.0);  // "no" cannot be written
    std::remove(task.c_str());
    std::remove(out.c_str());
}

namespace {

// PCRE2 (Debian's libpcre2, which the tokenizer links anyway), anchored at both ends, \\u as ECMAScript reads it
// (PCRE2_ALT_BSUX) and "[]" an empty class as there (PCRE2_ALLOW_EMPTY_CLASS): the reference for regex_to_gbnf.
bool pcre2_full_match(const std::string& re, const std::string& s) {
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(), PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_ANCHORED | PCRE2_ENDANCHORED,
                                     &err, &off, nullptr);
    if (!code) ADD_FAILURE() << "PCRE2 refused " << re;
    if (!code) return false;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, 0, md, nullptr);
    pcre2_match_data_free(md);
    pcre2_code_free(code);
    return rc >= 0;
}

}  // namespace

// regex_to_gbnf against PCRE2: for each pattern, random strings over the characters it is about (and a few others)
// get the same verdict from the grammar as from PCRE2 matching the whole string.
TEST(GrammarRegex, SameVerdictsAsPcre2) {
    struct Case { const char* re; const char* alphabet; };
    const std::vector<Case> cases = {
        {"^[a-z]+@[a-z]+\\.(com|org)$", "ab@.comrgx"},
        {"\\d{3}-\\d{2,4}", "0159-a"},
        {"(ab|a)(c|bcd)(d*)", "abcdx"},
        {"a*?b+?c??", "abcx"},
        {"[^0-9\\s]{1,3}x?", "a0 \txz9"},
        {"(?:\\w+\\s?)+", "ab_ 9\t-"},
        {"[\\]\\-\\^a-c]+", "]-^abcd\\"},
        {"colou?r|gr[ae]y", "colurgaey"},
        {"\\x41\\u00e9.\\.", "A\xC3\xA9.\nx"},
        {"(a|)+b{0}c{2,}", "abc"},
        {"[\\d.]+e[-+]?\\d", "1.e-+2"},
        {"(?<year>\\d{2})-(?<m>0[1-9]|1[0-2])", "0129-"},
        {"a{2}(b{1,2}|c)*", "abcd"},
        {"[]a]", "a]"},
        {"\\W\\S\\D", "a1 _-"},
    };
    std::mt19937 rng(17);
    int checked = 0, matched = 0;
    for (const Case& c : cases) {
        SCOPED_TRACE(c.re);
        std::shared_ptr<const Grammar> g;
        ASSERT_NO_THROW(g = Grammar::parse(regex_to_gbnf(c.re))) << regex_to_gbnf(c.re);
        // the alphabet's characters (UTF-8 aware)
        std::vector<std::string> chars;
        for (std::string_view a = c.alphabet; !a.empty();) {
            size_t n = std::min(utf8_len(static_cast<unsigned char>(a[0])), a.size());
            chars.emplace_back(a.substr(0, n));
            a.remove_prefix(n);
        }
        std::vector<std::string> samples = {""};
        for (int i = 0; i < 600; ++i) {
            std::string s;
            const int len = static_cast<int>(rng() % 9);
            for (int k = 0; k < len; ++k) s += chars[rng() % chars.size()];
            samples.push_back(s);
        }
        for (const auto& s : samples) {
            const bool want = pcre2_full_match(c.re, s);
            EXPECT_EQ(matches(g, s), want) << "'" << s << "'";
            ++checked;
            matched += want;
        }
    }
    EXPECT_GT(matched, 300);  // the samples hit both verdicts often
    EXPECT_GT(checked - matched, 3000);
}

TEST(GrammarRegex, RefusedWithTheReason) {
    struct Case { const char* re; const char* says; };
    for (const Case& c : std::vector<Case>{{"(a)\\1", "back-references are not supported"},
                                           {"(?<n>a)\\k<n>", "back-references are not supported"},
                                           {"a(?=b)", "lookaround"},
                                           {"(?<!a)b", "lookaround"},
                                           {"\\bword", "word boundaries"},
                                           {"a^b", "anchors ('^', '$') are supported only at the ends"},
                                           {"(ab", "unclosed '('"},
                                           {"ab)", "unbalanced ')'"},
                                           {"[b-a]", "runs backwards"},
                                           {"a**", "a quantifier after a quantifier"},
                                           {"\\p{L}", "Unicode property classes"},
                                           {"\\q", "unknown escape"}}) {
        try {
            regex_to_gbnf(c.re);
            ADD_FAILURE() << c.re << " was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(e.kind(), ErrorKind::BadInput);
            EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << c.re << " → " << e.what();
        }
    }
}
