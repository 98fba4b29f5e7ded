// GET /v1/retrieve: the index the server answers from ({"available": false} without one); POST /v1/retrieve: the chunks that best match a query, scored,
// with the grounded prompt rag ask would send (llmforge's own endpoint, OpenAI-shaped errors).
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/rag_ask.h"
#include "server/api_internal.h"

namespace llmforge::server {

using namespace detail;

void Api::retrieve(const http::Request& req, const http::ExchangePtr& ex) {
    const std::shared_ptr<RagService> rs = opt_.rag;
    // GET says whether there is an index (the web chat asks, and a 404 would be an error in a browser's console)
    if (!rs && req.method == "GET") return reply(ex, 200, dump(json{{"object", "index"}, {"available", false}}), "/v1/retrieve");
    if (!rs)
        throw ApiError{404, "This server has no document index: start it with --rag KB to retrieve from one.", "invalid_request_error", "",
                       "no_index"};
    if (req.method == "GET") {
        json modes = json::array({"bm25"});
        if (rs->embedder) modes.insert(modes.end(), {"dense", "hybrid"});
        std::lock_guard<std::mutex> lk(rs->mu);
        return reply(ex, 200,
                     dump(json{{"object", "index"}, {"available", true}, {"name", rs->name}, {"documents", rs->index->documents()}, {"chunks", rs->index->chunks()},
                               {"vectors", rs->index->vectors()}, {"modes", modes}, {"default_mode", rag::mode_name(rs->query.mode)},
                               {"default_fusion", rag::fusion_name(rs->query.fusion)}, {"default_alpha", rs->query.alpha},
                               {"system", rag::kGroundedInstruction}}),
                     "/v1/retrieve");
    }
    const json b = parse_body(req);
    for (auto it = b.begin(); it != b.end(); ++it)
        if (it.key() != "query" && it.key() != "k" && it.key() != "mode" && it.key() != "fusion" && it.key() != "alpha" && it.key() != "min_bm25" &&
            it.key() != "min_similarity" && it.key() != "min_lead")
            bad("Unrecognized request argument supplied: " + it.key(), it.key(), "unknown_parameter");
    if (!has(b, "query")) bad("You must provide a 'query'.", "query", "missing_required_parameter");
    if (!b["query"].is_string()) wrong_type("query", "a string", b["query"]);
    const std::string query = b["query"].get<std::string>();
    if (!utf8_valid(query)) bad("Invalid 'query': not valid UTF-8.", "query", "invalid_value");
    rag::QueryOptions qo = rs->query;
    qo.k = static_cast<int>(integer(b, "k", 5, 1, 100));
    if (has(b, "mode")) {
        if (!b["mode"].is_string()) wrong_type("mode", "a string", b["mode"]);
        const std::string m = b["mode"].get<std::string>();
        if (m != "bm25" && m != "dense" && m != "hybrid")
            bad("Invalid 'mode': expected 'bm25', 'dense' or 'hybrid', but got '" + m + "' instead.", "mode", "invalid_value");
        qo.mode = rag::parse_mode(m);
    }
    if (has(b, "fusion")) {
        if (!b["fusion"].is_string()) wrong_type("fusion", "a string", b["fusion"]);
        const std::string f = b["fusion"].get<std::string>();
        if (f != "rrf" && f != "convex") bad("Invalid 'fusion': expected 'rrf' or 'convex', but got '" + f + "' instead.", "fusion", "invalid_value");
        qo.fusion = rag::parse_fusion(f);
    }
    qo.alpha = number(b, "alpha", qo.alpha, 0.0, 1.0);
    if (qo.mode != rag::Mode::Bm25 && !rs->embedder)
        bad(std::string("Invalid 'mode': this index has no dense vectors, so only 'bm25' retrieval is possible."), "mode", "invalid_value");
    qo.embedder = rs->embedder;
    rag::Relevance rel = rs->relevance;
    rel.min_bm25 = number(b, "min_bm25", rel.min_bm25, -1e300, 1e300);
    rel.min_similarity = number(b, "min_similarity", rel.min_similarity, -1.0, 1.0);
    rel.min_lead = number(b, "min_lead", rel.min_lead, 0.0, 1.0);
    std::vector<rag::Hit> hits;
    {
        std::lock_guard<std::mutex> lk(rs->mu);
        hits = rs->index->query(query, qo);
    }
    json data = json::array();
    std::vector<rag::Hit> sources;
    const double lead = rag::lead(hits);
    const bool stands_out = rel.min_lead <= 0 || lead >= rel.min_lead;  // else no chunk is relevant: nothing to answer from
    for (const rag::Hit& h : hits) {
        const bool relevant = stands_out && rag::relevant(h, rel);
        json d = {{"object", "retrieval.chunk"}, {"index", data.size()}, {"relevant", relevant}, {"n", nullptr}, {"chunk", h.chunk}, {"score", h.score}};
        const bool both = qo.mode == rag::Mode::Hybrid && qo.fusion == rag::Fusion::Convex;  // every hit has both scores
        if (h.bm25_rank || both) d["bm25"] = h.bm25;
        if (h.dense_rank || both) d["similarity"] = h.similarity;
        if (relevant) {
            sources.push_back(h);
            d["n"] = sources.size();  // its number in the prompt
        }
        d.update(json{{"source", h.source}, {"title", h.title}, {"heading", h.heading}, {"label", rag::source_label(h)}, {"begin", h.begin},
                      {"end", h.end}, {"text", h.text}, {"snippet", rag::best_snippet(h, query)}});
        data.push_back(std::move(d));
    }
    json out = {{"object", "list"}, {"query", query}, {"mode", rag::mode_name(qo.mode)}, {"data", std::move(data)}, {"lead", lead}, {"sources", sources.size()},
                {"system", rag::kGroundedInstruction}};
    if (qo.mode == rag::Mode::Hybrid) out["fusion"] = rag::fusion_json(qo);
    out["prompt"] = sources.empty() ? json(nullptr) : json(rag::grounded_prompt(query, sources));
    reply(ex, 200, dump(out), "/v1/retrieve");
}

}  // namespace llmforge::server
