// The library's public facade (llmforge.h): a model, its threads, and two runs of it, each over its own KV cache, made
// on first use: completions (a Transformer) and the conversation (a ChatSession).
#include "llmforge/llmforge.h"

#include "core/threadpool.h"
#include "llmforge/chat_session.h"
#include "llmforge/chat_template.h"
#include "llmforge/generate.h"
#include "llmforge/transformer.h"

namespace llmforge {

const char* version() { return LLMFORGE_VERSION_STRING; }

struct Llm::Impl {
    ThreadPool pool;
    Model model;
    LlmOptions opts;
    std::unique_ptr<Transformer> tf;
    ChatFormat fmt;
    std::unique_ptr<ChatSession> chat;
    std::string system;
    SamplerParams chat_sampling;

    Impl(const std::string& path, const LlmOptions& o)
        : pool(o.threads > 0 ? o.threads : ThreadPool::default_threads()),
          model(load_with_tokenizer(path, o.load)),
          opts(o),
          fmt(*model.vocab) {}

    static Model load_with_tokenizer(const std::string& path, LoadOptions lo) {
        lo.require_tokenizer = true;
        return load_model(path, lo);
    }

    Transformer& completions() {
        if (!tf) tf = std::make_unique<Transformer>(model, pool, opts.n_ctx, opts.n_batch, opts.kv_f32 ? DType::F32 : DType::F16);
        return *tf;
    }

    // the conversation, with these sampling parameters
    ChatSession& session(const SamplerParams& s) {
        if (!chat) {
            ChatSessionOptions co;
            co.n_ctx = opts.n_ctx;
            co.n_batch = opts.n_batch;
            co.kv_type = opts.kv_f32 ? DType::F32 : DType::F16;
            chat = std::make_unique<ChatSession>(model, pool, fmt, s, co);
            chat->set_system(system);
        } else if (!same_sampling(s, chat_sampling)) {
            chat->set_sampling(s);
        }
        chat_sampling = s;
        return *chat;
    }
    static bool same_sampling(const SamplerParams& a, const SamplerParams& b) {
        return a.temp == b.temp && a.top_k == b.top_k && a.top_p == b.top_p && a.min_p == b.min_p && a.repeat_penalty == b.repeat_penalty &&
               a.repeat_last_n == b.repeat_last_n && a.seed == b.seed;
    }
};

Llm::Llm(const std::string& model_path, const LlmOptions& opts) : impl_(std::make_unique<Impl>(model_path, opts)) {}
Llm::~Llm() = default;
Llm::Llm(Llm&&) noexcept = default;
Llm& Llm::operator=(Llm&&) noexcept = default;

const ModelConfig& Llm::config() const { return impl_->model.config; }
const Vocab& Llm::vocab() const { return *impl_->model.vocab; }

Completion Llm::complete(const std::string& prompt, int32_t max_tokens, const SamplerParams& sampling, const OnText& on_text) {
    Transformer& tf = impl_->completions();
    tf.reset();
    GenerateParams p;
    p.n_predict = max_tokens;
    p.sampling = sampling;
    const GenerateResult r = generate(tf, *impl_->model.vocab, prompt, p, on_text);
    return {r.text, r.stop_reason, static_cast<int64_t>(r.prompt_tokens.size()), static_cast<int64_t>(r.tokens.size())};
}

Completion Llm::ask(const std::string& user, int32_t max_tokens, const SamplerParams& sampling, const OnText& on_text) {
    const ChatSession::Reply r = impl_->session(sampling).ask(user, max_tokens, on_text);
    return {r.text, r.stop_reason, r.prompt_tokens, r.tokens};
}

void Llm::set_system(const std::string& text) {
    impl_->system = text;
    if (impl_->chat) impl_->chat->set_system(text);
}

void Llm::reset_conversation() {
    if (impl_->chat) impl_->chat->reset();
}

}  // namespace llmforge
