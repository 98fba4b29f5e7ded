// Internal: Hugging Face tokenizer files, shared by the readers of tokenizer.json (vocab_hf.cpp, vocab.cpp).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "llmforge/tokenizer.h"

namespace llmforge {

// BOS and EOS as transformers sees them: the tokenizer.json post-processor's TemplateProcessing (alone or inside a
// Sequence, as Llama 3's) — a special token before the text is BOS, added when encoding; one after it EOS — then
// tokenizer_config.json (config_text, "" if none) naming bos_token / eos_token and saying add_bos_token / add_eos_token.
void apply_hf_special_tokens(Vocab& v, const nlohmann::json& post_processor, const std::string& config_text, const std::string& origin);

}  // namespace llmforge
