// Choosing the next token from the logits. The chain follows llama.cpp's default order:
// repetition penalty → top-k → top-p → min-p → temperature → draw. Temperature 0 means greedy (argmax).
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace llmforge {

struct SamplerParams {
    float temp = 0.8f;
    int32_t top_k = 40;          // 0: off
    float top_p = 0.95f;         // 1: off
    float min_p = 0.05f;         // 0: off
    float repeat_penalty = 1.0f; // 1: off. A seen token's logit is divided by it if positive, multiplied if negative.
    int32_t repeat_last_n = 64;  // how many recent tokens the penalty looks at (-1: all)
    uint64_t seed = 0;
    std::vector<int32_t> banned;  // tokens never drawn (their logits −inf before the chain), e.g. end of generation for --ignore-eos
    // Throws a bad-input Error naming the field for a value outside its range (NaN included): temp < 0, top_k < 0,
    // top_p or min_p outside [0, 1], repeat_penalty ≤ 0, repeat_last_n < -1. The Sampler checks its parameters so.
    void validate() const;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams& p);
    // history: the tokens so far (prompt and generated), for the repetition penalty.
    int32_t sample(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);
    const SamplerParams& params() const { return p_; }
    // The distribution sample() draws from, over every token: probs[V] (0 for tokens the filters drop; greedy: all of
    // the mass on the argmax). Consumes no randomness.
    void distribution(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history, std::vector<float>& probs);
    // A token drawn from probs[V] (which need not be normalised), and a uniform number in [0, 1), from this sampler's
    // random stream (speculative decoding's acceptance test and residual draws).
    int32_t draw(const float* probs, int64_t n_vocab);
    double uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

private:
    // The chain up to the draw: cands_ holds the surviving tokens with their final probabilities; returns the greedy
    // choice (temperature 0), else −1.
    int32_t chain(const float* logits, int64_t n_vocab, const std::vector<int32_t>& history);
    SamplerParams p_;
    std::mt19937_64 rng_;
    struct Cand { int32_t id; float logit; float p; };
    std::vector<Cand> cands_;
};

}  // namespace llmforge
