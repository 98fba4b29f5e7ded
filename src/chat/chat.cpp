// Conversations → template text → token ids with the assistant-only mask. See chat_template.h.
#include "llmforge/chat_template.h"

#include <algorithm>
#include <fstream>

#include "core/mmap_file.h"
#include "llmforge/error.h"

namespace llmforge {

const char* const kChatMLTemplate =
    // With tools (transformers' tools=): a system turn lists them and shows the Hermes call format; assistant turns
    // write their calls in it, and tool results come back in <tool_response> tags. Without tools the text is plain
    // ChatML.
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\nYou can call the functions described inside <tools></tools>:\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' + (tool | tojson) }}{%- endfor %}"
    "{{- '\\n</tools>\\n\\nTo call one, answer with its name and arguments as a JSON object inside <tool_call></tool_call> tags:\\n"
    "<tool_call>\\n{\"name\": <function name>, \"arguments\": <arguments as a JSON object>}\\n</tool_call><|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (tools and loop.first and message['role'] == 'system') %}"
    "{%- if message['role'] == 'assistant' and message['tool_calls'] is defined and message['tool_calls'] %}"
    "{{- '<|im_start|>assistant\\n' + (message['content'] if message['content'] is string else '') }}"
    "{%- for call in message['tool_calls'] %}"
    "{{- ('\\n' if (message['content'] is string and message['content']) or not loop.first else '') + '<tool_call>\\n{\"name\": ' + "
    "(call['function']['name'] | tojson) + ', \"arguments\": ' + (call['function']['arguments'] | tojson) + '}\\n</tool_call>' }}"
    "{%- endfor %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- elif message['role'] == 'tool' %}"
    "{{- '<|im_start|>tool\\n<tool_response>\\n' + message['content'] + '\\n</tool_response><|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

namespace {
std::string pick_template(const Vocab& v, const std::string& given) {
    if (!given.empty()) return given;
    if (!v.chat_template.empty()) return v.chat_template;
    return kChatMLTemplate;
}
}  // namespace

ChatFormat::ChatFormat(const Vocab& vocab, const std::string& template_source)
    : vocab_(vocab), src_(pick_template(vocab, template_source)), tpl_(src_) {}

std::string ChatFormat::render(const nlohmann::ordered_json& messages, bool add_generation_prompt, const nlohmann::ordered_json* tools) const {
    nlohmann::ordered_json ctx = {{"messages", messages},
                                  {"tools", tools && !tools->empty() ? *tools : nlohmann::ordered_json(nullptr)},
                                  {"documents", nullptr},
                                  {"add_generation_prompt", add_generation_prompt}};
    if (vocab_.bos >= 0 && vocab_.bos < vocab_.size()) ctx["bos_token"] = vocab_.token_to_piece(vocab_.bos, true);
    if (vocab_.eos >= 0 && vocab_.eos < vocab_.size()) ctx["eos_token"] = vocab_.token_to_piece(vocab_.eos, true);
    return tpl_.render(ctx);
}

std::vector<int32_t> ChatFormat::tokenize(const std::string& text) const { return vocab_.encode(text, false, true); }

std::vector<int32_t> ChatFormat::encode_prompt(const nlohmann::ordered_json& messages, const nlohmann::ordered_json* tools) const {
    validate_messages(messages);
    const std::string text = render(messages, true, tools);
    std::vector<int32_t> ids;
    if (vocab_.add_bos && vocab_.bos >= 0 && text.rfind(vocab_.token_to_piece(vocab_.bos, true), 0) != 0) ids.push_back(vocab_.bos);
    const std::vector<int32_t> t = tokenize(text);
    ids.insert(ids.end(), t.begin(), t.end());
    return ids;
}

ChatTokens ChatFormat::encode_for_training(const nlohmann::ordered_json& messages, const nlohmann::ordered_json* tools) const {
    validate_messages(messages);
    const std::string full = render(messages, false, tools);
    std::vector<std::pair<size_t, size_t>> spans;  // byte ranges of the assistant turns in `full`
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].at("role") != "assistant") continue;
        nlohmann::ordered_json before = nlohmann::ordered_json::array();
        for (size_t k = 0; k < i; ++k) before.push_back(messages[k]);
        nlohmann::ordered_json upto = before;
        upto.push_back(messages[i]);
        const std::string prompt = render(before, true, tools);
        const std::string with = render(upto, false, tools);
        if (with.compare(0, prompt.size(), prompt) != 0 || full.compare(0, with.size(), with) != 0)
            throw_bad_input("the chat template renders the conversation before assistant turn %zu differently once later turns are added, "
                            "so its tokens cannot be located (use a template that only appends)", i + 1);
        if (with.size() > prompt.size()) spans.emplace_back(prompt.size(), with.size());
    }
    ChatTokens out;
    auto add = [&](const std::string& text, bool trained) {
        if (text.empty()) return;
        const std::vector<int32_t> ids = tokenize(text);
        out.ids.insert(out.ids.end(), ids.begin(), ids.end());
        out.trained.insert(out.trained.end(), ids.size(), trained ? 1 : 0);
        if (trained) out.n_trained += static_cast<int64_t>(ids.size());
    };
    if (vocab_.add_bos && vocab_.bos >= 0 && full.rfind(vocab_.token_to_piece(vocab_.bos, true), 0) != 0) {
        out.ids.push_back(vocab_.bos);
        out.trained.push_back(0);
    }
    size_t cur = 0;
    for (const auto& [a, b] : spans) {
        add(full.substr(cur, a - cur), false);
        add(full.substr(a, b - a), true);
        cur = b;
    }
    add(full.substr(cur), false);
    return out;
}

std::vector<int32_t> ChatFormat::stop_tokens() const {
    std::vector<int32_t> s;
    if (vocab_.eos >= 0) s.push_back(vocab_.eos);
    for (const char* m : {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|END_OF_TURN_TOKEN|>", "<|endoftext|>"}) {
        const int32_t id = vocab_.find(m);
        if (id >= 0 && std::find(s.begin(), s.end(), id) == s.end()) s.push_back(id);
    }
    return s;
}

void validate_messages(const nlohmann::ordered_json& messages) {
    if (!messages.is_array()) throw_bad_input("\"messages\" must be an array of {\"role\", \"content\"} objects");
    if (messages.empty()) throw_bad_input("the conversation has no messages");
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& m = messages[i];
        if (!m.is_object()) throw_bad_input("message %zu is not an object", i + 1);
        if (!m.contains("role") || !m["role"].is_string()) throw_bad_input("message %zu has no \"role\"", i + 1);
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant" && role != "tool")
            throw_bad_input("message %zu has an unknown role '%s' (system, user, assistant or tool)", i + 1, role.c_str());
        const bool has_calls = m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty();
        if (!m.contains("content") || !(m["content"].is_string() || (m["content"].is_null() && has_calls)))
            throw_bad_input("message %zu (%s) has no text \"content\"", i + 1, role.c_str());
    }
}

}  // namespace llmforge
