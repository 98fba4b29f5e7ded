// Preference pairs {"prompt", "chosen", "rejected"} → chat-formatted token rows with the answer marked, and batches of
// pairs for the reward model and DPO.
#include <algorithm>

#include "core/mmap_file.h"
#include "llmforge/tools.h"
#include "llmforge/align.h"
#include "llmforge/error.h"

namespace llmforge::align {

namespace {

nlohmann::ordered_json as_messages(const nlohmann::ordered_json& v, const char* field, const char* role) {
    if (v.is_string()) {
        if (v.get<std::string>().empty()) throw_bad_input("\"%s\" is empty", field);
        return nlohmann::ordered_json::array({{{"role", role}, {"content", v}}});
    }
    if (v.is_object()) return nlohmann::ordered_json::array({v});
    if (v.is_array()) return v;
    throw_bad_input("\"%s\" must be a string or a list of messages", field);
}

// Keeps only the last run of trained tokens (the final answer): earlier assistant turns of a multi-turn prompt are
// context, not the answer being compared.
void keep_last_answer(ChatTokens& t) {
    size_t end = t.trained.size();
    while (end > 0 && !t.trained[end - 1]) --end;
    size_t start = end;
    while (start > 0 && t.trained[start - 1]) --start;
    t.n_trained = static_cast<int64_t>(end - start);
    for (size_t i = 0; i < start; ++i) t.trained[i] = 0;
}

}  // namespace

PreferenceDataset load_preferences_jsonl(const std::string& path, const ChatFormat& fmt, const ChatDataOptions& opt) {
    PreferenceDataset ds;
    for_each_jsonl(path, "preference", opt.skip_bad, &ds.lines, &ds.skipped, &ds.problems, [&](const nlohmann::ordered_json& j) {
        if (!j.is_object()) throw_bad_input("expected {\"prompt\", \"chosen\", \"rejected\"}");
        for (const char* f : {"prompt", "chosen", "rejected"})
            if (!j.contains(f) || j[f].is_null()) throw_bad_input("missing \"%s\"", f);
        const nlohmann::ordered_json prompt = as_messages(j["prompt"], "prompt", "user");
        const nlohmann::ordered_json chosen = as_messages(j["chosen"], "chosen", "assistant");
        const nlohmann::ordered_json rejected = as_messages(j["rejected"], "rejected", "assistant");
        if (chosen == rejected) throw_bad_input("\"chosen\" and \"rejected\" are identical: the pair prefers nothing");
        const nlohmann::ordered_json* tools = nullptr;  // tool definitions the template lists, as in SFT data
        if (j.contains("tools") && !j["tools"].is_null()) {
            validate_tools(j["tools"]);
            tools = &j["tools"];
        }
        PreferencePair p;
        for (int side = 0; side < 2; ++side) {
            nlohmann::ordered_json msgs = prompt;
            for (const auto& m : side == 0 ? chosen : rejected) msgs.push_back(m);
            validate_messages(msgs);
            if (msgs.back().value("role", "") != "assistant") throw_bad_input("the %s answer does not end with an assistant message", side == 0 ? "chosen" : "rejected");
            ChatTokens t = fmt.encode_for_training(messages_for_template(msgs), tools);
            keep_last_answer(t);
            if (t.n_trained == 0) throw_bad_input("the %s answer has no tokens", side == 0 ? "chosen" : "rejected");
            if (opt.max_tokens > 0 && static_cast<int64_t>(t.ids.size()) > opt.max_tokens)
                throw_bad_input("the %s sequence is %zu tokens long, more than the model's context of %lld", side == 0 ? "chosen" : "rejected",
                                t.ids.size(), static_cast<long long>(opt.max_tokens));
            (side == 0 ? p.chosen : p.rejected) = std::move(t);
        }
        if (p.chosen.ids == p.rejected.ids) throw_bad_input("\"chosen\" and \"rejected\" have the same tokens");
        ds.pairs.push_back(std::move(p));
    });
    return ds;
}

PairBatches::PairBatches(const std::vector<PreferencePair>* pairs, int64_t P, int32_t pad_id, uint64_t seed, bool shuffle)
    : pairs_(pairs), P_(P), pad_(pad_id), seed_(seed), shuffle_(shuffle) {
    if (pairs_->empty()) throw_bad_input("no preference pairs to train on");
    if (P_ <= 0) throw_bad_input("the batch needs at least one pair");
    for (const auto& p : *pairs_) tokens_ += p.chosen.ids.size() + p.rejected.ids.size();
    plan_epoch(0);
}

void PairBatches::plan_epoch(uint64_t epoch) {
    if (planned_epoch_ == epoch) return;
    planned_epoch_ = epoch;
    batches_ = plan_batches(pairs_->size(), P_, shuffle_, seed_ * 0x9E3779B97F4A7C15ull + epoch + 7, static_cast<size_t>(P_) * 32, [&](size_t i) {
        return std::max((*pairs_)[i].chosen.ids.size(), (*pairs_)[i].rejected.ids.size());
    });
}

void PairBatches::seek(DataPosition p) {
    pos_ = p;
    plan_epoch(p.epoch);
}

int64_t PairBatches::next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) {
    if (pos_.index >= batches_.size()) {
        ++pos_.epoch;
        pos_.index = 0;
    }
    plan_epoch(pos_.epoch);
    last_pairs_ = batches_[pos_.index++];
    int64_t T = 1;
    for (size_t i : last_pairs_)
        T = std::max<int64_t>(T, static_cast<int64_t>(std::max((*pairs_)[i].chosen.ids.size(), (*pairs_)[i].rejected.ids.size())));
    const size_t R = 2 * last_pairs_.size();
    inputs.assign(R * static_cast<size_t>(T), pad_);
    targets.assign(R * static_cast<size_t>(T), -1);
    last_lengths_.assign(R, 0);
    for (size_t r = 0; r < R; ++r) {
        const ChatTokens& e = r % 2 == 0 ? (*pairs_)[last_pairs_[r / 2]].chosen : (*pairs_)[last_pairs_[r / 2]].rejected;
        last_lengths_[r] = static_cast<int64_t>(e.ids.size());
        for (size_t t = 0; t < e.ids.size(); ++t) {
            inputs[r * static_cast<size_t>(T) + t] = e.ids[t];
            if (t + 1 < e.ids.size() && e.trained[t + 1]) targets[r * static_cast<size_t>(T) + t] = e.ids[t + 1];
        }
    }
    return T;
}

}  // namespace llmforge::align
