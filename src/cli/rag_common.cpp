// The embedding model of an index's dense vectors (rag_common.h).
#include "cli/rag_common.h"

#include <filesystem>

#include <CLI/CLI.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"

namespace llmforge::cli {

namespace fs = std::filesystem;

void HybridCli::add_to(CLI::App* cmd) {
    cmd->add_option("--candidates", candidates, "hybrid: how deep each ranking is fused")->capture_default_str()->check(at_least(1));
    cmd->add_option("--fusion", fusion, "hybrid: rrf (reciprocal-rank fusion: ranks only) or convex ((1 - alpha) * BM25 + alpha * cosine "
                                        "similarity, each scaled to [0, 1] from its lowest possible value to the best candidate's)")
        ->capture_default_str()->check(CLI::IsMember({"rrf", "convex"}));
    cmd->add_option("--rrf-k", rrf_k, "rrf: the constant k of 1 / (k + rank)")->capture_default_str()->check(at_least(1));
    cmd->add_option("--alpha", alpha, "convex: the dense score's weight (0: BM25's ranking, 1: the dense one)")->capture_default_str()
        ->check(CLI::Range(0.0, 1.0));
}

void HybridCli::apply(rag::QueryOptions& q) const {
    q.candidates = candidates;
    q.fusion = rag::parse_fusion(fusion);
    q.rrf_k = rrf_k;
    q.alpha = alpha;
}

std::unique_ptr<RerankModel> open_reranker(const std::string& path, int threads) {
    if (path.empty()) return nullptr;
    auto r = std::make_unique<RerankModel>();
    r->model.emplace(load_model(path));
    r->pool = std::make_unique<ThreadPool>(threads);
    r->reranker = std::make_unique<Reranker>(*r->model, *r->pool);
    return r;
}

std::string model_stamp(const std::string& path) {
    std::error_code ec;
    fs::path p(path);
    if (fs::is_directory(p, ec)) p /= "model.safetensors";
    const auto size = fs::file_size(p, ec);
    const auto t = fs::last_write_time(p, ec);
    return std::to_string(ec ? 0 : size) + " " + std::to_string(t.time_since_epoch().count());
}

std::unique_ptr<DenseModel> open_dense_model(const std::string& given, const std::string& kb_dir, int threads, bool query_side) {
    std::string recorded;
    std::error_code ec;
    if (fs::is_regular_file(fs::path(kb_dir) / "index.sqlite", ec)) recorded = rag::Index(kb_dir).embed_model();
    std::string path = given.empty() ? recorded : fs::absolute(given).lexically_normal().string();
    if (path.empty()) return nullptr;
    if (query_side && !recorded.empty() && path != recorded)
        log_line("rag: the index's vectors were made with %s; embedding the query with %s", recorded.c_str(), path.c_str());
    auto d = std::make_unique<DenseModel>();
    d->path = path;
    d->stamp = model_stamp(path);
    d->model.emplace(load_model(path));
    if (!d->model->vocab) throw_bad_input("'%s' has no tokenizer to embed texts with", path.c_str());
    d->pool = std::make_unique<ThreadPool>(threads);
    d->embedder = std::make_unique<Embedder>(*d->model, *d->pool);
    return d;
}


}  // namespace llmforge::cli
