// What the rag commands and serve --rag share: the embedding model of an index's dense vectors.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "core/threadpool.h"
#include "llmforge/embedder.h"
#include "llmforge/model.h"
#include "llmforge/rag.h"
#include "llmforge/reranker.h"

namespace CLI {
class App;
}

namespace llmforge::cli {

// How hybrid retrieval fuses its rankings (--candidates, --fusion, --rrf-k, --alpha), as every command that retrieves
// takes it.
struct HybridCli {
    int candidates = 100, rrf_k = 60;
    std::string fusion = "rrf";
    double alpha = 0.5;
    void add_to(CLI::App* cmd);
    void apply(rag::QueryOptions& q) const;
};

// The embedding model of dense retrieval: `--embed-model`, or the one the index records.
struct DenseModel {
    std::string path, stamp;
    std::optional<Model> model;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<Embedder> embedder;
};

// A cross-encoder for --rerank.
struct RerankModel {
    std::optional<Model> model;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<Reranker> reranker;
};
std::unique_ptr<RerankModel> open_reranker(const std::string& path, int threads);  // null for ""

// A model file's size and modification time (an index notices a model changed in place).
std::string model_stamp(const std::string& path);

// The model named (or, where none is, the index's own; none at all: null). query_side: the model must be the one the
// index's vectors were made with.
std::unique_ptr<DenseModel> open_dense_model(const std::string& given, const std::string& kb_dir, int threads, bool query_side);

}  // namespace llmforge::cli
