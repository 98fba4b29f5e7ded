// The OpenAI-compatible API on top of the engines: /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models,
// /health, /metrics, and /v1/rerank with a cross-encoder (serve --rerank); errors in OpenAI's shape with the statuses its clients map to typed errors; API keys, CORS, limits.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "llmforge/chat_template.h"
#include "llmforge/engine.h"
#include "llmforge/grammar.h"
#include "llmforge/rag.h"
#include "server/arena.h"
#include "server/http.h"
#include "server/static_files.h"

namespace llmforge {
class Reranker;
}

namespace llmforge::server {

// Grammars compiled against one model's vocabulary, kept so that a grammar sent again reuses its token masks.
struct GrammarCache {
    std::mutex mu;
    std::shared_ptr<const GrammarVocab> vocab;
    std::vector<std::pair<std::string, std::shared_ptr<const CompiledGrammar>>> recent;  // most recent last, at most 16
};

struct ServedModel {
    std::string id;  // the name clients use ("model" in requests)
    std::unique_ptr<Model> model;
    std::unique_ptr<Model> draft;  // speculative decoding (serve --draft); declared before the engine, which reads it
    std::unique_ptr<Engine> engine;
    std::unique_ptr<ChatFormat> chat;
    std::vector<int32_t> stop_tokens;  // end-of-turn tokens of the chat template
    std::shared_ptr<GrammarCache> grammars = std::make_shared<GrammarCache>();
    int64_t created = 0;
};

// Retrieval over an index (serve --rag): GET/POST /v1/retrieve. Queries are serialised (one SQLite connection, one
// embedding model).
struct RagService {
    std::string name;                    // the index directory, as given
    std::unique_ptr<rag::Index> index;
    Embedder* embedder = nullptr;        // dense and hybrid queries (owned by the caller; null: BM25 only)
    rag::QueryOptions query;             // a request's mode and fusion where it names none (k, embedder: the request's)
    rag::Relevance relevance;            // the default thresholds
    std::mutex mu;
};

// A cross-encoder (serve --rerank): POST /v1/rerank. One worker thread scores the requests in turn (never an I/O
// thread, which would stall every connection it serves); at most max_queue requests wait.
class RerankService {
public:
    RerankService(std::string id, Reranker& reranker, size_t max_queue);
    ~RerankService();  // shutdown()
    RerankService(const RerankService&) = delete;
    RerankService& operator=(const RerankService&) = delete;
    const std::string id;  // the name clients may give as "model"
    Reranker& reranker;    // used by the worker only (owned by the caller)
    // Runs job(stopping) on the worker; false when max_queue jobs already wait or it is shut down. A job should
    // give up (answer 503) once stopping() is true.
    bool submit(std::function<void(const std::function<bool()>& stopping)> job);
    // Stops taking jobs; the running one is told to stop, the waiting ones run at once with stopping() true; then the
    // worker ends. Idempotent.
    void shutdown();

private:
    void run();
    std::mutex mu_;
    std::condition_variable cv_;
    std::deque<std::function<void(const std::function<bool()>&)>> queue_;
    std::atomic<bool> stop_{false};
    size_t max_queue_;
    std::thread worker_;
};

struct ApiOptions {
    std::vector<std::string> api_keys;  // empty: no authentication
    std::string cors_origin;            // empty: no CORS headers; "*" or an origin
    int max_concurrent = 0;             // requests being answered at once (0: slots + queue of all models)
    int32_t max_tokens_limit = 0;       // cap on max_tokens (0: the context)
    double timeout_s = 600;             // per request
    bool web = true;                    // the web chat at / and the arena at /arena
    std::string web_dir;                // serve the pages from this folder instead of the embedded copy
    std::string arena_db;               // SQLite file for the arena's votes ("" → no arena)
    double arena_battle_ttl_s = 3600;   // a battle may be voted on this long after it began; then 404
    std::shared_ptr<RagService> rag;    // null: no /v1/retrieve (404)
    std::shared_ptr<RerankService> rerank;  // null: no /v1/rerank (404)
};

class Api {
public:
    Api(std::vector<ServedModel>& models, const ApiOptions& opt);
    void handle(const http::Request& req, const http::ExchangePtr& ex);
    void set_draining() { draining_ = true; }
    int in_flight() const { return in_flight_.load(); }
    void set_connections_fn(std::function<size_t()> fn) { connections_ = std::move(fn); }

    // An OpenAI error body: {"error": {"message", "type", "param", "code"}}.
    static std::string error_body(const std::string& message, const std::string& type, const std::string& param = "", const std::string& code = "");

private:
    struct Counters;
    void chat_completions(const http::Request& req, const http::ExchangePtr& ex);
    void completions(const http::Request& req, const http::ExchangePtr& ex);
    void embeddings(const http::Request& req, const http::ExchangePtr& ex);
    void tokenize(const http::Request& req, const http::ExchangePtr& ex);
    void retrieve(const http::Request& req, const http::ExchangePtr& ex);  // api_rag.cpp
    void rerank(const http::Request& req, const http::ExchangePtr& ex);    // api_rerank.cpp
    void models(const http::Request& req, const http::ExchangePtr& ex);
    void metrics(const http::ExchangePtr& ex);
    // the web UI and the arena (api_web.cpp)
    void init_web();
    void static_file(const http::Request& req, const http::ExchangePtr& ex);
    void unauthorized_page(const http::ExchangePtr& ex, const std::string& message);
    void arena_battle(const http::Request& req, const http::ExchangePtr& ex);
    void arena_vote(const http::Request& req, const http::ExchangePtr& ex);
    void arena_leaderboard(const http::ExchangePtr& ex);
    ServedModel* find_model(const std::string& id);
    static std::string model_param(const nlohmann::ordered_json& body);  // "model": present and a string (else 400)
    ServedModel* served(const std::string& name);                          // the served model of that name (else 404)
    // Answers 503 for a request none of whose jobs the queue took (in the stream, if its headers are out).
    void overloaded(const http::ExchangePtr& ex, const std::string& endpoint, bool stream);
    void reply(const http::ExchangePtr& ex, int status, const std::string& body, const std::string& endpoint,
               const std::string& type = "application/json");
    void count(const std::string& endpoint, int status);

    std::vector<ServedModel>& models_;
    ApiOptions opt_;
    std::atomic<bool> draining_{false};
    std::atomic<int> in_flight_{0};
    std::function<size_t()> connections_;
    std::shared_ptr<Counters> counters_;
    std::unique_ptr<StaticFiles> static_;
    std::unique_ptr<ArenaStore> arena_;
    struct Battles;
    std::shared_ptr<Battles> battles_;
};

}  // namespace llmforge::server
