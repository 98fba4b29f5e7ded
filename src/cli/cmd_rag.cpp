// llmforge rag index INPUTS... -o KB : documents → chunks → an index (SQLite + FTS5 BM25), incrementally;
// llmforge rag query KB QUESTION     : the best chunks for a question;
// llmforge rag eval KB --qa FILE     : retrieval quality on questions with known answers.
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

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

void add_rag_index(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("index", "Index documents for retrieval: text, Markdown, HTML, PDF and JSONL files, or directories of them; "
                                             "run it again to bring the index up to date (only new and changed files are read, "
                                             "files no longer among the inputs are removed)");
    struct Opts {
        std::vector<std::string> inputs;
        std::string out, tokenizer, text_field = "text";
        int chunk_tokens = 0, overlap = -1;
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
                                {"interrupted", s.interrupted}};
            std::printf("%s\n", j.dump().c_str());
        } else {
            std::printf("%s: %zu files (%zu added, %zu changed, %zu unchanged, %zu removed, %zu skipped); %zu documents, %zu chunks "
                        "(%zu written) in %.1f s\n",
                        o->out.c_str(), s.files, s.added, s.changed, s.unchanged, s.removed, s.skipped.size(), s.documents, s.chunks,
                        s.chunks_written, s.seconds);
        }
        if (s.interrupted) throw_runtime("rag index: interrupted; the files indexed so far are committed (run it again to go on)");
    });
}

void add_rag_query(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("query", "The chunks of an index that best match a question (BM25 over the index's words)");
    struct Opts {
        std::string kb, question, mode = "bm25";
        int k = 5;
        bool json = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("question", o->question, "the question (any language the index holds)")->required();
    cmd->add_option("-k,--hits", o->k, "how many chunks")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25")->check(CLI::IsMember({"bm25"}));
    cmd->add_flag("--json", o->json, "print the result as one JSON object (with the chunks' whole texts)");
    cmd->callback([o] {
        if (!utf8_valid(o->question)) throw_bad_input("rag query: the question is not valid UTF-8");
        rag::Index kb(o->kb);
        rag::QueryOptions qo;
        qo.k = o->k;
        const std::vector<rag::Hit> hits = kb.query(o->question, qo);
        if (o->json) {
            nlohmann::json j = {{"query", o->question}, {"mode", o->mode}, {"terms", rag::words(o->question)}, {"hits", nlohmann::json::array()}};
            for (size_t i = 0; i < hits.size(); ++i) {
                const rag::Hit& h = hits[i];
                j["hits"].push_back({{"rank", i + 1}, {"chunk", h.chunk}, {"score", h.score}, {"source", h.source}, {"title", h.title},
                                     {"heading", h.heading}, {"begin", h.begin}, {"end", h.end}, {"text", h.text}});
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
        std::string kb, qa, mode = "bm25";
        int k = 5, bootstrap = 1000;
        bool json = false, quiet = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("--qa", o->qa, "JSONL: {\"question\": ..., \"gold\": SOURCE or [SOURCE, ...]} per line; a source as `rag query` "
                                   "prints it, or its end after a '/'")->required();
    cmd->add_option("-k,--hits", o->k, "the k of recall@k")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25")->check(CLI::IsMember({"bm25"}));
    cmd->add_option("--bootstrap", o->bootstrap, "resamples of the questions for the intervals (0: none)")->check(at_least(0));
    cmd->add_flag("--json", o->json, "print the result as one JSON object (with each question's gold ranks)");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress line");
    cmd->callback([o] {
        const std::vector<rag::QaItem> qa = rag::read_qa(o->qa);
        rag::Index kb(o->kb);
        rag::EvalOptions eo;
        eo.k = o->k;
        eo.bootstrap = o->bootstrap;
        eo.progress = !o->quiet;
        StopOnSignal stop;
        eo.stop = stop.flag();
        const rag::RetrievalEval r = rag::evaluate_retrieval(kb, qa, eo);
        auto est = [](const rag::Estimate& e) { return nlohmann::json{{"mean", e.mean}, {"lo", e.lo}, {"hi", e.hi}}; };
        if (o->json) {
            nlohmann::json j = {{"index", o->kb}, {"qa", o->qa}, {"mode", o->mode}, {"questions", r.questions}, {"k", r.k},
                                {"recall_at_k", est(r.recall)}, {"mrr_at_10", est(r.mrr)}, {"ndcg_at_10", est(r.ndcg)},
                                {"bootstrap", o->bootstrap}, {"ranks", r.ranks}};
            std::printf("%s\n", j.dump().c_str());
            return;
        }
        std::printf("%s, %zu questions, mode %s (95 %% bootstrap intervals, %d resamples)\n", o->qa.c_str(), r.questions, o->mode.c_str(),
                    o->bootstrap);
        std::printf("  recall@%-3d %.4f  [%.4f, %.4f]\n", r.k, r.recall.mean, r.recall.lo, r.recall.hi);
        std::printf("  MRR@10     %.4f  [%.4f, %.4f]\n", r.mrr.mean, r.mrr.lo, r.mrr.hi);
        std::printf("  nDCG@10    %.4f  [%.4f, %.4f]\n", r.ndcg.mean, r.ndcg.lo, r.ndcg.hi);
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
