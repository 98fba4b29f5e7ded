#include "llmforge/engine.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "llmforge/error.h"
#include "llmforge/utf8.h"

namespace llmforge {

using Clock = std::chrono::steady_clock;

namespace {
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The longest suffix of `text` that is a proper prefix of one of the stop strings (it may still grow into one).
size_t held_suffix(const std::string& text, const std::vector<std::string>& stops) {
    size_t best = 0;
    for (const std::string& s : stops) {
        const size_t most = std::min(text.size(), s.size() - 1);
        for (size_t k = most; k > best; --k)
            if (text.compare(text.size() - k, k, s, 0, k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}
}  // namespace

void Histogram::observe(double v) {
    for (size_t i = 0; i < bounds.size(); ++i)
        if (v <= bounds[i]) ++counts[i];
    ++counts.back();
    sum += v;
}

// What the sequences of one job share.
struct JobState {
    JobPtr job;
    int remaining = 0;  // choices still running
    int64_t completion_tokens = 0;
    bool first_token = false;
};

struct Engine::Seq {
    std::shared_ptr<JobState> st;
    int choice = 0, slot = -1;
    Sampler sampler;
    std::vector<int32_t> history;  // prompt and generated tokens (repetition penalty)
    std::unordered_map<int32_t, int> counts;  // generated tokens (presence / frequency penalties)
    Utf8Stream utf8;
    std::string held;  // text that may be the start of a stop string
    int32_t pending = -1;  // the token to feed at the next step
    int64_t generated = 0;
    bool finished = false;
    Clock::time_point last_token;
    std::vector<float> buf;
    std::unique_ptr<GrammarConstraint> grammar;
    std::string lazy_text;  // a lazy grammar's job: the tail of the answer where its trigger is looked for
    bool lazy_done = false; // the trigger was seen (the grammar then applies, or the answer stays free)
    // speculative decoding: the draft's own sampler, how much of history its cache holds, this step's proposals and
    // their draft distributions
    std::unique_ptr<Sampler> draft_sampler;
    int64_t draft_n = -1;  // −1: its slot's draft cache is not this sequence's yet
    std::vector<int32_t> xs;
    std::vector<std::vector<float>> q;
    explicit Seq(const SamplerParams& p) : sampler(p) {}
};

Engine::Engine(const Model& model, ThreadPool& pool, const EngineOptions& opt, FairMutex* step_mutex)
    : model_(model), pool_(pool), opt_(opt), step_mutex_(step_mutex) {
    if (opt_.n_slots < 1) throw_bad_input("the server needs at least one slot, not %d", opt_.n_slots);
    if (opt_.max_queue < 0) throw_bad_input("the queue length cannot be negative");
    n_ctx_ = opt_.n_ctx > 0 ? opt_.n_ctx : std::min<int64_t>(model.config.n_ctx, 4096);
    if (opt_.prefill_chunk < 1) throw_bad_input("prefill_chunk must be at least 1");
    // a step holds every slot's next token and a chunk of prompt tokens
    n_batch_ = std::max<int64_t>(opt_.n_batch, opt_.n_slots + opt_.prefill_chunk);
    // the slots' KV cache is the engine's; the Transformer runs the forward pass over it
    // (an encoder's cache holds one text's keys while it is embedded: f32, exact)
    kv_ = make_kv_cache(model.config, pool, n_ctx_, n_batch_, model.config.encoder ? KVCacheType(DType::F32) : opt_.kv_type, opt_.n_slots);
    tf_ = std::make_unique<Transformer>(model, pool, *kv_, n_batch_);
    if (opt_.draft) {
        opt_.spec.validate();
        check_draft(model, *opt_.draft);
        if (model.config.sliding_window > 0 || opt_.draft->config.sliding_window > 0)
            throw_bad_input("a draft needs models without sliding-window attention (their caches cannot be cut back)");
        draft_kv_ = make_kv_cache(opt_.draft->config, pool, n_ctx_, n_batch_, opt_.kv_type, opt_.n_slots);
        draft_tf_ = std::make_unique<Transformer>(*opt_.draft, pool, *draft_kv_, n_batch_, Numerics::Fast);
    }
    // Warm-up: one token through the model touches every weight (a mapped file is read in now, not in the first
    // request's time to first token), as llama.cpp's warm-up does.
    {
        const int32_t bos = model.vocab ? std::max(0, model.vocab->bos) : 0;
        const int32_t seq0 = 0;
        if (model.config.encoder) {
            tf_->embed(&bos, 1);
        } else {
            std::vector<float> logits(static_cast<size_t>(model.config.n_vocab));
            tf_->decode(&seq0, &bos, 1, logits.data());
        }
        tf_->reset();
    }
    for (int s = opt_.n_slots - 1; s >= 0; --s) free_slots_.push_back(s);
    stats_.slots_total = opt_.n_slots;
    stats_.kv_cells_total = n_ctx_ * opt_.n_slots;
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() {
    shutdown(true);
}

bool Engine::submit(const JobPtr& job) {
    const ModelConfig& cfg = model_.config;
    if (job->prompt.empty()) throw_bad_input("the prompt is empty");
    if (cfg.encoder && !job->embedding)
        throw_bad_input("this model is an encoder (%s): it serves /v1/embeddings, not completions", cfg.arch.c_str());
    for (int32_t t : job->prompt)
        if (t < 0 || t >= cfg.n_vocab) throw_bad_input("token id %d is outside the vocabulary (0..%lld)", t, static_cast<long long>(cfg.n_vocab - 1));
    if (job->n < 1 || job->n > opt_.n_slots)
        throw_bad_input("n = %d choices: this server decodes at most %d sequences at once", job->n, opt_.n_slots);
    const int64_t room = job->embedding ? n_ctx_ : n_ctx_ - 1;
    if (static_cast<int64_t>(job->prompt.size()) > room)
        throw_bad_input("the prompt is %zu tokens, longer than the context of %lld tokens", job->prompt.size(),
                        static_cast<long long>(room));
    if (job->top_logprobs < 0 || job->top_logprobs > 20) throw_bad_input("top_logprobs must be between 0 and 20");
    job->submitted = Clock::now();
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (!accepting_ || static_cast<int>(queue_.size()) >= opt_.max_queue) return false;
        queue_.push_back(job);
        stats_.queued = static_cast<int>(queue_.size());
    }
    cv_.notify_all();
    return true;
}

void Engine::shutdown(bool cancel) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        accepting_ = false;
        if (cancel) cancel_all_ = true;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

EngineStats Engine::stats() const {
    std::lock_guard<std::mutex> lk(mu_);
    return stats_;
}

void Engine::loop() {
    for (;;) {
        std::vector<std::pair<JobPtr, std::vector<int>>> admit;  // each job with the slots it takes
        std::vector<JobPtr> dropped;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] {
                return stop_ || !active_.empty() || !prefill_.empty() || (!queue_.empty() && static_cast<int>(free_slots_.size()) >= queue_.front()->n);
            });
            if (cancel_all_) {
                dropped.assign(queue_.begin(), queue_.end());
                queue_.clear();
            }
            while (!queue_.empty() && static_cast<int>(free_slots_.size()) >= queue_.front()->n) {
                std::vector<int> slots;
                for (int i = 0; i < queue_.front()->n; ++i) {
                    slots.push_back(free_slots_.back());
                    free_slots_.pop_back();
                }
                stats_.slots_busy += queue_.front()->n;
                stats_.queue_wait.observe(seconds_since(queue_.front()->submitted));
                admit.emplace_back(queue_.front(), std::move(slots));
                queue_.pop_front();
            }
            stats_.queued = static_cast<int>(queue_.size());
            if (stop_ && queue_.empty() && active_.empty() && prefill_.empty() && admit.empty() && dropped.empty()) break;
        }
        for (const JobPtr& j : dropped) {
            {
                std::lock_guard<std::mutex> lk(mu_);
                ++stats_.jobs_cancelled;
            }
            if (j->on_finish)
                for (int c = 0; c < j->n; ++c) j->on_finish(c, "cancelled");
            if (j->on_done) j->on_done(0, 0, "the server is shutting down");
        }
        for (auto& [j, slots] : admit) start(j, slots);
        if (cancel_all_)
            for (auto& s : active_)
                if (!s->finished) finish(*s, "cancelled");
        step();
    }
}

// Takes the job's slots, runs its prompt once, copies the cache to the other choices' slots and samples every choice's
// first token from the prompt's logits.
void Engine::start(const JobPtr& job, const std::vector<int>& slots) {
    auto give_back = [&](const std::string& error, bool cancelled) {
        {
            std::lock_guard<std::mutex> lk(mu_);
            for (int s : slots) free_slots_.push_back(s);
            stats_.slots_busy -= job->n;
            if (cancelled) ++stats_.jobs_cancelled;
            else if (!error.empty()) ++stats_.jobs_failed;
            else ++stats_.jobs_done;
        }
        cv_.notify_all();
    };
    auto finish_all = [&](const char* reason) {
        if (job->on_finish)
            for (int c = 0; c < job->n; ++c) job->on_finish(c, reason);
    };
    if (job->cancelled || cancel_all_) {
        give_back("", true);
        finish_all("cancelled");
        if (job->on_done) job->on_done(0, 0, "cancelled");
        return;
    }
    if (job->timeout_s > 0 && seconds_since(job->submitted) > job->timeout_s) {
        give_back("timeout", false);
        finish_all("timeout");
        if (job->on_done) job->on_done(0, 0, "the request timed out while queued");
        return;
    }
    try {
        tf_->set_seq(slots[0]);
        tf_->reset();
        if (job->embedding) {
            std::unique_lock<FairMutex> step_lock;
            if (step_mutex_) step_lock = std::unique_lock<FairMutex>(*step_mutex_);
            const std::vector<float>& h = tf_->embed(job->prompt.data(), static_cast<int64_t>(job->prompt.size()));
            const int64_t n = static_cast<int64_t>(job->prompt.size());
            const std::vector<float> e = pool_embedding(model_.config, h.data(), n);
            tf_->reset();
            step_lock = {};
            {
                std::lock_guard<std::mutex> lk(mu_);
                stats_.prompt_tokens += static_cast<uint64_t>(n);
            }
            give_back("", false);
            if (job->on_embedding) job->on_embedding(e);
            if (job->on_done) job->on_done(n, 0, "");
            return;
        }
        // a generation job: its prompt rides along with the next steps (Engine::step), in chunks
        prefill_.push_back(Prefill{job, slots, 0});
    } catch (const std::exception& e) {
        give_back(e.what(), false);
        finish_all("error");
        if (job->on_done) job->on_done(0, 0, e.what());
        return;
    }
}

// A job whose prompt has not run to its end leaves (cancelled, timed out, failed): its slots come back.
void Engine::drop_prefill(const Prefill& p, const std::string& reason, const std::string& error) {
    const JobPtr& job = p.job;
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (int s : p.slots) free_slots_.push_back(s);
        stats_.slots_busy -= job->n;
        stats_.kv_cells_used -= static_cast<int64_t>(p.done);
        if (reason == "cancelled") ++stats_.jobs_cancelled;
        else if (reason == "timeout") ++stats_.jobs_timed_out;
        else ++stats_.jobs_failed;
    }
    cv_.notify_all();
    if (job->on_finish)
        for (int c = 0; c < job->n; ++c) job->on_finish(c, reason);
    if (job->on_done)
        job->on_done(0, 0, !error.empty() ? error : reason == "timeout" ? "the request timed out before its first token" : "cancelled");
}

// The prompt has run: the other choices' slots get a copy of its cache, every choice samples its first token.
void Engine::begin_choices(const Prefill& p, const float* logits) {
    const JobPtr& job = p.job;
    for (size_t i = 1; i < p.slots.size(); ++i) tf_->copy_seq(p.slots[0], p.slots[i]);
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.kv_cells_used += static_cast<int64_t>(job->prompt.size()) * (job->n - 1);
    }
    auto st = std::make_shared<JobState>();
    st->job = job;
    st->remaining = job->n;
    for (int c = 0; c < job->n; ++c) {
        SamplerParams sp = job->sampling;
        sp.seed += static_cast<uint64_t>(c);
        auto s = std::make_unique<Seq>(sp);
        s->st = st;
        s->choice = c;
        s->slot = p.slots[static_cast<size_t>(c)];
        s->history = job->prompt;
        s->last_token = Clock::now();
        Seq& ref = *s;
        active_.push_back(std::move(s));
        emit_token(ref, pick(ref, logits), logits);
    }
}

int32_t Engine::pick(Seq& s, const float* logits) {
    const Job& j = *s.st->job;
    const int64_t V = model_.config.n_vocab;
    const bool penalties = (j.presence_penalty != 0 || j.frequency_penalty != 0) && !s.counts.empty();
    const bool lazy = j.grammar && !j.grammar_trigger.empty();
    const bool constrained = j.grammar && (!lazy || s.grammar);
    if (penalties || !j.logit_bias.empty() || constrained) {
        s.buf.assign(logits, logits + V);
        if (penalties)
            for (const auto& [id, c] : s.counts) s.buf[static_cast<size_t>(id)] -= j.frequency_penalty * static_cast<float>(c) + j.presence_penalty;
        for (const auto& [id, bias] : j.logit_bias)
            if (id >= 0 && id < V) s.buf[static_cast<size_t>(id)] = bias <= -100 ? -INFINITY : s.buf[static_cast<size_t>(id)] + bias;
        if (constrained) {
            if (!s.grammar) s.grammar = std::make_unique<GrammarConstraint>(j.grammar);
            // the answer's own end tokens (a chat template's end of turn) too where the grammar may end; with
            // ignore_eos, the end only where nothing else is left (none allowed: pick() reports it)
            s.grammar->mask(s.buf.data(), s.buf.data(), V, j.stop_tokens);
            if (j.ignore_eos && s.grammar->matcher().can_continue())
                for (int32_t e : j.grammar->vocab().end_tokens()) s.buf[static_cast<size_t>(e)] = -INFINITY;
        }
        logits = s.buf.data();
    }
    int32_t id = s.sampler.sample(logits, V, s.history);
    if (s.grammar) {
        if (!std::isfinite(logits[id])) return -1;  // nothing allowed: no token of the vocabulary continues the grammar
        if (std::find(j.stop_tokens.begin(), j.stop_tokens.end(), id) == j.stop_tokens.end()) s.grammar->accept(id);
    } else if (lazy && !s.lazy_done && id >= 0 && id < j.grammar->vocab().size()) {
        s.lazy_text += j.grammar->vocab().bytes(id);
        const size_t at = s.lazy_text.find(j.grammar_trigger);
        if (at != std::string::npos) {
            s.lazy_done = true;
            auto g = std::make_unique<GrammarConstraint>(j.grammar);
            if (g->accept_text(std::string_view(s.lazy_text).substr(at))) s.grammar = std::move(g);
            s.lazy_text.clear();
        } else if (s.lazy_text.size() >= j.grammar_trigger.size()) {  // keep only what could begin the trigger
            s.lazy_text.erase(0, s.lazy_text.size() - (j.grammar_trigger.size() - 1));
        }
    }
    return id;
}

void Engine::emit_token(Seq& s, int32_t id, const float* logits) {
    const Job& j = *s.st->job;
    const Vocab& vocab = *model_.vocab;
    const double now_gap = seconds_since(s.last_token);
    s.last_token = Clock::now();
    ++s.st->completion_tokens;
    {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.generated_tokens;
        if (!s.st->first_token) stats_.ttft.observe(seconds_since(j.submitted));
        else if (s.generated > 0) stats_.inter_token.observe(now_gap);
    }
    s.st->first_token = true;
    const bool end = !j.ignore_eos && (vocab.is_eog(id) || std::find(j.stop_tokens.begin(), j.stop_tokens.end(), id) != j.stop_tokens.end());
    if (end) {
        finish(s, "stop");
        return;
    }
    ++s.generated;
    s.history.push_back(id);
    ++s.counts[id];

    TokenEvent ev;
    ev.choice = s.choice;
    ev.id = id;
    if (j.logprobs) {
        const int64_t V = model_.config.n_vocab;
        float mx = -INFINITY;
        for (int64_t i = 0; i < V; ++i) mx = std::max(mx, logits[i]);
        double sum = 0;
        for (int64_t i = 0; i < V; ++i) sum += std::exp(static_cast<double>(logits[i] - mx));
        const double lse = static_cast<double>(mx) + std::log(sum);
        ev.chosen = {id, vocab.token_to_piece(id, true), static_cast<float>(logits[id] - lse)};
        if (j.top_logprobs > 0) {
            std::vector<int32_t>& idx = top_idx_;
            idx.resize(static_cast<size_t>(V));
            for (int64_t i = 0; i < V; ++i) idx[static_cast<size_t>(i)] = static_cast<int32_t>(i);
            const auto k = static_cast<std::ptrdiff_t>(std::min<int64_t>(j.top_logprobs, V));
            std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                              [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
            for (std::ptrdiff_t i = 0; i < k; ++i)
                ev.top.push_back({idx[static_cast<size_t>(i)], vocab.token_to_piece(idx[static_cast<size_t>(i)], true),
                                  static_cast<float>(logits[idx[static_cast<size_t>(i)]] - lse)});
        }
    }
    // Text: complete UTF-8 characters only, and never a part that may belong to a stop string.
    std::string text = s.held + s.utf8.push(vocab.token_to_piece(id));
    s.held.clear();
    bool stopped = false;
    if (!j.stop.empty()) {
        size_t cut = std::string::npos;
        for (const std::string& st : j.stop)
            if (!st.empty()) cut = std::min(cut, text.find(st));
        if (cut != std::string::npos) {
            text.resize(cut);
            stopped = true;
        } else {
            const size_t h = held_suffix(text, j.stop);
            s.held = text.substr(text.size() - h);
            text.resize(text.size() - h);
        }
    }
    ev.text = std::move(text);
    if (j.on_token) j.on_token(ev);
    if (stopped) {
        s.held.clear();
        s.utf8 = Utf8Stream();
        finish(s, "stop");
    } else if (s.grammar && !s.grammar->matcher().can_continue()) {
        finish(s, "stop");  // the grammar is complete and nothing may follow
    } else if (j.max_tokens >= 0 && s.generated >= j.max_tokens) {
        finish(s, "length");
    } else if (tf_->n_past_of(s.slot) >= n_ctx_) {
        finish(s, "length");  // no room to feed this token
    } else {
        s.pending = id;
    }
}

void Engine::finish(Seq& s, const std::string& reason, const std::string& error) {
    if (s.finished) return;
    s.finished = true;
    s.pending = -1;
    const Job& j = *s.st->job;
    if (reason != "cancelled" && reason != "error") {  // what was held back (an unfinished character, a partial stop string) is text after all
        std::string rest = s.held + s.utf8.flush();
        if (!rest.empty() && j.on_token) {
            TokenEvent ev;
            ev.choice = s.choice;
            ev.id = -1;
            ev.text = std::move(rest);
            j.on_token(ev);
        }
    }
    if (j.on_finish) j.on_finish(s.choice, reason);
    const bool last = --s.st->remaining == 0;
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.kv_cells_used -= tf_->n_past_of(s.slot);
        free_slots_.push_back(s.slot);
        --stats_.slots_busy;
        if (last) {
            if (reason == "cancelled") ++stats_.jobs_cancelled;
            else if (reason == "timeout") ++stats_.jobs_timed_out;
            else if (reason == "error") ++stats_.jobs_failed;
            else ++stats_.jobs_done;
        }
    }
    if (last && j.on_done) j.on_done(static_cast<int64_t>(j.prompt.size()), s.st->completion_tokens, error);
    cv_.notify_all();
}

void Engine::release_finished() {
    active_.erase(std::remove_if(active_.begin(), active_.end(), [](const std::unique_ptr<Seq>& s) { return s->finished; }), active_.end());
}

// A sequence's proposals for this step (none where the draft does not apply to its job): the draft's cache catches
// up with the history (its pending token included), then proposes one token at a time, each from the draft's
// sampling distribution, until draft_max, the rows left in the step, the context or the job's max_tokens.
void Engine::propose(Seq& s, int64_t spare) {
    const Job& j = *s.st->job;
    if (j.grammar || !j.logit_bias.empty() || j.presence_penalty != 0 || j.frequency_penalty != 0) return;
    if (!s.draft_sampler) {
        SamplerParams dp = s.sampler.params();
        dp.seed ^= 0x9e3779b97f4a7c15ULL;  // the draft's own random stream
        s.draft_sampler = std::make_unique<Sampler>(dp);
    }
    const int64_t room = n_ctx_ - tf_->n_past_of(s.slot) - 1;  // after the pending token
    const int64_t left = j.max_tokens < 0 ? INT64_MAX : j.max_tokens - s.generated - 1;
    const int64_t n_max = std::min<int64_t>({opt_.spec.draft_max, spare, room, left});
    if (n_max <= 0) return;
    Transformer& d = *draft_tf_;
    d.set_seq(s.slot);
    if (s.draft_n < 0) {  // the slot's draft cache held another sequence
        d.reset();
        s.draft_n = 0;
    }
    const int64_t V = model_.config.n_vocab, H = static_cast<int64_t>(s.history.size());
    const std::vector<float>* dl = &d.eval(s.history.data() + s.draft_n, H - s.draft_n);
    s.draft_n = H;
    std::vector<int32_t> h = s.history;
    const bool greedy = s.sampler.params().temp <= 0;
    for (int64_t i = 0; i < n_max; ++i) {
        std::vector<float> qi;
        s.draft_sampler->distribution(dl->data(), V, h, qi);
        const int32_t x = greedy ? static_cast<int32_t>(std::max_element(qi.begin(), qi.end()) - qi.begin()) : s.draft_sampler->draw(qi.data(), V);
        if (opt_.spec.draft_min_p > 0) {  // the draft is unsure: stop here
            const float* z = dl->data();
            const float mx = *std::max_element(z, z + V);
            double sum = 0;
            for (int64_t k = 0; k < V; ++k) sum += std::exp(static_cast<double>(z[k] - mx));
            if (std::exp(static_cast<double>(z[x] - mx)) / sum < opt_.spec.draft_min_p) break;
        }
        s.xs.push_back(x);
        s.q.push_back(std::move(qi));
        h.push_back(x);
        if (i + 1 < n_max) {
            dl = &d.eval(&x, 1);
            ++s.draft_n;
        }
    }
}

// The step's rows for a drafting sequence: l holds its pending token's logits and then each proposal's. The rule
// keeps a prefix of the proposals and draws the token after it; they are emitted in order (until one ends the
// answer), and both caches are cut back to the kept history.
void Engine::verify(Seq& s, const float* l) {
    const int64_t V = model_.config.n_vocab, n = static_cast<int64_t>(s.xs.size());
    std::vector<std::vector<float>> p(static_cast<size_t>(n + 1));
    std::vector<int32_t> h = s.history;
    for (int64_t i = 0; i <= n; ++i) {
        s.sampler.distribution(l + i * V, V, h, p[static_cast<size_t>(i)]);
        if (i < n) h.push_back(s.xs[static_cast<size_t>(i)]);
    }
    int32_t next = -1;
    const int64_t a = speculative_accept(p, s.q, s.xs, s.sampler, &next);
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.draft_proposed += static_cast<uint64_t>(n);
        stats_.draft_accepted += static_cast<uint64_t>(a);
    }
    // first the caches: the target keeps the history (its pending token included) and the kept proposals, the draft
    // at most that; then the tokens, in order, until one ends the answer
    const int64_t keep = static_cast<int64_t>(s.history.size()) + a;
    tf_->set_seq(s.slot);
    const int64_t before = tf_->n_past();
    tf_->truncate(keep);
    {
        std::lock_guard<std::mutex> lk(mu_);
        stats_.kv_cells_used -= before - tf_->n_past();
    }
    draft_tf_->set_seq(s.slot);
    if (draft_tf_->n_past() > keep) draft_tf_->truncate(keep);
    s.draft_n = draft_tf_->n_past();
    for (int64_t i = 0; i <= a && !s.finished; ++i) {
        s.pending = -1;
        emit_token(s, i < a ? s.xs[static_cast<size_t>(i)] : next, l + i * V);
    }
}

void Engine::step() {
    for (auto& s : active_) {
        if (s->finished) continue;
        const Job& j = *s->st->job;
        if (j.cancelled) finish(*s, "cancelled");
        else if (j.timeout_s > 0 && seconds_since(j.submitted) > j.timeout_s) finish(*s, "timeout");
    }
    release_finished();
    for (auto it = prefill_.begin(); it != prefill_.end();) {
        const Job& j = *it->job;
        const bool cancelled = j.cancelled || cancel_all_, late = j.timeout_s > 0 && seconds_since(j.submitted) > j.timeout_s;
        if (!cancelled && !late) {
            ++it;
            continue;
        }
        const Prefill p = *it;
        it = prefill_.erase(it);
        drop_prefill(p, cancelled ? "cancelled" : "timeout");
    }
    // The rows of this step: every running sequence's next token, then prompt tokens of the jobs being admitted, in
    // order, up to prefill_chunk of them (a long prompt takes several steps, so running streams keep flowing).
    std::vector<int32_t>& seqs = step_seqs_;
    std::vector<int32_t>& toks = step_toks_;
    std::vector<uint8_t>& want = step_want_;
    seqs.clear();
    toks.clear();
    want.clear();
    std::vector<Seq*> run;
    for (auto& s : active_)
        if (!s->finished && s->pending >= 0) run.push_back(s.get());
    std::unique_lock<FairMutex> step_lock;
    if (step_mutex_) step_lock = std::unique_lock<FairMutex>(*step_mutex_);
    // with a draft: each sequence's proposals, within the step's rows
    int64_t spare = n_batch_ - static_cast<int64_t>(run.size());
    for (Seq* s : run) {
        s->xs.clear();
        s->q.clear();
        if (draft_tf_ && spare > 0) propose(*s, spare);
        spare -= static_cast<int64_t>(s->xs.size());
        seqs.push_back(s->slot);
        toks.push_back(s->pending);
        want.push_back(1);
        for (int32_t x : s->xs) {
            seqs.push_back(s->slot);
            toks.push_back(x);
            want.push_back(1);
        }
    }
    struct Chunk {
        size_t index;  // in prefill_
        size_t take;
        bool last;     // the prompt's end: its logits are wanted
    };
    std::vector<Chunk> chunks;
    int64_t budget = std::min<int64_t>(opt_.prefill_chunk, n_batch_ - static_cast<int64_t>(seqs.size()));
    for (size_t i = 0; i < prefill_.size() && budget > 0; ++i) {
        Prefill& p = prefill_[i];
        const size_t take = std::min<size_t>(static_cast<size_t>(budget), p.job->prompt.size() - p.done);
        for (size_t t = 0; t < take; ++t) {
            seqs.push_back(p.slots[0]);
            toks.push_back(p.job->prompt[p.done + t]);
            want.push_back(0);
        }
        const bool last = p.done + take == p.job->prompt.size();
        if (last) want.back() = 1;
        chunks.push_back({i, take, last});
        budget -= static_cast<int64_t>(take);
    }
    if (seqs.empty()) return;
    const int64_t V = model_.config.n_vocab, n = static_cast<int64_t>(seqs.size());
    int64_t n_out = 0;
    for (uint8_t w : want) n_out += w;
    std::vector<float>& logits = step_logits_;
    logits.resize(static_cast<size_t>(n_out * V));
    try {
        tf_->decode(seqs.data(), toks.data(), n, logits.data(), want.data());
    } catch (const std::exception& e) {
        // Nothing in the batch can go on (this is a bug or out of memory): end every sequence, saying why.
        for (Seq* s : run) finish(*s, "error", e.what());
        release_finished();
        std::vector<Prefill> failed;
        for (const Chunk& c : chunks) failed.push_back(prefill_[c.index]);
        prefill_.erase(prefill_.begin(), prefill_.begin() + static_cast<std::ptrdiff_t>(chunks.size()));
        for (const Prefill& p : failed) drop_prefill(p, "error", e.what());
        return;
    }
    size_t prompt_rows = 0;
    for (const Chunk& c : chunks) prompt_rows += c.take;
    {
        std::lock_guard<std::mutex> lk(mu_);
        ++stats_.decode_steps;
        stats_.kv_cells_used += n;
        stats_.prompt_tokens += prompt_rows;
    }
    int64_t out = 0;  // logits rows used
    for (Seq* sp : run) {
        Seq& s = *sp;
        s.pending = -1;
        const float* l = logits.data() + out * V;
        const int64_t rows = 1 + static_cast<int64_t>(s.xs.size());
        out += rows;
        if (!s.draft_sampler) {
            emit_token(s, pick(s, l), l);
            continue;
        }
        verify(s, l);
    }
    // prompts that reached their end start their choices (the chunks are the first entries of prefill_, in order)
    std::vector<Prefill> done;
    for (const Chunk& c : chunks) {
        Prefill& p = prefill_[c.index];
        p.done += c.take;
        if (c.last) done.push_back(p);
    }
    prefill_.erase(std::remove_if(prefill_.begin(), prefill_.end(), [](const Prefill& p) { return p.done == p.job->prompt.size(); }), prefill_.end());
    for (const Prefill& p : done) begin_choices(p, logits.data() + (out++) * V);
    release_finished();
}

}  // namespace llmforge
