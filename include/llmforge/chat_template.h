// Conversations in the OpenAI messages form ([{"role": ..., "content": ...}, ...]) rendered with a model's chat
// template, and as token ids with the assistant-only training mask.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

    // transformers' apply_chat_template(messages, add_generation_prompt, tokenize=False, tools=tools), with
    // bos_token/eos_token set from the vocabulary. Throws a bad-input Error if the template raises.
    std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt, const nlohmann::ordered_json* tools = nullptr) const;
    // The prompt for the next assistant turn, as token ids.
    std::vector<int32_t> encode_prompt(const nlohmann::ordered_json& messages, const nlohmann::ordered_json* tools = nullptr) const;
    // Token ids of the whole conversation and the assistant-only mask. The assistant spans are found by rendering the
    // conversation up to each assistant turn with and without it; a template that rewrites earlier turns (so that
    // these renderings are not prefixes of one another) is reported. Throws a bad-input Error saying what is wrong.
    // tools: rendered as transformers' tools= (tool-calling fine-tuning data).
    ChatTokens encode_for_training(const nlohmann::ordered_json& messages, const nlohmann::ordered_json* tools = nullptr) const;
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

// Checks a conversation: a non-empty array of {"role": system|user|assistant|tool, "content": string or null (an
// assistant turn with tool_calls)}; throws a bad-input Error naming the problem.
void validate_messages(const nlohmann::ordered_json& messages);

}  // namespace llmforge
