// Continuations sampled from a model under training (sample_policy.h).
#include "train/sample_policy.h"

#include <algorithm>

#include "llmforge/error.h"
#include "llmforge/grammar.h"
#include "llmforge/sampler.h"
#include "llmforge/train.h"
#include "llmforge/transformer.h"

namespace llmforge {

PolicySamples sample_policy(TrainableModel& tm, ThreadPool& pool, const std::vector<const std::vector<int32_t>*>& prompts, int64_t per_prompt,
                            const std::vector<int32_t>& stops, int64_t max_new, double temperature, uint64_t seed, bool greedy,
                            const std::shared_ptr<const CompiledGrammar>& grammar) {
    const ModelConfig& cfg = tm.config();
    Model m = tm.lora() ? tm.merged_model() : tm.to_model(false);
    const int64_t rows = static_cast<int64_t>(prompts.size()) * per_prompt;
    int64_t longest = 0;
    for (const auto* p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p->size()));
    const int64_t n_ctx = std::min<int64_t>(cfg.n_ctx, longest + max_new);
    Transformer tf(m, pool, n_ctx, 512, DType::F32, static_cast<int>(rows));
    const int64_t V = cfg.n_vocab;
    std::vector<float> logits(static_cast<size_t>(rows * V));
    PolicySamples out;
    std::vector<std::vector<int32_t>>& seq = out.seq;
    std::vector<std::vector<int32_t>>& ans = out.ans;
    seq.resize(static_cast<size_t>(rows));
    ans.resize(static_cast<size_t>(rows));
    for (size_t p = 0; p < prompts.size(); ++p) {
        const std::vector<int32_t>& ids = *prompts[p];
        const int first = static_cast<int>(p * static_cast<size_t>(per_prompt));
        tf.set_seq(first);
        tf.reset();
        const std::vector<float>& l = tf.eval(ids);
        for (int64_t g = 0; g < per_prompt; ++g) {  // the prompt runs once; its cache is copied to the other answers
            if (g > 0) tf.copy_seq(first, first + static_cast<int>(g));
            std::copy(l.begin(), l.end(), logits.begin() + (first + g) * V);
            seq[static_cast<size_t>(first + g)] = ids;
        }
    }
    std::vector<Sampler> samplers;
    for (int64_t r = 0; r < rows; ++r) {
        SamplerParams sp;
        sp.temp = greedy ? 0.0f : static_cast<float>(temperature);
        sp.top_k = 0;
        sp.top_p = 1.0f;
        sp.min_p = 0.0f;
        sp.seed = seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(r);
        samplers.emplace_back(sp);
    }
    std::vector<std::unique_ptr<GrammarConstraint>> gc;
    std::vector<float> masked;
    if (grammar)
        for (int64_t r = 0; r < rows; ++r) gc.push_back(std::make_unique<GrammarConstraint>(grammar));
    out.finished.assign(static_cast<size_t>(rows), 0);
    std::vector<uint8_t> active(static_cast<size_t>(rows), 1);
    std::vector<int32_t> step_seq, step_tok;
    std::vector<float> step_logits;
    for (int64_t k = 0; k < max_new; ++k) {
        step_seq.clear();
        step_tok.clear();
        for (int64_t r = 0; r < rows; ++r) {
            if (!active[static_cast<size_t>(r)]) continue;
            const float* lg = logits.data() + r * V;
            GrammarConstraint* g = grammar ? gc[static_cast<size_t>(r)].get() : nullptr;
            if (g) {  // the grammar's tokens, and the stops where it may end
                masked.resize(static_cast<size_t>(V));
                if (!g->mask(lg, masked.data(), V, stops))
                    throw_runtime("grammar: no token of the vocabulary can continue a roll-out here (expected %s)", g->matcher().expected().c_str());
                lg = masked.data();
            }
            const int32_t t = samplers[static_cast<size_t>(r)].sample(lg, V, seq[static_cast<size_t>(r)]);
            if (g && std::find(stops.begin(), stops.end(), t) == stops.end() && !g->accept(t))
                throw_runtime("grammar: token %d was drawn but the grammar refuses it", t);
            seq[static_cast<size_t>(r)].push_back(t);
            ans[static_cast<size_t>(r)].push_back(t);
            if (std::find(stops.begin(), stops.end(), t) != stops.end()) {
                active[static_cast<size_t>(r)] = 0;
                out.finished[static_cast<size_t>(r)] = 1;
                continue;
            }
            if (static_cast<int64_t>(seq[static_cast<size_t>(r)].size()) >= n_ctx || k + 1 == max_new) {
                active[static_cast<size_t>(r)] = 0;
                continue;
            }
            step_seq.push_back(static_cast<int32_t>(r));
            step_tok.push_back(t);
        }
        if (step_seq.empty()) break;
        const int64_t n = static_cast<int64_t>(step_seq.size());
        step_logits.resize(static_cast<size_t>(n * V));
        tf.decode(step_seq.data(), step_tok.data(), n, step_logits.data());
        for (int64_t i = 0; i < n; ++i) std::copy(step_logits.begin() + i * V, step_logits.begin() + (i + 1) * V, logits.begin() + step_seq[static_cast<size_t>(i)] * V);
    }
    return out;
}

}  // namespace llmforge
