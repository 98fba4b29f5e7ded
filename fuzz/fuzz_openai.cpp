// The OpenAI request decoder of `llmforge serve`: a request body through the API as the server hands it over —
// JSON parsing, every parameter's type and range, messages, tools, response_format (JSON Schema, GBNF), logit_bias,
// stop strings, the chat template, tokenisation — and, for a valid request, a real answer from a small random model
// (at most 4 tokens), or from a small random reranker (/v1/rerank, pairs cut to 64 tokens). Input: the first byte chooses the endpoint; the rest is the body. Every request must be
// answered within 20 s, by a completion or a 4xx error object (a 500 is a finding: an exception that was not a
// refusal of the request).
#include <chrono>
#include <condition_variable>
#include <mutex>

#include "core/threadpool.h"
#include "fuzz_common.h"
#include "llmforge/chat_template.h"
#include "llmforge/engine.h"
#include "llmforge/model.h"
#include "llmforge/reranker.h"
#include "server/api.h"

using namespace llmforge;

namespace {

class Recorder : public http::Exchange {
public:
    void reply(http::Response r) override { finish(r.status); }
    void begin_stream(int status, std::vector<std::pair<std::string, std::string>>) override { std::lock_guard<std::mutex> lk(mu_); status_ = status; }
    bool send(std::string) override { return true; }
    void end() override { finish(status_); }
    bool closed() const override { return false; }
    void on_close(std::function<void()>) override {}
    void log_fields(std::string) override {}
    bool wait(std::chrono::seconds s) {
        std::unique_lock<std::mutex> lk(mu_);
        return cv_.wait_for(lk, s, [&] { return done_; });
    }
    int status() const { return status_; }

private:
    void finish(int status) {
        std::lock_guard<std::mutex> lk(mu_);
        status_ = status;
        done_ = true;
        cv_.notify_all();
    }
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    int status_ = 0;
};

struct Served {
    ThreadPool pool{1};
    std::vector<server::ServedModel> models;
    ThreadPool rr_pool{1};  // the reranker's worker computes beside the engine's thread
    std::unique_ptr<Model> rr_model;
    std::unique_ptr<Reranker> reranker;
    std::shared_ptr<server::RerankService> rerank;
    std::unique_ptr<server::Api> api;
    Served() {
        server::ServedModel sm;
        sm.id = "tiny";
        sm.model = std::make_unique<Model>(init_random(preset("llama-tiny"), DType::F32, 1));
        sm.chat = std::make_unique<ChatFormat>(*sm.model->vocab);
        sm.stop_tokens = sm.chat->stop_tokens();
        EngineOptions eo;
        eo.n_slots = 2;
        eo.n_ctx = 256;
        eo.max_queue = 8;
        sm.engine = std::make_unique<Engine>(*sm.model, pool, eo);
        models.push_back(std::move(sm));
        ModelConfig rc = preset("bert-tiny");
        rc.pooling = Pooling::Rank;
        rc.n_vocab = 1024;
        rr_model = std::make_unique<Model>(init_random(rc, DType::F32, 2));
        reranker = std::make_unique<Reranker>(*rr_model, rr_pool, 64);
        rerank = std::make_shared<server::RerankService>("rr", *reranker, 8);
        server::ApiOptions ao;
        ao.rerank = rerank;
        ao.max_tokens_limit = 4;
        ao.timeout_s = 10;
        ao.web = false;
        api = std::make_unique<server::Api>(models, ao);
    }
    ~Served() {  // as the server stops: the engines first (their jobs call back into the API), then the API
        for (auto& m : models) m.engine->shutdown(true);
        for (auto& m : models) m.engine.reset();
        rerank->shutdown();
        api.reset();
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    static Served s;
    if (n == 0) return 0;
    static const char* const paths[] = {"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/tokenize", "/v1/models/tiny", "/v1/rerank"};
    http::Request req;
    req.method = "POST";
    req.path = req.target = paths[data[0] % (sizeof paths / sizeof *paths)];
    if (req.path == "/v1/models/tiny") req.method = "GET";
    req.body.assign(reinterpret_cast<const char*>(data) + 1, n - 1);
    req.headers["content-type"] = "application/json";
    req.remote = "fuzz";
    auto ex = std::make_shared<Recorder>();
    s.api->handle(req, ex);  // answers every error itself (no exception leaves it)
    if (!ex->wait(std::chrono::seconds(20))) __builtin_trap();  // a request left unanswered
    // a 500 is "a failure of ours": an exception that was not a refusal of the request
    if (ex->status() < 200 || ex->status() >= 500) __builtin_trap();
    return 0;
}
