// llmforge serve -m MODEL [-m MODEL2 ...]: the OpenAI-compatible HTTP server (src/server/), continuous batching over
// --parallel slots per model (src/infer/engine.cpp).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "cli/common.h"
#include "cli/rag_common.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "server/api.h"
#include "server/http.h"

namespace llmforge::cli {

namespace {
std::string stem(const std::string& path) {
    std::string s = path;
    while (s.size() > 1 && s.back() == '/') s.pop_back();
    const size_t slash = s.find_last_of('/');
    if (slash != std::string::npos) s = s.substr(slash + 1);
    const size_t dot = s.find_last_of('.');
    if (dot != std::string::npos && dot > 0) s = s.substr(0, dot);
    return s;
}
}  // namespace

void add_serve(CLI::App& app) {
    auto* cmd = app.add_subcommand("serve", "OpenAI-compatible server: chat/completions, completions, embeddings, models, metrics (and rerank, retrieve)");
    struct Opts {
        std::vector<std::string> models, aliases, keys;
        std::string draft;
        SpeculativeParams spec;
        std::string host = "127.0.0.1", cors, tpl, tokenizer, web_dir, arena_db;
        CacheTypeOptions cache;
        int port = 8080, parallel = 4, queue = 64, max_concurrent = 0, io_threads = 2;
        int threads = ThreadPool::default_threads();
        int64_t ctx = 0, batch = 512, prefill_chunk = 64;
        int32_t max_tokens = 0;
        double timeout = 600, shutdown_timeout = 30;
        size_t max_body = 8u << 20;
        http::ServerOptions limits;  // the connection limits' defaults
        double battle_ttl = 3600;
        bool no_log = false, no_mmap = false, no_web = false;
        std::string rag, rag_mode = "bm25", embed_model, rerank;
        HybridCli hy;
        rag::Relevance rel;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->models, "model file (give -m several times to serve several models)")->required();
    cmd->add_option("-a,--alias", o->aliases, "the name clients use for each model, in -m order")->default_str("the file name without extension");
    cmd->add_option("--host", o->host, "address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface)");
    cmd->add_option("--port", o->port, "port (0: any free port, printed at start)");
    cmd->add_option("--api-key", o->keys, "accepted API key (Bearer); give several times for several keys. Without one, no authentication");
    cmd->add_option("--parallel,--np", o->parallel, "sequences decoded together per model (KV-cache slots)");
    cmd->add_option("-c,--ctx-size", o->ctx, "context of each slot in tokens (0: the model's, at most 4096)")->check(at_least(0, " (0: the model's)"));
    cmd->add_option("-b,--batch-size", o->batch, "rows per forward pass at most")->check(at_least(1));
    cmd->add_option("--prefill-chunk", o->prefill_chunk, "prompt tokens that ride along with one decoding step (smaller: steadier streams while prompts run)");
    add_threads_option(cmd, o->threads, "compute threads");
    add_cache_type_options(cmd, o->cache);
    cmd->add_option("--queue", o->queue, "requests that may wait for a slot per model; beyond, 503");
    cmd->add_option("--max-concurrent", o->max_concurrent, "requests answered at once; beyond, 429 (0: 2 × slots + 64 per model)");
    cmd->add_option("--max-tokens", o->max_tokens, "cap on max_tokens of a request (0: the context)");
    cmd->add_option("--timeout", o->timeout, "seconds a request may take, queue included; then it ends with finish_reason \"length\"");
    cmd->add_option("--max-body", o->max_body, "largest request body in bytes; beyond, 413");
    cmd->add_option("--max-header-bytes", o->limits.max_header_bytes, "largest request header (request line and fields) in bytes; beyond, 431")
        ->capture_default_str()->check(at_least(256));
    cmd->add_option("--max-headers", o->limits.max_headers, "most header fields in a request; beyond, 431")->capture_default_str()->check(at_least(8));
    cmd->add_option("--header-timeout", o->limits.header_timeout_s, "seconds from a request's first byte to the end of its header; then 408 and the connection closed")
        ->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--body-timeout", o->limits.body_timeout_s, "seconds to receive a request's body; then 408 and the connection closed")
        ->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--idle-timeout", o->limits.idle_timeout_s, "seconds a connection may stay open sending nothing (before or between requests)")
        ->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--max-connections", o->limits.max_connections, "open connections in all; one more is answered 503 and closed")
        ->capture_default_str()->check(at_least(1));
    cmd->add_option("--max-connections-per-ip", o->limits.max_connections_per_ip, "open connections from one client address; one more is answered 503 and closed")
        ->capture_default_str()->check(at_least(1));
    cmd->add_option("--cors", o->cors, "allow cross-origin requests from this origin ('*': any)")->default_str("none: same origin only");
    cmd->add_option("--template", o->tpl, "chat template (Jinja file, tokenizer_config.json or GGUF) instead of the model's")->default_str("the model's, else ChatML");
    cmd->add_option("--io-threads", o->io_threads, "HTTP I/O threads");
    cmd->add_option("--shutdown-timeout", o->shutdown_timeout, "on SIGTERM/SIGINT, seconds to let running requests finish before cancelling them");
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_option("--draft", o->draft, "speculative decoding: a small model with the same tokenizer proposes tokens that the model verifies "
                                         "in each step (answers keep the model's distribution; greedy: the same tokens); one -m only")
        ->default_str("none");
    cmd->add_option("--draft-max", o->spec.draft_max, "with --draft: the most tokens proposed per sequence and step")->capture_default_str()->check(between(1, 256));
    cmd->add_option("--draft-min-p", o->spec.draft_min_p, "with --draft: stop proposing at a token the draft gives less than this probability")
        ->capture_default_str()->check(between(0, 1));
    cmd->add_flag("--no-web", o->no_web, "no web chat at / and no arena: the API only");
    cmd->add_option("--web-dir", o->web_dir, "serve the web pages from this folder instead of the copy built into the binary")->default_str("the pages built into the binary");
    cmd->add_option("--arena-db", o->arena_db, "SQLite file for the arena's votes (default with two or more models: llmforge-arena.db)")->default_str("llmforge-arena.db with two or more models");
    cmd->add_option("--arena-battle-ttl", o->battle_ttl, "seconds after a battle began that its vote is taken; then 404")->capture_default_str()->check(CLI::PositiveNumber);
    cmd->add_option("--rag", o->rag, "answer from this document index (llmforge rag index): POST /v1/retrieve, and the web chat's "
                                     "\"use documents\" switch")->default_str("none");
    cmd->add_option("--rag-mode", o->rag_mode, "the retrieval of a request that names none: bm25, dense or hybrid (dense and hybrid: an index "
                                               "with vectors)")->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    o->hy.add_to(cmd);
    cmd->add_option("--embed-model", o->embed_model, "with --rag: embed queries with this model")->default_str("the index's, if it has vectors");
    cmd->add_option("--min-bm25", o->rel.min_bm25, "with --rag: a chunk is relevant when its BM25 score reaches this (a request may say otherwise)");
    cmd->add_option("--min-similarity", o->rel.min_similarity, "with --rag: … or when its cosine similarity reaches this");
    cmd->add_option("--min-lead", o->rel.min_lead, "with --rag: … and only when the best chunk's score leads the best of any other document "
                                                   "by this share of it (0: always)")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--rerank", o->rerank, "also serve this cross-encoder (a reranker: GGUF pooling type rank, or BertForSequenceClassification) "
                                           "at POST /v1/rerank")->default_str("none");
    cmd->add_flag("--no-access-log", o->no_log, "no JSON access-log line per request on stderr");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    cmd->callback([o] {
        if (!o->aliases.empty() && o->aliases.size() != o->models.size())
            throw_bad_input("--alias: give one name per -m model (%zu models, %zu names)", o->models.size(), o->aliases.size());
        if (o->port < 0 || o->port > 65535) throw_bad_input("--port must be between 0 and 65535");
        for (const auto& k : o->keys)
            if (k.empty()) throw_bad_input("--api-key: an API key cannot be empty");
        const std::string tpl = o->tpl.empty() ? std::string() : load_chat_template(o->tpl);  // before the (slow) model loads
        // the index first: a wrong --rag is said before the (slow) model loads
        std::shared_ptr<server::RagService> rag_service;
        std::unique_ptr<DenseModel> dense;
        if (!o->rag.empty()) {
            auto rs = std::make_shared<server::RagService>();
            rs->name = o->rag;
            rs->index = std::make_unique<rag::Index>(o->rag);
            rs->query.mode = rag::parse_mode(o->rag_mode);
            o->hy.apply(rs->query);
            rs->relevance = o->rel;
            dense = open_dense_model(o->embed_model, o->rag, o->threads, true);
            if (dense) rs->embedder = dense->embedder.get();
            if (rs->query.mode != rag::Mode::Bm25 && !dense)
                throw_bad_input("--rag-mode %s: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->rag_mode.c_str(), o->rag.c_str());
            std::fprintf(stderr, "llmforge: --rag %s: %zu documents, %zu chunks%s\n", o->rag.c_str(), rs->index->documents(), rs->index->chunks(),
                         dense ? (", dense vectors by " + dense->path).c_str() : "");
            rag_service = rs;
        } else if (!o->embed_model.empty()) {
            throw_bad_input("--embed-model needs --rag (the index whose queries it embeds)");
        }
        if (!o->draft.empty() && o->models.size() != 1) throw_bad_input("--draft serves one model: give one -m");
        std::unique_ptr<RerankModel> rerank_model = open_reranker(o->rerank, o->threads);  // (its own compute threads)
        std::shared_ptr<server::RerankService> rerank_service;
        if (rerank_model) {
            rerank_service = std::make_shared<server::RerankService>(stem(o->rerank), *rerank_model->reranker, static_cast<size_t>(std::max(1, o->queue)));
            std::fprintf(stderr, "llmforge: --rerank %s: POST /v1/rerank (model '%s')\n", o->rerank.c_str(), rerank_service->id.c_str());
        }
        ThreadPool pool(o->threads);
        FairMutex step_mutex;  // the models share the compute threads: one forward pass at a time, in turn
        std::vector<server::ServedModel> models;
        models.reserve(o->models.size());
        const int64_t created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
        for (size_t i = 0; i < o->models.size(); ++i) {
            server::ServedModel sm;
            sm.id = o->aliases.empty() ? stem(o->models[i]) : o->aliases[i];
            for (const auto& other : models)
                if (other.id == sm.id) throw_bad_input("two models are both called '%s': name them with --alias", sm.id.c_str());
            sm.model = std::make_unique<Model>(load_for_cli(o->models[i], o->tokenizer, true, !o->no_mmap));
            if (sm.model->config.pooling == Pooling::Rank)
                throw_bad_input("'%s' is a reranker (a cross-encoder): -m serves generation and embedding models; serve it with --rerank "
                                "(POST /v1/rerank)", o->models[i].c_str());
            warn_context(*sm.model, o->ctx);
            if (tpl.empty() && sm.model->vocab->chat_template.empty())
                std::fprintf(stderr, "llmforge: note: %s has no chat template; /v1/chat/completions uses ChatML (--template FILE to choose one)\n",
                             o->models[i].c_str());
            sm.chat = std::make_unique<ChatFormat>(*sm.model->vocab, tpl);
            sm.stop_tokens = sm.chat->stop_tokens();
            EngineOptions eo;
            eo.n_slots = o->parallel;
            eo.n_ctx = o->ctx;
            eo.n_batch = o->batch;
            eo.prefill_chunk = o->prefill_chunk;
            eo.kv_type = parse_cache_types(o->cache);
            eo.max_queue = o->queue;
            if (!o->draft.empty()) {
                sm.draft = std::make_unique<Model>(load_for_cli(o->draft, "", true, !o->no_mmap));
                eo.draft = sm.draft.get();
                eo.spec = o->spec;
            }
            sm.engine = std::make_unique<Engine>(*sm.model, pool, eo, &step_mutex);
            sm.created = created;
            models.push_back(std::move(sm));
        }
        server::ApiOptions ao;
        ao.rag = rag_service;
        ao.rerank = rerank_service;
        ao.api_keys = o->keys;
        ao.cors_origin = o->cors;
        ao.max_concurrent = o->max_concurrent;
        ao.max_tokens_limit = o->max_tokens;
        ao.timeout_s = o->timeout;
        ao.web = !o->no_web;
        ao.web_dir = o->web_dir;
        ao.arena_battle_ttl_s = o->battle_ttl;
        ao.arena_db = !o->arena_db.empty() ? o->arena_db : models.size() >= 2 ? "llmforge-arena.db" : "";
        server::Api api(models, ao);
        http::ServerOptions so = o->limits;
        so.host = o->host;
        so.port = o->port;
        so.max_body = o->max_body;
        so.io_threads = o->io_threads;
        so.access_log = !o->no_log;
        so.error_response = [](int status, const std::string& message, const std::string& code) {
            return http::Response{status, "application/json",
                                  server::Api::error_body(message, status >= 500 ? "server_error" : "invalid_request_error", "", code), {}};
        };
        http::Server srv(so, [&api](const http::Request& r, const http::ExchangePtr& ex) { api.handle(r, ex); });
        api.set_connections_fn([&srv] { return srv.connections(); });
        std::atomic<int> signals{0};
        std::thread shutdown;
        srv.on_signal([&](int sig) {
            if (signals++ > 0) {  // a second signal: stop now
                std::fprintf(stderr, "llmforge: signal %d again: stopping now\n", sig);
                for (auto& m : models) m.engine->shutdown(true);
                srv.stop();
                return;
            }
            std::fprintf(stderr, "llmforge: signal %d: no new requests; letting %d running request(s) finish (at most %.0f s)\n", sig, api.in_flight(),
                         o->shutdown_timeout);
            // still listening, so that load balancers see /health turn 503 and new requests get a 503 rather than a
            // refused connection (docs/server.md); the process exits once the running requests are done
            api.set_draining();
            shutdown = std::thread([&] {
                const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o->shutdown_timeout * 1000));
                while (api.in_flight() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
                if (api.in_flight() > 0) std::fprintf(stderr, "llmforge: cancelling %d request(s) still running\n", api.in_flight());
                for (auto& m : models) m.engine->shutdown(true);
                if (rerank_service) rerank_service->shutdown();
                // let the last answers be written: a finished request's closing chunks may still be queued on its
                // socket (a loaded machine takes more than a few milliseconds); a client that stopped reading gets 5 s
                for (int i = 0; i < 100 && api.in_flight() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                for (int i = 0; i < 500 && srv.answering() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
                srv.stop();
            });
        });
        for (const auto& m : models)
            std::fprintf(stderr, "llmforge: model '%s': %d slots × %lld tokens\n", m.id.c_str(), m.engine->n_slots(),
                         static_cast<long long>(m.engine->slot_ctx()));
        if (ao.web && !ao.arena_db.empty())
            std::fprintf(stderr, "llmforge: arena at /arena (%zu models), votes in %s\n", models.size(), ao.arena_db.c_str());
        std::fprintf(stderr, "llmforge: listening on http://%s:%d%s\n", o->host.c_str(), srv.port(), o->keys.empty() ? "" : " (API key required)");
        std::fflush(stderr);
        srv.run();
        if (shutdown.joinable()) shutdown.join();
        for (auto& m : models) m.engine->shutdown(true);
        if (rerank_service) rerank_service->shutdown();  // its jobs answer through the API: stopped before the API goes
        std::fprintf(stderr, "llmforge: server stopped\n");
    });
}

}  // namespace llmforge::cli
