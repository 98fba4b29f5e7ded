// Conversations: rendering with a model's chat template, token ids with the assistant-only training mask, and JSONL
// datasets of conversations in the OpenAI messages form ({"messages": [{"role": ..., "content": ...}, ...]}).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "llmforge/data.h"
#include "llmforge/jinja.h"
#include "llmforge/tokenizer.h"

namespace llmforge {

// ChatML, the template of the models llmforge trains (its tokenizers carry <|im_start|> and <|im_end|>).
extern const char* const kChatMLTemplate;

// A conversation as tokens; trained[i] = 1 where token i is part of an assistant turn (its content and the
// template's end-of-turn tokens), the only positions the fine-tuning loss sees.
struct ChatTokens {
    std::vector<int32_t> ids;
    std::vector<uint8_t> trained;
    int64_t n_trained = 0;
};

class ChatFormat {
public:
    // template_source empty: the vocabulary's chat_template, else ChatML.
    explicit ChatFormat(const Vocab& vocab, const std::string& template_source = "");
    const std::string& source() const { return src_; }

    // transformers' apply_chat_template(messages, add_generation_prompt, tokenize=False), with bos_token/eos_token set
    // from the vocabulary. Throws a bad-input Error if the template raises.
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt) const;
    // The prompt for the next assistant turn, as token ids.
    std::vector<int32_t> encode_prompt(const nlohmann::ordered_json& messages) const;
    // Token ids of the whole conversation and the assistant-only mask. The assistant spans are found by rendering the
    // conversation up to each assistant turn with and without it; a template that rewrites earlier turns (so that
    // these renderings are not prefixes of one another) is reported. Throws a bad-input Error saying what is wrong.
    ChatTokens encode_for_training(const nlohmann::ordered_json& messages) const;
    // Token ids that end an assistant turn: EOS and the end-of-turn markers the vocabulary has (<|im_end|>, <|eot_id|>,
    // <end_of_turn>, <|end|>, <|END_OF_TURN_TOKEN|>).
    std::vector<int32_t> stop_tokens() const;
    // Text as rendered by render() → token ids (control tokens in it recognised; BOS as the template wrote it).
    std::vector<int32_t> tokenize(const std::string& text) const;

private:
    const Vocab& vocab_;
    std::string src_;
    jinja::Template tpl_;
};

// The chat template of a Hugging Face tokenizer_config.json: "chat_template" as a string, or the "default" entry of a
// list of named templates; "" when there is none. Throws a bad-input Error if the file is not valid JSON.
std::string chat_template_from_tokenizer_config(const std::string& path);

// Checks a conversation: a non-empty array of {"role": system|user|assistant|tool, "content": string or null (an
// assistant turn with tool_calls)}; throws a bad-input Error naming the problem.
void validate_messages(const nlohmann::ordered_json& messages);

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

#include <functional>

#include "llmforge/sampler.h"
#include "llmforge/transformer.h"

namespace llmforge {

// A multi-turn conversation with a model: the template is applied to the whole history each turn, the KV cache keeps
// the longest prefix it shares with the new prompt (only what changed is recomputed), and when the context would
// overflow the oldest turns (after the system prompt) are dropped.
class ChatSession {
public:
    ChatSession(Transformer& tf, const Vocab& vocab, const ChatFormat& fmt, const SamplerParams& sampling);
    void set_system(const std::string& text);  // empty: no system prompt
    void reset();                              // forget the conversation (the system prompt stays)
    // The conversation the model sees, in the OpenAI messages form (system prompt first): turns dropped to make room in
    // the context are not in it.
    nlohmann::ordered_json messages() const;
    // The whole conversation since the last reset, dropped turns included (what /save writes).
    nlohmann::ordered_json transcript() const;

    struct Reply {
        std::string text;
        std::string stop_reason;  // "eos" (end of turn), "length", "context", "stopped"
        int64_t prompt_tokens = 0, reused_tokens = 0, tokens = 0, dropped_turns = 0;
        double prompt_ms = 0, gen_ms = 0;
    };
    // Adds the user's turn, answers it — streaming text to on_text, which may return false to stop — and records the
    // answer (also a stopped one) as the assistant's turn. max_tokens < 0: until the end of the turn or the context.
    // Throws a bad-input Error if the message alone does not fit in the context (the conversation is left unchanged).
    Reply ask(const std::string& user, int32_t max_tokens, const std::function<bool(const std::string&)>& on_text = nullptr);

private:
    Transformer& tf_;
    const Vocab& vocab_;
    const ChatFormat& fmt_;
    Sampler sampler_;
    std::string system_;
    std::vector<std::pair<std::string, std::string>> turns_;  // (role, content) in the context
    std::vector<std::pair<std::string, std::string>> all_;    // every turn since the last reset
    std::vector<int32_t> cached_;                              // the tokens in the KV cache
    std::vector<int32_t> stops_;
};

}  // namespace llmforge
