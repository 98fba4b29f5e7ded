// llmforge chat -m MODEL [--system TEXT]: a multi-turn conversation on the terminal (or over a pipe: one user message
// per input line, one answer per output line). Commands: /reset, /system [TEXT], /save FILE, /exit. Ctrl-C stops the
// answer being written; at the prompt it ends the chat.
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <fstream>
#include <iostream>
#include <random>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/chat_session.h"
#include "llmforge/error.h"

namespace llmforge::cli {

namespace {
std::atomic<int> g_interrupt{0};
extern "C" void on_interrupt(int) { g_interrupt = 1; }
}  // namespace

void add_chat(CLI::App& app) {
    auto* cmd = app.add_subcommand("chat", "Chat with a model: multi-turn, streaming, with its chat template");
    struct Opts {
        DraftOptions draft;
        std::string model, system, tpl, tokenizer;
        CacheTypeOptions cache;
        GrammarOptions grammar;
        std::vector<std::string> lora;
        float lora_scale = 1.0f;
        int32_t n = -1;
        int64_t ctx = 0, seed = -1;
        int threads = ThreadPool::default_threads();
        SamplerParams s;
        bool verbose = false, jsonl = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("--system", o->system, "system prompt")->default_str("none");
    cmd->add_option("--template", o->tpl, "chat template (Jinja file, tokenizer_config.json or GGUF) instead of the model's")->default_str("the model's, else ChatML");
    cmd->add_option("--lora", o->lora, "LoRA adapter(s) to apply");
    cmd->add_option("--lora-scale", o->lora_scale, "scale of the adapters");
    cmd->add_option("-n,--n-predict", o->n, "most tokens per answer (-1: until the end of the turn)")->check(at_least(-1, " (-1: no limit)"));
    add_sampling_options(cmd, o->s, o->seed);
    add_grammar_options(cmd, o->grammar);
    cmd->add_option("-c,--ctx-size", o->ctx, "context size (0: the model's)")->check(at_least(0, " (0: the model's)"));
    add_threads_option(cmd, o->threads);
    add_cache_type_options(cmd, o->cache);
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    add_draft_options(cmd, o->draft);
    cmd->add_flag("-v,--verbose", o->verbose, "after each answer, print token counts and speed to stderr");
    cmd->add_flag("--jsonl", o->jsonl, "print each answer as one JSON line {\"text\", \"stop_reason\", token counts, timings} (for scripts)");
    cmd->callback([o] {
        const std::string tpl = o->tpl.empty() ? std::string() : load_chat_template(o->tpl);  // before the (slow) model load
        Model m = load_for_cli(o->model, o->tokenizer, true, true, repack_for(numerics_of(o->draft)));
        warn_context(m, o->ctx);
        ThreadPool pool(o->threads);
        ChatSessionOptions co;
        co.n_ctx = o->ctx;
        co.kv_type = parse_cache_types(o->cache);
        co.numerics = numerics_of(o->draft);
        if (tpl.empty() && m.vocab->chat_template.empty())
            std::fprintf(stderr, "llmforge: note: %s has no chat template; using ChatML (--template FILE to choose one)\n", o->model.c_str());
        const ChatFormat fmt(*m.vocab, tpl);
        SamplerParams sp = o->s;
        sp.seed = seed_or_random(o->seed);
        ChatSession chat(m, pool, fmt, sp, co);
        Transformer& tf = chat.transformer();
        apply_lora_adapters(tf, m, o->lora, o->lora_scale);
        chat.set_system(o->system);
        chat.set_grammar(load_grammar(o->grammar, *m.vocab));
        std::optional<Model> dm;
        std::unique_ptr<Transformer> draft;
        if (!o->draft.draft.empty()) {
            dm.emplace(load_for_cli(o->draft.draft, "", true, true, repack_for(numerics_of(o->draft))));
            check_draft(m, *dm);
            draft = std::make_unique<Transformer>(*dm, pool, tf.n_ctx(), 512, co.kv_type);
            chat.set_draft(draft.get(), o->draft.spec);
        }
        const bool has_grammar = o->grammar.given();
        const bool tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
        struct sigaction sa {}, old {};
        sa.sa_handler = on_interrupt;  // no SA_RESTART: Ctrl-C at the prompt interrupts the read
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old);
        struct Restore {
            struct sigaction* old;
            ~Restore() { sigaction(SIGINT, old, nullptr); }
        } restore{&old};
        if (tty)
            std::fprintf(stderr, "llmforge chat: %s, context %lld tokens. /reset /system [TEXT] /save FILE /exit; Ctrl-C stops an answer.\n",
                         o->model.c_str(), static_cast<long long>(tf.n_ctx()));
        std::string line;
        for (;;) {
            if (tty) {
                std::printf("\n> ");
                std::fflush(stdout);
            }
            g_interrupt = 0;
            if (!std::getline(std::cin, line)) break;  // end of input, or Ctrl-C at the prompt
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            if (line[0] == '/') {
                const size_t sp_at = line.find(' ');
                const std::string c = line.substr(0, sp_at), arg = sp_at == std::string::npos ? "" : line.substr(sp_at + 1);
                if (c == "/exit" || c == "/quit") break;
                if (c == "/reset") { chat.reset(); std::fprintf(stderr, "(conversation cleared)\n"); continue; }
                if (c == "/system") { chat.set_system(arg); std::fprintf(stderr, arg.empty() ? "(system prompt removed)\n" : "(system prompt set)\n"); continue; }
                if (c == "/save") {
                    if (arg.empty()) { std::fprintf(stderr, "usage: /save FILE\n"); continue; }
                    try {
                        AtomicWriter w(arg);
                        const std::string j = nlohmann::ordered_json({{"messages", chat.transcript()}}).dump(2) + "\n";  // turns dropped from the context too
                        w.write(j.data(), j.size());
                        w.commit();
                        std::fprintf(stderr, "(saved to %s)\n", arg.c_str());
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "llmforge: cannot save: %s\n", e.what());
                    }
                    continue;
                }
                if (c == "/help") { std::fprintf(stderr, "/reset  /system [TEXT]  /save FILE  /exit\n"); continue; }
                std::fprintf(stderr, "unknown command %s (/help)\n", c.c_str());
                continue;
            }
            try {
                const bool stream = !o->jsonl;
                const ChatSession::Reply r = chat.ask(line, o->n, [stream](const std::string& piece) {
                    if (stream) {
                        std::fwrite(piece.data(), 1, piece.size(), stdout);
                        std::fflush(stdout);
                    }
                    return g_interrupt == 0;
                });
                if (o->jsonl) {
                    nlohmann::json j = {{"text", r.text}, {"stop_reason", r.stop_reason}, {"prompt_tokens", r.prompt_tokens},
                                        {"reused_tokens", r.reused_tokens}, {"tokens", r.tokens}, {"dropped_turns", r.dropped_turns},
                                        {"prompt_ms", r.prompt_ms}, {"gen_ms", r.gen_ms}};
                    if (draft)
                        j["speculative"] = {{"rounds", r.speculative.rounds}, {"drafted", r.speculative.drafted}, {"accepted", r.speculative.accepted},
                                            {"acceptance", r.speculative.acceptance()}};
                    if (has_grammar) j["grammar_complete"] = r.grammar_complete;
                    std::printf("%s", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
                }
                std::printf("\n");
                std::fflush(stdout);
                if (r.stop_reason == "stopped") std::fprintf(stderr, "(stopped)\n");
                if (r.dropped_turns) std::fprintf(stderr, "(the context was full: the %lld oldest exchange(s) were dropped)\n", static_cast<long long>(r.dropped_turns));
                if (o->verbose)
                    std::fprintf(stderr, "[prompt %lld tokens (%lld reused) in %.0f ms; %lld tokens at %.1f tokens/s; %s]\n",
                                 static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.reused_tokens), r.prompt_ms,
                                 static_cast<long long>(r.tokens), r.gen_ms > 0 ? 1000.0 * static_cast<double>(r.tokens) / r.gen_ms : 0.0, r.stop_reason.c_str());
                if (o->verbose && draft)
                    std::fprintf(stderr, "[draft: %lld of %lld proposed tokens accepted (%.1f %%) in %lld verification passes]\n",
                                 static_cast<long long>(r.speculative.accepted), static_cast<long long>(r.speculative.drafted),
                                 100.0 * r.speculative.acceptance(), static_cast<long long>(r.speculative.rounds));
            } catch (const Error& e) {
                std::fprintf(stderr, "llmforge: %s\n", e.what());
                if (!tty) throw;
            }
        }
        if (tty) std::printf("\n");
    });
}

}  // namespace llmforge::cli
