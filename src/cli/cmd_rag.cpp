// llmforge rag index INPUTS... -o KB : documents → chunks → an index (SQLite + FTS5 BM25), incrementally;
// llmforge rag query KB QUESTION     : the best chunks for a question;
// llmforge rag eval KB --qa FILE     : retrieval quality on questions with known answers.
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

namespace fs = std::filesystem;

// The first `max` bytes of a text on one line (whitespace runs become one space), cut at a character boundary.
std::string snippet(const std::string& text, size_t max) {
    std::string s;
    for (size_t i = 0; i < text.size() && s.size() < max; ++i) {
        const char c = text[i];
        const bool sp = c == ' ' || c == '\n' || c == '\t' || c == '\r';
        if (sp) {
            if (!s.empty() && s.back() != ' ') s += ' ';
        } else {
            s += c;
        }
    }
    if (s.size() >= max) {
        size_t cut = max;
        while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
        s = s.substr(0, cut) + "…";
    }
    return s;
}

// The embedding model of dense retrieval: `--embed-model`, or the one the index records.
struct DenseModel {
    std::string path, stamp;
    std::optional<Model> model;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<Embedder> embedder;
};

std::string model_stamp(const std::string& path) {
    std::error_code ec;
    fs::path p(path);
    if (fs::is_directory(p, ec)) p /= "model.safetensors";
    const auto size = fs::file_size(p, ec);
    const auto t = fs::last_write_time(p, ec);
    return std::to_string(ec ? 0 : size) + " " + std::to_string(t.time_since_epoch().count());
}

// The model named (or, where none is, the index's own; none at all: null). query_side: the model must be the one the
// index's vectors were made with.
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

void add_rag_index(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("index", "Index documents for retrieval: text, Markdown, HTML, PDF and JSONL files, or directories of them; "
                                             "run it again to bring the index up to date (only new and changed files are read, "
                                             "files no longer among the inputs are removed)");
    struct Opts {
        std::vector<std::string> inputs;
        std::string out, tokenizer, text_field = "text", embed_model;
        int chunk_tokens = 0, overlap = -1, threads = 0;
        bool json = false, quiet = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("inputs", o->inputs, "files and directories (walked recursively; names starting with '.' are skipped)")->required();
    cmd->add_option("-o,--output", o->out, "the index directory (created if needed)")->required();
    cmd->add_option("--chunk-tokens", o->chunk_tokens, "a chunk's size in tokens (fixed when the index is made)")
        ->default_str("the index's; 256 for a new one")->check(at_least(1));
    cmd->add_option("--overlap", o->overlap, "tokens of the previous chunk's last sentences that the next chunk of a section repeats")
        ->default_str("the index's; 32 for a new one")->check(at_least(0));
    cmd->add_option("--tokenizer", o->tokenizer, "count chunk sizes in this tokenizer's tokens (a GGUF model, tokenizer.json, …)")
        ->default_str("words, as the index segments them");
    cmd->add_option("--text-field", o->text_field, "JSONL: the field with each line's text");
    cmd->add_option("--embed-model", o->embed_model, "dense retrieval: embed every chunk with this model (an encoder such as BERT, or a "
                                                      "decoder) into an HNSW index beside the BM25 one")
        ->default_str("the index's, if it has vectors; else none");
    add_threads_option(cmd, o->threads);
    cmd->add_flag("--json", o->json, "print the result as one JSON object");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress line");
    cmd->callback([o] {
        if (o->chunk_tokens > 0 && o->overlap >= o->chunk_tokens)
            throw_bad_input("rag index: --overlap (%d) must be smaller than --chunk-tokens (%d)", o->overlap, o->chunk_tokens);
        rag::IndexOptions io;
        io.chunk.max_tokens = o->chunk_tokens;
        io.chunk.overlap = o->overlap;
        io.tokenizer = o->tokenizer;
        io.read.text_field = o->text_field;
        io.progress = !o->quiet;
        const std::unique_ptr<DenseModel> dm = open_dense_model(o->embed_model, o->out, o->threads, false);
        if (dm) {
            io.embedder = dm->embedder.get();
            io.embed_model = dm->path;
            io.embed_stamp = dm->stamp;
        }
        io.threads = o->threads;
        StopOnSignal stop;
        io.stop = stop.flag();
        const rag::IndexStats s = rag::build_index(o->inputs, o->out, io);
        // Files that could not be read or parsed: each named. Files of formats llmforge does not read: counted by
        // extension, the first few named (--json lists them all).
        std::map<std::string, int> by_ext;
        std::vector<std::string> unsupported;
        for (const std::string& k : s.skipped) {
            const std::string tail = ": unsupported format";
            if (k.size() > tail.size() && k.compare(k.size() - tail.size(), tail.size(), tail) == 0) {
                const std::string path = k.substr(0, k.size() - tail.size());
                std::string ext = std::filesystem::path(path).extension().string();
                ++by_ext[ext.empty() ? "(none)" : ext];
                unsupported.push_back(path);
            } else {
                log_line("skipped %s", k.c_str());
            }
        }
        if (!unsupported.empty()) {
            std::string exts, first;
            for (const auto& [e, n] : by_ext) exts += (exts.empty() ? "" : ", ") + e + " " + std::to_string(n);
            for (size_t i = 0; i < std::min<size_t>(3, unsupported.size()); ++i) first += (i ? ", " : "") + unsupported[i];
            log_line("skipped %zu files of formats llmforge does not read (%s): %s%s", unsupported.size(), exts.c_str(), first.c_str(),
                     unsupported.size() > 3 ? ", … (--json lists them all)" : "");
        }
        if (o->json) {
            nlohmann::json j = {{"index", o->out}, {"files", s.files}, {"added", s.added}, {"changed", s.changed}, {"unchanged", s.unchanged},
                                {"removed", s.removed}, {"skipped", s.skipped}, {"documents", s.documents}, {"chunks", s.chunks},
                                {"chunks_written", s.chunks_written}, {"bytes_read", s.bytes_read}, {"seconds", s.seconds},
                                {"interrupted", s.interrupted}, {"vectors", s.vectors}, {"embedded", s.embedded}};
            if (dm) j["embed_model"] = dm->path;
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%s: %zu files (%zu added, %zu changed, %zu unchanged, %zu removed, %zu skipped); %zu documents, %zu chunks "
                        "(%zu written) in %.1f s\n",
                        o->out.c_str(), s.files, s.added, s.changed, s.unchanged, s.removed, s.skipped.size(), s.documents, s.chunks,
                        s.chunks_written, s.seconds);
            if (dm) std::printf("  dense: %zu vectors (%zu embedded now) by %s\n", s.vectors, s.embedded, dm->path.c_str());
        }
        if (s.interrupted) throw_runtime("rag index: interrupted; the files indexed so far are committed (run it again to go on)");
    });
}

void add_rag_query(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("query", "The chunks of an index that best match a question: BM25 over the index's words, dense (embedding "
                                             "similarity) or hybrid (the two fused by reciprocal rank)");
    struct Opts {
        std::string kb, question, mode = "bm25", embed_model;
        int k = 5, candidates = 100, threads = 0;
        bool json = false, exact = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("question", o->question, "the question (any language the index holds)")->required();
    cmd->add_option("-k,--hits", o->k, "how many chunks")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25, dense or hybrid (dense and hybrid: an index with vectors, rag index --embed-model)")
        ->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "embed the question with this model")->default_str("the index's");
    cmd->add_option("--candidates", o->candidates, "hybrid: how deep each ranking is fused")->check(at_least(1));
    cmd->add_flag("--exact", o->exact, "dense: compare with every vector instead of searching the HNSW graph");
    add_threads_option(cmd, o->threads);
    cmd->add_flag("--json", o->json, "print the result as one JSON object (with the chunks' whole texts)");
    cmd->callback([o] {
        if (!utf8_valid(o->question)) throw_bad_input("rag query: the question is not valid UTF-8");
        rag::Index kb(o->kb);
        rag::QueryOptions qo;
        qo.k = o->k;
        qo.mode = rag::parse_mode(o->mode);
        qo.candidates = o->candidates;
        qo.exact = o->exact;
        std::unique_ptr<DenseModel> dm;
        if (qo.mode != rag::Mode::Bm25) {
            dm = open_dense_model(o->embed_model, o->kb, o->threads, true);
            if (!dm) throw_bad_input("rag query: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->kb.c_str());
            qo.embedder = dm->embedder.get();
        }
        const std::vector<rag::Hit> hits = kb.query(o->question, qo);
        if (o->json) {
            nlohmann::json j = {{"query", o->question}, {"mode", o->mode}, {"terms", rag::words(o->question)}, {"hits", nlohmann::json::array()}};
            for (size_t i = 0; i < hits.size(); ++i) {
                const rag::Hit& h = hits[i];
                j["hits"].push_back({{"rank", i + 1}, {"chunk", h.chunk}, {"score", h.score}, {"source", h.source}, {"title", h.title},
                                     {"heading", h.heading}, {"begin", h.begin}, {"end", h.end}, {"text", h.text}});
                if (qo.mode == rag::Mode::Hybrid) {
                    j["hits"].back()["bm25_rank"] = h.bm25_rank;
                    j["hits"].back()["dense_rank"] = h.dense_rank;
                }
            }
            std::printf("%s\n", j.dump().c_str());
            return;
        }
        if (hits.empty()) std::printf("no matching chunks\n");
        for (size_t i = 0; i < hits.size(); ++i) {
            const rag::Hit& h = hits[i];
            std::printf("[%zu] %.4f  %s — %s%s%s\n    %s\n", i + 1, h.score, h.source.c_str(), h.title.c_str(), h.heading.empty() ? "" : " > ",
                        h.heading.c_str(), snippet(h.text, 240).c_str());
        }
    });
}

void add_rag_eval(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("eval", "Retrieval quality on questions with known answers: recall@k, MRR@10 and nDCG@10 over documents, "
                                            "with 95 % bootstrap intervals");
    struct Opts {
        std::string kb, qa, embed_model;
        std::vector<std::string> modes{"bm25"};
        int k = 5, bootstrap = 1000, candidates = 100, threads = 0;
        bool json = false, quiet = false, exact = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("--qa", o->qa, "JSONL: {\"question\": ..., \"gold\": SOURCE or [SOURCE, ...]} per line; a source as `rag query` "
                                   "prints it, or its end after a '/'")->required();
    cmd->add_option("-k,--hits", o->k, "the k of recall@k")->check(at_least(1));
    cmd->add_option("--mode", o->modes, "retrieval modes to evaluate, each on the same questions: bm25, dense, hybrid (comma-separated)")
        ->delimiter(',')->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "dense and hybrid: embed the questions with this model")->default_str("the index's");
    cmd->add_option("--candidates", o->candidates, "hybrid: how deep each ranking is fused")->check(at_least(1));
    cmd->add_flag("--exact", o->exact, "dense: compare with every vector instead of searching the HNSW graph");
    add_threads_option(cmd, o->threads);
    cmd->add_option("--bootstrap", o->bootstrap, "resamples of the questions for the intervals (0: none)")->check(at_least(0));
    cmd->add_flag("--json", o->json, "print the result as one JSON object (with each question's gold ranks)");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress line");
    cmd->callback([o] {
        const std::vector<rag::QaItem> qa = rag::read_qa(o->qa);
        rag::Index kb(o->kb);
        std::unique_ptr<DenseModel> dm;
        for (const std::string& m : o->modes)
            if (m != "bm25" && !dm) {
                dm = open_dense_model(o->embed_model, o->kb, o->threads, true);
                if (!dm) throw_bad_input("rag eval: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->kb.c_str());
            }
        StopOnSignal stop;
        auto est = [](const rag::Estimate& e) { return nlohmann::json{{"mean", e.mean}, {"lo", e.lo}, {"hi", e.hi}}; };
        nlohmann::json out = {{"index", o->kb}, {"qa", o->qa}, {"questions", qa.size()}, {"k", o->k}, {"bootstrap", o->bootstrap},
                              {"modes", nlohmann::json::object()}};
        if (!o->json)
            std::printf("%s, %zu questions (95 %% bootstrap intervals, %d resamples)\n", o->qa.c_str(), qa.size(), o->bootstrap);
        std::vector<double> first_rr;
        std::string first_mode;
        for (const std::string& mode : o->modes) {
            rag::EvalOptions eo;
            eo.k = o->k;
            eo.bootstrap = o->bootstrap;
            eo.progress = !o->quiet;
            eo.stop = stop.flag();
            eo.query.mode = rag::parse_mode(mode);
            eo.query.candidates = o->candidates;
            eo.query.exact = o->exact;
            eo.query.embedder = dm ? dm->embedder.get() : nullptr;
            const rag::RetrievalEval r = rag::evaluate_retrieval(kb, qa, eo);
            nlohmann::json m = {{"recall_at_k", est(r.recall)}, {"mrr_at_10", est(r.mrr)}, {"ndcg_at_10", est(r.ndcg)}, {"ranks", r.ranks}};
            // against the first mode: the paired difference of MRR@10 (the same questions resampled for both)
            rag::Estimate diff;
            const bool paired = !first_rr.empty();
            if (paired) {
                std::vector<double> d(r.rr.size());
                for (size_t i = 0; i < d.size(); ++i) d[i] = r.rr[i] - first_rr[i];
                diff = rag::bootstrap_mean(d, o->bootstrap, 7);
                m["mrr_minus_" + first_mode] = est(diff);
            } else {
                first_rr = r.rr;
                first_mode = mode;
            }
            out["modes"][mode] = m;
            if (!o->json) {
                std::printf("  %-7s recall@%-3d %.4f [%.4f, %.4f]   MRR@10 %.4f [%.4f, %.4f]   nDCG@10 %.4f [%.4f, %.4f]\n", mode.c_str(), r.k,
                            r.recall.mean, r.recall.lo, r.recall.hi, r.mrr.mean, r.mrr.lo, r.mrr.hi, r.ndcg.mean, r.ndcg.lo, r.ndcg.hi);
                if (paired)
                    std::printf("          MRR@10 − %s's: %+.4f [%+.4f, %+.4f] (paired)\n", first_mode.c_str(), diff.mean, diff.lo, diff.hi);
            }
        }
        if (dm) out["embed_model"] = dm->path;
        if (o->json) std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace

void add_rag(CLI::App& app) {
    auto* rag = app.add_subcommand("rag", "Retrieval: index documents and find the passages that answer a question");
    rag->require_subcommand(1);
    add_rag_index(rag);
    add_rag_query(rag);
    add_rag_eval(rag);
}

}  // namespace llmforge::cli
