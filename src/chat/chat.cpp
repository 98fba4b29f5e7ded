// Conversations → template text → token ids with the assistant-only mask; JSONL datasets; padded, length-grouped
// batches for fine-tuning. See chat.h.
#include "llmforge/chat.h"

#include <algorithm>
#include <fstream>

#include "llmforge/error.h"
#include "llmforge/mmap_file.h"

namespace llmforge {

const char* const kChatMLTemplate =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + (message['content'] if message['content'] is string else '') + '<|im_end|>\\n' }}"
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

std::string ChatFormat::render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const {
    nlohmann::ordered_json ctx = {{"messages", messages}, {"tools", nullptr}, {"documents", nullptr}, {"add_generation_prompt", add_generation_prompt}};
    if (vocab_.bos >= 0 && vocab_.bos < vocab_.size()) ctx["bos_token"] = vocab_.token_to_piece(vocab_.bos, true);
    if (vocab_.eos >= 0 && vocab_.eos < vocab_.size()) ctx["eos_token"] = vocab_.token_to_piece(vocab_.eos, true);
    return tpl_.render(ctx);
}

std::vector<int32_t> ChatFormat::tokenize(const std::string& text) const { return vocab_.encode(text, false, true); }

std::vector<int32_t> ChatFormat::encode_prompt(const nlohmann::ordered_json& messages) const {
    validate_messages(messages);
    const std::string text = render(messages, true);
    std::vector<int32_t> ids;
    if (vocab_.add_bos && vocab_.bos >= 0 && text.rfind(vocab_.token_to_piece(vocab_.bos, true), 0) != 0) ids.push_back(vocab_.bos);
    const std::vector<int32_t> t = tokenize(text);
    ids.insert(ids.end(), t.begin(), t.end());
    return ids;
}

ChatTokens ChatFormat::encode_for_training(const nlohmann::ordered_json& messages) const {
    validate_messages(messages);
    const std::string full = render(messages, false);
    std::vector<std::pair<size_t, size_t>> spans;  // byte ranges of the assistant turns in `full`
    for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].at("role") != "assistant") continue;
        nlohmann::ordered_json before = nlohmann::ordered_json::array();
        for (size_t k = 0; k < i; ++k) before.push_back(messages[k]);
        nlohmann::ordered_json upto = before;
        upto.push_back(messages[i]);
        const std::string prompt = render(before, true);
        const std::string with = render(upto, false);
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

std::string chat_template_from_tokenizer_config(const std::string& path) {
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(read_text_file(path));
    } catch (const nlohmann::json::exception& e) {
        throw_bad_input("'%s' is not valid JSON: %s", path.c_str(), e.what());
    }
    if (!j.is_object() || !j.contains("chat_template")) return "";
    const nlohmann::json& t = j["chat_template"];
    if (t.is_string()) return t.get<std::string>();
    if (t.is_array())  // named templates: [{"name": "default", "template": "..."}, ...]
        for (const nlohmann::json& e : t)
            if (e.is_object() && e.value("name", "") == "default") return e.value("template", "");
    return "";
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

void for_each_jsonl(const std::string& path, const char* what, bool skip_bad, int64_t* lines, int64_t* skipped, std::vector<std::string>* problems,
                    const std::function<void(const nlohmann::ordered_json&)>& fn) {
    if (!file_exists(path)) throw_bad_input("%s file '%s' does not exist", what, path.c_str());
    std::ifstream in(path, std::ios::binary);
    std::string line;
    int64_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        ++*lines;
        try {
            nlohmann::ordered_json j;
            try {
                j = nlohmann::ordered_json::parse(line);
            } catch (const nlohmann::json::exception&) {
                throw_bad_input("not a JSON object");
            }
            fn(j);
        } catch (const Error& e) {
            const std::string where = path + ":" + std::to_string(lineno) + ": " + e.what();
            if (!skip_bad) throw_bad_input("%s", where.c_str());
            ++*skipped;
            if (problems->size() < 20) problems->push_back(where);
        }
    }
}

ChatDataset load_chat_jsonl(const std::string& path, const ChatFormat& fmt, const ChatDataOptions& opt) {
    ChatDataset ds;
    for_each_jsonl(path, "conversation", opt.skip_bad, &ds.lines, &ds.skipped, &ds.problems, [&](const nlohmann::ordered_json& j) {
        if (!j.is_object() || !j.contains("messages")) throw_bad_input("expected {\"messages\": [...]}");
        const nlohmann::ordered_json& msgs = j["messages"];
        validate_messages(msgs);
        if (opt.require_assistant && std::none_of(msgs.begin(), msgs.end(), [](const auto& m) { return m["role"] == "assistant"; }))
            throw_bad_input("the conversation has no assistant turn");
        ChatTokens t = fmt.encode_for_training(msgs);
        if (opt.max_tokens > 0 && static_cast<int64_t>(t.ids.size()) > opt.max_tokens)
            throw_bad_input("the conversation is %zu tokens long, more than the context of %lld positions holds", t.ids.size(),
                            static_cast<long long>(opt.max_tokens - 1));
        if (t.n_trained == 0) throw_bad_input("no assistant tokens to learn from");
        ds.tokens += static_cast<int64_t>(t.ids.size());
        ds.trained_tokens += t.n_trained;
        ds.examples.push_back(std::move(t));
    });
    return ds;
}

// ---------------------------------------------------------------------------------------------------- batches
ChatBatches::ChatBatches(const std::vector<ChatTokens>* examples, int64_t B, int32_t pad_id, uint64_t seed, bool shuffle)
    : ex_(examples), B_(B), pad_(pad_id), seed_(seed), shuffle_(shuffle) {
    if (ex_->empty()) throw_bad_input("no conversations to train on");
    for (const auto& e : *ex_) tokens_ += e.ids.size();
    plan_epoch(0);
}

void ChatBatches::plan_epoch(uint64_t epoch) {
    if (planned_epoch_ == epoch) return;
    planned_epoch_ = epoch;
    batches_ = plan_batches(ex_->size(), B_, shuffle_, seed_ * 0x9E3779B97F4A7C15ull + epoch + 1, static_cast<size_t>(B_) * 64,
                            [&](size_t i) { return (*ex_)[i].ids.size(); });
}

void ChatBatches::seek(DataPosition p) {
    pos_ = p;
    plan_epoch(p.epoch);
}

int64_t ChatBatches::next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
    if (pos_.index >= batches_.size()) {
        ++pos_.epoch;
        pos_.index = 0;
    }
    plan_epoch(pos_.epoch);
    const std::vector<size_t>& b = batches_[pos_.index++];
    int64_t T = 1;
    for (size_t i : b) T = std::max<int64_t>(T, static_cast<int64_t>((*ex_)[i].ids.size()) - 1);
    inputs.assign(static_cast<size_t>(B_ * T), pad_);
    targets.assign(static_cast<size_t>(B_ * T), -1);
    for (size_t r = 0; r < b.size(); ++r) {
        const ChatTokens& e = (*ex_)[b[r]];
        for (size_t t = 0; t + 1 < e.ids.size(); ++t) {
            inputs[r * static_cast<size_t>(T) + t] = e.ids[t];
            if (e.trained[t + 1]) targets[r * static_cast<size_t>(T) + t] = e.ids[t + 1];  // predict an assistant token
        }
    }
    return T;
}

double ChatBatches::fill() const {
    double real = 0, all = 0;
    for (const auto& b : batches_) {
        size_t T = 1;
        for (size_t i : b) T = std::max(T, (*ex_)[i].ids.size() - 1);
        for (size_t i : b) real += static_cast<double>((*ex_)[i].ids.size() - 1);
        all += static_cast<double>(T * b.size());
    }
    return all > 0 ? real / all : 0;
}

}  // namespace llmforge
