#include "server/api.h"
#include "llmforge/log.h"
#include "llmforge/tools.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "llmforge/error.h"
#include "llmforge/utf8.h"
#include "server/api_internal.h"

namespace llmforge::server {

using namespace detail;
using Clock = std::chrono::steady_clock;

namespace {

// The text of a message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& c, size_t i) {
    const std::string param = "messages[" + std::to_string(i) + "].content";
    if (c.is_string()) return c.get<std::string>();
    if (c.is_null()) return "";
    if (!c.is_array()) wrong_type(param, "a string or an array of content parts", c);
    std::string s;
    for (const json& p : c) {
        if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) bad("Invalid content part in '" + param + "'.", param, "invalid_value");
        const std::string t = p["type"].get<std::string>();
        if (t != "text") bad("Content parts of type '" + t + "' are not supported: this server takes text only.", param, "invalid_value");
        if (!p.contains("text") || !p["text"].is_string()) bad("A text content part needs a string 'text'.", param, "invalid_value");
        s += p["text"].get<std::string>();
    }
    return s;
}

json check_messages(const json& b) {
    if (!b.contains("messages")) bad("Missing required parameter: 'messages'.", "messages", "missing_required_parameter");
    const json& ms = b["messages"];
    if (!ms.is_array()) wrong_type("messages", "an array", ms);
    if (ms.empty()) bad("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", "messages",
                        "empty_array");
    json out = json::array();
    for (size_t i = 0; i < ms.size(); ++i) {
        const json& m = ms[i];
        const std::string p = "messages[" + std::to_string(i) + "]";
        if (!m.is_object()) wrong_type(p, "an object", m);
        if (!m.contains("role")) bad("Missing required parameter: '" + p + ".role'.", p + ".role", "missing_required_parameter");
        if (!m["role"].is_string()) wrong_type(p + ".role", "a string", m["role"]);
        std::string role = m["role"].get<std::string>();
        if (role == "developer") role = "system";
        if (role != "system" && role != "user" && role != "assistant" && role != "tool")
            bad("Invalid value: '" + role + "'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", p + ".role",
                "invalid_value");
        if (!m.contains("content") && role != "assistant")
            bad("Missing required parameter: '" + p + ".content'.", p + ".content", "missing_required_parameter");
        const bool null_content = !m.contains("content") || m["content"].is_null();
        const std::string text = null_content ? "" : content_text(m["content"], i);
        if (!utf8_valid(text)) bad("Invalid '" + p + ".content': not valid UTF-8.", p + ".content", "invalid_value");
        json msg = {{"role", role}, {"content", text}};
        // an assistant turn's tool calls and a tool result's call id go on to the chat template
        if (role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
            const json& calls = m["tool_calls"];
            if (!calls.is_array()) wrong_type(p + ".tool_calls", "an array", calls);
            for (size_t k = 0; k < calls.size(); ++k) {
                const json& c = calls[k];
                const std::string q = p + ".tool_calls[" + std::to_string(k) + "]";
                if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
                    bad("Missing required parameter: '" + q + ".function'.", q + ".function", "missing_required_parameter");
                const json& f = c["function"];
                if (!f.contains("name") || !f["name"].is_string()) bad("Missing required parameter: '" + q + ".function.name'.", q + ".function.name", "missing_required_parameter");
                if (!f.contains("arguments") || !(f["arguments"].is_string() || f["arguments"].is_object()))
                    bad("Missing required parameter: '" + q + ".function.arguments'.", q + ".function.arguments", "missing_required_parameter");
                if (!c.contains("id") || !c["id"].is_string()) bad("Missing required parameter: '" + q + ".id'.", q + ".id", "missing_required_parameter");
            }
            if (!calls.empty()) {
                msg["tool_calls"] = calls;
                if (null_content) msg["content"] = nullptr;
            }
        }
        if (role == "tool") {
            if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string())
                bad("Missing required parameter: '" + p + ".tool_call_id'.", p + ".tool_call_id", "missing_required_parameter");
            msg["tool_call_id"] = m["tool_call_id"];
        }
        if (m.contains("name") && m["name"].is_string()) msg["name"] = m["name"];
        out.push_back(std::move(msg));
    }
    return out;
}

std::vector<std::string> stop_strings(const json& b) {
    std::vector<std::string> out;
    if (!has(b, "stop")) return out;
    const json& s = b["stop"];
    if (s.is_string()) out.push_back(s.get<std::string>());
    else if (s.is_array()) {
        if (s.size() > 4) bad("Invalid 'stop': at most 4 stop sequences.", "stop", "array_above_max_length");
        for (const json& x : s) {
            if (!x.is_string()) wrong_type("stop", "a string or an array of strings", s);
            out.push_back(x.get<std::string>());
        }
    } else {
        wrong_type("stop", "a string or an array of strings", s);
    }
    out.erase(std::remove(out.begin(), out.end(), std::string()), out.end());
    return out;
}

// Every field of a request body must be one this server honours (or one that cannot change the answer, such as
// "user"): a field it would ignore gets 400, never 200 with the field silently dropped. Fields of other servers that
// we do not implement yet are named as such; anything else gets OpenAI's own wording.
void check_fields(const json& b, const char* endpoint) {
    static const std::vector<std::string> common = {"model", "stream", "stream_options", "temperature", "top_p", "top_k", "min_p", "grammar", "json_schema",
                                                    "repeat_penalty", "repeat_last_n", "seed", "presence_penalty", "frequency_penalty",
                                                    "n", "stop", "ignore_eos", "max_tokens", "logprobs", "best_of", "logit_bias",
                                                    "user", "metadata", "store", "service_tier", "cache_prompt"};
    static const std::vector<std::string> chat = {"messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
                                                  "functions", "tool_choice", "function_call", "parallel_tool_calls"};
    static const std::vector<std::string> completion = {"prompt", "echo", "suffix"};
    static const std::vector<std::string> embedding = {"model", "input", "encoding_format", "dimensions", "user"};
    // llama.cpp's and OpenAI's other fields: known, not implemented here (yet)
    static const std::vector<std::string> unimplemented = {
        "mirostat", "mirostat_tau", "mirostat_eta", "typical_p", "tfs_z", "dynatemp_range",
        "dynatemp_exponent", "xtc_probability", "xtc_threshold", "dry_multiplier", "dry_base", "dry_allowed_length",
        "dry_penalty_last_n", "dry_sequence_breakers", "samplers", "n_probs", "n_predict", "n_keep", "penalize_nl", "id_slot",
        "min_keep", "audio", "modalities", "prediction", "reasoning_effort", "web_search_options", "post_sampling_probs"};
    const std::string ep = endpoint;
    auto in = [](const std::vector<std::string>& v, const std::string& k) { return std::find(v.begin(), v.end(), k) != v.end(); };
    for (auto it = b.begin(); it != b.end(); ++it) {
        const std::string& k = it.key();
        if (ep == "embeddings" ? in(embedding, k) : in(common, k) || in(ep == "chat" ? chat : completion, k)) continue;
        if (in(unimplemented, k)) bad("'" + k + "' is not supported by this server.", k, "unsupported_parameter");
        bad("Unrecognized request argument supplied: " + k, k, "unknown_parameter");
    }
}

// logit_bias: {"token id": bias in [-100, 100]}, added to the logits before sampling; -100 bans the token.
std::vector<std::pair<int32_t, float>> read_logit_bias(const json& b, int64_t n_vocab) {
    std::vector<std::pair<int32_t, float>> out;
    if (!has(b, "logit_bias")) return out;
    const json& lb = b["logit_bias"];
    if (!lb.is_object()) wrong_type("logit_bias", "an object mapping token ids to numbers", lb);
    if (lb.size() > 1024) bad("Invalid 'logit_bias': at most 1024 tokens.", "logit_bias", "invalid_value");
    for (auto it = lb.begin(); it != lb.end(); ++it) {
        const std::string& key = it.key();
        char* end = nullptr;
        errno = 0;
        const long long id = std::strtoll(key.c_str(), &end, 10);
        if (key.empty() || *end != '\0' || errno != 0 || id < 0 || id >= n_vocab)
            bad("Invalid key in 'logit_bias': " + key + ". Keys must be token ids of this model's vocabulary (0 to " +
                    std::to_string(n_vocab - 1) + ").",
                "logit_bias", "invalid_value");
        if (!it.value().is_number()) wrong_type("logit_bias." + key, "a number", it.value());
        const double v = it.value().get<double>();
        if (!std::isfinite(v) || v < -100 || v > 100)
            bad("Invalid value for 'logit_bias." + key + "': expected a value between -100 and 100.", "logit_bias", "invalid_value");
        out.emplace_back(static_cast<int32_t>(id), static_cast<float>(v));
    }
    return out;
}

// Sampling and length settings shared by both completion endpoints.
void read_sampling(const json& b, Job& j, bool chat) {
    SamplerParams& s = j.sampling;
    s.temp = static_cast<float>(number(b, "temperature", 1.0, 0.0, 2.0));
    s.top_p = static_cast<float>(number(b, "top_p", 1.0, 0.0, 1.0));
    s.top_k = static_cast<int32_t>(integer(b, "top_k", 0, 0, 1 << 30));       // llama.cpp's extensions
    s.min_p = static_cast<float>(number(b, "min_p", 0.0, 0.0, 1.0));
    s.repeat_penalty = static_cast<float>(number(b, "repeat_penalty", 1.0, 0.0, 10.0));
    if (s.repeat_penalty <= 0)
        bad("Invalid 'repeat_penalty': expected a value greater than 0, but got 0 instead.", "repeat_penalty", "decimal_below_min_value");
    s.repeat_last_n = static_cast<int32_t>(integer(b, "repeat_last_n", 64, -1, 1 << 30));
    s.seed = has(b, "seed") ? static_cast<uint64_t>(integer(b, "seed", 0, INT64_MIN, INT64_MAX)) : std::random_device{}();
    j.presence_penalty = static_cast<float>(number(b, "presence_penalty", 0.0, -2.0, 2.0));
    j.frequency_penalty = static_cast<float>(number(b, "frequency_penalty", 0.0, -2.0, 2.0));
    j.n = static_cast<int>(integer(b, "n", 1, 1, 128));
    j.stop = stop_strings(b);
    j.ignore_eos = boolean(b, "ignore_eos", false);
    const char* mt = chat && has(b, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    j.max_tokens = static_cast<int32_t>(integer(b, mt, -1, 1, INT32_MAX));
    if (chat) {
        j.logprobs = boolean(b, "logprobs", false);
        j.top_logprobs = static_cast<int>(integer(b, "top_logprobs", 0, 0, 20));
        if (j.top_logprobs > 0 && !j.logprobs) bad("Invalid 'top_logprobs': 'logprobs' must be true to use it.", "top_logprobs", "invalid_value");
    } else if (has(b, "logprobs")) {
        j.top_logprobs = static_cast<int>(integer(b, "logprobs", 0, 0, 5));
        j.logprobs = true;
    }
    if (has(b, "best_of") && integer(b, "best_of", 1, 1, 128) != j.n) bad("'best_of' different from 'n' is not supported.", "best_of", "invalid_value");
    for (const char* k : {"functions", "function_call"})
        if (has(b, k)) bad(std::string("'") + k + "' is deprecated; use 'tools' and 'tool_choice'.", k, "invalid_value");
    if (has(b, "response_format")) {
        const json& rf = b["response_format"];
        if (!rf.is_object() || !rf.contains("type") || !rf["type"].is_string())
            bad("Invalid 'response_format': expected an object with a 'type'.", "response_format", "invalid_type");
        const std::string t = rf["type"];
        if (t == "json_schema") {  // {"type": "json_schema", "json_schema": {"name", "schema", "strict", "description"}}
            if (!rf.contains("json_schema") || !rf["json_schema"].is_object())
                bad("Missing required parameter: 'response_format.json_schema'.", "response_format.json_schema", "missing_required_parameter");
            const json& js = rf["json_schema"];
            if (!js.contains("name") || !js["name"].is_string())
                bad("Missing required parameter: 'response_format.json_schema.name'.", "response_format.json_schema.name", "missing_required_parameter");
            const std::string name = js["name"];
            if (name.empty() || name.size() > 64 ||
                name.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") != std::string::npos)
                bad("Invalid 'response_format.json_schema.name': string does not match pattern. Expected a string that matches the "
                    "pattern '^[a-zA-Z0-9_-]+$' of at most 64 characters.", "response_format.json_schema.name", "invalid_value");
            if (js.contains("schema") && !js["schema"].is_object() && !js["schema"].is_boolean())
                wrong_type("response_format.json_schema.schema", "an object", js["schema"]);
            if (js.contains("strict") && !js["strict"].is_boolean() && !js["strict"].is_null())
                wrong_type("response_format.json_schema.strict", "a boolean", js["strict"]);
        } else if (t != "text" && t != "json_object")
            bad("Invalid value for 'response_format.type': expected one of 'text', 'json_object' or 'json_schema', but got '" + t +
                    "' instead.", "response_format.type", "invalid_value");
    }
}

std::shared_ptr<const CompiledGrammar> cached_grammar(ServedModel& sm, const std::string& text, const std::string& param);

// The grammar a request asks for ('grammar': GBNF text; response_format json_object), compiled against the model's
// vocabulary; a grammar that does not compile is a 400 naming the reason.
std::shared_ptr<const CompiledGrammar> request_grammar(const json& b, ServedModel& sm, bool chat) {
    std::string text, param;
    if (has(b, "grammar")) {
        if (!b["grammar"].is_string()) wrong_type("grammar", "a string (GBNF)", b["grammar"]);
        text = b["grammar"];
        param = "grammar";
    }
    if (has(b, "json_schema")) {  // llama.cpp's field: a schema, its unenforceable keywords dropped as llama.cpp does
        if (!text.empty()) bad("Give either 'grammar' or 'json_schema', not both.", "json_schema", "invalid_value");
        if (!b["json_schema"].is_object() && !b["json_schema"].is_boolean()) wrong_type("json_schema", "an object (a JSON Schema)", b["json_schema"]);
        param = "json_schema";
        JsonSchemaOptions so;
        so.strict = false;
        std::vector<std::string> dropped;
        try {
            text = json_schema_to_gbnf(b["json_schema"].dump(), so, &dropped);
        } catch (const Error& e) {
            bad(std::string("Invalid 'json_schema': ") + e.what(), param, "invalid_value");
        }
        for (const auto& d : dropped) log_line("warning: json_schema: %s", d.c_str());
    }
    if (chat && has(b, "response_format") && b["response_format"]["type"] != "text") {
        const json& rf = b["response_format"];
        if (!text.empty()) bad("Give either '" + param + "' or 'response_format', not both.", "response_format", "invalid_value");
        param = "response_format";
        if (rf["type"] == "json_object") {
            text = json_object_gbnf();
        } else {
            // strict: refuse what the grammar cannot enforce; otherwise drop it (named in the server log)
            const json& js = rf["json_schema"];
            JsonSchemaOptions so;
            so.strict = js.contains("strict") && js["strict"].is_boolean() && js["strict"].get<bool>();
            std::vector<std::string> dropped;
            param = "response_format.json_schema.schema";
            try {
                text = json_schema_to_gbnf(js.contains("schema") ? js["schema"].dump() : std::string("{}"), so, &dropped);
            } catch (const Error& e) {
                bad(std::string("Invalid schema for response_format '") + js["name"].get<std::string>() + "': " + e.what(), param, "invalid_value");
            }
            for (const auto& d : dropped)
                log_line("warning: response_format '%s': %s (not strict)", js["name"].get<std::string>().c_str(), d.c_str());
        }
    }
    if (text.empty()) return nullptr;
    return cached_grammar(sm, text, param);
}

// GBNF text compiled against the model's vocabulary, through the model's cache of recent grammars; a grammar that
// does not compile is a 400 naming `param`.
std::shared_ptr<const CompiledGrammar> cached_grammar(ServedModel& sm, const std::string& text, const std::string& param) {
    GrammarCache& cache = *sm.grammars;
    std::lock_guard<std::mutex> lk(cache.mu);
    for (auto it = cache.recent.begin(); it != cache.recent.end(); ++it)
        if (it->first == text) {
            auto cg = it->second;
            std::rotate(it, it + 1, cache.recent.end());
            return cg;
        }
    std::shared_ptr<const Grammar> g;
    try {
        g = Grammar::parse(text);
    } catch (const Error& e) {
        bad(std::string("Invalid '") + param + "': " + e.what(), param, "invalid_value");
    }
    if (!cache.vocab) cache.vocab = GrammarVocab::from(*sm.model->vocab);
    auto cg = std::make_shared<const CompiledGrammar>(g, cache.vocab);
    cache.recent.emplace_back(text, cg);
    if (cache.recent.size() > 16) cache.recent.erase(cache.recent.begin());
    return cg;
}

void check_length(const ServedModel& sm, Job& j, int32_t cap) {
    const int64_t ctx = sm.engine->slot_ctx(), p = static_cast<int64_t>(j.prompt.size());
    if (p == 0) bad("The prompt is empty.", "messages", "invalid_value");
    if (p + std::max<int64_t>(j.max_tokens, 1) > ctx)
        bad("This model's maximum context length is " + std::to_string(ctx) + " tokens. However, you requested " +
                std::to_string(p + std::max<int64_t>(j.max_tokens, 0)) + " tokens (" + std::to_string(p) + " in the messages, " +
                std::to_string(std::max<int64_t>(j.max_tokens, 0)) + " in the completion). Please reduce the length of the messages or completion.",
            "messages", "context_length_exceeded");
    if (cap > 0 && (j.max_tokens < 0 || j.max_tokens > cap)) j.max_tokens = cap;
    if (j.n > sm.engine->n_slots())
        bad("Invalid 'n': this server answers at most " + std::to_string(sm.engine->n_slots()) + " choices per request.", "n", "integer_above_max_value");
}

// The value of the llmforge_key cookie (percent-decoded), or "".
std::string cookie_key(const std::string& cookies) {
    size_t pos = 0;
    while (pos < cookies.size()) {
        size_t end = cookies.find(';', pos);
        if (end == std::string::npos) end = cookies.size();
        std::string kv = cookies.substr(pos, end - pos);
        pos = end + 1;
        const size_t a = kv.find_first_not_of(' ');
        if (a == std::string::npos) continue;
        kv = kv.substr(a);
        if (kv.rfind("llmforge_key=", 0) != 0) continue;
        return percent_decode(kv.substr(13)).value_or("");
    }
    return "";
}

std::string finish_reason(const std::string& r) {
    if (r == "stop") return "stop";
    return "length";  // "length", "timeout"
}

}  // namespace

Api::Api(std::vector<ServedModel>& models, const ApiOptions& opt) : models_(models), opt_(opt), counters_(std::make_shared<Counters>()) {
    if (opt_.max_concurrent <= 0) {
        int total = 0;
        for (auto& m : models_) total += m.engine->n_slots() * 2 + 64;
        opt_.max_concurrent = total;
    }
    init_web();
}

std::string Api::error_body(const std::string& message, const std::string& type, const std::string& param, const std::string& code) {
    json e = {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", code.empty() ? json(nullptr) : json(code)}};
    return dump(json{{"error", e}});
}

void Api::count(const std::string& endpoint, int status) { counters_->record(endpoint, status); }

std::string Api::model_param(const json& b) {
    if (!has(b, "model")) bad("you must provide a model parameter", "model", "missing_required_parameter");
    if (!b["model"].is_string()) wrong_type("model", "a string", b["model"]);
    return b["model"].get<std::string>();
}

ServedModel* Api::served(const std::string& name) {
    ServedModel* sm = find_model(name);
    if (!sm) throw ApiError{404, "The model '" + name + "' does not exist or you do not have access to it.", "invalid_request_error", "model", "model_not_found"};
    return sm;
}

void Api::reply(const http::ExchangePtr& ex, int status, const std::string& body, const std::string& endpoint, const std::string& type) {
    http::Response r;
    r.status = status;
    r.body = body;
    r.content_type = type;
    if (!opt_.cors_origin.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", opt_.cors_origin);
    if (status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
    count(endpoint, status);
    ex->reply(std::move(r));
}

ServedModel* Api::find_model(const std::string& id) {
    for (auto& m : models_)
        if (m.id == id) return &m;
    return nullptr;
}

namespace {
// Whether `candidate` is one of `keys`, in time that depends only on the candidate's length and the number of keys:
// every key is compared byte by byte without an early exit, so response times do not reveal how much of a guess
// was right.
bool accepted_key(const std::vector<std::string>& keys, const std::string& candidate) {
    unsigned any = 0;
    for (const std::string& k : keys) {
        if (k.empty()) continue;
        unsigned diff = k.size() != candidate.size() ? 1u : 0u;
        for (size_t i = 0; i < candidate.size(); ++i)
            diff |= static_cast<unsigned char>(candidate[i]) ^ static_cast<unsigned char>(k[i % k.size()]);
        any |= diff == 0 ? 1u : 0u;
    }
    return any != 0;
}
}  // namespace

void Api::handle(const http::Request& req, const http::ExchangePtr& ex) {
    const std::string& path = req.path;
    std::string endpoint = path;
    try {
        if (req.method == "OPTIONS") {  // CORS preflight
            http::Response r;
            r.status = 204;
            r.content_type = "text/plain";
            if (!opt_.cors_origin.empty()) {
                r.headers = {{"Access-Control-Allow-Origin", opt_.cors_origin},
                             {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
                             {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
                             {"Access-Control-Max-Age", "86400"}};
            }
            count("OPTIONS", 204);
            return ex->reply(std::move(r));
        }
        if (path == "/health") {
            if (draining_) return reply(ex, 503, dump(json{{"status", "shutting down"}}), "/health");
            return reply(ex, 200, dump(json{{"status", "ok"}}), "/health");
        }
        // a page of the web UI (not the API): a browser cannot send a Bearer header for it, so the key may come in the
        // same-site cookie that the 401 page's form sets
        const bool page = req.method == "GET" && path.rfind("/v1/", 0) != 0 && path != "/metrics" && path.rfind("/arena/api/", 0) != 0;
        if (!opt_.api_keys.empty()) {
            const std::string auth = req.header("authorization");
            std::string key = auth.rfind("Bearer ", 0) == 0 ? auth.substr(7) : std::string();
            if (key.empty() && page) key = cookie_key(req.header("cookie"));
            if (!accepted_key(opt_.api_keys, key)) {
                const std::string shown = key.size() > 8 ? key.substr(0, 3) + "*****" + key.substr(key.size() - 4) : std::string(key.empty() ? "" : "*****");
                const std::string msg = key.empty() ? "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer "
                                                      "auth (i.e. Authorization: Bearer YOUR_KEY)."
                                                    : "Incorrect API key provided: " + shown + ".";
                if (page && opt_.web) return unauthorized_page(ex, msg);
                throw ApiError{401, msg, "invalid_request_error", "", "invalid_api_key"};
            }
        }
        auto method_is = [&](const char* m) {
            if (req.method != m) throw ApiError{405, "Method " + req.method + " is not allowed on " + path + ".", "invalid_request_error", "", "method_not_allowed"};
        };
        if (path == "/metrics") {
            method_is("GET");
            return metrics(ex);
        }
        if (path == "/v1/models" || path.rfind("/v1/models/", 0) == 0) {
            method_is("GET");
            endpoint = "/v1/models";
            return models(req, ex);
        }
        if (path == "/v1/retrieve" || path == "/retrieve") {
            endpoint = "/v1/retrieve";
            if (req.method != "GET") method_is("POST");
            return retrieve(req, ex);
        }
        if (path == "/tokenize" || path == "/v1/tokenize") {
            method_is("POST");
            endpoint = "/tokenize";
            return tokenize(req, ex);
        }
        const bool gen = path == "/v1/chat/completions" || path == "/chat/completions" || path == "/v1/completions" || path == "/completions" ||
                         path == "/v1/embeddings" || path == "/embeddings" || path == "/v1/rerank" || path == "/rerank" || path == "/v1/reranking" ||
                         path == "/reranking";
        if (!gen && opt_.web) {
            if (path == "/arena/api/battle") {
                method_is("POST");
                endpoint = path;
                if (draining_) throw ApiError{503, "The server is shutting down.", "server_error", "", "shutting_down"};
                return arena_battle(req, ex);
            }
            if (path == "/arena/api/vote") {
                method_is("POST");
                endpoint = path;
                return arena_vote(req, ex);
            }
            if (path == "/arena/api/leaderboard") {
                method_is("GET");
                endpoint = path;
                return arena_leaderboard(ex);
            }
            if (path.rfind("/arena/api/", 0) != 0 && path.rfind("/v1/", 0) != 0) {
                endpoint = "static";
                method_is("GET");
                return static_file(req, ex);
            }
        }
        if (!gen)
            throw ApiError{404, "Unknown request URL: " + req.method + " " + path + ". Please check the URL for typos.", "invalid_request_error", "",
                           "unknown_url"};
        method_is("POST");
        endpoint = path.rfind("/v1", 0) == 0 ? path : "/v1" + path;
        if (endpoint == "/v1/reranking") endpoint = "/v1/rerank";
        if (draining_) throw ApiError{503, "The server is shutting down.", "server_error", "", "shutting_down"};
        if (in_flight_.fetch_add(1) >= opt_.max_concurrent) {
            --in_flight_;
            throw ApiError{429, "Too many concurrent requests: this server answers " + std::to_string(opt_.max_concurrent) + " at once.",
                           "requests", "", "rate_limit_exceeded"};
        }
        try {
            if (endpoint == "/v1/chat/completions") chat_completions(req, ex);
            else if (endpoint == "/v1/completions") completions(req, ex);
            else if (endpoint == "/v1/rerank") rerank(req, ex);
            else embeddings(req, ex);
        } catch (...) {
            --in_flight_;
            throw;
        }
    } catch (const ApiError& e) {
        reply(ex, e.status, error_body(e.message, e.type, e.param, e.code), endpoint);
    } catch (const Error& e) {  // bad input found deeper (template, tokenizer, engine checks)
        reply(ex, e.kind() == ErrorKind::BadInput ? 400 : 500, error_body(e.what(), e.kind() == ErrorKind::BadInput ? "invalid_request_error" : "server_error"),
              endpoint);
    } catch (const std::exception& e) {
        reply(ex, 500, error_body(std::string("internal error: ") + e.what(), "server_error"), endpoint);
    }
}

// POST /tokenize (vLLM's shape): {"model", "messages"} — rendered with the chat template and its generation prompt, as
// /v1/chat/completions would — or {"model", "prompt", "add_special_tokens"?} → {"count", "max_model_len", "tokens"}.
// The web chat uses it to fit a conversation into the context before sending it.
void Api::tokenize(const http::Request& req, const http::ExchangePtr& ex) {
    const json b = parse_body(req);
    ServedModel* sm = served(model_param(b));
    for (auto it = b.begin(); it != b.end(); ++it)
        if (it.key() != "model" && it.key() != "messages" && it.key() != "prompt" && it.key() != "add_special_tokens")
            bad("Unrecognized request argument supplied: " + it.key(), it.key(), "unknown_parameter");
    std::vector<int32_t> ids;
    if (b.contains("messages")) {
        const json messages = check_messages(b);
        try {
            ids = sm->chat->encode_prompt(messages);
        } catch (const Error& e) {
            bad(e.what(), "messages", "invalid_value");
        }
    } else if (b.contains("prompt")) {
        if (!b["prompt"].is_string()) wrong_type("prompt", "a string", b["prompt"]);
        const std::string p = b["prompt"].get<std::string>();
        if (!utf8_valid(p)) bad("Invalid 'prompt': not valid UTF-8.", "prompt", "invalid_value");
        ids = sm->model->vocab->encode(p, boolean(b, "add_special_tokens", true), false);
    } else {
        bad("Missing required parameter: 'messages' or 'prompt'.", "messages", "missing_required_parameter");
    }
    reply(ex, 200, dump(json{{"count", ids.size()}, {"max_model_len", sm->engine->slot_ctx()}, {"tokens", ids}}), "/tokenize");
}

void Api::models(const http::Request& req, const http::ExchangePtr& ex) {
    auto one = [](const ServedModel& m) {
        return json{{"id", m.id}, {"object", "model"}, {"created", m.created}, {"owned_by", "llmforge"},
                    {"meta", {{"n_ctx_slot", m.engine->slot_ctx()}, {"slots", m.engine->n_slots()}, {"n_params", m.model->config.n_params()},
                              {"n_vocab", m.model->config.n_vocab}, {"n_embd", m.model->config.n_embd}}}};
    };
    if (req.path.size() > 11) {
        const std::string id = req.path.substr(11);
        const ServedModel* m = find_model(id);
        if (!m) throw ApiError{404, "The model '" + id + "' does not exist", "invalid_request_error", "model", "model_not_found"};
        return reply(ex, 200, dump(one(*m)), "/v1/models");
    }
    json data = json::array();
    for (const auto& m : models_) data.push_back(one(m));
    reply(ex, 200, dump(json{{"object", "list"}, {"data", data}}), "/v1/models");
}

// ------------------------------------------------------------------------------------------------ generation requests
namespace {

// Everything one HTTP request's jobs accumulate, guarded by mu (the engine's thread writes, the answer is built once).
struct Gather {
    std::mutex mu;
    int jobs_left = 0;
    int64_t prompt_tokens = 0, completion_tokens = 0;
    std::string error;
    int error_status = 500;
    struct Choice {
        std::string text, finish;
        json logprobs = json::array();  // chat: content entries; completions: filled from the parallel arrays below
        std::vector<std::string> tokens;
        std::vector<float> token_logprobs;
        std::vector<json> top;
        std::vector<int64_t> offsets;
        bool started = false;  // streaming: the role chunk was sent
        size_t sent = 0;       // streaming with tools: bytes of text already sent as content
    };
    std::vector<Choice> choices;
    std::vector<std::vector<float>> embeddings;
    Clock::time_point t0 = Clock::now();
};

const char* const kOverloaded = "The server is overloaded: its queue is full. Please retry later.";

// Queues a request's jobs (cancelled when the client goes away). If the queue refuses one, those already queued are
// cancelled and answer for the request once they end, with g.error set: returns true then and when all were queued;
// false when none is left to answer (the caller answers 503).
bool submit_jobs(Engine& engine, const std::vector<JobPtr>& jobs, Gather& g, const http::ExchangePtr& ex) {
    cancel_on_close(ex, jobs);
    for (size_t k = 0; k < jobs.size(); ++k) {
        if (engine.submit(jobs[k])) continue;
        for (size_t q = 0; q < k; ++q) jobs[q]->cancelled = true;
        std::lock_guard<std::mutex> lk(g.mu);
        g.jobs_left -= static_cast<int>(jobs.size() - k);
        if (g.jobs_left == 0) return false;
        g.error = kOverloaded;
        g.error_status = 503;
        return true;
    }
    return true;
}

json chat_logprob_entry(const TokenEvent& e) {
    json top = json::array();
    for (const auto& t : e.top) top.push_back({{"token", token_text(t.bytes)}, {"logprob", t.logprob}, {"bytes", bytes_of(t.bytes)}});
    return {{"token", token_text(e.chosen.bytes)}, {"logprob", e.chosen.logprob}, {"bytes", bytes_of(e.chosen.bytes)}, {"top_logprobs", top}};
}

}  // namespace

void Api::chat_completions(const http::Request& req, const http::ExchangePtr& ex) {
    const json b = parse_body(req);
    const std::string model_name = model_param(b);
    const json messages = check_messages(b);
    check_fields(b, "chat");
    ServedModel* sm = served(model_name);
    auto job = std::make_shared<Job>();
    read_sampling(b, *job, true);
    job->logit_bias = read_logit_bias(b, sm->model->config.n_vocab);
    job->grammar = request_grammar(b, *sm, true);
    const bool stream = boolean(b, "stream", false);
    bool include_usage = false;
    if (has(b, "stream_options")) {
        if (!b["stream_options"].is_object()) wrong_type("stream_options", "an object", b["stream_options"]);
        if (!stream) bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value");
        include_usage = boolean(b["stream_options"], "include_usage", false);
    }
    // tools: rendered through the chat template (tools=), calls parsed out of the answers; tool_choice "required" or a
    // named function makes the answer a call, by grammar
    auto tools = std::make_shared<json>();
    std::string choice = "auto", only;
    if (has(b, "tools")) {
        try {
            validate_tools(b["tools"]);
        } catch (const Error& e) {
            bad(std::string("Invalid 'tools': ") + e.what(), "tools", "invalid_value");
        }
        *tools = b["tools"];
    }
    if (has(b, "tool_choice")) {
        const json& tc = b["tool_choice"];
        if (tc.is_string() && (tc == "none" || tc == "auto" || tc == "required")) {
            choice = tc;
        } else if (tc.is_object() && tc.value("type", "") == "function" && tc.contains("function") && tc["function"].is_object() &&
                   tc["function"].contains("name") && tc["function"]["name"].is_string()) {
            choice = "named";
            only = tc["function"]["name"];
        } else {
            bad("Invalid 'tool_choice': expected 'none', 'auto', 'required' or {\"type\": \"function\", \"function\": {\"name\": ...}}.",
                "tool_choice", "invalid_value");
        }
        if (choice != "none" && tools->empty())
            bad("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice", "invalid_value");
    }
    const bool parallel = boolean(b, "parallel_tool_calls", true);
    const bool use_tools = !tools->empty() && choice != "none";
    const ToolCallFormat format = detect_tool_format(sm->chat->source());
    if (use_tools && (choice == "required" || choice == "named")) {
        if (job->grammar) bad("Give either 'tool_choice' " + choice + " or a grammar/response_format, not both.", "tool_choice", "invalid_value");
        std::string gbnf;
        try {
            gbnf = tool_call_gbnf(*tools, format, only, parallel);
        } catch (const Error& e) {
            bad(std::string("Invalid 'tools' for tool_choice: ") + e.what(), choice == "named" ? "tool_choice" : "tools", "invalid_value");
        }
        job->grammar = cached_grammar(*sm, gbnf, "tools");
    } else if (use_tools && !job->grammar) {
        // "auto": the answer is free until the model begins a call; the call itself then follows the tools' schemas
        std::string gbnf;
        try {
            gbnf = tool_call_gbnf(*tools, format, "", parallel);
        } catch (const Error& e) {
            bad(std::string("Invalid 'tools': ") + e.what(), "tools", "invalid_value");
        }
        job->grammar = cached_grammar(*sm, gbnf, "tools");
        job->grammar_trigger = tool_call_trigger(format);
    }
    try {
        job->prompt = use_tools ? sm->chat->encode_prompt(messages_for_template(messages), tools.get())
                                : sm->chat->encode_prompt(messages_for_template(messages));
    } catch (const Error& e) {
        bad(e.what(), "messages", "invalid_value");
    }
    job->stop_tokens = sm->stop_tokens;
    job->timeout_s = opt_.timeout_s;
    check_length(*sm, *job, opt_.max_tokens_limit);

    auto g = std::make_shared<Gather>();
    g->jobs_left = 1;
    const bool want_lp = job->logprobs;  // (the callbacks must not hold the job: it holds them)
    g->choices.resize(static_cast<size_t>(job->n));
    const std::string id = random_id("chatcmpl-"), model_id = sm->id;
    const int64_t created = unix_now();
    auto counters = counters_;
    auto* self = this;
    const std::string cors = opt_.cors_origin;
    auto chunk = [=](json choices, const json& usage, bool with_usage) {
        json c = {{"id", id}, {"object", "chat.completion.chunk"}, {"created", created}, {"model", model_id}, {"system_fingerprint", "llmforge"},
                  {"choices", std::move(choices)}};
        if (with_usage) c["usage"] = usage;
        return "data: " + dump(c) + "\n\n";
    };
    if (stream) {
        std::vector<std::pair<std::string, std::string>> hs;
        if (!cors.empty()) hs.emplace_back("Access-Control-Allow-Origin", cors);
        ex->begin_stream(200, hs);
        // a choice's first chunk carries the role (called with g->mu held)
        auto open_choice = [=](Gather::Choice& c, int choice) {
            if (c.started) return;
            c.started = true;
            ex->send(chunk(json::array({{{"index", choice}, {"delta", {{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}},
                                         {"logprobs", nullptr}, {"finish_reason", nullptr}}}),
                           nullptr, include_usage));
        };
        job->on_token = [=](const TokenEvent& e) {
            std::lock_guard<std::mutex> lk(g->mu);
            auto& c = g->choices[static_cast<size_t>(e.choice)];
            open_choice(c, e.choice);
            if (use_tools) {  // content streams up to where a tool call starts or may start; the rest waits for the end
                c.text += e.text;
                const size_t safe = c.sent < c.text.size() ? tool_content_prefix(c.text, format) : c.sent;
                if (safe > c.sent) {
                    ex->send(chunk(json::array({{{"index", e.choice}, {"delta", {{"content", c.text.substr(c.sent, safe - c.sent)}}},
                                                 {"logprobs", nullptr}, {"finish_reason", nullptr}}}),
                                   nullptr, include_usage));
                    c.sent = safe;
                }
                return;
            }
            if (e.text.empty() && !(want_lp && e.id >= 0)) return;
            json lp = nullptr;
            if (want_lp && e.id >= 0) lp = {{"content", json::array({chat_logprob_entry(e)})}, {"refusal", nullptr}};
            ex->send(chunk(json::array({{{"index", e.choice}, {"delta", {{"content", e.text}}}, {"logprobs", lp}, {"finish_reason", nullptr}}}), nullptr,
                           include_usage));
        };
        job->on_finish = [=](int choice, const std::string& reason) {
            if (reason == "cancelled" || reason == "error") return;
            std::lock_guard<std::mutex> lk(g->mu);
            auto& c = g->choices[static_cast<size_t>(choice)];
            open_choice(c, choice);
            std::string finish = finish_reason(reason);
            if (use_tools) {  // what was held back: the calls, as OpenAI streams them, and any content left
                std::mt19937_64 rng(std::random_device{}());
                const ToolReply r = parse_tool_calls(c.text.substr(c.sent), format, tools.get(), rng);
                auto delta = [&](json d) {
                    ex->send(chunk(json::array({{{"index", choice}, {"delta", std::move(d)}, {"logprobs", nullptr}, {"finish_reason", nullptr}}}),
                                   nullptr, include_usage));
                };
                const std::string rest = r.calls.empty() ? c.text.substr(c.sent) : r.content;
                if (!rest.empty()) delta({{"content", rest}});
                for (size_t i = 0; i < r.calls.size(); ++i) {
                    const auto& call = r.calls[i];
                    delta({{"tool_calls", json::array({{{"index", i}, {"id", call.id}, {"type", "function"},
                                                          {"function", {{"name", call.name}, {"arguments", ""}}}}})}});
                    for (size_t at = 0; at < call.arguments.size(); at += 32)  // the arguments in fragments
                        delta({{"tool_calls", json::array({{{"index", i}, {"function", {{"arguments", call.arguments.substr(at, 32)}}}}})}});
                }
                if (!r.calls.empty() && finish == "stop") finish = "tool_calls";
            }
            ex->send(chunk(json::array({{{"index", choice}, {"delta", json::object()}, {"logprobs", nullptr}, {"finish_reason", finish}}}),
                           nullptr, include_usage));
        };
        job->on_done = [=](int64_t p, int64_t c, const std::string& err) {
            if (!err.empty() && err != "cancelled") ex->send("data: " + error_body(err, "server_error") + "\n\n");
            if (include_usage)
                ex->send(chunk(json::array(), {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}, true));
            ex->send("data: [DONE]\n\n");
            ex->end();
            ex->log_fields("\"model\":\"" + model_id + "\",\"prompt_tokens\":" + std::to_string(p) + ",\"completion_tokens\":" + std::to_string(c));
            counters->record("/v1/chat/completions", 200, std::chrono::duration<double>(Clock::now() - g->t0).count());
            --self->in_flight_;
        };
    } else {
        job->on_token = [=](const TokenEvent& e) {
            std::lock_guard<std::mutex> lk(g->mu);
            auto& c = g->choices[static_cast<size_t>(e.choice)];
            c.text += e.text;
            if (want_lp && e.id >= 0) c.logprobs.push_back(chat_logprob_entry(e));
        };
        job->on_finish = [=](int choice, const std::string& reason) {
            std::lock_guard<std::mutex> lk(g->mu);
            g->choices[static_cast<size_t>(choice)].finish = finish_reason(reason);
        };
        job->on_done = [=](int64_t p, int64_t c, const std::string& err) {
            int status = 200;
            std::string body;
            {
                std::lock_guard<std::mutex> lk(g->mu);
                if (!err.empty()) {
                    status = err == "cancelled" ? 499 : 500;
                    body = error_body(err, "server_error");
                } else {
                    json choices = json::array();
                    std::mt19937_64 rng(std::random_device{}());
                    for (size_t i = 0; i < g->choices.size(); ++i) {
                        const auto& ch = g->choices[i];
                        json message = {{"role", "assistant"}, {"content", ch.text}, {"refusal", nullptr}};
                        std::string finish = ch.finish;
                        if (use_tools) {
                            const ToolReply r = parse_tool_calls(ch.text, format, tools.get(), rng);
                            if (!r.calls.empty()) {
                                message["content"] = r.content.empty() ? json(nullptr) : json(r.content);
                                json calls = json::array();
                                for (const auto& c : r.calls)
                                    calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
                                message["tool_calls"] = calls;
                                if (finish == "stop") finish = "tool_calls";
                            }
                        }
                        choices.push_back({{"index", i},
                                           {"message", message},
                                           {"logprobs", want_lp ? json{{"content", ch.logprobs}, {"refusal", nullptr}} : json(nullptr)},
                                           {"finish_reason", finish}});
                    }
                    body = dump(json{{"id", id}, {"object", "chat.completion"}, {"created", created}, {"model", model_id},
                                     {"system_fingerprint", "llmforge"}, {"choices", choices},
                                     {"usage", {{"prompt_tokens", p}, {"completion_tokens", c}, {"total_tokens", p + c}}}});
                }
            }
            ex->log_fields("\"model\":\"" + model_id + "\",\"prompt_tokens\":" + std::to_string(p) + ",\"completion_tokens\":" + std::to_string(c));
            http::Response r;
            r.status = status;
            r.body = std::move(body);
            if (!cors.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", cors);
            ex->reply(std::move(r));
            counters->record("/v1/chat/completions", status, std::chrono::duration<double>(Clock::now() - g->t0).count());
            --self->in_flight_;
        };
    }
    if (!submit_jobs(*sm->engine, {job}, *g, ex)) overloaded(ex, "/v1/chat/completions", stream);
}

void Api::overloaded(const http::ExchangePtr& ex, const std::string& endpoint, bool stream) {
    --in_flight_;
    const std::string body = error_body(kOverloaded, "server_error", "", "overloaded");
    if (!stream) return reply(ex, 503, body, endpoint);
    ex->send("data: " + body + "\n\n");  // the headers are out: say it in the stream
    ex->end();
    count(endpoint, 503);
}

void Api::completions(const http::Request& req, const http::ExchangePtr& ex) {
    const json b = parse_body(req);
    const std::string model_name = model_param(b);
    if (!b.contains("prompt")) bad("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter");
    check_fields(b, "completions");
    ServedModel* sm = served(model_name);
    if (has(b, "suffix")) bad("'suffix' is not supported by this server.", "suffix", "invalid_value");
    const Vocab& vocab = *sm->model->vocab;
    // prompt: a string, an array of strings, an array of token ids, or an array of such arrays
    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> prompt_texts;
    const json& p = b["prompt"];
    auto add_text = [&](const std::string& s) {
        if (!utf8_valid(s)) bad("Invalid 'prompt': not valid UTF-8.", "prompt", "invalid_value");
        prompts.push_back(vocab.encode(s, true, false));
        prompt_texts.push_back(s);
    };
    auto add_ids = [&](const json& a) {
        std::vector<int32_t> ids;
        for (const json& t : a) {
            if (!t.is_number_integer()) wrong_type("prompt", "a string, an array of strings, or token arrays", p);
            const int64_t v = t.get<int64_t>();
            if (v < 0 || v >= sm->model->config.n_vocab) bad("Invalid 'prompt': token id " + std::to_string(v) + " is outside the vocabulary.", "prompt", "invalid_value");
            ids.push_back(static_cast<int32_t>(v));
        }
        prompt_texts.push_back(vocab.decode(ids));
        prompts.push_back(std::move(ids));
    };
    if (p.is_string()) add_text(p.get<std::string>());
    else if (p.is_array() && !p.empty() && p[0].is_number_integer()) add_ids(p);
    else if (p.is_array() && !p.empty()) {
        if (p.size() > 16) bad("Invalid 'prompt': at most 16 prompts per request.", "prompt", "array_above_max_length");
        for (const json& x : p) {
            if (x.is_string()) add_text(x.get<std::string>());
            else if (x.is_array()) add_ids(x);
            else wrong_type("prompt", "a string, an array of strings, or token arrays", p);
        }
    } else {
        wrong_type("prompt", "a non-empty string or array", p);
    }
    const bool echo = boolean(b, "echo", false);
    const bool stream = boolean(b, "stream", false);
    bool include_usage = false;
    if (has(b, "stream_options")) {
        if (!stream) bad("The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options", "invalid_value");
        include_usage = boolean(b["stream_options"], "include_usage", false);
    }
    std::vector<JobPtr> jobs;
    for (auto& pr : prompts) {
        auto j = std::make_shared<Job>();
        read_sampling(b, *j, false);
        j->logit_bias = read_logit_bias(b, sm->model->config.n_vocab);
        j->grammar = request_grammar(b, *sm, false);
        if (!has(b, "max_tokens")) j->max_tokens = 16;  // the completions endpoint's default
        j->prompt = std::move(pr);
        j->timeout_s = opt_.timeout_s;
        check_length(*sm, *j, opt_.max_tokens_limit);
        jobs.push_back(j);
    }
    if (echo && jobs[0]->logprobs) bad("'echo' with 'logprobs' is not supported by this server.", "echo", "invalid_value");
    const int n = jobs[0]->n;
    auto g = std::make_shared<Gather>();
    g->jobs_left = static_cast<int>(jobs.size());
    g->choices.resize(jobs.size() * static_cast<size_t>(n));
    if (echo)
        for (size_t k = 0; k < jobs.size(); ++k)
            for (int c = 0; c < n; ++c) g->choices[k * n + c].text = prompt_texts[k];
    const std::string id = random_id("cmpl-"), model_id = sm->id;
    const int64_t created = unix_now();
    auto counters = counters_;
    auto* self = this;
    const std::string cors = opt_.cors_origin;
    auto chunk = [=](json choices, const json& usage, bool with_usage) {
        json c = {{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model_id}, {"system_fingerprint", "llmforge"},
                  {"choices", std::move(choices)}};
        if (with_usage) c["usage"] = usage;
        return "data: " + dump(c) + "\n\n";
    };
    auto legacy_lp = [](const TokenEvent& e, int64_t offset) {
        json top = json::object();
        for (const auto& t : e.top) top[token_text(t.bytes)] = t.logprob;
        return json{{"tokens", json::array({token_text(e.chosen.bytes)})}, {"token_logprobs", json::array({e.chosen.logprob})},
                    {"top_logprobs", json::array({top})}, {"text_offset", json::array({offset})}};
    };
    if (stream) {
        std::vector<std::pair<std::string, std::string>> hs;
        if (!cors.empty()) hs.emplace_back("Access-Control-Allow-Origin", cors);
        ex->begin_stream(200, hs);
        if (echo)
            for (size_t i = 0; i < g->choices.size(); ++i)
                ex->send(chunk(json::array({{{"index", i}, {"text", g->choices[i].text}, {"logprobs", nullptr}, {"finish_reason", nullptr}}}), nullptr,
                               include_usage));
    }
    for (size_t k = 0; k < jobs.size(); ++k) {
        JobPtr j = jobs[k];
        const size_t base = k * static_cast<size_t>(n);
        const bool want_lp = j->logprobs;  // (the callbacks must not hold the job: it holds them)
        j->on_token = [=](const TokenEvent& e) {
            std::lock_guard<std::mutex> lk(g->mu);
            auto& c = g->choices[base + static_cast<size_t>(e.choice)];
            const int64_t offset = static_cast<int64_t>(c.text.size());
            c.text += e.text;
            if (stream) {
                if (e.text.empty() && !(want_lp && e.id >= 0)) return;
                ex->send(chunk(json::array({{{"index", base + static_cast<size_t>(e.choice)}, {"text", e.text},
                                             {"logprobs", want_lp && e.id >= 0 ? legacy_lp(e, offset) : json(nullptr)}, {"finish_reason", nullptr}}}),
                               nullptr, include_usage));
            } else if (want_lp && e.id >= 0) {
                c.tokens.push_back(token_text(e.chosen.bytes));
                c.token_logprobs.push_back(e.chosen.logprob);
                json top = json::object();
                for (const auto& t : e.top) top[token_text(t.bytes)] = t.logprob;
                c.top.push_back(top);
                c.offsets.push_back(offset);
            }
        };
        j->on_finish = [=](int choice, const std::string& reason) {
            std::lock_guard<std::mutex> lk(g->mu);
            g->choices[base + static_cast<size_t>(choice)].finish = finish_reason(reason);
            if (stream && reason != "cancelled" && reason != "error")
                ex->send(chunk(json::array({{{"index", base + static_cast<size_t>(choice)}, {"text", ""}, {"logprobs", nullptr},
                                             {"finish_reason", finish_reason(reason)}}}),
                               nullptr, include_usage));
        };
        j->on_done = [=](int64_t pt, int64_t ct, const std::string& err) {
            std::unique_lock<std::mutex> lk(g->mu);
            g->prompt_tokens += pt;
            g->completion_tokens += ct;
            if (!err.empty() && g->error.empty()) g->error = err;
            if (--g->jobs_left > 0) return;
            const int64_t P = g->prompt_tokens, C = g->completion_tokens;
            const json usage = {{"prompt_tokens", P}, {"completion_tokens", C}, {"total_tokens", P + C}};
            int status = 200;
            if (stream) {
                if (!g->error.empty() && g->error != "cancelled") ex->send("data: " + error_body(g->error, "server_error") + "\n\n");
                if (include_usage) ex->send(chunk(json::array(), usage, true));
                ex->send("data: [DONE]\n\n");
                ex->end();
            } else {
                http::Response r;
                if (!g->error.empty()) {
                    status = r.status = g->error == "cancelled" ? 499 : 500;
                    r.body = error_body(g->error, "server_error");
                } else {
                    json choices = json::array();
                    for (size_t i = 0; i < g->choices.size(); ++i) {
                        const auto& ch = g->choices[i];
                        json lp = nullptr;
                        if (want_lp) lp = {{"tokens", ch.tokens}, {"token_logprobs", ch.token_logprobs}, {"top_logprobs", ch.top}, {"text_offset", ch.offsets}};
                        choices.push_back({{"index", i}, {"text", ch.text}, {"logprobs", lp}, {"finish_reason", ch.finish}});
                    }
                    r.body = dump(json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model_id},
                                       {"system_fingerprint", "llmforge"}, {"choices", choices}, {"usage", usage}});
                }
                if (!cors.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", cors);
                ex->reply(std::move(r));
            }
            lk.unlock();
            ex->log_fields("\"model\":\"" + model_id + "\",\"prompt_tokens\":" + std::to_string(P) + ",\"completion_tokens\":" + std::to_string(C));
            counters->record("/v1/completions", status, std::chrono::duration<double>(Clock::now() - g->t0).count());
            --self->in_flight_;
        };
    }
    if (!submit_jobs(*sm->engine, jobs, *g, ex)) overloaded(ex, "/v1/completions", stream);
}

void Api::embeddings(const http::Request& req, const http::ExchangePtr& ex) {
    const json b = parse_body(req);
    const std::string model_name = model_param(b);
    if (!b.contains("input")) bad("Missing required parameter: 'input'.", "input", "missing_required_parameter");
    check_fields(b, "embeddings");
    ServedModel* sm = served(model_name);
    std::string format = "float";
    if (has(b, "encoding_format")) {
        if (!b["encoding_format"].is_string()) wrong_type("encoding_format", "a string", b["encoding_format"]);
        format = b["encoding_format"].get<std::string>();
        if (format != "float" && format != "base64") bad("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format", "invalid_value");
    }
    const int64_t C = sm->model->config.n_embd;
    if (has(b, "dimensions") && integer(b, "dimensions", C, 1, C) != C)
        bad("This model's embeddings have " + std::to_string(C) + " dimensions; 'dimensions' cannot change that.", "dimensions", "invalid_value");
    const Vocab& vocab = *sm->model->vocab;
    std::vector<std::vector<int32_t>> inputs;
    const json& in = b["input"];
    auto add_text = [&](const json& s) {
        if (!s.is_string()) wrong_type("input", "a string, an array of strings, or token arrays", in);
        const std::string t = s.get<std::string>();
        if (t.empty()) bad("Invalid 'input': an input is empty.", "input", "invalid_value");
        inputs.push_back(vocab.encode(t, true, false));
    };
    auto add_ids = [&](const json& a) {
        std::vector<int32_t> ids;
        for (const json& t : a) {
            if (!t.is_number_integer()) wrong_type("input", "a string, an array of strings, or token arrays", in);
            const int64_t v = t.get<int64_t>();
            if (v < 0 || v >= sm->model->config.n_vocab) bad("Invalid 'input': token id " + std::to_string(v) + " is outside the vocabulary.", "input", "invalid_value");
            ids.push_back(static_cast<int32_t>(v));
        }
        if (ids.empty()) bad("Invalid 'input': an input is empty.", "input", "invalid_value");
        inputs.push_back(std::move(ids));
    };
    if (in.is_string()) add_text(in);
    else if (in.is_array() && !in.empty() && in[0].is_number_integer()) add_ids(in);
    else if (in.is_array() && !in.empty()) {
        if (in.size() > 2048) bad("Invalid 'input': at most 2048 inputs per request.", "input", "array_above_max_length");
        for (const json& x : in) x.is_array() ? add_ids(x) : add_text(x);
    } else {
        wrong_type("input", "a non-empty string or array", in);
    }
    for (const auto& ids : inputs)
        if (static_cast<int64_t>(ids.size()) > sm->engine->slot_ctx())
            bad("This model's maximum context length is " + std::to_string(sm->engine->slot_ctx()) + " tokens, however you requested " +
                    std::to_string(ids.size()) + " tokens in the input. Please reduce your input.",
                "input", "context_length_exceeded");
    auto g = std::make_shared<Gather>();
    g->jobs_left = static_cast<int>(inputs.size());
    g->embeddings.resize(inputs.size());
    const std::string model_id = sm->id, cors = opt_.cors_origin;
    auto counters = counters_;
    auto* self = this;
    std::vector<JobPtr> jobs;
    for (size_t k = 0; k < inputs.size(); ++k) {
        auto j = std::make_shared<Job>();
        j->embedding = true;
        j->prompt = std::move(inputs[k]);
        j->timeout_s = opt_.timeout_s;
        j->on_embedding = [g, k](const std::vector<float>& e) {
            std::lock_guard<std::mutex> lk(g->mu);
            g->embeddings[k] = e;
        };
        j->on_done = [=](int64_t pt, int64_t, const std::string& err) {
            std::unique_lock<std::mutex> lk(g->mu);
            g->prompt_tokens += pt;
            if (!err.empty() && g->error.empty()) g->error = err;
            if (--g->jobs_left > 0) return;
            http::Response r;
            if (!g->error.empty()) {
                r.status = g->error == "cancelled" ? 499 : (g->error_status == 503 ? 503 : 500);
                r.body = error_body(g->error, "server_error");
            } else {
                json data = json::array();
                for (size_t i = 0; i < g->embeddings.size(); ++i) {
                    const auto& e = g->embeddings[i];
                    json v = format == "base64" ? json(base64(e.data(), e.size() * sizeof(float))) : json(e);
                    data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", std::move(v)}});
                }
                r.body = dump(json{{"object", "list"}, {"data", data}, {"model", model_id},
                                   {"usage", {{"prompt_tokens", g->prompt_tokens}, {"total_tokens", g->prompt_tokens}}}});
            }
            const int status = r.status;
            if (!cors.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", cors);
            const int64_t P = g->prompt_tokens;
            lk.unlock();
            ex->log_fields("\"model\":\"" + model_id + "\",\"prompt_tokens\":" + std::to_string(P));
            ex->reply(std::move(r));
            counters->record("/v1/embeddings", status);
            --self->in_flight_;
        };
        jobs.push_back(j);
    }
    if (!submit_jobs(*sm->engine, jobs, *g, ex)) overloaded(ex, "/v1/embeddings", false);
}

// ------------------------------------------------------------------------------------------------ /metrics
namespace {
void histogram(std::string& o, const std::string& name, const std::string& help, const std::string& labels, const Histogram& h, bool header) {
    if (header) o += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
    const std::string sep = labels.empty() ? "" : ",";
    for (size_t i = 0; i < h.bounds.size(); ++i) {
        char b[64];
        std::snprintf(b, sizeof b, "%g", h.bounds[i]);
        o += name + "_bucket{" + labels + sep + "le=\"" + b + "\"} " + std::to_string(h.counts[i]) + "\n";
    }
    o += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(h.counts.back()) + "\n";
    char s[64];
    std::snprintf(s, sizeof s, "%.6f", h.sum);
    o += name + "_sum{" + labels + "} " + s + "\n";
    o += name + "_count{" + labels + "} " + std::to_string(h.counts.back()) + "\n";
}
void gauge(std::string& o, const std::string& name, const std::string& help, const char* type, const std::vector<std::pair<std::string, double>>& v) {
    o += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, x] : v) {
        char b[64];
        std::snprintf(b, sizeof b, "%.17g", x);
        o += name + (labels.empty() ? "" : "{" + labels + "}") + " " + b + "\n";
    }
}
}  // namespace

void Api::metrics(const http::ExchangePtr& ex) {
    std::string o;
    std::vector<std::pair<std::string, EngineStats>> st;
    for (auto& m : models_) st.emplace_back("model=\"" + m.id + "\"", m.engine->stats());
    auto per = [&](auto f) {
        std::vector<std::pair<std::string, double>> v;
        for (auto& [l, s] : st) v.emplace_back(l, static_cast<double>(f(s)));
        return v;
    };
    {
        std::lock_guard<std::mutex> lk(counters_->mu);
        std::vector<std::pair<std::string, double>> v;
        for (const auto& [k, n] : counters_->requests)
            v.emplace_back("endpoint=\"" + k.first + "\",status=\"" + std::to_string(k.second) + "\"", static_cast<double>(n));
        gauge(o, "llmforge_requests_total", "HTTP requests answered, by endpoint and status.", "counter", v);
        bool first = true;
        for (const auto& [ep, h] : counters_->duration) {
            histogram(o, "llmforge_request_duration_seconds", "Time from request to the end of the answer.", "endpoint=\"" + ep + "\"", h, first);
            first = false;
        }
    }
    gauge(o, "llmforge_requests_in_flight", "Requests being answered now.", "gauge", {{"", in_flight_.load()}});
    if (connections_) gauge(o, "llmforge_open_connections", "Open HTTP connections.", "gauge", {{"", static_cast<double>(connections_())}});
    gauge(o, "llmforge_prompt_tokens_total", "Prompt tokens processed.", "counter", per([](const EngineStats& s) { return s.prompt_tokens; }));
    gauge(o, "llmforge_generated_tokens_total", "Tokens generated.", "counter", per([](const EngineStats& s) { return s.generated_tokens; }));
    gauge(o, "llmforge_decode_steps_total", "Batched decoding steps (forward passes over all running sequences).", "counter",
          per([](const EngineStats& s) { return s.decode_steps; }));
    gauge(o, "llmforge_draft_proposed_tokens_total", "Speculative decoding: tokens the draft model proposed.", "counter",
          per([](const EngineStats& s) { return s.draft_proposed; }));
    gauge(o, "llmforge_draft_accepted_tokens_total", "Speculative decoding: proposed tokens the model kept (acceptance = accepted / proposed).",
          "counter", per([](const EngineStats& s) { return s.draft_accepted; }));
    gauge(o, "llmforge_queue_length", "Requests waiting for a slot.", "gauge", per([](const EngineStats& s) { return s.queued; }));
    gauge(o, "llmforge_slots_busy", "KV-cache slots in use.", "gauge", per([](const EngineStats& s) { return s.slots_busy; }));
    gauge(o, "llmforge_slots_total", "KV-cache slots.", "gauge", per([](const EngineStats& s) { return s.slots_total; }));
    gauge(o, "llmforge_kv_cache_cells_used", "KV-cache cells holding tokens of running sequences.", "gauge",
          per([](const EngineStats& s) { return s.kv_cells_used; }));
    gauge(o, "llmforge_kv_cache_cells_total", "KV-cache cells (slots × context).", "gauge", per([](const EngineStats& s) { return s.kv_cells_total; }));
    gauge(o, "llmforge_kv_cache_usage_ratio", "Share of the KV-cache cells in use.", "gauge",
          per([](const EngineStats& s) { return s.kv_cells_total ? static_cast<double>(s.kv_cells_used) / static_cast<double>(s.kv_cells_total) : 0.0; }));
    gauge(o, "llmforge_jobs_total", "Generation jobs ended, by outcome.", "counter", [&] {
        std::vector<std::pair<std::string, double>> v;
        for (auto& [l, s] : st) {
            v.emplace_back(l + ",outcome=\"done\"", static_cast<double>(s.jobs_done));
            v.emplace_back(l + ",outcome=\"cancelled\"", static_cast<double>(s.jobs_cancelled));
            v.emplace_back(l + ",outcome=\"timeout\"", static_cast<double>(s.jobs_timed_out));
            v.emplace_back(l + ",outcome=\"failed\"", static_cast<double>(s.jobs_failed));
        }
        return v;
    }());
    bool first = true;
    for (auto& [l, s] : st) {
        histogram(o, "llmforge_time_to_first_token_seconds", "Time from request to its first token.", l, s.ttft, first);
        first = false;
    }
    first = true;
    for (auto& [l, s] : st) {
        histogram(o, "llmforge_inter_token_seconds", "Time between successive tokens of a sequence.", l, s.inter_token, first);
        first = false;
    }
    first = true;
    for (auto& [l, s] : st) {
        histogram(o, "llmforge_queue_wait_seconds", "Time requests waited for a slot.", l, s.queue_wait, first);
        first = false;
    }
    reply(ex, 200, o, "/metrics", "text/plain; version=0.0.4");
}

}  // namespace llmforge::server
