// Fine-tuning data: JSONL datasets of conversations ({"messages": [...]} per line) as token ids with the assistant-only
// mask, and padded, length-grouped batches of them.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llmforge/chat_template.h"
#include "llmforge/data.h"

namespace llmforge {

struct ChatDataOptions {
    int64_t max_tokens = 0;  // longer conversations are bad examples (0: no limit)
    bool skip_bad = true;    // skip bad examples (counted, reported) or stop at the first with its file and line
    bool require_assistant = true;
};
// Reads a JSONL file line by line (blank lines skipped) and hands each parsed line to `fn`. A line that is not JSON, or
// one for which fn throws an Error, is a bad example "FILE:LINE: what": skipped and counted in *skipped (the first 20
// kept in *problems), or, without skip_bad, thrown. `what` names the file in the missing-file error.
void for_each_jsonl(const std::string& path, const char* what, bool skip_bad, int64_t* lines, int64_t* skipped, std::vector<std::string>* problems,
                    const std::function<void(const nlohmann::ordered_json&)>& fn);

struct ChatDataset {
    std::vector<ChatTokens> examples;
    int64_t lines = 0, skipped = 0, tokens = 0, trained_tokens = 0;
    std::vector<std::string> problems;  // "FILE:LINE: what", the first 20
};
ChatDataset load_chat_jsonl(const std::string& path, const ChatFormat& fmt, const ChatDataOptions& opt);

// Batches of conversations for fine-tuning, one conversation per row, padded (targets −1) to the longest row of the
// batch. Each epoch is shuffled with the seed, then grouped: windows of 64 batches are sorted by length before being
// cut into batches (whose order is shuffled again), so rows of a batch have similar lengths and little padding.
class ChatBatches : public BatchSource {
public:
    ChatBatches(const std::vector<ChatTokens>* examples, int64_t B, int32_t pad_id, uint64_t seed, bool shuffle);
    int64_t next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) override;
    DataPosition position() const override { return pos_; }
    void seek(DataPosition p) override;
    uint64_t windows() const override { return batches_.size(); }
    uint64_t tokens() const override { return tokens_; }
    // Share of the positions in all batches of an epoch that hold real tokens (the rest is padding).
    double fill() const;

private:
    void plan_epoch(uint64_t epoch);
    const std::vector<ChatTokens>* ex_;
    int64_t B_;
    int32_t pad_;
    uint64_t seed_;
    bool shuffle_;
    uint64_t tokens_ = 0;
    std::vector<std::vector<size_t>> batches_;  // example indices of each batch of the current epoch
    uint64_t planned_epoch_ = ~0ull;
    DataPosition pos_;
};

}  // namespace llmforge
