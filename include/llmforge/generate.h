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

// Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a small draft model proposes tokens, the target
// checks them all in one batched pass and keeps a prefix by rejection sampling, so that every token still follows the
// target's distribution exactly (greedy: the target's argmax, token for token).
struct SpeculativeParams {
    int32_t draft_max = 16;     // the most tokens the draft proposes in a round
    float draft_min_p = 0.75f;  // a round's drafting stops at a token the draft itself gives less than this probability
    void validate() const;
};

struct SpeculativeStats {
    int64_t rounds = 0, drafted = 0, accepted = 0;  // target passes, tokens proposed, tokens kept
    double acceptance() const { return drafted ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0.0; }
};

// One round's decision from the target's distributions p[0..n] (rows of V: after each drafted prefix) and the
// draft's q[0..n) with its tokens x[0..n): x_i is kept with probability min(1, p_i(x_i) / q_i(x_i)) (u_i < p/q, u_i
// drawn from `sampler`); at the first rejection the next token is drawn from max(0, p_i − q_i) renormalised, and if
// all n are kept, from p_n. Returns the number kept; *next is the token after them. Every token it emits is therefore
// distributed as under p alone.
int64_t speculative_accept(const std::vector<std::vector<float>>& p, const std::vector<std::vector<float>>& q, const std::vector<int32_t>& x,
                           Sampler& sampler, int32_t* next);

// One round over caches the caller keeps: `history` holds every token so far, its last one `pending` — emitted, not yet
// run by the target, whose cache holds the rest (tf.n_past() == history.size() − 1); the draft's cache holds a prefix of
// history (it catches up first). The draft proposes up to min(draft_max, max_new − 1) tokens (fewer where the target's
// context ends), the target verifies them in one pass, and `out` receives the kept proposals and then the token drawn
// after them (1 to max_new tokens, to be emitted in order). Afterwards the target's cache holds history and the kept
// proposals — all of `out` but its last token — and the draft's a prefix of that. max_new ≥ 1; the target needs room
// for at least one more position.
void speculative_round(Transformer& tf, Transformer& draft, const std::vector<int32_t>& history, int64_t max_new, Sampler& sampler,
                       Sampler& draft_sampler, const SpeculativeParams& spec, SpeculativeStats& stats, std::vector<int32_t>& out);

struct GenerateResult {
    std::vector<int32_t> prompt_tokens, tokens;
    std::string text;
    std::string stop_reason;  // "eos", "length", "context", "stopped"
    bool grammar_complete = false;  // with a grammar: the text is a whole sentence of it (false: cut off first)
    double prompt_ms = 0, gen_ms = 0;
    SpeculativeStats speculative;   // with a draft
};

// on_text receives each printable piece; returning false stops generation.
GenerateResult generate(Transformer& tf, const Vocab& vocab, const std::string& prompt, const GenerateParams& params,
                        const std::function<bool(const std::string&)>& on_text = nullptr);

// The same with a draft model proposing tokens for the target `tf` to verify. The draft must share the target's
// vocabulary (a bad-input Error otherwise) and have a context at least as long. Not with a grammar. For greedy output
// identical to generate()'s, give the target batch-invariant numerics: its batched verification then computes each
// position's logits bit for bit as one-token passes do.
GenerateResult generate_speculative(Transformer& tf, Transformer& draft, const Vocab& vocab, const std::string& prompt, const GenerateParams& params,
                                    const SpeculativeParams& spec, const std::function<bool(const std::string&)>& on_text = nullptr);
// Bad input unless the draft can propose tokens for the target: the same vocabulary size and, where both carry a
// tokenizer, the same pieces.
void check_draft(const Model& target, const Model& draft);

}  // namespace llmforge
