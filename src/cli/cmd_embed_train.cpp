// llmforge embed train -m MODEL -o OUT.gguf (--pairs FILE | --kb KB --qa FILE) : contrastive fine-tuning of an
// embedding model, or of a reranker (a cross-encoder: each pair read together), with InfoNCE with in-batch negatives,
// optionally BM25 hard negatives (embed_train.h).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/progress.h"
#include "llmforge/embed_train.h"
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

struct Example {
    std::vector<int32_t> query, positive;
    std::vector<std::vector<int32_t>> negatives;
};

// A text's tokens for embedding: the text's own tokens cut to fit max_tokens with the special tokens the vocabulary
// adds (BERT: [CLS] … [SEP]); a list of ids as given (refused beyond max_tokens).
std::vector<int32_t> embed_tokens_of(const Vocab& v, const nlohmann::json& x, int max_tokens, const std::string& where) {
    if (x.is_array()) {
        std::vector<int32_t> ids;
        for (const auto& e : x) {
            if (!e.is_number_integer()) throw_bad_input("%s: a token list holds something other than integers", where.c_str());
            const int64_t id = e.get<int64_t>();
            if (id < 0 || id >= v.size()) throw_bad_input("%s: token id %lld is outside the vocabulary", where.c_str(), static_cast<long long>(id));
            ids.push_back(static_cast<int32_t>(id));
        }
        if (ids.empty()) throw_bad_input("%s: an empty token list", where.c_str());
        if (static_cast<int>(ids.size()) > max_tokens)
            throw_bad_input("%s: %zu tokens, more than --max-tokens %d", where.c_str(), ids.size(), max_tokens);
        return ids;
    }
    if (!x.is_string()) throw_bad_input("%s: a text must be a string or a list of token ids", where.c_str());
    try {
        return embedding_tokens(v, x.get<std::string>(), max_tokens);
    } catch (const Error& e) {
        throw_bad_input("%s: %s", where.c_str(), e.what());
    }
}

// {"query": text|ids, "positive": text|ids, "negatives": [text|ids, ...] (or "negative": one)} per line
std::vector<Example> read_pairs(const std::string& path, const Vocab& v, int max_q, int max_p, int max_neg) {
    std::ifstream f(path);
    if (!f) throw_bad_input("embed train: cannot open '%s'", path.c_str());
    std::vector<Example> out;
    std::string line;
    for (size_t no = 1; std::getline(f, line); ++no) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(no);
        nlohmann::json j;
        try {
            j = nlohmann::json::parse(line);
        } catch (const std::exception&) {
            throw_bad_input("%s: not a JSON line", where.c_str());
        }
        if (!j.is_object() || !j.contains("query") || !j.contains("positive"))
            throw_bad_input("%s: needs \"query\" and \"positive\" (texts or token ids)", where.c_str());
        Example e;
        e.query = embed_tokens_of(v, j["query"], max_q, where);
        e.positive = embed_tokens_of(v, j["positive"], max_p, where);
        std::vector<nlohmann::json> negs;
        if (j.contains("negatives")) {
            if (!j["negatives"].is_array()) throw_bad_input("%s: \"negatives\" must be a list", where.c_str());
            for (const auto& n : j["negatives"]) negs.push_back(n);
        }
        if (j.contains("negative")) negs.push_back(j["negative"]);
        for (const auto& n : negs) {
            if (max_neg >= 0 && static_cast<int>(e.negatives.size()) >= max_neg) break;
            e.negatives.push_back(embed_tokens_of(v, n, max_p, where));
        }
        out.push_back(std::move(e));
    }
    if (out.empty()) throw_bad_input("embed train: '%s' holds no pairs", path.c_str());
    return out;
}

// A text's tokens for a cross-encoder's pair: without the [CLS] … [SEP] that embedding_tokens put around it.
void strip_specials(const Vocab& v, std::vector<int32_t>& t) {
    if (!t.empty() && t.back() == v.eos && v.eos >= 0) t.pop_back();
    if (!t.empty() && t.front() == v.bos && v.bos >= 0) t.erase(t.begin());
    if (t.empty()) throw_bad_input("embed train: a text of no tokens besides [CLS] and [SEP]");
}

// Questions with gold documents over an index: the positive is the gold document's chunk that ranks best by BM25 for
// the question (its first chunk when BM25 does not find it among the first 200), the hard negatives the best-ranked
// chunks of other documents.
std::vector<Example> read_kb_pairs(const std::string& kb_dir, const std::string& qa_path, const Vocab& v, int max_q, int max_p, int n_neg,
                                   bool progress, int& found_by_bm25) {
    const rag::Index kb(kb_dir);
    const std::vector<rag::QaItem> qa = rag::read_qa(qa_path);
    std::vector<Example> out;
    found_by_bm25 = 0;
    Progress bar("mining pairs", static_cast<double>(qa.size()), "questions", progress);
    for (size_t i = 0; i < qa.size(); ++i) {
        const rag::QaItem& q = qa[i];
        auto gold = [&](const rag::Hit& h) {
            return std::any_of(q.gold.begin(), q.gold.end(), [&](const std::string& g) { return rag::source_matches(h.source, g); });
        };
        const std::vector<rag::Hit> hits = kb.query(q.question, {200});
        const rag::Hit* pos = nullptr;
        std::vector<const rag::Hit*> negs;
        for (const rag::Hit& h : hits) {
            if (gold(h)) {
                if (!pos) pos = &h;
            } else if (static_cast<int>(negs.size()) < n_neg) {
                negs.push_back(&h);
            }
        }
        std::vector<rag::Hit> first;
        if (pos) {
            ++found_by_bm25;
        } else {
            first = kb.document_chunks(q.gold.front());
            if (first.empty()) throw_bad_input("%s: question %zu: the gold document '%s' is not in the index", qa_path.c_str(), i + 1, q.gold.front().c_str());
            pos = &first.front();
        }
        const std::string where = qa_path + ": question " + std::to_string(i + 1);
        Example e;
        e.query = embed_tokens_of(v, q.question, max_q, where);
        e.positive = embed_tokens_of(v, rag::passage_text(*pos), max_p, where);
        for (const rag::Hit* h : negs) e.negatives.push_back(embed_tokens_of(v, rag::passage_text(*h), max_p, where));
        out.push_back(std::move(e));
        bar.update(static_cast<double>(i + 1));
    }
    bar.finish();
    return out;
}

}  // namespace

void add_embed_train(CLI::App* embed) {
    auto* cmd = embed->add_subcommand("train", "Contrastive fine-tuning of an embedding model, or of a reranker: InfoNCE with in-batch "
                                               "negatives (and optional hard negatives) on (query, passage) pairs");
    struct Opts {
        std::string model, out, pairs, kb, qa, grads_out, schedule = "linear", pooling;
        int epochs = 1, steps = -1, batch = 16, max_tokens = 128, max_query_tokens = 64, hard_negatives = -1, warmup = -1, threads = 0, ict = 0,
            pair_batch = 64;
        float lr = 5e-5f, temperature = 0.05f, wd = 0.01f, clip = 1.0f;
        uint64_t seed = 1;
        bool json = false, quiet = false, headings = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "the model to start from (GGUF or a Hugging Face directory): an encoder, or a decoder")->required();
    cmd->add_option("-o,--output", o->out, "where to write the trained model (GGUF; written atomically)")->default_str("none: give it, or --grads-out");
    cmd->add_option("--pairs", o->pairs, "JSONL: {\"query\": ..., \"positive\": ..., \"negatives\": [...]} (texts or token-id lists)")
        ->default_str("none: give it, or --kb with --qa, --ict and/or --headings");
    cmd->add_option("--kb", o->kb, "an index (rag index) to take passages from, with --qa, --ict and/or --headings")->default_str("none");
    cmd->add_option("--qa", o->qa, "with --kb: questions and their gold documents (the rag eval format); the positive is the gold "
                                   "document's chunk BM25 ranks best for the question")
        ->default_str("none");
    cmd->add_option("--hard-negatives", o->hard_negatives, "hard negatives per query: with --kb the best BM25 chunks of other documents; with "
                                                            "--pairs the first N given")
        ->default_str("--kb: 0; --pairs: all given")->check(at_least(0));
    cmd->add_option("--ict", o->ict, "with --kb: also N unlabelled pairs per chunk by the inverse cloze task (a sentence of the chunk is the "
                                     "query, the chunk without it the positive), drawn with -s")
        ->check(at_least(0));
    cmd->add_flag("--headings", o->headings, "with --kb: also a pair per section heading (its path's last part, of two words or more, the "
                                             "query; the text of one of its chunks, drawn with -s, the positive); a heading that ends "
                                             "several paths is left out");
    cmd->add_option("--pooling", o->pooling, "pool the hidden states this way instead of the model's (written into the trained model)")
        ->default_str("the model's")->check(CLI::IsMember({"mean", "cls", "last"}));
    cmd->add_option("--epochs", o->epochs, "passes over the pairs")->check(at_least(1));
    cmd->add_option("--steps", o->steps, "optimizer steps instead of epochs (0: one forward and backward pass, for --grads-out)")
        ->default_str("--epochs × the batches of an epoch")->check(at_least(0));
    cmd->add_option("-b,--batch-size", o->batch, "pairs per step (each query's in-batch negatives are the other pairs' passages)")->check(at_least(1));
    cmd->add_option("--lr", o->lr, "peak learning rate");
    cmd->add_option("--schedule", o->schedule, "constant, cosine, linear or wsd");
    cmd->add_option("--warmup", o->warmup, "warm-up steps")->default_str("a tenth of the steps");
    cmd->add_option("--temp", o->temperature, "the temperature τ of the softmax over the similarities (embedding models; a reranker's "
                                              "scores are logits)");
    cmd->add_option("--pair-batch", o->pair_batch, "a reranker: pairs per forward pass (each query meets every passage of the batch: "
                                                   "batch × (batch + negatives) pairs a step)")
        ->capture_default_str()->check(at_least(1));
    cmd->add_option("--wd", o->wd, "AdamW weight decay (matrices)");
    cmd->add_option("--clip-grad", o->clip, "clip gradients to this global norm (0: off)");
    cmd->add_option("--max-tokens", o->max_tokens, "a passage's tokens at most (longer texts are cut)")->check(at_least(3));
    cmd->add_option("--max-query-tokens", o->max_query_tokens, "a query's tokens at most")->check(at_least(3));
    cmd->add_option("-s,--seed", o->seed, "the order of the pairs");
    cmd->add_option("--grads-out", o->grads_out, "write the first step's gradients (before clipping) as a model")->default_str("none");
    add_threads_option(cmd, o->threads);
    cmd->add_flag("--json", o->json, "print the result as one JSON object");
    cmd->add_flag("-q,--quiet", o->quiet, "no progress bar");
    cmd->callback([o] {
        if (o->pairs.empty() == o->kb.empty()) throw_bad_input("embed train: give --pairs FILE, or --kb KB with --qa FILE");
        if (!o->kb.empty() && o->qa.empty() && o->ict == 0 && !o->headings)
            throw_bad_input("embed train: --kb needs --qa (questions and their gold documents), --ict N or --headings (pairs from the chunks "
                            "themselves)");
        if (o->ict > 0 && o->kb.empty()) throw_bad_input("embed train: --ict needs --kb (the index whose chunks make the pairs)");
        if (o->headings && o->kb.empty()) throw_bad_input("embed train: --headings needs --kb (the index whose headings make the pairs)");
        if (o->out.empty() && o->grads_out.empty()) throw_bad_input("embed train: nowhere to write the result: give -o (or --grads-out)");
        for (float x : {o->lr, o->temperature, o->wd, o->clip})
            if (!std::isfinite(x)) throw_bad_input("embed train: settings must be finite numbers");
        if (!(o->temperature > 0)) throw_bad_input("embed train: --temp must be positive");
        Model init = load_model(o->model);
        if (!o->pooling.empty() && init.config.pooling != Pooling::Rank)
            init.config.pooling = o->pooling == "cls" ? Pooling::Cls : o->pooling == "last" ? Pooling::Last : Pooling::Mean;
        if (!init.vocab) throw_bad_input("embed train: '%s' has no tokenizer", o->model.c_str());
        const bool cross = init.config.pooling == Pooling::Rank;  // a reranker: trained on pairs read together
        if (cross && !o->pooling.empty()) throw_bad_input("embed train: '%s' is a reranker: its pooling is its head (no --pooling)", o->model.c_str());
        const int64_t ctx = init.config.n_ctx;
        if (init.config.learned_positions && std::max(o->max_tokens, o->max_query_tokens) > ctx)
            throw_bad_input("embed train: --max-tokens %d is longer than the model's %lld positions", std::max(o->max_tokens, o->max_query_tokens),
                            static_cast<long long>(ctx));
        const Vocab& vocab = *init.vocab;
        int bm25_found = -1;
        std::vector<Example> data;
        if (!o->pairs.empty()) data = read_pairs(o->pairs, vocab, o->max_query_tokens, o->max_tokens, o->hard_negatives);
        if (!o->qa.empty())
            data = read_kb_pairs(o->kb, o->qa, vocab, o->max_query_tokens, o->max_tokens, std::max(0, o->hard_negatives), !o->quiet, bm25_found);
        size_t n_ict = 0, n_headings = 0;  // unlabelled pairs from the index's chunks
        if (o->ict > 0 || o->headings) {
            const rag::Index kb(o->kb);
            auto add = [&](const std::vector<rag::QueryPassage>& pairs) {
                for (const rag::QueryPassage& p : pairs) {
                    Example e;
                    e.query = embedding_tokens(vocab, p.query, o->max_query_tokens);
                    e.positive = embedding_tokens(vocab, p.passage, o->max_tokens);
                    data.push_back(std::move(e));
                }
                return pairs.size();
            };
            if (o->ict > 0) n_ict = add(rag::inverse_cloze_pairs(kb, o->ict, o->seed));
            if (o->headings) n_headings = add(rag::heading_pairs(kb, o->seed));
            if (data.empty())
                throw_bad_input("embed train: '%s' has no chunk with two sentences%s to make pairs from", o->kb.c_str(),
                                o->headings ? " or under a heading" : "");
        }
        if (cross)  // a pair is framed as a whole ([CLS] q [SEP] d [SEP]): the texts without their own [CLS] … [SEP]
            for (Example& e : data)
                for (auto* t : {&e.query, &e.positive}) strip_specials(vocab, *t);
        if (cross)
            for (Example& e : data)
                for (auto& t : e.negatives) strip_specials(vocab, t);
        const int64_t n = static_cast<int64_t>(data.size()), B = std::min<int64_t>(o->batch, n);
        const int64_t per_epoch = (n + B - 1) / B;
        const int64_t total = o->steps >= 0 ? o->steps : per_epoch * o->epochs;
        std::string made;
        if (n_ict) made = std::to_string(n_ict) + " by the inverse cloze task";
        if (n_headings) made += (made.empty() ? "" : ", ") + std::to_string(n_headings) + " of headings and their sections";
        log_line("embed train: %lld pairs%s, batches of %lld, %lld steps%s", static_cast<long long>(n),
                 made.empty() ? "" : (" (" + made + ")").c_str(), static_cast<long long>(B),
                 static_cast<long long>(total), bm25_found >= 0 ? (", BM25 found the gold document for " + std::to_string(bm25_found)).c_str() : "");

        ThreadPool pool(o->threads);
        TrainableModel tm(init, pool, false);
        AdamW opt(tm.n_params(), AdamWConfig{0.9f, 0.999f, 1e-8f, o->wd});
        LrSchedule sched;
        sched.kind = LrSchedule::parse(o->schedule);
        sched.lr_max = o->lr;
        sched.lr_min = 0.0f;
        sched.total = std::max<int64_t>(1, total);
        sched.warmup = o->warmup >= 0 ? o->warmup : total / 10;
        ContrastiveOptions co;
        co.temperature = o->temperature;
        co.pad = vocab.unk >= 0 ? vocab.unk : 0;
        CrossEncoderOptions ceo;
        ceo.cls = vocab.bos;
        ceo.sep = vocab.eos;
        ceo.max_tokens = ctx;
        ceo.pair_batch = o->pair_batch;
        ceo.pad = co.pad;

        std::vector<size_t> order(static_cast<size_t>(n));
        std::iota(order.begin(), order.end(), 0);
        auto batch_at = [&](int64_t step) {
            const int64_t epoch = step / per_epoch, k = step % per_epoch;
            if (k == 0) {  // a new epoch: a new order
                std::iota(order.begin(), order.end(), 0);
                std::mt19937_64 r(o->seed * 1000003ull + static_cast<uint64_t>(epoch));
                std::shuffle(order.begin(), order.end(), r);
            }
            ContrastiveBatch b;
            for (int64_t i = k * B; i < std::min(n, (k + 1) * B); ++i) {
                const Example& e = data[order[static_cast<size_t>(i)]];
                b.queries.push_back(e.query);
                b.positives.push_back(e.positive);
                for (const auto& neg : e.negatives) b.negatives.push_back(neg);
            }
            return b;
        };
        StopOnSignal stop;
        Progress bar("embed train", static_cast<double>(std::max<int64_t>(total, 1)), "steps", !o->quiet);
        double first_loss = NAN, last_epoch_loss = 0, epoch_loss = 0;
        int64_t epoch_correct = 0, epoch_queries = 0, last_correct = 0, last_queries = 0;
        for (int64_t step = 0; step < std::max<int64_t>(total, 1); ++step) {
            if (stop.flag()->load()) throw_runtime("embed train: interrupted (nothing written)");
            const ContrastiveBatch b = batch_at(step);
            tm.zero_grad();
            const ContrastiveResult r = cross ? cross_encoder_step(tm, b, ceo) : contrastive_step(tm, b, co);
            if (std::isnan(first_loss)) first_loss = r.nce.loss;
            if (step == 0 && !o->grads_out.empty()) {
                Model g = tm.to_model(true);
                g.vocab = init.vocab;
                save_model(g, o->grads_out);
            }
            if (total == 0) break;
            if (o->clip > 0) tm.clip_grad_norm(o->clip);
            opt.step(tm, sched.at(step), pool);
            epoch_loss += r.nce.loss * static_cast<double>(b.queries.size());
            epoch_correct += r.nce.correct;
            epoch_queries += static_cast<int64_t>(b.queries.size());
            char note[96];
            std::snprintf(note, sizeof note, "loss %.4f, in-batch accuracy %.3f", r.nce.loss,
                          static_cast<double>(r.nce.correct) / static_cast<double>(b.queries.size()));
            bar.set_note(note);
            bar.update(static_cast<double>(step + 1));
            if ((step + 1) % per_epoch == 0 || step + 1 == total) {
                last_epoch_loss = epoch_loss / static_cast<double>(epoch_queries);
                last_correct = epoch_correct;
                last_queries = epoch_queries;
                log_line("epoch %lld: loss %.4f, in-batch accuracy %.3f", static_cast<long long>(step / per_epoch + 1), last_epoch_loss,
                         static_cast<double>(epoch_correct) / static_cast<double>(epoch_queries));
                epoch_loss = 0;
                epoch_correct = epoch_queries = 0;
            }
        }
        bar.finish();
        if (!o->out.empty() && total > 0) {
            Model m = tm.to_model(false);
            m.vocab = init.vocab;
            save_model(m, o->out);
        }
        nlohmann::json res = {{"pairs", n}, {"batch", B}, {"steps", total}, {"first_loss", first_loss}};
        if (total > 0) {
            res["last_epoch_loss"] = last_epoch_loss;
            res["last_epoch_accuracy"] = static_cast<double>(last_correct) / static_cast<double>(std::max<int64_t>(1, last_queries));
        }
        if (bm25_found >= 0) res["bm25_found_gold"] = bm25_found;
        if (o->ict > 0) res["ict_pairs"] = n_ict;
        if (o->headings) res["heading_pairs"] = n_headings;
        if (!o->out.empty() && total > 0) res["output"] = o->out;
        if (o->json) {
            std::printf("%s\n", res.dump().c_str());
        } else {
            std::printf("first loss %.6f", first_loss);
            if (total > 0) std::printf(", last epoch loss %.6f, in-batch accuracy %.3f", last_epoch_loss, res["last_epoch_accuracy"].get<double>());
            std::printf("\n");
        }
    });
}

}  // namespace llmforge::cli
