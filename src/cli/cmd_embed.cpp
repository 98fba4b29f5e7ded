// llmforge embed -m MODEL TEXT... : sentence embeddings — an encoder's (BERT: [CLS] or mean pooling) or a decoder's
// (mean pooling), L2-normalised, one JSON array per text.
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/transformer.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

void add_embed(CLI::App& app) {
    auto* cmd = app.add_subcommand("embed", "Sentence embeddings of texts: an encoder's (BERT-family: [CLS] or mean pooling as the model says) or a "
                                            "decoder's (mean pooling), L2-normalised; one JSON array per text on stdout");
    struct Opts {
        std::string model, tokenizer, file, pooling;
        std::vector<std::string> texts;
        int threads = 0;
        bool jsonl = false, no_normalize = false, ggml = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "the model: GGUF, or a Hugging Face directory")->default_str("none: required");
    cmd->add_option("texts", o->texts, "texts to embed (none: -f FILE)");
    cmd->add_option("-f,--file", o->file, "embed each line of this file")->default_str("none");
    cmd->add_flag("--jsonl", o->jsonl, "-f holds JSON lines with a \"text\" field (or \"ids\": token ids) instead of plain lines");
    cmd->add_option("--tokenizer", o->tokenizer, "use this tokenizer file instead of the model's")->default_str("the model's");
    cmd->add_option("--pooling", o->pooling, "override the model's pooling: mean, cls or last")->default_str("the model's")
        ->check(CLI::IsMember({"mean", "cls", "last"}));
    cmd->add_flag("--no-normalize", o->no_normalize, "leave the pooled vector as it is (not divided by its L2 norm)");
    cmd->add_flag("--ggml-arithmetic", o->ggml, "compute as llama.cpp's CPU backend does where its arithmetic differs (its f16-table GELU, "
                                                "which llama.cpp uses for BERT's exact one)");
    add_threads_option(cmd, o->threads, "threads", 0);
    add_embed_train(cmd);
    cmd->callback([o, cmd] {
        if (cmd->got_subcommand("train")) return;
        if (o->model.empty()) throw_bad_input("embed: give the model with -m");
        std::vector<std::string> texts = o->texts;
        std::vector<std::vector<int32_t>> given_ids;
        if (!o->file.empty()) {
            if (!texts.empty()) throw_bad_input("embed: give texts as arguments or with -f FILE, not both");
            std::ifstream f(o->file);
            if (!f) throw_bad_input("embed: cannot open '%s'", o->file.c_str());
            std::string line;
            for (size_t no = 1; std::getline(f, line); ++no) {
                if (!o->jsonl) {
                    texts.push_back(line);
                    continue;
                }
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                nlohmann::json j;
                try {
                    j = nlohmann::json::parse(line);
                } catch (const std::exception&) {
                    throw_bad_input("%s:%zu: not a JSON line", o->file.c_str(), no);
                }
                if (j.contains("ids") && j["ids"].is_array()) {
                    given_ids.resize(texts.size());
                    given_ids.push_back(j["ids"].get<std::vector<int32_t>>());
                    texts.emplace_back();
                } else if (j.contains("text") && j["text"].is_string()) {
                    texts.push_back(j["text"].get<std::string>());
                } else {
                    throw_bad_input("%s:%zu: no \"text\" string or \"ids\" list", o->file.c_str(), no);
                }
            }
        }
        if (texts.empty()) throw_bad_input("embed: no texts (give them as arguments or with -f FILE)");
        Model m = load_for_cli(o->model, o->tokenizer, given_ids.empty(), true, o->ggml ? Repack::GgmlDigits : Repack::All);
        if (m.config.pooling == Pooling::Rank && o->pooling.empty())
            throw_bad_input("'%s' is a reranker (a cross-encoder that scores a query with a passage: llmforge rerank), not an embedding model",
                            o->model.c_str());
        if (!o->pooling.empty()) m.config.pooling = o->pooling == "cls" ? Pooling::Cls : o->pooling == "last" ? Pooling::Last : Pooling::Mean;
        ThreadPool pool(o->threads);
        // An f32 cache (exact), and passes as long as the context: bidirectional attention needs the whole text at once.
        const int64_t ctx = m.config.n_ctx;
        Transformer tf(m, pool, ctx, ctx, DType::F32, 1, o->ggml ? Numerics::Ggml : Numerics::Fast);
        for (size_t i = 0; i < texts.size(); ++i) {
            std::vector<int32_t> ids;
            if (i < given_ids.size() && !given_ids[i].empty()) {
                ids = given_ids[i];
            } else {
                if (!utf8_valid(texts[i])) throw_bad_input("embed: text %zu is not valid UTF-8", i + 1);
                ids = m.vocab->encode(texts[i], true);
            }
            if (ids.empty()) throw_bad_input("embed: text %zu has no tokens", i + 1);
            if (static_cast<int64_t>(ids.size()) > ctx)
                throw_bad_input("embed: text %zu has %zu tokens; the model's context is %lld", i + 1, ids.size(), static_cast<long long>(ctx));
            tf.reset();
            const std::vector<float>& h = tf.embed(ids.data(), static_cast<int64_t>(ids.size()));
            const std::vector<float> e = pool_embedding(m.config, h.data(), static_cast<int64_t>(ids.size()), !o->no_normalize);
            std::string line = "[";
            char buf[32];
            for (size_t k = 0; k < e.size(); ++k) {
                std::snprintf(buf, sizeof buf, "%s%.9g", k ? "," : "", static_cast<double>(e[k]));
                line += buf;
            }
            std::printf("%s]\n", line.c_str());
        }
    });
}

}  // namespace llmforge::cli
