// The serving engine: continuous batching over a fixed set of KV-cache slots.
//
// Requests (jobs) wait in a bounded queue. Between decoding steps the engine admits as many as there are free slots
// (a job with n choices takes n slots). Each step is one forward pass (Transformer::decode: the weights are streamed
// once for everything in it) over every running sequence's next token plus up to prefill_chunk tokens of the prompts
// being admitted, oldest first: a prompt rides along with the decoding in chunks (chunked prefill), so running streams
// are not held up while it runs and its tokens cost no extra pass over the weights. When a prompt's last chunk has run,
// its choices share its cache by copying it and sample their first tokens. A finished, cancelled or timed-out sequence
// frees its slot at once. Each sequence's tokens are exactly those it would get alone: every row of decode() is
// computed the same whatever else is in the step (batch-invariant products, per-row attention), and a prompt's chunks
// depend only on its length, so greedy output does not depend on the load.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/threadpool.h"
#include "llmforge/model.h"
#include "llmforge/generate.h"
#include "llmforge/grammar.h"
#include "llmforge/sampler.h"
#include "llmforge/transformer.h"

namespace llmforge {

struct TokenLogprob {
    int32_t id = 0;
    std::string bytes;  // the token's bytes (may be part of a UTF-8 character)
    float logprob = 0;
};

// One generated token of one choice.
struct TokenEvent {
    int choice = 0;
    int32_t id = 0;
    std::string text;            // text released by this token: complete UTF-8, not part of a possible stop string
    TokenLogprob chosen;         // with logprobs
    std::vector<TokenLogprob> top;
};

struct Job {
    // --- what to do
    std::vector<int32_t> prompt;      // completion jobs
    int n = 1;                        // choices (each takes a slot)
    int32_t max_tokens = -1;          // < 0: until the context is full
    SamplerParams sampling;           // temp, top_p, top_k, min_p, repeat penalty, seed (choice i uses seed + i)
    float presence_penalty = 0, frequency_penalty = 0;  // OpenAI's, over the tokens generated so far
    std::vector<std::pair<int32_t, float>> logit_bias;  // OpenAI's: (token, bias) added to the logits; bias ≤ -100 bans it
    std::vector<std::string> stop;    // stop strings (not included in the text)
    std::vector<int32_t> stop_tokens; // tokens that end the answer besides the vocabulary's end of generation
    bool ignore_eos = false;
    // Constrained decoding: every token drawn from those the grammar allows; the answer ends ("stop") once the
    // grammar is complete and nothing more may follow. Its vocabulary must be the model's.
    std::shared_ptr<const CompiledGrammar> grammar;
    // A lazy grammar (llama.cpp's grammar triggers): with a trigger, the answer is free until the trigger appears in
    // it, and follows the grammar from the trigger on (the grammar's sentences begin with it), e.g. "<tool_call>".
    // If the text from the trigger on does not fit the grammar, the answer stays free.
    std::string grammar_trigger;
    bool logprobs = false;
    int top_logprobs = 0;
    bool embedding = false;           // an embedding job: mean-pooled, L2-normalised final hidden states of `prompt`
    double timeout_s = 0;             // > 0: finish with "timeout" after this long (queue time included)

    // --- events, called on the engine's thread (they must not block)
    std::function<void(const TokenEvent&)> on_token;
    // finish_reason: "stop" (end of turn or a stop string), "length" (max_tokens or the context), "cancelled", "timeout"
    std::function<void(int choice, const std::string& finish_reason)> on_finish;
    std::function<void(const std::vector<float>& embedding)> on_embedding;
    // Called once, last: usage counts, or error non-empty if the job could not run.
    std::function<void(int64_t prompt_tokens, int64_t completion_tokens, const std::string& error)> on_done;

    std::atomic<bool> cancelled{false};  // set by anyone (client gone); the engine frees the job's slots

    // --- kept by the engine
    std::chrono::steady_clock::time_point submitted;
};
using JobPtr = std::shared_ptr<Job>;

struct EngineOptions {
    int n_slots = 4;          // sequences decoded together at most
    int64_t n_ctx = 0;        // cells per slot (0: the model's context, at most 4096)
    int64_t n_batch = 512;    // rows per forward pass at most (embedding prompts run in passes of this many tokens)
    int64_t prefill_chunk = 64;   // prompt tokens that ride along with one decoding step at most
    KVCacheType kv_type = DType::F16;
    int max_queue = 64;       // jobs waiting beyond this are refused (submit() returns false)
    // Speculative decoding (generate.h): each running sequence's draft proposes up to spec.draft_max tokens, which
    // its row of the step verifies together with its pending token; what is kept follows the model's distribution
    // (greedy: its very tokens). Sequences under a grammar, logit biases or presence/frequency penalties decode
    // without it. The draft (same tokenizer) must outlive the engine.
    const Model* draft = nullptr;
    SpeculativeParams spec;
};

// Counters for /metrics. Histograms are cumulative bucket counts over fixed bounds (seconds).
struct Histogram {
    std::vector<double> bounds;
    std::vector<uint64_t> counts;  // counts[i]: observations ≤ bounds[i]; counts.back(): all (+Inf)
    double sum = 0;
    void observe(double v);
    explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
};

struct EngineStats {
    int slots_total = 0, slots_busy = 0, queued = 0;
    int64_t kv_cells_total = 0, kv_cells_used = 0;
    uint64_t jobs_done = 0, jobs_cancelled = 0, jobs_timed_out = 0, jobs_failed = 0;
    uint64_t prompt_tokens = 0, generated_tokens = 0, decode_steps = 0;
    uint64_t draft_proposed = 0, draft_accepted = 0;  // speculative decoding: tokens the draft proposed, and kept
    Histogram ttft{{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};
    Histogram inter_token{{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
    Histogram queue_wait{{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30}};
};

// A lock granted in the order it was asked for (a ticket lock): engines that share the compute threads take turns
// step by step, so two models answering at once (the arena) advance together instead of one starving the other.
class FairMutex {
public:
    void lock() {
        std::unique_lock<std::mutex> lk(mu_);
        const uint64_t ticket = next_++;
        cv_.wait(lk, [&] { return serving_ == ticket; });
    }
    void unlock() {
        {
            std::lock_guard<std::mutex> lk(mu_);
            ++serving_;
        }
        cv_.notify_all();
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    uint64_t next_ = 0, serving_ = 0;
};

class Engine {
public:
    // pool may be shared with other engines: `step_mutex` (if given) is held around every forward pass.
    Engine(const Model& model, ThreadPool& pool, const EngineOptions& opt, FairMutex* step_mutex = nullptr);
    ~Engine();  // cancels what runs and joins the engine thread
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Checks the job (throws a bad-input Error: empty prompt, prompt longer than a slot's context, n > slots, bad
    // parameters) and queues it. Returns false when the queue is full or the engine is shutting down.
    bool submit(const JobPtr& job);
    // Stops accepting jobs. With cancel, running and queued jobs end now ("cancelled"); otherwise they run to the end.
    // Returns when nothing is left. Safe to call more than once.
    void shutdown(bool cancel);
    EngineStats stats() const;
    const Model& model() const { return model_; }
    int64_t slot_ctx() const { return n_ctx_; }
    int n_slots() const { return opt_.n_slots; }

private:
    struct Seq;
    struct Prefill {  // a job whose prompt is running, chunk by chunk, in its first slot
        JobPtr job;
        std::vector<int> slots;
        size_t done = 0;  // prompt tokens in the cache
    };
    void loop();
    void drop_prefill(const Prefill& p, const std::string& reason, const std::string& error = "");
    void begin_choices(const Prefill& p, const float* logits);
    void start(const JobPtr& job, const std::vector<int>& slots);
    void propose(Seq& s, int64_t spare);
    void verify(Seq& s, const float* logits);
    void step();
    void emit_token(Seq& s, int32_t id, const float* logits);
    // Ends a sequence (reason: stop, length, cancelled, timeout, error) and frees its slot; the job's last one reports.
    void finish(Seq& s, const std::string& reason, const std::string& error = "");
    void release_finished();
    int32_t pick(Seq& s, const float* logits);

    const Model& model_;
    ThreadPool& pool_;
    EngineOptions opt_;
    FairMutex* step_mutex_;
    int64_t n_ctx_;
    std::unique_ptr<KVCache> kv_;     // every slot's keys and values
    std::unique_ptr<Transformer> tf_;  // the forward pass over kv_
    std::unique_ptr<KVCache> draft_kv_;     // with a draft: its cache, a sequence per slot
    std::unique_ptr<Transformer> draft_tf_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<JobPtr> queue_;
    bool accepting_ = true, stop_ = false;  // (under mu_)
    std::atomic<bool> cancel_all_{false};   // set under mu_; read by the loop between steps too
    std::vector<int> free_slots_;
    EngineStats stats_;

    std::vector<std::unique_ptr<Seq>> active_;  // engine thread only
    std::deque<Prefill> prefill_;                // engine thread only: prompts running, oldest first
    int64_t n_batch_ = 0;
    std::vector<float> step_logits_;             // engine thread only: [rows whose logits are wanted, n_vocab]
    std::vector<int32_t> step_seqs_, step_toks_; // engine thread only: the rows of a step
    std::vector<uint8_t> step_want_;
    std::vector<int32_t> top_idx_;               // engine thread only: token ids ranked for top_logprobs
    std::thread thread_;
};

}  // namespace llmforge
