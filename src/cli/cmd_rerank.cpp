// llmforge rerank -m MODEL QUERY PASSAGE... : relevance scores of passages for a query by a cross-encoder (reranker),
// best first.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/reranker.h"

namespace llmforge::cli {

void add_rerank(CLI::App& app) {
    auto* cmd = app.add_subcommand("rerank", "Relevance scores of passages for a query by a cross-encoder (a reranker: GGUF pooling type "
                                             "rank, or a BertForSequenceClassification directory), best first");
    struct Opts {
        std::string model, query, file;
        std::vector<std::string> passages;
        int threads = 0;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "the reranker: GGUF, or a Hugging Face directory")->required();
    cmd->add_option("query", o->query, "the query")->required();
    cmd->add_option("passages", o->passages, "the passages to score (none: -f FILE)");
    cmd->add_option("-f,--file", o->file, "score each line of this file as a passage")->default_str("none");
    add_threads_option(cmd, o->threads, "threads", 0);
    cmd->add_flag("--json", o->json, "print {\"query\", \"results\": [{\"index\", \"score\", \"text\"}]}, best first");
    cmd->callback([o] {
        std::vector<std::string> passages = o->passages;
        if (!o->file.empty()) {
            std::ifstream f(o->file);
            if (!f) throw_bad_input("rerank: cannot open '%s'", o->file.c_str());
            for (std::string line; std::getline(f, line);)
                if (!line.empty()) passages.push_back(line);
        }
        if (passages.empty()) throw_bad_input("rerank: no passages (give them after the query, or -f FILE)");
        Model m = load_model(o->model);
        ThreadPool pool(o->threads);
        Reranker r(m, pool);
        std::vector<std::pair<float, size_t>> scored;
        for (size_t i = 0; i < passages.size(); ++i) scored.emplace_back(r.score(o->query, passages[i]), i);
        std::stable_sort(scored.begin(), scored.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
        if (o->json) {
            nlohmann::json j = {{"query", o->query}, {"results", nlohmann::json::array()}};
            for (const auto& [s, i] : scored) j["results"].push_back({{"index", i}, {"score", s}, {"text", passages[i]}});
            std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
            return;
        }
        for (const auto& [s, i] : scored) std::printf("%.6f\t%zu\t%s\n", static_cast<double>(s), i, passages[i].c_str());
    });
}

}  // namespace llmforge::cli
