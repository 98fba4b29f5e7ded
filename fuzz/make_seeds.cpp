// The fuzzers' seed corpora, made by llmforge itself (no file from elsewhere): small models in every container
// (GGUF f32/f16/Q8_0/Q4_0, safetensors + config.json, llama2.c + tokenizer.bin), tokenizers in every file format
// (trained here on a few sentences), chat templates, JSONL data, HTTP requests, API bodies, texts to score, grammars,
// schemas and patterns. Usage: make_seeds OUT_DIR SOURCE_DIR — SOURCE_DIR is the checkout, whose test schemas
// (tests/grammar/real_world_schemas.json) become grammar seeds. Each seed is OUT_DIR/<target>/<name>.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/model.h"
#include "llmforge/quantize.h"
#include "llmforge/tokenizer.h"

namespace fs = std::filesystem;
using namespace llmforge;

namespace {

std::string out_dir;
const std::string kSep = "\n#####\n";

void seed(const std::string& target, const std::string& name, const std::string& bytes) {
    fs::create_directories(out_dir + "/" + target);
    std::ofstream f(out_dir + "/" + target + "/" + name, std::ios::binary);
    f << bytes;
}
std::string slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
std::string base64(const std::string& s) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string o;
    size_t i = 0;
    for (; i + 2 < s.size(); i += 3) {
        const unsigned v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8) | uint8_t(s[i + 2]);
        o += t[v >> 18], o += t[(v >> 12) & 63], o += t[(v >> 6) & 63], o += t[v & 63];
    }
    if (i + 1 == s.size()) {
        const unsigned v = uint8_t(s[i]) << 16;
        o += t[v >> 18], o += t[(v >> 12) & 63], o += "==";
    } else if (i + 2 == s.size()) {
        const unsigned v = (uint8_t(s[i]) << 16) | (uint8_t(s[i + 1]) << 8);
        o += t[v >> 18], o += t[(v >> 12) & 63], o += t[(v >> 6) & 63], o += '=';
    }
    return o;
}

const std::vector<std::string> kTexts = {
    "Once upon a time there was a little robot who liked to count the stars.",
    "The river flows through the valley, and the valley sings back to the river.",
    "A computer program is a sequence of instructions that a computer can follow.",
    "Attention(Q, K, V) = softmax(QK^T / sqrt(d_k)) V — scaled dot-product attention.",
    "Les modèles de langue prédisent le mot suivant. 语言模型预测下一个词。 123 4567 89.",
};

void models(const std::string& tmp) {
    ModelConfig c = preset("llama-tiny");
    c.n_vocab = 288, c.n_embd = 32, c.n_ff = 64, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1, c.n_ctx = 64;
    const Model m = init_random(c, DType::F32, 7);
    m.vocab->write_llama2c(tmp + "/tokenizer.bin");
    for (auto [name, type] : {std::pair{"f32", DType::F32}, {"f16", DType::F16}}) {
        save_model(m, tmp + "/m.gguf", type);
        seed("gguf", std::string("llama-") + name + ".gguf", slurp(tmp + "/m.gguf"));
    }
    for (const char* q : {"q8_0", "q4_0"}) {
        QuantizeOptions qo;
        qo.type = q;
        qo.pure = true;
        qo.progress = false;
        quantize_model(tmp + "/m.gguf", tmp + "/q.gguf", qo);
        seed("gguf", std::string("llama-") + q + ".gguf", slurp(tmp + "/q.gguf"));
    }
    save_model(m, tmp + "/m.bin", DType::F32);
    seed("llama2c", "llama", slurp(tmp + "/m.bin") + kSep + slurp(tmp + "/tokenizer.bin"));
    fs::create_directories(tmp + "/hf");
    save_model(m, tmp + "/hf/model.safetensors", DType::F16);
    seed("safetensors", "llama-f16", slurp(tmp + "/hf/config.json") + kSep + slurp(tmp + "/hf/model.safetensors"));
    seed("tokenizer_json", "spm-bytefallback.json", m.vocab->to_hf_json() + kSep + m.vocab->hf_tokenizer_config(64));
}

void tokenizers() {
    BpeTrainOptions o;
    o.vocab_size = 256 + 3 + 60;
    o.min_frequency = 1;
    o.progress = false;
    o.n_threads = 1;
    const BpeTokenizer t = train_bpe_texts(kTexts, o);
    seed("tokenizer_json", "bpe.json", t.to_hf_json());
    seed("tokenizer_json", "bpe-with-config.json", t.to_hf_json() + kSep + R"({"bos_token": "<|endoftext|>", "chat_template": "{{ messages }}"})");
    std::string tiktoken;
    for (int32_t id = 0; id < t.size(); ++id)
        if (!t.is_special(id)) tiktoken += base64(t.token_bytes(id)) + " " + std::to_string(id) + "\n";
    seed("tiktoken", "ranks.tiktoken", tiktoken);
    nlohmann::ordered_json enc = nlohmann::ordered_json::object();
    for (int32_t id = 0; id < t.size(); ++id) enc[t.token_text(id)] = id;
    std::string merges = "#version: 0.2\n";
    for (const auto& [a, b] : t.merges()) merges += t.token_text(a) + " " + t.token_text(b) + "\n";
    seed("gpt2_bpe", "gpt2", enc.dump() + kSep + merges);
}

void templates() {
    const std::vector<std::string> tpls = {
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{% set sys = m.content %}{% elif m.role == 'user' %}[INST] "
        "{{ (sys ~ '\n\n' if sys is defined else '') ~ m.content | trim }} [/INST]{% else %} {{ m.content }}{{ eos_token }}{% endif %}{% endfor %}",
        "{%- macro render(m, depth=0) -%}{{ m.role | upper }}: {{ m.content | default('') | replace('\n', ' ') }}{%- endmacro -%}"
        "{%- for m in messages | selectattr('role', 'ne', 'tool') -%}{{ render(m) }}{{ loop.index }}/{{ loop.length }}\n{%- endfor -%}"
        "{{ messages | map(attribute='role') | join(',') }} {{ messages | length }} {{ (messages | last).content | tojson }}"
        "{{ strftime_now('%Y-%m-%d') }}{{ raise_exception('x') if messages | length > 99 }}",
        "{% set ns = namespace(n=0) %}{% for i in range(5) %}{% set ns.n = ns.n + i * 2 %}{% endfor %}{{ ns.n }}{{ 'ab' * 3 }}"
        "{{ {'a': 1, 'b': [1, 2]} | tojson(indent=2) }}{{ 'x,y'.split(',') }}{{ '%s-%d' % ('a', 3) }}{{ [3, 1, 2] | sort | reverse | list }}"
        "{% if 'a' in 'cat' and not false or none is none %}yes{% endif %}{{ 7 // 2 }}{{ 2 ** 10 }}{{ 'Hello'[1:3] }}{{ 'abc'.startswith('a') }}",
    };
    for (size_t i = 0; i < tpls.size(); ++i) seed("jinja", "tpl" + std::to_string(i), tpls[i]);
    seed("jinja", "tpl-context", tpls[0] + kSep +
                                     R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "42", "tool_call_id": "c1"}],
                                        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
                                        "add_generation_prompt": false, "bos_token": "<s>"})");
}

void data() {
    seed("chat_jsonl", "conversations",
         std::string("\x00", 1) +
             R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]}
{"messages": [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another."}, {"role": "assistant", "content": "Red."}]}
{"messages": [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}], "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]}
)");
    seed("chat_jsonl", "preferences",
         std::string("\x03", 1) +
             R"({"prompt": "Say hi.", "chosen": "Hi!", "rejected": "No."}
{"prompt": [{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Help?"}], "chosen": [{"role": "assistant", "content": "Sure."}], "rejected": "Go away."}
)");
}

void http_requests() {
    const std::string body = R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":2})";
    seed("http", "get", "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    seed("http", "post", "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer k\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n" + body);
    seed("http", "chunked", "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n");
    seed("http", "pipelined", "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.0\r\n\r\nPOST /c HTTP/1.1\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nokGET /d HTTP/1.1\r\n\r\n");
    seed("http", "smuggle", "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /x HTTP/1.1\r\n\r\n");
}

void api_bodies() {
    const std::vector<std::pair<char, std::string>> bodies = {
        {0, R"({"model":"tiny","messages":[{"role":"user","content":"Hi"}],"max_tokens":3,"temperature":0})"},
        {0, R"({"model":"tiny","messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"stream":true,"stream_options":{"include_usage":true},"n":2,"seed":5,"top_p":0.9,"top_k":5,"min_p":0.1,"stop":["\n","x"],"presence_penalty":0.5,"frequency_penalty":0.5,"logit_bias":{"5":-100,"6":2},"logprobs":true,"top_logprobs":3})"},
        {0, R"({"model":"tiny","messages":[{"role":"user","content":"JSON"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"array","items":{"type":"string"}}},"required":["a"]}}}})"},
        {0, R"({"model":"tiny","messages":[{"role":"user","content":"JSON"}],"response_format":{"type":"json_object"}})"},
        {0, R"({"model":"tiny","messages":[{"role":"user","content":"g"}],"grammar":"root ::= \"yes\" | \"no\""})"},
        {0, R"({"model":"tiny","messages":[{"role":"user","content":"w"}],"tools":[{"type":"function","function":{"name":"weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],"tool_choice":"required"})"},
        {1, R"({"model":"tiny","prompt":"Once upon","max_tokens":2,"echo":true,"suffix":"x","best_of":1})"},
        {1, R"({"model":"tiny","prompt":[[1,2,3],"text"],"max_tokens":1,"stream":true})"},
        {2, R"({"model":"tiny","input":["a b c","d"],"encoding_format":"base64","dimensions":8})"},
        {3, R"({"model":"tiny","content":"Hello <s>","add_special":true,"with_pieces":true})"},
        {5, R"({"model":"rr","query":"kettle","documents":["Vinegar dissolves limescale.",{"text":"Bake bread."},""],"top_n":2,"return_documents":true})"},
        {5, R"({"query":"q","documents":["a","b","c"]})"},
    };
    for (size_t i = 0; i < bodies.size(); ++i) seed("openai", "body" + std::to_string(i), std::string(1, bodies[i].first) + bodies[i].second);
}

void texts() {
    seed("text_metrics", "lines",
         "The cat sat on the mat.\nIt is raining today\r\nLes chats dorment.\n猫坐在垫子上。\n" + kSep +
             "The cat is on the mat.\nIt rains today.\r\nLes chats dorment beaucoup.\n猫在垫子上。\n");
    seed("text_metrics", "jsonl", R"({"prediction": "the cat sat", "references": ["a cat sat", "the cat was sitting"]}
{"prediction": "Running quickly", "references": ["he runs quick"]}
)");
}

void grammars(const std::string& src) {
    seed("grammar", "gbnf-json", std::string(1, '\0') + R"(root ::= object
value ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws ::= | " " | "\n" [ \t]{0,20})" + kSep + R"({"a": [1, 2.5, "x", true, null]})");
    seed("grammar", "gbnf-list", std::string(1, '\0') + "root ::= item+\nitem ::= \"- \" [^\\n]+ \"\\n\"" + kSep + "- one\n- two\n");
    seed("grammar", "regex", std::string(1, '\2') + "^[A-Z][a-z]{2,8}( [0-9]+)?(\\.|!)$");
    const std::string schemas = slurp(src + "/tests/grammar/real_world_schemas.json");
    auto j = nlohmann::json::parse(schemas, nullptr, false);
    int k = 0;
    auto add = [&](const nlohmann::json& s) { seed("grammar", "schema" + std::to_string(k++), std::string(1, '\1') + s.dump()); };
    if (j.is_object() && j.contains("schemas") && j["schemas"].is_object())
        for (const auto& [name, s] : j["schemas"].items()) add(s);
    if (k == 0) add(nlohmann::json{{"type", "object"}, {"properties", {{"a", {{"type", "string"}, {"maxLength", 5}}}}}});
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: make_seeds OUT_DIR SOURCE_DIR\n";
        return 2;
    }
    try {
        out_dir = argv[1];
        const std::string tmp = out_dir + "/.tmp";
        fs::create_directories(tmp);
        models(tmp);
        tokenizers();
        templates();
        data();
        http_requests();
        api_bodies();
        texts();
        grammars(argv[2]);
        fs::remove_all(tmp);
    } catch (const std::exception& e) {
        std::cerr << "make_seeds: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
