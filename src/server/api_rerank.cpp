// POST /v1/rerank (also /rerank, /v1/reranking, /reranking, as llama-server accepts them): a query and documents scored
// by a cross-encoder (serve --rerank MODEL), in the shape of Jina's, Cohere's and llama-server's rerank APIs:
//   {"model"?, "query", "documents": [string | {"text"}], "top_n"?, "return_documents"?}
//   → {"id", "object": "list", "model", "results": [{"index", "relevance_score", "document"?: {"text"}}], "usage"}
// results are ordered by relevance_score, highest first (ties: the earlier document); relevance_score is the model's
// logit, as `llmforge rerank` prints it and llama-server returns it.
#include <algorithm>
#include <chrono>
#include <numeric>

#include "llmforge/error.h"
#include "llmforge/reranker.h"
#include "server/api_internal.h"

namespace llmforge::server {

using namespace detail;

// ------------------------------------------------------------------------------------------------ the worker
RerankService::RerankService(std::string id_, Reranker& reranker_, size_t max_queue)
    : id(std::move(id_)), reranker(reranker_), max_queue_(max_queue), worker_([this] { run(); }) {}

RerankService::~RerankService() { shutdown(); }

bool RerankService::submit(std::function<void(const std::function<bool()>&)> job) {
    std::lock_guard<std::mutex> lk(mu_);
    if (stop_ || queue_.size() >= max_queue_) return false;
    queue_.push_back(std::move(job));
    cv_.notify_one();
    return true;
}

void RerankService::shutdown() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        cv_.notify_one();
    }
    if (worker_.joinable() && worker_.get_id() != std::this_thread::get_id()) worker_.join();
}

void RerankService::run() {
    const std::function<bool()> stopping = [this] { return stop_.load(); };
    for (;;) {
        std::function<void(const std::function<bool()>&)> job;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopped, and nothing waits
            job = std::move(queue_.front());
            queue_.pop_front();
        }
        job(stopping);  // after shutdown() the waiting jobs still run, each seeing stopping() and answering 503
    }
}

// ------------------------------------------------------------------------------------------------ the endpoint
namespace {
constexpr size_t kMaxDocuments = 1000;
}

void Api::rerank(const http::Request& req, const http::ExchangePtr& ex) {
    RerankService* rs = opt_.rerank.get();
    if (!rs)
        throw ApiError{404, "This server has no reranker: start it with --rerank MODEL to rerank documents.", "invalid_request_error", "",
                       "no_reranker"};
    const json b = parse_body(req);
    for (auto it = b.begin(); it != b.end(); ++it)
        if (it.key() != "model" && it.key() != "query" && it.key() != "documents" && it.key() != "top_n" && it.key() != "return_documents")
            bad("Unrecognized request argument supplied: " + it.key(), it.key(), "unknown_parameter");
    if (has(b, "model")) {
        if (!b["model"].is_string()) wrong_type("model", "a string", b["model"]);
        if (b["model"].get<std::string>() != rs->id)
            throw ApiError{404, "The model '" + b["model"].get<std::string>() + "' does not exist or you do not have access to it (this server reranks with '" +
                                    rs->id + "').",
                           "invalid_request_error", "model", "model_not_found"};
    }
    if (!has(b, "query")) bad("You must provide a 'query'.", "query", "missing_required_parameter");
    if (!b["query"].is_string()) wrong_type("query", "a string", b["query"]);
    const std::string query = b["query"].get<std::string>();
    if (query.empty()) bad("Invalid 'query': it is empty.", "query", "invalid_value");
    if (!utf8_valid(query)) bad("Invalid 'query': not valid UTF-8.", "query", "invalid_value");
    if (!has(b, "documents")) bad("You must provide 'documents'.", "documents", "missing_required_parameter");
    const json& d = b["documents"];
    if (!d.is_array()) wrong_type("documents", "an array of strings", d);
    if (d.empty()) bad("Invalid 'documents': the array is empty.", "documents", "empty_array");
    if (d.size() > kMaxDocuments)
        bad("Invalid 'documents': at most " + std::to_string(kMaxDocuments) + " documents per request, but got " + std::to_string(d.size()) + ".",
            "documents", "array_above_max_length");
    std::vector<std::string> docs;
    docs.reserve(d.size());
    for (const json& x : d) {
        const json* t = &x;
        if (x.is_object() && x.size() == 1 && x.contains("text")) t = &x["text"];
        if (!t->is_string()) wrong_type("documents", "strings (or {\"text\": string} objects) in the array", *t);
        docs.push_back(t->get<std::string>());
        if (!utf8_valid(docs.back())) bad("Invalid 'documents': document " + std::to_string(docs.size() - 1) + " is not valid UTF-8.", "documents", "invalid_value");
    }
    const size_t top_n = static_cast<size_t>(integer(b, "top_n", static_cast<int64_t>(docs.size()), 1, static_cast<int64_t>(kMaxDocuments)));
    const bool return_documents = boolean(b, "return_documents", false);
    // tokenised here, so that a bad request is answered before it queues ([CLS] query [SEP] document [SEP], the
    // document cut to fit the model's context)
    auto pairs = std::make_shared<std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>>>(rs->reranker.pair_tokens(query, docs));
    int64_t tokens = 0;
    for (const auto& p : *pairs) tokens += static_cast<int64_t>(p.first.size());
    if (!return_documents) docs.clear();
    auto texts = std::make_shared<std::vector<std::string>>(std::move(docs));
    auto counters = counters_;
    auto* self = this;
    const std::string cors = opt_.cors_origin, model_id = rs->id;
    const auto t0 = std::chrono::steady_clock::now();
    auto job = [=](const std::function<bool()>& stopping) {
        http::Response r;
        if (!cors.empty()) r.headers.emplace_back("Access-Control-Allow-Origin", cors);
        std::vector<float> scores;
        try {
            for (const auto& [ids, types] : *pairs) {
                if (ex->closed()) break;  // the client left: stop scoring
                if (stopping()) break;
                scores.push_back(rs->reranker.score_tokens(ids, types));
            }
        } catch (const std::exception& e) {
            r.status = 500;
            r.body = error_body(std::string("internal error: ") + e.what(), "server_error");
        }
        if (r.status == 200 && scores.size() < pairs->size()) {
            r.status = ex->closed() ? 499 : 503;
            r.body = error_body("The server is shutting down.", "server_error", "", "shutting_down");
        } else if (r.status == 200) {
            std::vector<size_t> order(scores.size());
            std::iota(order.begin(), order.end(), size_t{0});
            std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t c) { return scores[a] > scores[c]; });
            order.resize(std::min(order.size(), top_n));
            json results = json::array();
            for (size_t i : order) {
                json x = {{"index", i}, {"relevance_score", scores[i]}};
                if (!texts->empty()) x["document"] = {{"text", (*texts)[i]}};
                results.push_back(std::move(x));
            }
            r.body = dump(json{{"id", random_id("rerank-")},
                               {"object", "list"},
                               {"model", model_id},
                               {"results", std::move(results)},
                               {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}});
        }
        const int status = r.status;
        ex->log_fields("\"model\":\"" + model_id + "\",\"prompt_tokens\":" + std::to_string(tokens) + ",\"documents\":" + std::to_string(pairs->size()));
        ex->reply(std::move(r));
        counters->record("/v1/rerank", status, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
        --self->in_flight_;
    };
    if (!rs->submit(job)) throw ApiError{503, "The server is overloaded: the reranker's queue is full. Please retry later.", "server_error", "", "overloaded"};
}

}  // namespace llmforge::server
