// Continuations sampled from a model under training, with the KV-cache Transformer (several sequences decoded
// together): the roll-outs of RL (rl.cpp) and the student's own sequences of on-policy distillation (distill.cpp).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace llmforge {

class TrainableModel;
class ThreadPool;
class CompiledGrammar;

struct PolicySamples {
    std::vector<std::vector<int32_t>> seq;  // per row: its prompt and what was drawn
    std::vector<std::vector<int32_t>> ans;  // per row: what was drawn (with the stop token, if one ended it)
    std::vector<uint8_t> finished;          // per row: ended with a stop token (else cut at max_new or the context)
};

// Rows p·per_prompt … p·per_prompt + per_prompt − 1 continue prompts[p] (its cache is run once and copied to them). Each
// row draws up to max_new tokens at `temperature` (greedy: the most likely) with its own sampler seeded from (seed,
// row), stopping at a stop token or the model's context. grammar (or null): every continuation follows it; the stops
// are allowed where it may end. The weights are the model's current ones (its adapters merged).
PolicySamples sample_policy(TrainableModel& tm, ThreadPool& pool, const std::vector<const std::vector<int32_t>*>& prompts, int64_t per_prompt,
                            const std::vector<int32_t>& stops, int64_t max_new, double temperature, uint64_t seed, bool greedy,
                            const std::shared_ptr<const CompiledGrammar>& grammar);

}  // namespace llmforge
