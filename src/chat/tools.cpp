// Tool calls: parsing, streaming hold-back, forcing grammars (see tools.h).
#include "llmforge/tools.h"

#include "llmforge/error.h"
#include "llmforge/grammar.h"

namespace llmforge {

using ojson = nlohmann::ordered_json;

namespace {

const char* const kHermesOpen = "<tool_call>";
const char* const kHermesClose = "</tool_call>";
const char* const kMistralMark = "[TOOL_CALLS]";
const char* const kPythonTag = "<|python_tag|>";

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    const size_t e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::string make_id(ToolCallFormat f, std::mt19937_64& rng) {
    static const char* al = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string id = f == ToolCallFormat::Mistral ? "" : "call_";
    const int n = f == ToolCallFormat::Mistral ? 9 : 24;
    for (int i = 0; i < n; ++i) id += al[rng() % 62];
    return id;
}

// JSON text with each unpaired surrogate escape (\uD800-\uDFFF alone; JSON's grammar allows them, a model may write
// them) replaced by \uFFFD, so that a strict parser reads it.
std::string pair_surrogates(const std::string& t) {
    auto hex4 = [&](size_t at, uint32_t& v) {
        if (at + 4 > t.size()) return false;
        v = 0;
        for (size_t i = at; i < at + 4; ++i) {
            const char c = t[i];
            const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) return false;
            v = v * 16 + static_cast<uint32_t>(d);
        }
        return true;
    };
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size(); ++i) {
        if (t[i] != '\\' || i + 1 >= t.size()) {
            out += t[i];
            continue;
        }
        uint32_t v = 0, w = 0;
        if (t[i + 1] == 'u' && hex4(i + 2, v) && v >= 0xD800 && v <= 0xDFFF) {
            if (v <= 0xDBFF && i + 8 <= t.size() && t.compare(i + 6, 2, "\\u") == 0 && hex4(i + 8, w) && w >= 0xDC00 && w <= 0xDFFF) {
                out.append(t, i, 12);  // a proper pair
                i += 11;
            } else {
                out += "\\ufffd";
                i += 5;
            }
            continue;
        }
        out.append(t, i, 2);  // any other escape, whole
        ++i;
    }
    return out;
}

ojson parse_json(const std::string& text) { return ojson::parse(pair_surrogates(text), nullptr, false); }

bool known_tool(const ojson* tools, const std::string& name) {
    if (!tools) return true;
    for (const auto& t : *tools)
        if (t["function"]["name"] == name) return true;
    return false;
}

// {"name": "...", <args_key>: {...}} (arguments also as a JSON string holding an object) → a call, or false.
bool read_call(const ojson& j, const ojson* tools, ToolCall& call) {
    if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
    const ojson* args = nullptr;
    for (const char* key : {"arguments", "parameters"})
        if (j.contains(key)) args = &j[key];
    ojson a = args ? *args : ojson::object();
    if (a.is_string()) a = parse_json(a.get<std::string>());
    if (!a.is_object()) return false;
    call.name = j["name"];
    if (!known_tool(tools, call.name)) return false;
    call.arguments = a.dump();
    if (j.contains("id") && j["id"].is_string()) call.id = j["id"];
    return true;
}

}  // namespace

const char* tool_format_name(ToolCallFormat f) {
    switch (f) {
        case ToolCallFormat::Hermes: return "hermes";
        case ToolCallFormat::Llama3: return "llama3";
        case ToolCallFormat::Mistral: return "mistral";
    }
    return "?";
}

ToolCallFormat detect_tool_format(const std::string& src) {
    if (src.find(kMistralMark) != std::string::npos) return ToolCallFormat::Mistral;
    if (src.find(kHermesOpen) != std::string::npos) return ToolCallFormat::Hermes;
    if (src.find(kPythonTag) != std::string::npos || (src.find("ipython") != std::string::npos && src.find("parameters") != std::string::npos))
        return ToolCallFormat::Llama3;
    return ToolCallFormat::Hermes;
}

void validate_tools(const ojson& tools) {
    if (!tools.is_array()) throw_bad_input("'tools' must be an array of {\"type\": \"function\", \"function\": {...}} objects");
    for (size_t i = 0; i < tools.size(); ++i) {
        const ojson& t = tools[i];
        if (!t.is_object() || !t.contains("type") || t["type"] != "function")
            throw_bad_input("tools[%zu]: expected {\"type\": \"function\", \"function\": {...}}", i);
        if (!t.contains("function") || !t["function"].is_object()) throw_bad_input("tools[%zu]: missing 'function'", i);
        const ojson& f = t["function"];
        if (!f.contains("name") || !f["name"].is_string()) throw_bad_input("tools[%zu].function: missing 'name'", i);
        const std::string name = f["name"];
        if (name.empty() || name.size() > 64 ||
            name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
            throw_bad_input("tools[%zu].function.name '%s': expected 1 to 64 letters, digits, '_' or '-'", i, name.c_str());
        for (size_t k = 0; k < i; ++k)
            if (tools[k]["function"]["name"] == name) throw_bad_input("tools[%zu]: the name '%s' is used twice", i, name.c_str());
        if (f.contains("description") && !f["description"].is_string()) throw_bad_input("tools[%zu].function.description must be a string", i);
        if (f.contains("parameters") && !f["parameters"].is_object()) throw_bad_input("tools[%zu].function.parameters must be an object (a JSON Schema)", i);
        if (f.contains("strict") && !f["strict"].is_boolean() && !f["strict"].is_null())
            throw_bad_input("tools[%zu].function.strict must be a boolean", i);
    }
}

ToolReply parse_tool_calls(const std::string& text, ToolCallFormat f, const ojson* tools, std::mt19937_64& rng) {
    ToolReply r;
    if (f == ToolCallFormat::Hermes) {
        std::string content;
        size_t at = 0;
        while (true) {
            const size_t open = text.find(kHermesOpen, at);
            if (open == std::string::npos) break;
            const size_t body = open + std::string(kHermesOpen).size();
            size_t close = text.find(kHermesClose, body);
            const size_t end = close == std::string::npos ? text.size() : close + std::string(kHermesClose).size();
            if (close == std::string::npos) close = text.size();  // the model stopped before closing the tag
            ToolCall call;
            const ojson j = parse_json(text.substr(body, close - body));
            content += text.substr(at, open - at);
            if (read_call(j, tools, call)) {
                r.calls.push_back(call);
            } else {
                content += text.substr(open, end - open);
            }
            at = end;
        }
        content += text.substr(at);
        r.content = trim(content);
    } else if (f == ToolCallFormat::Mistral) {
        const size_t mark = text.find(kMistralMark);
        r.content = text;
        if (mark != std::string::npos) {
            const ojson j = parse_json(text.substr(mark + std::string(kMistralMark).size()));
            std::vector<ToolCall> calls;
            bool all = j.is_array() && !j.empty();
            if (all)
                for (const auto& item : j) {
                    ToolCall call;
                    if (!read_call(item, tools, call)) all = false;
                    calls.push_back(call);
                }
            if (all) {
                r.calls = calls;
                r.content = text.substr(0, mark);
            }
        }
        r.content = trim(r.content);
    } else {
        std::string t = trim(text);
        if (t.rfind(kPythonTag, 0) == 0) t = t.substr(std::string(kPythonTag).size());
        ToolCall call;
        const ojson j = parse_json(t);
        if (read_call(j, tools, call)) {
            r.calls.push_back(call);
        } else {
            r.content = trim(text);
        }
    }
    for (auto& c : r.calls)
        if (c.id.empty()) c.id = make_id(f, rng);
    return r;
}

size_t tool_content_prefix(const std::string& text, ToolCallFormat f) {
    if (f == ToolCallFormat::Llama3) {  // the whole reply is the call: hold back a reply that begins like one
        const size_t b = text.find_first_not_of(" \t\r\n");
        if (b == std::string::npos) return 0;
        const std::string rest = text.substr(b, std::string(kPythonTag).size());
        if (text[b] == '{' || std::string(kPythonTag).rfind(rest, 0) == 0) return 0;
        return text.size();
    }
    const std::string mark = f == ToolCallFormat::Hermes ? kHermesOpen : kMistralMark;
    const size_t at = text.find(mark);
    if (at != std::string::npos) return at;
    for (size_t n = std::min(mark.size() - 1, text.size()); n > 0; --n)
        if (text.compare(text.size() - n, n, mark, 0, n) == 0) return text.size() - n;
    return text.size();
}

std::string tool_call_gbnf(const ojson& tools, ToolCallFormat f, const std::string& only, bool parallel) {
    ojson alts = ojson::array();
    const char* args_key = f == ToolCallFormat::Llama3 ? "parameters" : "arguments";
    for (const auto& t : tools) {
        const ojson& fn = t["function"];
        if (!only.empty() && fn["name"] != only) continue;
        ojson params = fn.contains("parameters") ? fn["parameters"] : ojson{{"type", "object"}, {"properties", ojson::object()}};
        ojson call = {{"type", "object"},
                      {"properties", {{"name", {{"const", fn["name"]}}}, {args_key, params}}},
                      {"required", {"name", args_key}},
                      {"additionalProperties", false}};
        alts.push_back(call);
    }
    if (alts.empty()) throw_bad_input("tool_choice names the function '%s', which is not among the tools", only.c_str());
    const ojson schema = alts.size() == 1 ? alts[0] : ojson{{"anyOf", alts}};
    JsonSchemaOptions o;
    o.root_rule = "tool-call";
    o.strict = false;  // a tool's schema is a description for the model as much as a contract (OpenAI: strict is opt-in)
    for (const auto& t : tools)
        if ((only.empty() || t["function"]["name"] == only) && t["function"].contains("strict") && t["function"]["strict"].is_boolean() &&
            t["function"]["strict"].get<bool>())
            o.strict = true;
    std::string g = json_schema_to_gbnf(schema.dump(), o);
    switch (f) {
        case ToolCallFormat::Hermes:
            g += "root ::= \"<tool_call>\\n\" tool-call \"\\n</tool_call>\"";
            if (parallel) g += " ( \"\\n<tool_call>\\n\" tool-call \"\\n</tool_call>\" )*";
            break;
        case ToolCallFormat::Mistral:
            g += "root ::= \"[TOOL_CALLS][\" tool-call";
            if (parallel) g += " ( \",\" space tool-call )*";
            g += " \"]\"";
            break;
        case ToolCallFormat::Llama3:
            g += "root ::= tool-call";
            break;
    }
    return g + "\n";
}

std::string tool_call_trigger(ToolCallFormat f) {
    switch (f) {
        case ToolCallFormat::Hermes: return kHermesOpen;
        case ToolCallFormat::Mistral: return kMistralMark;
        case ToolCallFormat::Llama3: return "{\"name\"";
    }
    return kHermesOpen;
}

ojson messages_for_template(const ojson& messages) {
    ojson out = messages;
    for (auto& m : out) {
        if (!m.is_object() || !m.contains("tool_calls") || !m["tool_calls"].is_array()) continue;
        for (auto& c : m["tool_calls"]) {
            if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) continue;
            auto& fn = c["function"];
            if (fn.contains("arguments") && fn["arguments"].is_string()) {
                ojson a = ojson::parse(fn["arguments"].get<std::string>(), nullptr, false);
                if (a.is_object()) fn["arguments"] = a;
            }
        }
    }
    return out;
}

}  // namespace llmforge
