// Chat templates: the Jinja interpreter against transformers' renderings of real templates (golden), and its
// semantics on small templates whose expected output follows from the Jinja/Python rules they exercise.
#include <gtest/gtest.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <nlohmann/json.hpp>

#include "llmforge/bpe.h"
#include "llmforge/chat_data.h"
#include "llmforge/chat_session.h"
#include "llmforge/error.h"
#include "llmforge/jinja.h"
#include "llmforge/llmforge.h"
#include "llmforge/model.h"
#include "llmforge/transformer.h"
#include "test_util.h"

using namespace llmforge;
using json = nlohmann::ordered_json;

namespace {

std::string render(const std::string& tpl, const json& ctx = json::object()) { return jinja::Template(tpl).render(ctx); }

// The golden renderings were made on 2026-11-28 (Llama 3.2's template prints strftime_now("%d %b %Y")): the clock is
// pinned to that day.
std::time_t golden_day() {
    std::tm tm{};
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;
    tm.tm_mday = 28;
    tm.tm_hour = 12;
    return std::mktime(&tm);
}

}  // namespace

// Every template in golden/chat-templates renders exactly as transformers did (apply_chat_template with
// add_generation_prompt true and false, no bos/eos tokens, tools=None, documents=None), or fails where it failed.
TEST(ChatTemplate, GoldenRenderingsMatchTransformers) {
    const std::string dir = test::golden_dir() + "/chat-templates/";
    if (!file_exists(dir + "rendered.json")) GTEST_SKIP() << "golden chat templates not found at " << dir << " (set LLMFORGE_GOLDEN)";
    const json golden = json::parse(test::read_file(dir + "rendered.json"));
    const json messages = json::parse(R"([{"role": "user", "content": "什么是大型语言模型？"}])");
    int checked = 0, errors = 0;
    for (auto it = golden.begin(); it != golden.end(); ++it) {
        if (it.key() == "_about") continue;
        jinja::Options opt;
        opt.now = golden_day;
        const jinja::Template tpl(test::read_file(dir + it.key() + ".jinja"), opt);
        for (const bool gen : {true, false}) {
            const json& want = it.value().at(std::string("conv0|gen=") + (gen ? "True" : "False"));
            json ctx = {{"messages", messages}, {"tools", nullptr}, {"documents", nullptr}, {"add_generation_prompt", gen}};
            if (want.is_object()) {  // transformers raised: so must we, with the same error class and message
                const std::string e = want.at("error").get<std::string>();  // e.g. TypeError("'NoneType' object is not iterable")
                const size_t paren = e.find('(');
                const std::string expect = e.substr(0, paren) + ": " + e.substr(paren + 2, e.size() - paren - 4);
                try {
                    tpl.render(ctx);
                    ADD_FAILURE() << it.key() << " gen=" << gen << " rendered, transformers raised " << e;
                } catch (const Error& err) {
                    EXPECT_NE(std::string(err.what()).find(expect), std::string::npos) << it.key() << ": " << err.what() << " vs " << expect;
                }
                ++errors;
            } else {
                std::string got;
                EXPECT_NO_THROW(got = tpl.render(ctx)) << it.key();
                EXPECT_EQ(got, want.get<std::string>()) << it.key() << " gen=" << gen;
            }
            ++checked;
        }
    }
    EXPECT_EQ(checked, 36);
    EXPECT_GT(errors, 0);
}

// Whitespace control as transformers configures Jinja: trim_blocks drops the newline after a block tag,
// lstrip_blocks drops the indentation before one, "-" strips all whitespace on its side, "+" keeps the indentation.
TEST(ChatTemplate, WhitespaceControl) {
    EXPECT_EQ(render("{% if true %}\nyes\n{% endif %}\nend"), "yes\nend");
    EXPECT_EQ(render("  {% if true %}x{% endif %}"), "x");
    EXPECT_EQ(render("a  {% if true %}x{% endif %}"), "a  x");  // not at the start of a line: kept
    EXPECT_EQ(render("a\n    {%+ if true %}x{% endif %}"), "a\n    x");
    EXPECT_EQ(render("a   \n  {{- 'b' -}}  \n c"), "abc");
    EXPECT_EQ(render("{{ 'v' }}\nx"), "v\nx");  // trim_blocks does not apply to {{ }}
    EXPECT_EQ(render("{# note #}\nx"), "x");
    EXPECT_EQ(render("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
}

// Python semantics of values: str(), repr() in containers, tojson as transformers defines it (ensure_ascii=False),
// slicing, arithmetic, comparisons, Undefined.
TEST(ChatTemplate, PythonValueSemantics) {
    EXPECT_EQ(render("{{ 1 }} {{ 1.0 }} {{ 2.5e-7 }} {{ 1e16 }} {{ true }} {{ none }} {{ [1, 'a', none] }} {{ {'k': \"it's\"} }}"),
              "1 1.0 2.5e-07 1e+16 True None [1, 'a', None] {'k': \"it's\"}");
    EXPECT_EQ(render("{{ x | tojson }}", {{"x", {{"b", "é\n"}, {"a", {1, 2.5, true, nullptr}}}}}),
              "{\"b\": \"é\\n\", \"a\": [1, 2.5, true, null]}");
    EXPECT_EQ(render("{{ x | tojson(separators=(',', ':'), sort_keys=true) }}", {{"x", {{"b", 1}, {"a", {1, 2}}}}}), "{\"a\":[1,2],\"b\":1}");
    EXPECT_EQ(render("{{ x | tojson(indent=2) }}", {{"x", {{"a", {1, 2}}, {"e", json::object()}}}}),
              "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"e\": {}\n}");
    EXPECT_EQ(render("{{ 'héllo'[1:3] }} {{ [1,2,3,4][::-1] }} {{ 'abc'[-1] }} {{ [1,2,3][5] }}|"), "él [4, 3, 2, 1] c |");
    EXPECT_EQ(render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 'a' ~ 1 }} {{ 'ab' * 2 }}"),
              "3 -4 1 2 3.5 1024 a1 abab");
    EXPECT_EQ(render("{{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }} {{ 1 == 1.0 }} {{ true == 1 }}"), "True True True True True");
    EXPECT_EQ(render("{{ x }}|{{ x is defined }}|{{ x | default('d') }}|{{ x | length }}|{% for i in x %}no{% endfor %}"), "|False|d|0|");
    EXPECT_THROW(render("{{ x + 'a' }}"), Error);  // an operation on Undefined raises
    EXPECT_THROW(render("{{ x.y }}"), Error);
    EXPECT_THROW(render("{% for t in x %}{% endfor %}", {{"x", nullptr}}), Error);  // 'NoneType' object is not iterable
    EXPECT_THROW(render("{{ 'a' + 1 }}"), Error);
    // escapes as Python reads them; a malformed one is a template error, not a crash (found by fuzz_jinja)
    EXPECT_EQ(render("{{ '\\x41\\u00e9\\U0001F600' }}"), "A\u00e9\U0001F600");
    EXPECT_THROW(render("{{ '\\xZZ' }}"), Error);
    EXPECT_THROW(render("{{ '\\U00110000' }}"), Error);
    // an attribute path of digits beyond int64 indexes nothing (found by fuzz_jinja: it threw out_of_range)
    EXPECT_EQ(render("{{ [[1, 2]] | map(attribute='99999999999999999999') | select('defined') | list }}"), "[]");
    EXPECT_EQ(render("{{ [[1, 2]] | map(attribute='1') | list }}"), "[2]");
    EXPECT_EQ(render("{{ d.missing is defined }} {{ d.k }} {{ d['k'] }} {{ d.get('z', 5) }} {{ d.get('z') }}", {{"d", {{"k", 1}}}}),
              "False 1 1 5 None");
}

TEST(ChatTemplate, StatementsLoopsAndScoping) {
    EXPECT_EQ(render("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.first }}{{ loop.last }}{{ loop.length }},{% endfor %}"),
              "1TrueFalse3,2FalseFalse3,3FalseTrue3,");
    EXPECT_EQ(render("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", {{"d", {{"b", 1}, {"a", 2}}}}), "b=1;a=2;");
    EXPECT_EQ(render("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.index }}{% else %}none{% endfor %}"), "2142");
    EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
    EXPECT_EQ(render("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% break %}{% endif %}{{ x }}{% endfor %}"), "13");
    // a set inside a loop does not leak out of it; a namespace carries state out
    EXPECT_EQ(render("{% set n = 0 %}{% for x in [1,2] %}{% set n = n + x %}{% endfor %}{{ n }}"), "0");
    EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for x in [1,2] %}{% set ns.n = ns.n + x %}{% endfor %}{{ ns.n }}"), "3");
    EXPECT_EQ(render("{% if false %}a{% elif 0 %}b{% elif 'x' %}c{% else %}d{% endif %}"), "c");
    EXPECT_EQ(render("{% macro m(a, b='B') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b=3) }}"), "[1B][23]");
    EXPECT_EQ(render("{% set t %}  Hi {{ 1 }} {% endset %}{{ t | trim }}!"), "Hi 1!");
    EXPECT_EQ(render("{% filter upper %}abc{% endfilter %}"), "ABC");
    EXPECT_EQ(render("{% set a, b = 1, 2 %}{{ b }}{{ a }}"), "21");
    EXPECT_EQ(render("{{ 'yes' if x else 'no' }}", {{"x", json::array()}}), "no");
    EXPECT_THROW(render("{{ raise_exception('bad role') }}"), Error);
    EXPECT_THROW(render("{% if x %}"), Error);      // missing endif: a syntax error
    EXPECT_THROW(render("{{ 1 + }}"), Error);
    EXPECT_THROW(render("{% frobnicate %}"), Error);
}

// The sandbox's bounds are the caller's to set (include/llmforge/jinja.h, Limits); each failure names its limit, and
// the render after a failure on the same thread starts from a fresh budget. (The hostile templates themselves, each in
// its own process with its memory measured: tests/reference/test_template_sandbox.py.)
TEST(ChatTemplate, SandboxLimitsAreTheCallersAndNamed) {
    auto with = [](const std::string& tpl, jinja::Limits lim) {
        jinja::Options o;
        o.limits = lim;
        return jinja::Template(tpl, o);
    };
    auto error_of = [](const jinja::Template& t) {
        try {
            t.render(json::object());
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    jinja::Limits lim;
    lim.iterations = 10;
    EXPECT_EQ(with("{% for i in range(10) %}x{% endfor %}", lim).render(json::object()), "xxxxxxxxxx");
    EXPECT_NE(error_of(with("{% for i in range(11) %}x{% endfor %}", lim)).find("template limit 'iterations' exceeded"), std::string::npos);
    lim = {};
    lim.output_bytes = 5;
    EXPECT_NE(error_of(with("{{ 'abcdef' }}", lim)).find("'output_bytes'"), std::string::npos);
    lim = {};
    lim.alloc_bytes = 1000;
    EXPECT_EQ(with("{{ ('a' * 500) | length }}", lim).render(json::object()), "500");
    EXPECT_NE(error_of(with("{{ ('a' * 1001) | length }}", lim)).find("'alloc_bytes'"), std::string::npos);
    lim = {};
    lim.depth = 3;
    const std::string rec = "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{% endif %}.{% endmacro %}";
    EXPECT_EQ(with(rec + "{{ f(2) }}", lim).render(json::object()), "...");
    EXPECT_NE(error_of(with(rec + "{{ f(3) }}", lim)).find("'depth'"), std::string::npos);
    lim = {};
    lim.seconds = 0.05;
    EXPECT_NE(error_of(with("{% for i in range(100000) %}{{ ('x' * 100000) | length }}{% endfor %}", lim)).find("'seconds'"), std::string::npos);
    // 64-bit integers: the largest works, one more is refused; Python's floor division and modulo of negatives kept
    EXPECT_EQ(render("{{ 9223372036854775806 + 1 }}"), "9223372036854775807");
    EXPECT_NE(error_of(jinja::Template("{{ 9223372036854775807 + 1 }}")).find("'integer'"), std::string::npos);
    EXPECT_NE(error_of(jinja::Template("{{ -9223372036854775807 - 1 - 1 }}")).find("'integer'"), std::string::npos);
    EXPECT_EQ(render("{{ 2 ** 62 }} {{ (-7) // 2 }} {{ (-7) % 2 }} {{ 1e999 }}"), "4611686018427387904 -4 1 inf");
    // after a failure, a fresh budget
    EXPECT_EQ(render("{{ 'ok' }}"), "ok");
}

TEST(ChatTemplate, FiltersTestsAndMethods) {
    EXPECT_EQ(render("{{ '  a b  ' | trim }}|{{ ' x '.strip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'xxhixx'.strip('x') }}"),
              "a b|x|['a', 'b', '', 'c']|['a', 'b']|hi");
    EXPECT_EQ(render("{{ 'Hello'.startswith('He') }} {{ 'Hello'.endswith(('x', 'lo')) }} {{ 'hello world'.title() }} {{ 'ABC' | lower }}"),
              "True True Hello World abc");
    EXPECT_EQ(render("{{ [3, 1, 2] | sort | join(', ') }} {{ ['a', 'b'] | map('upper') | list }} {{ xs | map(attribute='n') | join }}",
                     {{"xs", {{{"n", 1}}, {{"n", 2}}}}}),
              "1, 2, 3 ['A', 'B'] 12");
    EXPECT_EQ(render("{{ xs | selectattr('t', 'equalto', 'f') | map(attribute='n') | join }}{{ xs | rejectattr('t') | list | length }}",
                     {{"xs", {{{"t", "f"}, {"n", 1}}, {{"t", "g"}, {"n", 2}}, {{"n", 3}}}}}),
              "11");
    // map/select/reject return generators, as in Jinja: no len(), no JSON, but iterable (and None gives nothing)
    EXPECT_THROW(render("{{ [1] | select | length }}"), Error);
    EXPECT_THROW(render("{{ [1] | map('string') | tojson }}"), Error);
    EXPECT_EQ(render("{{ none | selectattr('x') | list }}"), "[]");
    EXPECT_EQ(render("{{ 'a\nb\n\nc' | indent(2) }}|{{ 'x' | indent(2, true) }}"), "a\n  b\n\n  c|  x");
    EXPECT_EQ(render("{{ [1, 2, 1] | unique | list }} {{ [1, 2] | first }} {{ [1, 2] | last }} {{ '5' | int + 1 }} {{ 2 | float }}"),
              "[1, 2] 1 2 6 2.0");
    EXPECT_EQ(render("{{ x is string }} {{ x is mapping }} {{ d is mapping }} {{ l is iterable }} {{ 4 is divisibleby(2) }} {{ none is none }}",
                     {{"x", "s"}, {"d", json::object()}, {"l", json::array()}}),
              "True False True True True True");
    EXPECT_EQ(render("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ 'a-b'.replace('-', '+') }} {{ 'abc' | reverse }}"),
              "[0, 1, 2] [1, 3, 5] a+b cba");
    EXPECT_EQ(render("{{ 'x' ~ ('%s-%d' % ('a', 3)) }}"), "xa-3");
}

// ---- ChatSession: the KV cache reused across turns gives what a fresh pass gives; a full context drops old turns.

namespace {
struct TinyChatModel {
    Model model;
    TinyChatModel(int64_t n_ctx) {
        BpeTrainOptions bo;
        bo.vocab_size = 320;
        const BpeTokenizer tok = train_bpe_texts({"the cat sat on the mat. what does a dog mean? a dog is a pet. hello there, how are you?"}, bo);
        ModelConfig c = preset("gpt2-tiny");
        c.n_layer = 2;
        c.n_embd = 32;
        c.n_head = c.n_head_kv = 2;
        c.n_ff = 64;
        c.n_vocab = tok.size();
        c.n_ctx = n_ctx;
        model = init_random(c, DType::F32, 3);
        model.vocab = Vocab::from_bpe(tok);
    }
};
}  // namespace

TEST(ChatSession, CachedTurnsEqualAFreshPass) {
    TinyChatModel tm(256);
    ThreadPool pool(1);
    const ChatFormat fmt(*tm.model.vocab);
    SamplerParams sp;
    sp.temp = 0;  // greedy: both sides must pick the same tokens
    ChatSessionOptions co;
    co.n_ctx = 256;
    co.n_batch = 64;
    co.kv_type = DType::F32;
    ChatSession chat(tm.model, pool, fmt, sp, co);
    EXPECT_EQ(chat.transformer().n_ctx(), 256);
    chat.set_system("Be brief.");
    chat.ask("hello there", 6);
    const json before = chat.messages();
    const ChatSession::Reply second = chat.ask("what does a dog mean?", 6);
    EXPECT_GT(second.reused_tokens, 10);  // the first exchange was not recomputed
    // a fresh cache, the whole prompt at once, greedy decoding by hand
    json msgs = before;
    msgs.push_back({{"role", "user"}, {"content", "what does a dog mean?"}});
    Transformer fresh(tm.model, pool, 256, 64, DType::F32);
    const std::vector<int32_t> ids = fmt.encode_prompt(msgs);
    const std::vector<float>* logits = &fresh.eval(ids);
    std::string text;
    const std::vector<int32_t> stops = fmt.stop_tokens();
    for (int i = 0; i < 6; ++i) {
        const int32_t id = static_cast<int32_t>(std::max_element(logits->begin(), logits->end()) - logits->begin());
        if (std::find(stops.begin(), stops.end(), id) != stops.end()) break;
        text += tm.model.vocab->token_to_piece(id);
        logits = &fresh.eval(&id, 1);
    }
    EXPECT_EQ(second.text, text);
    EXPECT_EQ(chat.messages().size(), 5u);  // system, user, assistant, user, assistant
    chat.reset();
    EXPECT_EQ(chat.messages().size(), 1u);  // the system prompt stays
}

TEST(ChatSession, FullContextDropsTheOldestTurns) {
    TinyChatModel tm(96);
    ThreadPool pool(1);
    const ChatFormat fmt(*tm.model.vocab);
    SamplerParams sp;
    sp.temp = 0;
    ChatSessionOptions co;
    co.n_ctx = 96;
    co.n_batch = 64;
    co.kv_type = DType::F32;
    ChatSession chat(tm.model, pool, fmt, sp, co);
    int64_t dropped = 0;
    for (int i = 0; i < 6; ++i) dropped += chat.ask("what does a dog mean? hello there", 8).dropped_turns;
    EXPECT_GT(dropped, 0);
    EXPECT_LE(static_cast<int64_t>(fmt.encode_prompt(chat.messages()).size()), 96);
    // what /save writes: the whole conversation, the dropped turns too
    EXPECT_EQ(chat.transcript().size(), 12u);
    EXPECT_LT(chat.messages().size(), 12u);
    EXPECT_EQ(chat.transcript()[0]["content"], "what does a dog mean? hello there");
    const size_t n = chat.messages().size();
    EXPECT_THROW(chat.ask(std::string(400, 'x'), 4), Error);  // a message longer than the context: an error,
    EXPECT_EQ(chat.messages().size(), n);                      // and the conversation is unchanged
}

// The library facade: a completion between two turns leaves the conversation's own KV cache as it was — the second
// answer equals the one of a conversation that had no completion in between (greedy decoding).
TEST(Llm, CompletionsLeaveTheConversationAsItWas) {
    TinyChatModel tm(256);
    const std::string path = test::tmp_path("llm-chat.gguf");
    save_model(tm.model, path);
    SamplerParams greedy;
    greedy.temp = 0;
    LlmOptions o;
    o.threads = 1;
    o.kv_f32 = true;
    Llm a(path, o), b(path, o);
    a.ask("hello there", 6, greedy);
    b.ask("hello there", 6, greedy);
    const Completion c = a.complete("the cat sat", 5, greedy);
    EXPECT_EQ(c.tokens, 5);
    const Completion ra = a.ask("what does a dog mean?", 6, greedy), rb = b.ask("what does a dog mean?", 6, greedy);
    EXPECT_EQ(ra.text, rb.text);
    EXPECT_EQ(ra.prompt_tokens, rb.prompt_tokens);
}

// Tool-calling fine-tuning data: {"messages", "tools"} lines, the assistant's calls written by the template (Hermes
// style in llmforge's ChatML) and learnt; the tool's result not.
TEST(ChatData, ToolCallConversationsTrainTheCalls) {
    TinyChatModel tm(512);
    const ChatFormat fmt(*tm.model.vocab);
    const std::string path = test::tmp_path("tools.jsonl");
    {
        std::ofstream f(path);
        f << R"({"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}], )"
          << R"("messages": [{"role": "user", "content": "Paris?"}, {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", )"
          << R"("function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "21 C"}, )"
          << R"({"role": "assistant", "content": "Warm."}]})" << "\n";
        f << R"({"tools": [{"type": "function", "function": {"name": "bad name"}}], "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]})" << "\n";
    }
    ChatDataOptions opt;
    opt.skip_bad = true;
    const ChatDataset ds = load_chat_jsonl(path, fmt, opt);
    ASSERT_EQ(ds.examples.size(), 1u);
    EXPECT_EQ(ds.skipped, 1);  // the bad tool name, named
    EXPECT_NE(ds.problems[0].find("bad name"), std::string::npos);
    const ChatTokens& t = ds.examples[0];
    std::string trained, untrained;
    for (size_t i = 0; i < t.ids.size(); ++i) (t.trained[i] ? trained : untrained) += tm.model.vocab->token_to_piece(t.ids[i], true);
    EXPECT_NE(untrained.find("# Tools"), std::string::npos) << untrained;  // the tool list: prompt, not learnt
    EXPECT_NE(trained.find("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"), std::string::npos) << trained;
    EXPECT_NE(untrained.find("<tool_response>\n21 C\n</tool_response>"), std::string::npos) << untrained;
    EXPECT_NE(trained.find("Warm."), std::string::npos);
}
