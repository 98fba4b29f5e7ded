// Internal: Hugging Face tokenizer files, shared by the readers of tokenizer.json (vocab_hf.cpp, vocab.cpp).
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "llmforge/tokenizer.h"

namespace llmforge {

// BOS and EOS as transformers sees them: the tokenizer.json post-processor's TemplateProcessing (alone or inside a
// Sequence, as Llama 3's) — a special token before the text is BOS, added when encoding; one after it EOS — then
// tokenizer_config.json (config_text, "" if none) naming bos_token / eos_token and saying add_bos_token / add_eos_token.
// A token id in a tokenizer.json (model.vocab's values, added_tokens[].id): an integer in [0, 2^24), else a bad-input
// error naming ORIGIN (a float such as 6.5e34 or a huge integer is refused, not converted).
int32_t hf_token_id(const nlohmann::json& id, const std::string& origin);

void apply_hf_special_tokens(Vocab& v, const nlohmann::json& post_processor, const std::string& config_text, const std::string& origin);

}  // namespace llmforge
