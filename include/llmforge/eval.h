// Evaluating a language model: perplexity (as llama.cpp's llama-perplexity computes it), the KL divergence between
// two models' next-token distributions, and task benchmarks scored by log-likelihood or by generation.
//
//   PPL = exp( −(1/N) Σ_i log P(w_i | w_<i) )
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/threadpool.h"
#include "llmforge/grammar.h"
#include "llmforge/dtype.h"
#include "llmforge/kv_cache.h"
#include "llmforge/model.h"
#include "llmforge/quantize.h"

namespace llmforge {

struct PerplexityOptions {
    int64_t n_ctx = 512;     // tokens per chunk (llama-perplexity's -c)
    // The method. Default (both 0): llama.cpp's chunks of n_ctx, BOS first, scoring their second half.
    int64_t stride = 0;        // > 0: Hugging Face's sliding window — windows of n_ctx every `stride` tokens, each
                               // scoring the tokens not scored before (every token but the first, once)
    int64_t llama_stride = 0;  // > 0: llama.cpp's --ppl-stride — windows of n_ctx every S tokens, each scoring its
                               // last S predictions, as llama.cpp computes them (no BOS, float probabilities)
    int64_t n_batch = 2048;  // tokens per forward pass
    int64_t max_chunks = -1;  // -1: all
    bool add_bos = true;      // the first token of each chunk becomes BOS (when the vocabulary adds BOS)
    KVCacheType kv_type = DType::F16;
    bool ggml_arithmetic = true;  // round as llama.cpp does (Transformer::set_ggml_arithmetic); false: faster kernels
};

// The importance matrix llama-imatrix computes: the text in chunks of n_ctx tokens (BOS first, as perplexity's),
// run through the model in passes of n_batch tokens; for every weight matrix of the blocks (and, with process_output,
// output.weight) the sum over the tokens of each input column's square, and the number of passes (ncall). Written with
// write_imatrix it is llama-imatrix's file: values (Σx² / tokens) · ncall, so that a quantiser dividing by ncall gets
// the mean square. Passes of fewer than 16 tokens are skipped, as llama-imatrix skips them.
struct ImatrixOptions {
    int64_t n_ctx = 512;
    int64_t n_batch = 512;
    int64_t max_chunks = -1;   // -1: all
    bool add_bos = true;
    bool process_output = false;
    KVCacheType kv_type = DType::F16;  // as llama-imatrix's default cache
    std::string dataset;       // recorded in the file (llama-imatrix records the text file's name)
    std::function<void(int64_t done, int64_t total)> progress;  // after each chunk
};
ImportanceMatrix compute_imatrix(const Model& m, const std::vector<int32_t>& tokens, ThreadPool& pool, const ImatrixOptions& o);

struct PerplexityResult {
    int64_t n_ctx = 0, n_chunks = 0, n_tokens = 0;  // n_tokens: tokens in the text
    int64_t count = 0;                               // tokens scored
    double nll = 0;                                  // mean negative log-likelihood (nats) of the scored tokens
    double ppl = 0, ppl_err = 0;                     // exp(nll) and llama.cpp's ± (standard error propagated)
    int64_t bytes = 0;                               // UTF-8 bytes of the scored tokens
    double bits_per_byte = 0;                        // Σ −log₂ P / bytes: comparable across tokenisers
    std::vector<double> running_ppl;                 // the running estimate after each chunk (llama.cpp's [i]x.xxxx)
    // KL divergence to a reference model (kl_divergence()):
    bool has_kl = false;
    double kl_mean = 0, kl_err = 0, kl_median = 0, kl_p99 = 0, kl_max = 0;
    double same_top = 0;                              // fraction of positions where both models' top token agree
    double dp_mean = 0, dp_rms = 0;                   // mean and RMS of p_model(correct) − p_base(correct)
    double base_ppl = 0;                              // the reference model's perplexity on the same tokens
};

// chunk: 0-based chunk index just finished; n_chunks: total.
using ChunkCallback = std::function<void(int64_t chunk, int64_t n_chunks, const PerplexityResult& so_far)>;

// Tokens must already include BOS where the vocabulary adds it (as llama.cpp tokenises with add_special).
// Throws a bad-input Error when the text is too short (fewer than 2·n_ctx tokens in chunk mode, as llama.cpp requires).
PerplexityResult perplexity(const Model& model, const std::vector<int32_t>& tokens, const PerplexityOptions& o, ThreadPool& pool,
                            const ChunkCallback& on_chunk = {});

// How many chunks perplexity() will evaluate for n_tokens tokens (throws its bad-input Errors).
int64_t perplexity_chunks(int64_t n_tokens, const PerplexityOptions& o);

// KL(P_base ‖ P_model) per scored token over the same chunks as perplexity(), with the statistics llama.cpp's
// --kl-divergence prints. The two models must share the vocabulary.
PerplexityResult kl_divergence(const Model& base, const Model& model, const std::vector<int32_t>& tokens, const PerplexityOptions& o,
                               ThreadPool& pool, const ChunkCallback& on_chunk = {});

// ---- task benchmarks (llmforge eval) --------------------------------------------------------------------------------
//
// One JSON object per line:
//   multiple choice: {"id": "…", "context": "…", "choices": ["…", "…", …], "answer": 2}
//   generative:      {"id": "…", "prompt": "…", "references": ["…", …], "metric": "exact_match" | "bleu" | "rouge1" | "rougeL"}
// "answer" is the index of the right choice. A choice is scored by the log-likelihood of its tokens after the
// context (the context's tokens do not count); "acc" takes the highest sum, "acc_norm" the highest sum divided by the
// choice's length in characters (as lm-evaluation-harness normalises). Generation is greedy, up to max_tokens, a newline
// or the end of the turn.
struct EvalItem {
    std::string id, context;
    std::vector<std::string> choices;
    int64_t answer = -1;
    std::vector<std::string> references;
    std::string metric;  // empty for multiple choice
};

std::vector<EvalItem> load_eval_tasks(const std::string& path);  // bad-input Error with the line number on a bad line

struct EvalItemResult {
    std::string id;
    std::vector<double> logprobs;  // per choice
    int64_t pred = -1, pred_norm = -1;
    bool correct = false, correct_norm = false;
    std::string generation;
    double score = 0;  // generative: the item's metric
};

struct EvalSummary {
    int64_t n_mc = 0, n_gen = 0;
    double acc = 0, acc_norm = 0;           // multiple choice accuracy
    double acc_lo = 0, acc_hi = 0;          // 95 % Wilson interval of acc
    double acc_norm_lo = 0, acc_norm_hi = 0;
    double random_baseline = 0;             // expected accuracy of picking uniformly: mean of 1/#choices
    double gen_score = 0, gen_stderr = 0;   // mean generative metric (0..1; BLEU/100) and its standard error
    std::vector<EvalItemResult> items;
};

struct EvalOptions {
    int64_t n_ctx = 0;  // 0: the model's
    int64_t max_tokens = 64;
    bool add_bos = true;
    // Chat models: the context (right-stripped) becomes the user's message, rendered with the chat template and the
    // assistant's generation prompt; a choice is the start of the assistant's reply.
    bool chat = false;
    std::string chat_template;  // empty: the model's own (or ChatML)
    // Generative items: the answer follows this grammar and ends with it (instead of at the first newline).
    std::shared_ptr<const CompiledGrammar> grammar;
};

using ItemCallback = std::function<void(int64_t done, int64_t total)>;
EvalSummary evaluate(const Model& model, const std::vector<EvalItem>& items, const EvalOptions& o, ThreadPool& pool,
                     const ItemCallback& on_item = {});

// 95 % Wilson score interval for k successes in n trials.
std::pair<double, double> wilson_interval(int64_t k, int64_t n, double z = 1.959963984540054);

}  // namespace llmforge
