#include "llmforge/generate.h"

#include <chrono>
#include <cmath>

#include "infer/emit.h"
#include "llmforge/error.h"
#include "llmforge/utf8.h"

namespace llmforge {

GenerateResult generate(Transformer& tf, const Vocab& vocab, const std::string& prompt, const GenerateParams& params,
                        const std::function<bool(const std::string&)>& on_text) {
    using clock = std::chrono::steady_clock;
    GenerateResult r;
    r.prompt_tokens = vocab.encode(prompt, params.add_special, params.parse_special);
    if (r.prompt_tokens.empty()) throw_bad_input("the prompt is empty");
    const int64_t room = tf.n_ctx() - tf.n_past();
    if (static_cast<int64_t>(r.prompt_tokens.size()) > room)
        throw_bad_input("the prompt is %zu tokens, longer than the context of %lld tokens", r.prompt_tokens.size(),
                        static_cast<long long>(room));
    std::vector<int32_t> history = r.prompt_tokens;
    Sampler sampler(params.sampling);
    TokenEmitter out{vocab, r, history, on_text, {}};
    const int64_t V = tf.model().config.n_vocab;

    std::unique_ptr<GrammarConstraint> constraint;
    std::vector<float> masked;
    if (params.grammar) {
        if (params.grammar->vocab().size() > V) throw_bad_input("grammar: compiled for a vocabulary of %d tokens, the model has %lld",
                                                                  params.grammar->vocab().size(), static_cast<long long>(V));
        constraint = std::make_unique<GrammarConstraint>(params.grammar);
    }
    // The next token: with a grammar, drawn from the allowed ones (the mask first, then the sampling chain, as
    // llama.cpp does). Greedy decoding tries the unconstrained choice first: if the grammar takes it, it is the
    // argmax of the allowed tokens too.
    auto next_token = [&](const float* lg) {
        if (!constraint) return sampler.sample(lg, V, history);
        if (params.sampling.temp <= 0) {
            const int32_t best = sampler.sample(lg, V, history);
            if (vocab.is_eog(best) ? constraint->can_end() : constraint->matcher_can_take(best)) return best;
        }
        masked.resize(static_cast<size_t>(V));
        if (!constraint->mask(lg, masked.data(), V))
            throw_runtime("grammar: no token of the vocabulary can continue the text here (expected %s)",
                          constraint->matcher().expected().c_str());
        return sampler.sample(masked.data(), V, history);
    };

    auto t0 = clock::now();
    const std::vector<float>* logits = &tf.eval(r.prompt_tokens);
    r.prompt_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    t0 = clock::now();
    r.stop_reason = "length";
    for (int32_t i = 0; params.n_predict < 0 || i < params.n_predict; ++i) {
        const int32_t id = next_token(logits->data());
        if (constraint && !constraint->accept(id))
            throw_runtime("grammar: token %d was drawn but the grammar refuses it", id);  // a bug, never bad input
        if (!out.emit(id)) break;
        if (params.n_predict >= 0 && i + 1 == params.n_predict) break;  // no need to run the last token
        if (tf.n_past() >= tf.n_ctx()) { r.stop_reason = "context"; break; }
        logits = &tf.eval(&id, 1);
    }
    out.finish();
    r.gen_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    if (constraint) r.grammar_complete = constraint->finished() || constraint->can_end();
    return r;
}

}  // namespace llmforge
