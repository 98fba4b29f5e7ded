// llmforge rag index INPUTS... -o KB : documents → chunks → an index (SQLite + FTS5 BM25), incrementally;
// llmforge rag query KB QUESTION     : the best chunks for a question;
// llmforge rag ask KB -m MODEL Q     : an answer from the index's passages with [n] citations;
// llmforge rag eval KB --qa FILE     : retrieval (and, with -m, answer) quality on questions with known answers;
// llmforge rag sft-data KB --qa FILE : fine-tuning conversations for grounded answers with citations.
#include <algorithm>
#include <cstdio>
#include <random>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "cli/rag_common.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"
#include "llmforge/rag_ask.h"
#include "llmforge/chat_session.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

namespace fs = std::filesystem;


void add_rerank_options(CLI::App* cmd, std::string& model, int& top) {
    cmd->add_option("--rerank", model, "reorder the retrieved chunks by this cross-encoder's scores (a reranker: GGUF pooling type rank, "
                                       "or a BertForSequenceClassification directory)")->default_str("none");
    cmd->add_option("--rerank-top", top, "with --rerank: how many of the first chunks it scores")->check(at_least(1));
}

// The chat model of rag ask and rag eval --model, and how it answers.
struct ChatCli {
    std::string model, system = rag::kGroundedInstruction, tpl;
    int32_t n = 512;
    int64_t ctx = 0, seed = -1;
    rag::Relevance rel;
    SamplerParams s;
    CacheTypeOptions cache;
    GrammarOptions grammar;
    ChatCli() { s.temp = 0.0f; }  // a grounded answer: greedy unless asked otherwise
};

void add_answer_options(CLI::App* cmd, ChatCli& c) {
    cmd->add_option("--min-bm25", c.rel.min_bm25, "a passage is relevant when its BM25 score reaches this (corpus-dependent: `rag query --json` shows the scores)");
    cmd->add_option("--min-similarity", c.rel.min_similarity, "… or when its cosine similarity to the question reaches this (dense and hybrid)");
    cmd->add_option("--min-lead", c.rel.min_lead, "answer only when the best passage's score leads the best of any other document by this "
                                                  "share of it, (s1 - s2) / s1 (BM25 and hybrid scores; 0: always)")
        ->check(CLI::Range(0.0, 1.0));
    cmd->add_option("--system", c.system, "the system prompt")->default_str("answer from the numbered sources only, citing them as [n]");
    cmd->add_option("--template", c.tpl, "chat template (Jinja file, tokenizer_config.json or GGUF) instead of the model's")->default_str("the model's, else ChatML");
    cmd->add_option("-n,--n-predict", c.n, "most tokens in an answer (-1: until the end of the turn)")->check(at_least(-1, " (-1: no limit)"));
    add_sampling_options(cmd, c.s, c.seed);
    cmd->add_option("-c,--ctx-size", c.ctx, "context size (0: the model's)")->check(at_least(0, " (0: the model's)"));
    add_cache_type_options(cmd, c.cache);
    add_grammar_options(cmd, c.grammar);
}

// A chat model loaded for grounded answers, with its session.
struct ChatModel {
    std::unique_ptr<Model> model;
    std::unique_ptr<ThreadPool> pool;
    std::unique_ptr<ChatFormat> fmt;
    std::unique_ptr<ChatSession> chat;
};

ChatModel open_chat_model(const ChatCli& c, int threads) {
    const std::string tpl = c.tpl.empty() ? std::string() : load_chat_template(c.tpl);
    ChatModel cm;
    cm.model = std::make_unique<Model>(load_for_cli(c.model, "", true));
    warn_context(*cm.model, c.ctx);
    cm.pool = std::make_unique<ThreadPool>(threads);
    if (tpl.empty() && cm.model->vocab->chat_template.empty())
        log_line("llmforge: note: %s has no chat template; using ChatML (--template FILE to choose one)", c.model.c_str());
    cm.fmt = std::make_unique<ChatFormat>(*cm.model->vocab, tpl);
    SamplerParams sp = c.s;
    sp.seed = seed_or_random(c.seed);
    ChatSessionOptions co;
    co.n_ctx = c.ctx;
    co.kv_type = parse_cache_types(c.cache);
    cm.chat = std::make_unique<ChatSession>(*cm.model, *cm.pool, *cm.fmt, sp, co);
    cm.chat->set_grammar(load_grammar(c.grammar, *cm.model->vocab));
    return cm;
}

rag::AskOptions ask_options(const ChatCli& c, rag::Mode mode, int k, const HybridCli& hy, bool exact, Embedder* embedder, Reranker* reranker,
                            int rerank_top) {
    rag::AskOptions ao;
    ao.query.reranker = reranker;
    ao.query.rerank_top = rerank_top;
    ao.query.k = k;
    ao.query.mode = mode;
    hy.apply(ao.query);
    ao.query.exact = exact;
    ao.query.embedder = embedder;
    ao.relevance = c.rel;
    ao.max_tokens = c.n;
    ao.system = c.system;
    return ao;
}

void add_rag_index(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("index", "Index documents for retrieval: text, Markdown, HTML, PDF and JSONL files, or directories of them; "
                                             "run it again to bring the index up to date (only new and changed files are read, "
                                             "files no longer among the inputs are removed)");
    struct Opts {
        std::vector<std::string> inputs;
        std::string out, tokenizer, text_field = "text", embed_model, analyzer;
        int chunk_tokens = 0, overlap = -1, threads = 0;
        bool json = false, quiet = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("inputs,--input", o->inputs, "files and directories, as positionals or after --input (walked recursively; names starting with '.' are skipped)")->required();
    cmd->add_option("-o,--output", o->out, "the index directory (created if needed)")->required();
    cmd->add_option("--chunk-tokens", o->chunk_tokens, "a chunk's size in tokens (fixed when the index is made)")
        ->default_str("the index's; 256 for a new one")->check(at_least(1));
    cmd->add_option("--overlap", o->overlap, "tokens of the previous chunk's last sentences that the next chunk of a section repeats")
        ->default_str("the index's; 32 for a new one")->check(at_least(0));
    cmd->add_option("--tokenizer", o->tokenizer, "count chunk sizes in this tokenizer's tokens (a GGUF model, tokenizer.json, …)")
        ->default_str("words, as the index segments them");
    cmd->add_option("--analyzer", o->analyzer, "how words become BM25 terms (fixed when the index is made; queries alike): plain, "
                                                "stop (English stopwords dropped) or english (dropped, and words Porter-stemmed)")
        ->default_str("the index's; plain for a new one")->check(CLI::IsMember({"plain", "stop", "english"}));
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
        io.analyzer = o->analyzer;
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
    auto* cmd = rag->add_subcommand("query", "The chunks of an index that best match a question: BM25 over the index's terms, dense (embedding "
                                             "similarity) or hybrid (the two fused by reciprocal rank)");
    struct Opts {
        std::string kb, question, mode = "bm25", embed_model, rerank;
        int k = 5, threads = 0, rerank_top = 20;
        HybridCli hy;
        bool json = false, exact = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("question", o->question, "the question (any language the index holds)")->required();
    add_rerank_options(cmd, o->rerank, o->rerank_top);
    cmd->add_option("-k,--hits", o->k, "how many chunks")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25, dense or hybrid (dense and hybrid: an index with vectors, rag index --embed-model)")
        ->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "embed the question with this model")->default_str("the index's");
    o->hy.add_to(cmd);
    cmd->add_flag("--exact", o->exact, "dense: compare with every vector instead of searching the HNSW graph");
    add_threads_option(cmd, o->threads);
    cmd->add_flag("--json", o->json, "print the result as one JSON object (with the chunks' whole texts)");
    cmd->callback([o] {
        if (!utf8_valid(o->question)) throw_bad_input("rag query: the question is not valid UTF-8");
        rag::Index kb(o->kb);
        rag::QueryOptions qo;
        qo.k = o->k;
        qo.mode = rag::parse_mode(o->mode);
        o->hy.apply(qo);
        qo.exact = o->exact;
        std::unique_ptr<DenseModel> dm;
        if (qo.mode != rag::Mode::Bm25) {
            dm = open_dense_model(o->embed_model, o->kb, o->threads, true);
            if (!dm) throw_bad_input("rag query: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->kb.c_str());
            qo.embedder = dm->embedder.get();
        }
        const std::unique_ptr<RerankModel> rr = open_reranker(o->rerank, o->threads);
        qo.reranker = rr ? rr->reranker.get() : nullptr;
        qo.rerank_top = o->rerank_top;
        const std::vector<rag::Hit> hits = kb.query(o->question, qo);
        if (o->json) {
            nlohmann::json j = {{"query", o->question}, {"mode", o->mode}, {"analyzer", rag::analyzer_name(kb.analyzer())}, {"terms", rag::terms(o->question, kb.analyzer())}, {"hits", nlohmann::json::array()}};
            if (qo.mode == rag::Mode::Hybrid) j["fusion"] = rag::fusion_json(qo);
            const bool both = qo.mode == rag::Mode::Hybrid && qo.fusion == rag::Fusion::Convex;  // every hit has both scores
            for (size_t i = 0; i < hits.size(); ++i) {
                const rag::Hit& h = hits[i];
                j["hits"].push_back({{"rank", i + 1}, {"chunk", h.chunk}, {"score", h.score}, {"source", h.source}, {"title", h.title},
                                     {"heading", h.heading}, {"begin", h.begin}, {"end", h.end}, {"text", h.text}});
                if (qo.mode == rag::Mode::Hybrid) {
                    j["hits"].back()["bm25_rank"] = h.bm25_rank;
                    j["hits"].back()["dense_rank"] = h.dense_rank;
                }
                if (h.bm25_rank || both) j["hits"].back()["bm25"] = h.bm25;
                if (h.dense_rank || both) j["hits"].back()["similarity"] = h.similarity;
                if (h.retrieval_rank) j["hits"].back()["retrieval_rank"] = h.retrieval_rank;
            }
            std::printf("%s\n", j.dump().c_str());
            return;
        }
        if (hits.empty()) std::printf("no matching chunks\n");
        for (size_t i = 0; i < hits.size(); ++i) {
            const rag::Hit& h = hits[i];
            std::printf("[%zu] %.4f  %s — %s%s%s\n    %s\n", i + 1, h.score, h.source.c_str(), h.title.c_str(), h.heading.empty() ? "" : " > ",
                        h.heading.c_str(), rag::one_line(h.text, 240).c_str());
        }
    });
}

void add_rag_ask(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("ask", "Answer a question from an index with a chat model: the relevant passages become numbered sources in "
                                           "the prompt, the answer cites them as [n], and the cited sources are printed with snippets");
    struct Opts {
        std::string kb, question, mode = "bm25", embed_model, rerank;
        int k = 5, threads = ThreadPool::default_threads(), rerank_top = 20;
        HybridCli hy;
        ChatCli c;
        bool json = false, exact = false, verbose = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("question", o->question, "the question")->required();
    cmd->add_option("-m,--model", o->c.model, "the chat model that answers (GGUF or a Hugging Face directory)")->required();
    cmd->add_option("-k,--hits", o->k, "how many passages to retrieve (the sources are the relevant ones that fit in the context)")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25, dense or hybrid (dense and hybrid: an index with vectors, rag index --embed-model)")
        ->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "embed the question with this model")->default_str("the index's");
    o->hy.add_to(cmd);
    cmd->add_flag("--exact", o->exact, "dense: compare with every vector instead of searching the HNSW graph");
    add_rerank_options(cmd, o->rerank, o->rerank_top);
    add_answer_options(cmd, o->c);
    add_threads_option(cmd, o->threads);
    cmd->add_flag("-v,--verbose", o->verbose, "also list the sources the answer does not cite, and print token counts and speed to stderr");
    cmd->add_flag("--json", o->json, "print the result as one JSON object (the answer, every source with its snippet and whether it is cited)");
    cmd->callback([o] {
        if (!utf8_valid(o->question)) throw_bad_input("rag ask: the question is not valid UTF-8");
        rag::Index kb(o->kb);
        const rag::Mode mode = rag::parse_mode(o->mode);
        std::unique_ptr<DenseModel> dm;
        if (mode != rag::Mode::Bm25) {
            dm = open_dense_model(o->embed_model, o->kb, o->threads, true);
            if (!dm) throw_bad_input("rag ask: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->kb.c_str());
        }
        const std::unique_ptr<RerankModel> rr = open_reranker(o->rerank, o->threads);
        const rag::AskOptions ao = ask_options(o->c, mode, o->k, o->hy, o->exact, dm ? dm->embedder.get() : nullptr,
                                               rr ? rr->reranker.get() : nullptr, o->rerank_top);
        ChatModel cm = open_chat_model(o->c, o->threads);
        StopOnSignal stop;
        const bool stream = !o->json;
        const rag::Answer a = rag::ask(kb, *cm.chat, *cm.fmt, o->question, ao, [&](const std::string& piece) {
            if (stream) {
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
            }
            return !stop.flag()->load();
        });
        std::vector<bool> cited(a.sources.size(), false);
        for (int c : a.cited) cited[static_cast<size_t>(c - 1)] = true;
        if (o->json) {
            nlohmann::json j = {{"question", o->question}, {"mode", o->mode}, {"answered", a.answered}, {"retrieved", a.retrieved.size()},
                                {"lead", a.lead}, {"sources", nlohmann::json::array()}, {"dropped_sources", a.dropped}, {"cited", a.cited}};
            if (a.answered) {
                j["prompt"] = a.prompt;
                j["answer"] = a.text;
                j["stop_reason"] = a.reply.stop_reason;
                j["prompt_tokens"] = a.reply.prompt_tokens;
                j["tokens"] = a.reply.tokens;
            } else {
                j["answer"] = nullptr;
            }
            for (size_t i = 0; i < a.sources.size(); ++i) {
                const rag::Hit& h = a.sources[i];
                nlohmann::json s = {{"n", i + 1}, {"cited", static_cast<bool>(cited[i])}, {"chunk", h.chunk}, {"score", h.score}, {"source", h.source},
                                    {"title", h.title}, {"heading", h.heading}, {"begin", h.begin}, {"end", h.end},
                                    {"snippet", rag::best_snippet(h, o->question)}};
                if (h.bm25_rank) s["bm25"] = h.bm25;
                if (h.dense_rank) s["similarity"] = h.similarity;
                j["sources"].push_back(s);
            }
            std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
            return;
        }
        if (!a.answered) {
            double best_bm25 = 0, best_sim = 0;
            for (const rag::Hit& h : a.retrieved) {
                if (h.bm25_rank) best_bm25 = std::max(best_bm25, h.bm25);
                if (h.dense_rank) best_sim = std::max(best_sim, h.similarity);
            }
            if (a.retrieved.empty())
                std::printf("No passage of %s matches the question, so there is nothing to answer from.\n", o->kb.c_str());
            else if (a.lead < o->c.rel.min_lead)
                std::printf("No passage of %s stands out enough to answer from (the best leads the next document by %.2f, --min-lead %.2f).\n",
                            o->kb.c_str(), a.lead, o->c.rel.min_lead);
            else
                std::printf("No passage of %s is relevant enough to answer from (best BM25 %.2f, --min-bm25 %.2f%s).\n", o->kb.c_str(), best_bm25,
                            o->c.rel.min_bm25,
                            ao.query.mode == rag::Mode::Bm25 ? "" : (std::string("; best similarity ") + std::to_string(best_sim) + ", --min-similarity " + std::to_string(o->c.rel.min_similarity)).c_str());
            return;
        }
        std::printf("\n");
        if (a.reply.stop_reason == "stopped") std::fprintf(stderr, "(stopped)\n");
        std::printf("\nSources:\n");
        if (a.cited.empty()) std::printf("  (the answer cites none of its %zu sources)\n", a.sources.size());
        for (size_t i = 0; i < a.sources.size(); ++i) {
            if (!cited[i] && !o->verbose && !a.cited.empty()) continue;
            const rag::Hit& h = a.sources[i];
            std::printf("[%zu]%s %s — %s\n    %s\n", i + 1, cited[i] ? "" : " (not cited)", h.source.c_str(), rag::source_label(h).c_str(),
                        rag::best_snippet(h, o->question).c_str());
        }
        if (a.dropped) std::fprintf(stderr, "rag ask: %zu relevant passage(s) left out to fit the context\n", a.dropped);
        if (o->verbose)
            std::fprintf(stderr, "[%zu sources; prompt %lld tokens in %.0f ms; %lld tokens at %.1f tokens/s; %s]\n", a.sources.size(),
                         static_cast<long long>(a.reply.prompt_tokens), a.reply.prompt_ms, static_cast<long long>(a.reply.tokens),
                         a.reply.gen_ms > 0 ? 1000.0 * static_cast<double>(a.reply.tokens) / a.reply.gen_ms : 0.0, a.reply.stop_reason.c_str());
    });
}

void add_rag_sft_data(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("sft-data", "Fine-tuning data for grounded answers: each question with its retrieved passages as numbered "
                                                "sources (the gold document's passage among them) and its gold answer citing that source (or, with --missed "
                                                "abstain, a declining answer where retrieval missed it)");
    struct Opts {
        std::string kb, qa, out, mode = "bm25", embed_model, system = rag::kGroundedInstruction, missed = "insert",
                                 abstain = "The sources do not answer this question.";
        std::string cloze_index;
        int k = 5, threads = 0, cloze = 0;
        HybridCli hy;
        double cloze_abstain = 0;
        int64_t seed = 1;
        rag::Relevance rel;
        bool json = false, quiet = false, shuffle = false, cite_first = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("--qa", o->qa, "JSONL: {\"question\", \"gold\": SOURCE or [SOURCE, ...], \"answer\"} per line (rag eval's format with answers)")->required();
    cmd->add_option("-o,--output", o->out, "the conversations, {\"messages\": [system, user, assistant]} per line (what sft reads; written atomically)")->required();
    cmd->add_option("-k,--hits", o->k, "sources per question, as rag ask retrieves them")->check(at_least(1));
    cmd->add_option("--mode", o->mode, "retrieval: bm25, dense or hybrid")->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "embed the questions with this model")->default_str("the index's");
    o->hy.add_to(cmd);
    cmd->add_option("--min-bm25", o->rel.min_bm25, "sources below both thresholds are left out, as rag ask leaves them (the gold passage stays)");
    cmd->add_option("--min-similarity", o->rel.min_similarity, "the similarity threshold (dense and hybrid)");
    cmd->add_option("--system", o->system, "the system prompt")->default_str("rag ask's");
    cmd->add_option("--missed", o->missed, "when retrieval misses the gold passage: insert it among the sources (the model learns to find it), or keep the "
                                           "sources and answer --abstain-text without a citation (the model learns to decline)")
        ->check(CLI::IsMember({"insert", "abstain"}));
    cmd->add_option("--abstain-text", o->abstain, "the answer when the sources hold no gold passage (with --missed abstain)");
    cmd->add_flag("--shuffle", o->shuffle, "put each question's sources in a random order (the answer cites the gold one where it lands), so that a "
                                           "source's position says nothing about whether it answers");
    cmd->add_flag("--cite-first", o->cite_first, "open each answer with its citation, \"[n] ...\", instead of closing each paragraph with it: a "
                                                 "model then chooses its source (or to decline) before it writes");
    cmd->add_option("--cloze", o->cloze, "also N conversations without labels (the inverse cloze task): a sentence of a chunk is the question, the "
                                         "chunk without it the source to find, at a random place among the chunks of other documents that BM25 ranks "
                                         "best for the sentence, and its text the answer")
        ->check(at_least(0));
    cmd->add_option("--cloze-index", o->cloze_index, "the index the cloze conversations come from")->default_str("the index");
    cmd->add_option("--cloze-abstain", o->cloze_abstain, "the share of cloze conversations whose chunk is left out of the sources and whose "
                                                         "answer is --abstain-text")
        ->check(CLI::Range(0.0, 1.0));
    add_seed_option(cmd, o->seed, "where a gold passage that retrieval missed is put among the sources, the --shuffle order, the cloze sentences");
    add_threads_option(cmd, o->threads, "threads", 0);
    cmd->add_flag("--json", o->json, "print counts as one JSON object");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
    cmd->callback([o] {
        const std::vector<rag::QaItem> qa = rag::read_qa(o->qa);
        for (size_t i = 0; i < qa.size(); ++i)
            if (qa[i].answer.empty()) throw_bad_input("%s: question %zu has no \"answer\" to train on", o->qa.c_str(), i + 1);
        rag::Index kb(o->kb);
        const rag::Mode mode = rag::parse_mode(o->mode);
        std::unique_ptr<DenseModel> dm;
        if (mode != rag::Mode::Bm25) {
            dm = open_dense_model(o->embed_model, o->kb, o->threads, true);
            if (!dm) throw_bad_input("rag sft-data: '%s' has no dense vectors (build them with rag index --embed-model MODEL)", o->kb.c_str());
        }
        rag::QueryOptions qo;
        qo.k = o->k;
        qo.mode = mode;
        o->hy.apply(qo);
        qo.embedder = dm ? dm->embedder.get() : nullptr;
        std::mt19937_64 rng(seed_or_random(o->seed));
        AtomicWriter w(o->out);
        auto write = [&](const std::string& question, const std::vector<rag::Hit>& src, const std::string& answer) {
            nlohmann::ordered_json msgs = nlohmann::ordered_json::array();
            if (!o->system.empty()) msgs.push_back({{"role", "system"}, {"content", o->system}});
            msgs.push_back({{"role", "user"}, {"content", rag::grounded_prompt(question, src)}});
            msgs.push_back({{"role", "assistant"}, {"content", answer}});
            const std::string line = nlohmann::ordered_json({{"messages", msgs}}).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            w.write(line.data(), line.size());
        };
        auto cited = [&](const std::string& text, int n) {
            if (!o->cite_first) return rag::cite_answer(text, n);
            const size_t b = text.find_first_not_of(" \t\r\n");
            return "[" + std::to_string(n) + "] " + (b == std::string::npos ? std::string() : text.substr(b));
        };
        size_t retrieved_gold = 0, inserted = 0, abstained = 0;
        Progress bar("sft-data", static_cast<double>(qa.size() + static_cast<size_t>(o->cloze)), "questions", !o->quiet);
        for (size_t i = 0; i < qa.size(); ++i) {
            const rag::QaItem& q = qa[i];
            auto gold = [&](const rag::Hit& h) {
                return std::any_of(q.gold.begin(), q.gold.end(), [&](const std::string& g) { return rag::source_matches(h.source, g); });
            };
            std::vector<rag::Hit> src;
            for (const rag::Hit& h : kb.query(q.question, qo))
                if (gold(h) || rag::relevant(h, o->rel)) src.push_back(h);
            auto at = std::find_if(src.begin(), src.end(), gold);
            std::string answer;
            if (at != src.end()) {
                ++retrieved_gold;
            } else if (o->missed == "abstain") {
                answer = o->abstain;
                ++abstained;
            } else {
                // the gold document's passage BM25 ranks best for the question, else its first; at a random place
                std::vector<rag::Hit> pick;
                for (const rag::Hit& h : kb.query(q.question, {200}))
                    if (gold(h)) {
                        pick.push_back(h);
                        break;
                    }
                if (pick.empty()) pick = kb.document_chunks(q.gold.front());
                if (pick.empty()) throw_bad_input("%s: question %zu: the gold document '%s' is not in the index", o->qa.c_str(), i + 1, q.gold.front().c_str());
                if (static_cast<int>(src.size()) >= o->k) src.pop_back();
                const size_t pos = std::uniform_int_distribution<size_t>(0, src.size())(rng);
                at = src.insert(src.begin() + static_cast<long>(pos), pick.front());
                ++inserted;
            }
            if (o->shuffle) {  // the gold passage followed by its chunk id (unique in the index)
                const int64_t gold_chunk = answer.empty() ? at->chunk : -1;
                std::shuffle(src.begin(), src.end(), rng);
                at = std::find_if(src.begin(), src.end(), [&](const rag::Hit& h) { return h.chunk == gold_chunk; });
            }
            if (answer.empty()) answer = cited(q.answer, static_cast<int>(at - src.begin()) + 1);
            write(q.question, src, answer);
            bar.update(static_cast<double>(i + 1));
        }
        // cloze conversations: a sentence's chunk among other documents' chunks, or (--cloze-abstain) left out
        size_t cloze = 0, cloze_abstained = 0;
        if (o->cloze > 0) {
            std::unique_ptr<rag::Index> other;
            if (!o->cloze_index.empty()) other = std::make_unique<rag::Index>(o->cloze_index);
            const rag::Index& ci = other ? *other : kb;
            std::vector<rag::ClozeQuestion> cq = rag::cloze_questions(ci, 1, rng(), 0.0);
            std::shuffle(cq.begin(), cq.end(), rng);
            if (cq.size() > static_cast<size_t>(o->cloze)) cq.resize(static_cast<size_t>(o->cloze));
            std::bernoulli_distribution decline(o->cloze_abstain);
            rag::QueryOptions bo;  // BM25, deep enough for k distractors after the sentence's own document is left out
            bo.k = 4 * o->k + 8;
            for (const rag::ClozeQuestion& q : cq) {
                const bool no = decline(rng);
                std::vector<rag::Hit> src;
                for (const rag::Hit& h : ci.query(q.query, bo)) {
                    if (static_cast<int>(src.size()) >= o->k - (no ? 0 : 1)) break;
                    // a chunk that holds the sentence itself (an overlapping neighbour) is no distractor
                    if (h.source != q.passage.source && rag::one_line(h.text).find(q.query) == std::string::npos && rag::relevant(h, o->rel)) src.push_back(h);
                }
                std::string answer = o->abstain;
                if (no) {
                    ++cloze_abstained;
                } else {
                    const size_t pos = std::uniform_int_distribution<size_t>(0, src.size())(rng);
                    src.insert(src.begin() + static_cast<long>(pos), q.passage);
                    answer = cited(q.passage.text, static_cast<int>(pos) + 1);
                }
                write(q.query, src, answer);
                ++cloze;
                bar.update(static_cast<double>(qa.size() + cloze));
            }
        }
        bar.finish();
        w.commit();
        if (o->json) {
            std::printf("%s\n", nlohmann::json({{"output", o->out}, {"conversations", qa.size() + cloze}, {"questions", qa.size()}, {"gold_retrieved", retrieved_gold},
                                         {"gold_inserted", inserted}, {"abstained", abstained}, {"cloze", cloze}, {"cloze_abstained", cloze_abstained}})
                                     .dump()
                                     .c_str());
            return;
        }
        if (o->missed == "abstain")
            std::printf("%s: %zu conversations; retrieval found the gold passage for %zu, the answer declines for %zu", o->out.c_str(),
                        qa.size(), retrieved_gold, abstained);
        else
            std::printf("%s: %zu conversations; retrieval found the gold passage for %zu, it was put among the sources for %zu", o->out.c_str(),
                        qa.size(), retrieved_gold, inserted);
        if (o->cloze > 0) std::printf("; %zu cloze conversations (%zu declining)", cloze, cloze_abstained);
        std::printf("\n");
    });
}

void add_rag_eval(CLI::App* rag) {
    auto* cmd = rag->add_subcommand("eval", "Retrieval quality on questions with known answers: recall@k, MRR@10 and nDCG@10 over documents, "
                                            "with 95 % bootstrap intervals");
    struct Opts {
        std::string kb, qa, embed_model, rerank;
        int rerank_top = 20;
        std::vector<std::string> modes{"bm25"};
        int k = 5, bootstrap = 1000, threads = 0;
        HybridCli hy;
        bool json = false, quiet = false, exact = false;
        ChatCli c;
        std::string answers_out;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("index", o->kb, "the index directory (llmforge rag index)")->required();
    cmd->add_option("--qa", o->qa, "JSONL: {\"question\": ..., \"gold\": SOURCE or [SOURCE, ...]} per line; a source as `rag query` "
                                   "prints it, or its end after a '/'")->required();
    cmd->add_option("-k,--hits", o->k, "the k of recall@k")->check(at_least(1));
    cmd->add_option("--mode", o->modes, "retrieval modes to evaluate, each on the same questions: bm25, dense, hybrid (comma-separated)")
        ->delimiter(',')->check(CLI::IsMember({"bm25", "dense", "hybrid"}));
    cmd->add_option("--embed-model", o->embed_model, "dense and hybrid: embed the questions with this model")->default_str("the index's");
    o->hy.add_to(cmd);
    cmd->add_flag("--exact", o->exact, "dense: compare with every vector instead of searching the HNSW graph");
    add_rerank_options(cmd, o->rerank, o->rerank_top);
    add_threads_option(cmd, o->threads);
    cmd->add_option("-m,--model", o->c.model, "also answer each question with this chat model (as rag ask does, its -k sources) and score the "
                                              "answers: citation precision against the gold documents, ROUGE-L against the gold \"answer\"s")
        ->default_str("none: retrieval only");
    add_answer_options(cmd, o->c);
    cmd->add_option("--answers-out", o->answers_out, "with --model: write every answer as a JSON line {mode, question, answer, cited, sources, gold}")
        ->default_str("none");
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
        const std::unique_ptr<RerankModel> rr = open_reranker(o->rerank, o->threads);
        std::optional<ChatModel> cm;
        if (!o->c.model.empty()) cm.emplace(open_chat_model(o->c, o->threads));
        std::unique_ptr<AtomicWriter> answers_out;
        if (!o->answers_out.empty()) {
            if (!cm) throw_bad_input("rag eval: --answers-out needs --model");
            answers_out = std::make_unique<AtomicWriter>(o->answers_out);
        }
        StopOnSignal stop;
        auto est = [](const rag::Estimate& e) { return nlohmann::json{{"mean", e.mean}, {"lo", e.lo}, {"hi", e.hi}}; };
        nlohmann::json out = {{"index", o->kb}, {"qa", o->qa}, {"questions", qa.size()}, {"k", o->k}, {"bootstrap", o->bootstrap},
                              {"modes", nlohmann::json::object()}};
        if (std::find(o->modes.begin(), o->modes.end(), "hybrid") != o->modes.end()) {
            rag::QueryOptions q;
            o->hy.apply(q);
            out["fusion"] = rag::fusion_json(q);
        }
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
            o->hy.apply(eo.query);
            eo.query.exact = o->exact;
            eo.query.embedder = dm ? dm->embedder.get() : nullptr;
            eo.query.reranker = rr ? rr->reranker.get() : nullptr;
            eo.query.rerank_top = o->rerank_top;
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
            if (!o->json) {
                std::printf("  %-7s recall@%-3d %.4f [%.4f, %.4f]   MRR@10 %.4f [%.4f, %.4f]   nDCG@10 %.4f [%.4f, %.4f]\n", mode.c_str(), r.k,
                            r.recall.mean, r.recall.lo, r.recall.hi, r.mrr.mean, r.mrr.lo, r.mrr.hi, r.ndcg.mean, r.ndcg.lo, r.ndcg.hi);
                if (paired)
                    std::printf("          MRR@10 − %s's: %+.4f [%+.4f, %+.4f] (paired)\n", first_mode.c_str(), diff.mean, diff.lo, diff.hi);
            }
            if (cm) {
                rag::AnswerEvalOptions ae;
                ae.ask = ask_options(o->c, eo.query.mode, o->k, o->hy, o->exact, eo.query.embedder, eo.query.reranker, o->rerank_top);
                ae.bootstrap = o->bootstrap;
                ae.progress = !o->quiet;
                ae.stop = stop.flag();
                ae.on_answer = [&](size_t i, const rag::Answer& a) {
                    if (!answers_out) return;
                    nlohmann::json j = {{"mode", mode}, {"question", qa[i].question}, {"gold", qa[i].gold}, {"answered", a.answered},
                                        {"answer", a.answered ? nlohmann::json(a.text) : nlohmann::json(nullptr)}, {"cited", a.cited}, {"lead", a.lead},
                                        {"sources", nlohmann::json::array()}};
                    for (const rag::Hit& h : a.sources) j["sources"].push_back(h.source);
                    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
                    answers_out->write(line.data(), line.size());
                };
                const rag::AnswerEval r = rag::evaluate_answers(kb, *cm->chat, *cm->fmt, qa, ae);
                m["answers"] = {{"answered", r.answered}, {"citing", r.citing}, {"citations", r.citations},
                                {"citation_precision", est(r.citation_precision)}, {"gold_cited", est(r.gold_cited)},
                                {"rouge_l", est(r.rouge_l)}, {"with_reference", r.with_reference}};
                if (!o->json) {
                    std::printf("          answers: %zu of %zu answered, %zu cite a source (%zu citations); citation precision %.4f [%.4f, %.4f]; "
                                "a gold source cited %.4f [%.4f, %.4f]\n",
                                r.answered, r.questions, r.citing, r.citations, r.citation_precision.mean, r.citation_precision.lo,
                                r.citation_precision.hi, r.gold_cited.mean, r.gold_cited.lo, r.gold_cited.hi);
                    if (r.with_reference)
                        std::printf("          ROUGE-L %.4f [%.4f, %.4f] against %zu gold answers\n", r.rouge_l.mean, r.rouge_l.lo, r.rouge_l.hi, r.with_reference);
                    else
                        std::printf("          (no gold answers: the questions have no \"answer\" field, so no ROUGE-L)\n");
                }
            }
            out["modes"][mode] = m;
        }
        if (dm) out["embed_model"] = dm->path;
        if (cm) out["model"] = o->c.model;
        if (rr) out["rerank"] = o->rerank;
        if (answers_out) answers_out->commit();
        if (o->json) std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace

void add_rag(CLI::App& app) {
    auto* rag = app.add_subcommand("rag", "Retrieval: index documents and find the passages that answer a question");
    rag->require_subcommand(1);
    add_rag_index(rag);
    add_rag_query(rag);
    add_rag_ask(rag);
    add_rag_eval(rag);
    add_rag_sft_data(rag);
}

}  // namespace llmforge::cli
