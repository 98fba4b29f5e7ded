// llmforge generate -m MODEL -p PROMPT: stream a continuation to stdout (no prompt echo), timings to stderr.
#include <chrono>
#include <memory>
#include <optional>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/common.h"
#include "core/kernels.h"
#include "core/mmap_file.h"
#include "core/threadpool.h"
#include "llmforge/error.h"
#include "llmforge/generate.h"

namespace llmforge::cli {

void add_generate(CLI::App& app) {
    auto* cmd = app.add_subcommand("generate", "Generate text from a prompt");
    struct Opts {
        std::string model, prompt, file, tokenizer;
        int32_t n = 128;
        int64_t ctx = 0, batch = 512;
        int threads = ThreadPool::default_threads();
        SamplerParams s;
        int64_t seed = -1;
        bool json = false, no_bos = false, no_mmap = false, ignore_eos = false;
        CacheTypeOptions cache;
        GrammarOptions grammar;
        std::vector<std::string> lora;
        float lora_scale = 1.0f;
        DraftOptions draft;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("-p,--prompt", o->prompt, "prompt text")->default_str("none");
    cmd->add_option("-f,--file", o->file, "read the prompt from a file")->default_str("none")->excludes("--prompt");
    cmd->add_option("-n,--n-predict", o->n, "tokens to generate (-1: until end of sequence or full context)")->check(at_least(-1, " (-1: no limit)"));
    add_sampling_options(cmd, o->s, o->seed);
    add_grammar_options(cmd, o->grammar);
    cmd->add_option("-c,--ctx-size", o->ctx, "context size (0: the model's)")->check(at_least(0, " (0: the model's)"));
    cmd->add_option("-b,--batch-size", o->batch, "tokens per forward pass while reading the prompt")->check(at_least(1));
    add_threads_option(cmd, o->threads);
    add_cache_type_options(cmd, o->cache, " (as llama.cpp)");
    cmd->add_option("--lora", o->lora, "LoRA adapter(s) to apply beside the weights (GGUF, as llmforge sft --lora-rank writes)");
    cmd->add_option("--lora-scale", o->lora_scale, "scale of the adapters");
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    cmd->add_flag("--no-bos", o->no_bos, "do not add the beginning-of-sequence token");
    cmd->add_flag("--ignore-eos", o->ignore_eos, "never draw an end-of-generation token: generate all -n tokens (as llama.cpp's --ignore-eos; benchmarks)");
    cmd->add_flag("--json", o->json, "print one JSON object with the text, token ids and timings instead of streaming");
    add_draft_options(cmd, o->draft);
    cmd->callback([o] {
        if (o->prompt.empty() == o->file.empty()) throw_bad_input("generate: give the prompt with -p TEXT or -f FILE");
        const std::string prompt = o->file.empty() ? o->prompt : read_text_file(o->file);
        Model m = load_for_cli(o->model, o->tokenizer, true, !o->no_mmap, repack_for(numerics_of(o->draft)));
        warn_context(m, o->ctx);
        ThreadPool pool(o->threads);
        Transformer tf(m, pool, o->ctx, o->batch, parse_cache_types(o->cache), 1, numerics_of(o->draft));
        apply_lora_adapters(tf, m, o->lora, o->lora_scale);
        std::optional<Model> dm;
        std::unique_ptr<Transformer> draft;
        if (!o->draft.draft.empty()) {
            dm.emplace(load_for_cli(o->draft.draft, "", true, !o->no_mmap, repack_for(numerics_of(o->draft))));
            check_draft(m, *dm);
            draft = std::make_unique<Transformer>(*dm, pool, tf.n_ctx(), o->batch, parse_cache_types(o->cache));
        }
        GenerateParams gp;
        gp.n_predict = o->n;
        gp.sampling = o->s;
        gp.sampling.seed = seed_or_random(o->seed);
        if (o->ignore_eos)
            for (int32_t t = 0; t < m.vocab->size(); ++t)
                if (m.vocab->is_eog(t)) gp.sampling.banned.push_back(t);
        gp.add_special = !o->no_bos;
        gp.grammar = load_grammar(o->grammar, *m.vocab);
        std::function<bool(const std::string&)> sink;
        if (!o->json) sink = [](const std::string& piece) {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
            return true;
        };
        GenerateResult r = draft ? generate_speculative(tf, *draft, *m.vocab, prompt, gp, o->draft.spec, sink) : generate(tf, *m.vocab, prompt, gp, sink);
        const double pp = r.prompt_ms > 0 ? 1000.0 * static_cast<double>(r.prompt_tokens.size()) / r.prompt_ms : 0;
        const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;  // the first token comes from the prompt pass
        const double tg = r.gen_ms > 0 ? 1000.0 * static_cast<double>(decoded) / r.gen_ms : 0;
        if (o->json) {
            nlohmann::json j = {{"text", r.text}, {"tokens", r.tokens}, {"prompt_tokens", r.prompt_tokens}, {"stop_reason", r.stop_reason},
                                {"timings", {{"prompt_ms", r.prompt_ms}, {"prompt_tokens_per_s", pp}, {"gen_ms", r.gen_ms}, {"gen_tokens_per_s", tg}}}};
            if (gp.grammar) j["grammar_complete"] = r.grammar_complete;
            if (draft)
                j["speculative"] = {{"rounds", r.speculative.rounds}, {"drafted", r.speculative.drafted}, {"accepted", r.speculative.accepted},
                                    {"acceptance", r.speculative.acceptance()}};
            std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else {
            std::printf("\n");
        }
        std::fflush(stdout);
        if (gp.grammar) {
            const auto st = gp.grammar->stats();
            std::fprintf(stderr, "llmforge: grammar: %zu token-mask entries computed in %.1f ms (%zu tokens checked on the stack at run time)\n",
                         st.entries, st.ms, st.uncertain);
        }
        if (gp.grammar && !r.grammar_complete)
            std::fprintf(stderr, "llmforge: warning: the output stopped (%s) before the grammar was complete\n", r.stop_reason.c_str());
        std::fprintf(stderr, "llmforge: prompt %zu tokens in %.1f ms (%.2f tok/s); generated %zu tokens, %.2f tok/s; stop: %s; %d threads, %s kernels\n",
                     r.prompt_tokens.size(), r.prompt_ms, pp, r.tokens.size(), tg, r.stop_reason.c_str(), o->threads, kernels::isa_name());
        if (draft)
            std::fprintf(stderr, "llmforge: draft: %lld of %lld proposed tokens accepted (%.1f %%) in %lld verification passes, %.2f tokens per pass\n",
                         static_cast<long long>(r.speculative.accepted), static_cast<long long>(r.speculative.drafted), 100.0 * r.speculative.acceptance(),
                         static_cast<long long>(r.speculative.rounds),
                         r.speculative.rounds ? static_cast<double>(decoded) / static_cast<double>(r.speculative.rounds) : 0.0);
    });
}

}  // namespace llmforge::cli
