// llmforge eval -m MODEL --task FILE.jsonl: multiple-choice accuracy by log-likelihood (with a 95 % interval and the
// random-choice baseline) and generative tasks by exact match / BLEU / ROUGE.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/progress.h"
#include "llmforge/error.h"
#include "llmforge/eval.h"

namespace llmforge::cli {

void add_eval(CLI::App& app) {
    auto* cmd = app.add_subcommand("eval", "Score a model on a task file (multiple choice by log-likelihood, or generation)");
    struct Opts {
        std::string model, task, tokenizer, tpl;
        int64_t ctx = 0, max_tokens = 64, limit = -1;
        int threads = ThreadPool::default_threads();
        bool json = false, no_bos = false, items = false, chat = false;
        GrammarOptions grammar;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("--task", o->task, "task file (JSONL; see include/llmforge/eval.h or docs/eval.md for the format)")->required();
    cmd->add_option("-c,--ctx-size", o->ctx, "context size (0: the model's)")->check(at_least(0, " (0: the model's)"));
    cmd->add_option("-n,--n-predict", o->max_tokens, "generative items: most tokens to generate")->check(at_least(1));
    cmd->add_option("--limit", o->limit, "score only the first N items");
    add_threads_option(cmd, o->threads);
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_flag("--no-bos", o->no_bos, "do not add BOS before each item");
    cmd->add_flag("--chat", o->chat, "chat models: the context is the user's message, rendered with the chat template; a choice starts the reply");
    cmd->add_option("--template", o->tpl, "with --chat: a chat template (.jinja, tokenizer_config.json or GGUF) instead of the model's")->default_str("the model's, else ChatML");
    add_grammar_options(cmd, o->grammar);
    cmd->add_flag("--items", o->items, "with --json: include every item's result");
    cmd->add_flag("--json", o->json, "print one JSON object");
    cmd->callback([o] {
        auto items = load_eval_tasks(o->task);
        if (o->limit >= 0 && static_cast<size_t>(o->limit) < items.size()) items.resize(static_cast<size_t>(o->limit));
        Model m = load_for_cli(o->model, o->tokenizer, true);
        warn_context(m, o->ctx);
        ThreadPool pool(o->threads);
        EvalOptions eo;
        eo.n_ctx = o->ctx;
        eo.max_tokens = o->max_tokens;
        eo.add_bos = !o->no_bos && m.vocab->add_bos;
        eo.chat = o->chat;
        if (!o->tpl.empty()) eo.chat_template = load_chat_template(o->tpl);
        eo.grammar = load_grammar(o->grammar, *m.vocab);
        Progress prog("eval", static_cast<double>(items.size()), "items", true);
        const EvalSummary s = evaluate(m, items, eo, pool, [&](int64_t done, int64_t) { prog.update(static_cast<double>(done)); });
        prog.finish();
        if (o->json) {
            nlohmann::json j = {{"model", o->model}, {"task", o->task}};
            if (s.n_mc)
                j["multiple_choice"] = {{"n", s.n_mc}, {"acc", s.acc}, {"acc_ci95", {s.acc_lo, s.acc_hi}}, {"acc_norm", s.acc_norm},
                                        {"acc_norm_ci95", {s.acc_norm_lo, s.acc_norm_hi}}, {"random_baseline", s.random_baseline}};
            if (s.n_gen) j["generative"] = {{"n", s.n_gen}, {"score", s.gen_score}, {"stderr", s.gen_stderr}};
            if (o->items) {
                j["items"] = nlohmann::json::array();
                for (const auto& r : s.items) {
                    nlohmann::json it = {{"id", r.id}};
                    if (!r.logprobs.empty()) {
                        it["logprobs"] = r.logprobs;
                        it["pred"] = r.pred;
                        it["pred_norm"] = r.pred_norm;
                        it["correct"] = r.correct;
                    } else {
                        it["generation"] = r.generation;
                        it["score"] = r.score;
                    }
                    j["items"].push_back(it);
                }
            }
            std::printf("%s\n", j.dump(1).c_str());
            return;
        }
        std::printf("| task | items | metric | value | 95%% interval | random baseline |\n|---|---:|---|---:|---|---:|\n");
        if (s.n_mc) {
            std::printf("| %s | %lld | acc | %.4f | %.4f – %.4f | %.4f |\n", o->task.c_str(), static_cast<long long>(s.n_mc), s.acc, s.acc_lo,
                        s.acc_hi, s.random_baseline);
            std::printf("| %s | %lld | acc_norm | %.4f | %.4f – %.4f | %.4f |\n", o->task.c_str(), static_cast<long long>(s.n_mc), s.acc_norm,
                        s.acc_norm_lo, s.acc_norm_hi, s.random_baseline);
        }
        if (s.n_gen)
            std::printf("| %s | %lld | generative score | %.4f | ± %.4f (1.96 s.e.: %.4f – %.4f) | |\n", o->task.c_str(),
                        static_cast<long long>(s.n_gen), s.gen_score, 1.96 * s.gen_stderr, s.gen_score - 1.96 * s.gen_stderr,
                        s.gen_score + 1.96 * s.gen_stderr);
    });
}

}  // namespace llmforge::cli
