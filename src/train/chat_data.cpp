// JSONL conversation datasets and the fine-tuning batches (see chat_data.h).
#include "llmforge/chat_data.h"
#include "llmforge/tools.h"

#include <algorithm>
#include <fstream>

#include "core/mmap_file.h"
#include "llmforge/error.h"

namespace llmforge {

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
        // "tools": OpenAI tool definitions the template lists (tool-calling data: assistant turns with tool_calls,
        // role "tool" results), as TRL's SFT takes them
        const nlohmann::ordered_json* tools = nullptr;
        if (j.contains("tools") && !j["tools"].is_null()) {
            validate_tools(j["tools"]);
            tools = &j["tools"];
        }
        ChatTokens t = fmt.encode_for_training(messages_for_template(msgs), tools);
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
