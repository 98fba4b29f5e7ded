// A multi-turn chat with a model over its KV cache.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include <functional>
#include <memory>

#include "llmforge/chat_template.h"
#include "llmforge/generate.h"
#include "llmforge/grammar.h"
#include "llmforge/kv_cache.h"
#include "llmforge/sampler.h"
#include "llmforge/transformer.h"

namespace llmforge {

struct ChatSessionOptions {
    int64_t n_ctx = 0;              // the conversation's context (0: the model's)
    int64_t n_batch = 512;          // prompt tokens per forward pass
    KVCacheType kv_type = DType::F16;     // the KV cache's element type (kv_cache.h)
    Numerics numerics = Numerics::Fast;
};

// A multi-turn conversation with a model: the template is applied to the whole history each turn, the session's own
// KV cache keeps the longest prefix it shares with the new prompt (only what changed is recomputed), and when the
// context would overflow the oldest turns (after the system prompt) are dropped.
class ChatSession {
public:
    // The model (with its vocabulary) and the pool must outlive the session; the session owns its KV cache and the
    // Transformer that runs the model over it.
    ChatSession(const Model& model, ThreadPool& pool, const ChatFormat& fmt, const SamplerParams& sampling, const ChatSessionOptions& opts = {});
    // The Transformer the session runs (to add LoRA adapters, or read n_ctx()).
    Transformer& transformer() { return *tf_; }
    void set_system(const std::string& text);  // empty: no system prompt
    void reset();                              // forget the conversation (the system prompt stays)
    void set_sampling(const SamplerParams& sampling);  // for the next answers (a new, freshly seeded sampler)
    // Constrains every next answer to the grammar (null: free text). An answer ends when the grammar is complete and
    // nothing more may follow, or with the end of turn where the grammar may end.
    void set_grammar(std::shared_ptr<const CompiledGrammar> grammar) { grammar_ = std::move(grammar); }
    // Speculative decoding (generate.h): the draft (the same tokenizer; a context at least the session's; it must
    // outlive the session) proposes tokens that the model verifies in one pass per round. Answers under a grammar
    // decode without it. Give the session batch-invariant numerics for greedy answers identical to those without.
    void set_draft(Transformer* draft, const SpeculativeParams& spec = {});
    // The conversation the model sees, in the OpenAI messages form (system prompt first): turns dropped to make room in
    // the context are not in it.
    nlohmann::ordered_json messages() const;
    // The whole conversation since the last reset, dropped turns included (what /save writes).
    nlohmann::ordered_json transcript() const;

    struct Reply {
        std::string text;
        std::string stop_reason;  // "eos" (end of turn, or the grammar complete), "length", "context", "stopped"
        bool grammar_complete = false;  // with a grammar: the answer is a whole sentence of it
        int64_t prompt_tokens = 0, reused_tokens = 0, tokens = 0, dropped_turns = 0;
        double prompt_ms = 0, gen_ms = 0;
        SpeculativeStats speculative;  // with a draft
    };
    // Adds the user's turn, answers it — streaming text to on_text, which may return false to stop — and records the
    // answer (also a stopped one) as the assistant's turn. max_tokens < 0: until the end of the turn or the context.
    // Throws a bad-input Error if the message alone does not fit in the context (the conversation is left unchanged).
    Reply ask(const std::string& user, int32_t max_tokens, const std::function<bool(const std::string&)>& on_text = nullptr);

private:
    std::unique_ptr<KVCache> cache_;
    std::unique_ptr<Transformer> tf_;
    const Vocab& vocab_;
    const ChatFormat& fmt_;
    Sampler sampler_;
    std::string system_;
    std::vector<std::pair<std::string, std::string>> turns_;  // (role, content) in the context
    std::vector<std::pair<std::string, std::string>> all_;    // every turn since the last reset
    std::vector<int32_t> cached_;                              // the tokens in the KV cache
    std::vector<int32_t> stops_;
    std::shared_ptr<const CompiledGrammar> grammar_;
    Transformer* draft_ = nullptr;
    SpeculativeParams spec_;
    std::unique_ptr<Sampler> draft_sampler_;
    std::vector<int32_t> draft_cached_;  // the tokens in the draft's cache
};

}  // namespace llmforge
