// ChatSession: multi-turn chat over the KV cache (see chat_session.h).
#include <algorithm>
#include <chrono>
#include <cmath>

#include "llmforge/chat_session.h"
#include "llmforge/error.h"
#include "llmforge/utf8.h"

namespace llmforge {

namespace {
const Vocab& vocab_of(const Model& model) {
    if (!model.vocab) throw_bad_input("a chat needs the model's tokenizer: '%s' has none", model.path.c_str());
    return *model.vocab;
}
}  // namespace

ChatSession::ChatSession(const Model& model, ThreadPool& pool, const ChatFormat& fmt, const SamplerParams& sampling, const ChatSessionOptions& o)
    : cache_(make_kv_cache(model.config, pool, o.n_ctx, o.n_batch, o.kv_type, 1, o.numerics != Numerics::Ggml)),
      tf_(std::make_unique<Transformer>(model, pool, *cache_, o.n_batch, o.numerics)),
      vocab_(vocab_of(model)),
      fmt_(fmt),
      sampler_(sampling),
      stops_(fmt.stop_tokens()) {}

void ChatSession::set_system(const std::string& text) { system_ = text; }

namespace {
SamplerParams draft_sampling(SamplerParams p) {
    p.seed ^= 0x9e3779b97f4a7c15ULL;  // the draft's own random stream
    return p;
}
}  // namespace

void ChatSession::set_sampling(const SamplerParams& sampling) {
    sampler_ = Sampler(sampling);
    if (draft_) draft_sampler_ = std::make_unique<Sampler>(draft_sampling(sampling));
}

void ChatSession::set_draft(Transformer* draft, const SpeculativeParams& spec) {
    if (draft) {
        spec.validate();
        check_draft(tf_->model(), draft->model());
        if (draft->n_ctx() < tf_->n_ctx())
            throw_bad_input("the draft's context (%lld) is shorter than the chat's (%lld)", static_cast<long long>(draft->n_ctx()),
                            static_cast<long long>(tf_->n_ctx()));
        draft->reset();
        draft_sampler_ = std::make_unique<Sampler>(draft_sampling(sampler_.params()));
    }
    draft_ = draft;
    spec_ = spec;
    draft_cached_.clear();
}

void ChatSession::reset() {
    turns_.clear();
    all_.clear();
}

nlohmann::ordered_json ChatSession::messages() const {
    nlohmann::ordered_json m = nlohmann::ordered_json::array();
    if (!system_.empty()) m.push_back({{"role", "system"}, {"content", system_}});
    for (const auto& [role, content] : turns_) m.push_back({{"role", role}, {"content", content}});
    return m;
}

nlohmann::ordered_json ChatSession::transcript() const {
    nlohmann::ordered_json m = nlohmann::ordered_json::array();
    if (!system_.empty()) m.push_back({{"role", "system"}, {"content", system_}});
    for (const auto& [role, content] : all_) m.push_back({{"role", role}, {"content", content}});
    return m;
}

ChatSession::Reply ChatSession::ask(const std::string& user, int32_t max_tokens, const std::function<bool(const std::string&)>& on_text) {
    using clock = std::chrono::steady_clock;
    Reply r;
    const auto saved = turns_;  // restored if the message cannot fit
    turns_.emplace_back("user", user);
    const int64_t n_ctx = tf_->n_ctx();
    const int64_t reserve = max_tokens < 0 ? std::min<int64_t>(n_ctx / 4, 256) : std::min<int64_t>(max_tokens, n_ctx / 2);
    std::vector<int32_t> ids;
    for (;;) {  // drop the oldest exchanges until the prompt and the answer's room fit
        ids = fmt_.encode_prompt(messages());
        if (static_cast<int64_t>(ids.size()) + reserve <= n_ctx) break;
        if (turns_.size() <= 1) {
            turns_ = saved;
            throw_bad_input("the message is %zu tokens with the template, too long for the context of %lld", ids.size(), static_cast<long long>(n_ctx));
        }
        size_t k = 1;  // the oldest turn and everything up to the next user turn
        while (k < turns_.size() - 1 && turns_[k].first != "user") ++k;
        turns_.erase(turns_.begin(), turns_.begin() + static_cast<long>(k));
        ++r.dropped_turns;
    }
    // keep the cached prefix the new prompt shares; at least one token is run to get logits
    size_t p = 0;
    while (p < cached_.size() && p < ids.size() && cached_[p] == ids[p]) ++p;
    if (p == ids.size()) --p;
    p = static_cast<size_t>(tf_->truncate(static_cast<int64_t>(p)));  // 0 if a sliding-window cache lost the prefix
    cached_.resize(p);
    if (draft_) {  // the draft keeps the prefix it shares too; the first round feeds it the rest
        size_t d = 0;
        while (d < draft_cached_.size() && d < ids.size() && draft_cached_[d] == ids[d]) ++d;
        draft_cached_.resize(static_cast<size_t>(draft_->truncate(static_cast<int64_t>(d))));
    }
    r.prompt_tokens = static_cast<int64_t>(ids.size());
    r.reused_tokens = static_cast<int64_t>(p);
    auto t0 = clock::now();
    const std::vector<float>* logits = &tf_->eval(ids.data() + p, static_cast<int64_t>(ids.size() - p));
    cached_ = ids;
    r.prompt_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    t0 = clock::now();
    const int64_t V = tf_->model().config.n_vocab;
    std::vector<int32_t> history = ids;
    Utf8Stream stream;
    std::unique_ptr<GrammarConstraint> gc;
    std::vector<float> masked;
    if (grammar_) gc = std::make_unique<GrammarConstraint>(grammar_);
    r.stop_reason = "length";
    const bool speculative = draft_ && !gc;
    std::vector<int32_t> queue, round;  // with a draft: the tokens a round decided, emitted one by one
    size_t qi = 0;
    for (int32_t i = 0; max_tokens < 0 || i < max_tokens; ++i) {
        int32_t id;
        if (speculative && qi < queue.size()) {
            id = queue[qi++];
        } else {
            const float* lg = logits->data();
            if (gc) {  // the grammar's tokens, and the end of turn where the grammar may end
                masked.resize(static_cast<size_t>(V));
                if (!gc->mask(lg, masked.data(), V, stops_))
                    throw_runtime("grammar: no token of the vocabulary can continue the answer here (expected %s)", gc->matcher().expected().c_str());
                lg = masked.data();
            }
            id = sampler_.sample(lg, V, history);
        }
        if (std::find(stops_.begin(), stops_.end(), id) != stops_.end()) {
            r.stop_reason = "eos";
            break;
        }
        if (gc && !gc->accept(id)) throw_runtime("grammar: token %d was drawn but the grammar refuses it", id);
        history.push_back(id);
        ++r.tokens;
        const std::string piece = stream.push(vocab_.token_to_piece(id));
        r.text += piece;
        if (on_text && !piece.empty() && !on_text(piece)) {
            r.stop_reason = "stopped";
            break;
        }
        if (gc && (gc->finished() || !gc->matcher().can_continue())) {
            r.stop_reason = "eos";  // the grammar is complete and nothing may follow
            break;
        }
        if (speculative && qi < queue.size()) continue;  // the round's next token is decided already
        if (tf_->n_past() >= n_ctx) {
            r.stop_reason = "context";
            break;
        }
        if (max_tokens >= 0 && i + 1 == max_tokens) break;
        if (speculative) {  // the draft proposes, the model verifies: the next tokens at once
            const int64_t left = max_tokens < 0 ? INT64_MAX : static_cast<int64_t>(max_tokens) - (i + 1);
            speculative_round(*tf_, *draft_, history, left, sampler_, *draft_sampler_, spec_, r.speculative, round);
            queue.swap(round);
            qi = 0;
            continue;
        }
        logits = &tf_->eval(&id, 1);
        cached_.push_back(id);
    }
    if (speculative) {  // the caches keep what was emitted (a stop may leave kept proposals unused)
        const int64_t H = static_cast<int64_t>(history.size());
        cached_.assign(history.begin(), history.begin() + tf_->truncate(std::min(tf_->n_past(), H)));
        draft_cached_.assign(history.begin(), history.begin() + draft_->truncate(std::min(draft_->n_past(), H)));
    }
    if (gc) r.grammar_complete = gc->finished() || gc->can_end();
    const std::string tail = stream.flush();
    if (!tail.empty()) {
        r.text += tail;
        if (on_text) on_text(tail);
    }
    r.gen_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
    turns_.emplace_back("assistant", r.text);
    all_.emplace_back("user", user);
    all_.emplace_back("assistant", r.text);
    return r;
}

}  // namespace llmforge
