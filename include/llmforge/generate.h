// Text generation: tokenize the prompt, run it through the model in one batched pass, then sample token by token
// through the KV cache, streaming text as soon as it forms complete UTF-8 characters.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "llmforge/grammar.h"
#include "llmforge/sampler.h"
#include "llmforge/tokenizer.h"
#include "llmforge/transformer.h"

namespace llmforge {

struct GenerateParams {
    int32_t n_predict = 128;  // < 0: until end of sequence or the context is full
    SamplerParams sampling;
    bool add_special = true;  // BOS as the vocabulary asks
    bool parse_special = true;
    // Constrained decoding: every token is drawn from those the grammar allows (its vocabulary must be this one's).
    std::shared_ptr<const CompiledGrammar> grammar;
};

struct GenerateResult {
    std::vector<int32_t> prompt_tokens, tokens;
    std::string text;
    std::string stop_reason;  // "eos", "length", "context", "stopped"
    bool grammar_complete = false;  // with a grammar: the text is a whole sentence of it (false: cut off first)
    double prompt_ms = 0, gen_ms = 0;
};

// on_text receives each printable piece; returning false stops generation.
GenerateResult generate(Transformer& tf, const Vocab& vocab, const std::string& prompt, const GenerateParams& params,
                        const std::function<bool(const std::string&)>& on_text = nullptr);

}  // namespace llmforge
