// llmforge as a library: the public API.
//
//   llmforge::Llm llm("model.gguf");                        // GGUF, a Hugging Face directory, or llama2.c .bin
//   llm.complete("Once upon a time", 64, {}, [](const std::string& piece) { std::cout << piece << std::flush; return true; });
//   llm.ask("What is a KV cache?", 200, {}, print);        // a conversation, in the model's own chat template
//
// An Llm owns the model, its threads and its KV cache. It is not thread-safe: one call at a time. Errors are thrown as
// llmforge::Error (kind() BadInput for a bad file or argument, Runtime otherwise; what() is one line). The library
// prints nothing unless a log sink is set (log.h) and installs no signal handlers. Link with llmforge::llmforge
// (CMake: find_package(llmforge)); an inference-only program does not link MPI.
//
// The other headers in include/llmforge are the project's own interfaces between its layers (the command line, the
// server and the tests use them); this one and those it includes are what is installed.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/model.h"
#include "llmforge/sampler.h"
#include "llmforge/tokenizer.h"
#include "llmforge/version.h"

namespace llmforge {

// "0.1.0": the version of the library linked (the macros above are the headers').
const char* version();

struct LlmOptions {
    int threads = 0;         // 0: one per core
    int64_t n_ctx = 0;       // the context of each KV cache (0: the model's): complete() and the conversation have one each
    int64_t n_batch = 512;   // the most prompt tokens per pass
    bool kv_f32 = false;     // f32 KV cache (exact) instead of f16 (half the memory, llama.cpp's default)
    LoadOptions load;        // mmap, a tokenizer file to use instead of the model's, ...
};

struct Completion {
    std::string text;
    std::string stop_reason;  // "eos" (end of sequence or of the turn), "length", "context", "stopped" (on_text said so)
    int64_t prompt_tokens = 0, tokens = 0;
};

// Receives each printable piece of the answer as soon as it forms whole UTF-8 characters; false stops generation.
using OnText = std::function<bool(const std::string& piece)>;

class Llm {
public:
    explicit Llm(const std::string& model_path, const LlmOptions& opts = {});
    ~Llm();
    Llm(Llm&&) noexcept;
    Llm& operator=(Llm&&) noexcept;

    const ModelConfig& config() const;
    const Vocab& vocab() const;

    // Continues `prompt` (BOS added as the vocabulary asks) with at most max_tokens tokens (< 0: until the end of
    // sequence or of the context). Each call starts from an empty context.
    Completion complete(const std::string& prompt, int32_t max_tokens, const SamplerParams& sampling = {}, const OnText& on_text = {});

    // A conversation rendered with the model's chat template (ChatML when it has none): adds the user's turn, answers
    // it, stops at the template's end-of-turn token, and keeps both turns for the next call (the KV cache reuses the
    // shared prefix; the oldest turns are dropped when the context is full).
    Completion ask(const std::string& user, int32_t max_tokens, const SamplerParams& sampling = {}, const OnText& on_text = {});
    void set_system(const std::string& text);  // the conversation's system prompt ("" for none)
    void reset_conversation();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace llmforge
