// llmforge logits -m MODEL (-p PROMPT | --tokens 1,2,3): the logits at every position, for checking against references.
#include <cstdio>
#include <sstream>

#include "cli/common.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "llmforge/error.h"
#include "llmforge/transformer.h"

namespace llmforge::cli {

void add_logits(CLI::App& app) {
    auto* cmd = app.add_subcommand("logits", "Print the logits at every position of a prompt (one line per position)");
    struct Opts { std::string model, prompt, tokens, tokenizer; bool incremental = false, no_bos = false, no_mmap = false, ggml = false; int threads = ThreadPool::default_threads(); int64_t ctx = 0, batch = 512; CacheTypeOptions cache; std::vector<std::string> lora; float lora_scale = 1.0f; };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("-p,--prompt", o->prompt, "prompt text (tokenised with the model's vocabulary)")->default_str("none");
    cmd->add_option("--tokens", o->tokens, "comma-separated token ids instead of a prompt")->default_str("none");
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_flag("--incremental", o->incremental, "feed one token at a time through the KV cache instead of one batched pass");
    cmd->add_flag("--ggml-arithmetic", o->ggml, "round every intermediate as llama.cpp's CPU backend does (slower; same bits as llama.cpp on f32 weights)");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    cmd->add_flag("--no-bos", o->no_bos, "do not add the beginning-of-sequence token to a prompt");
    add_threads_option(cmd, o->threads);
    cmd->add_option("-c,--ctx-size", o->ctx, "context size (0: the model's)")->check(at_least(0, " (0: the model's)"));
    cmd->add_option("-b,--batch-size", o->batch, "tokens per forward pass")->check(at_least(1));
    add_cache_type_options(cmd, o->cache, " (as llama.cpp)");
    cmd->add_option("--lora", o->lora, "LoRA adapter(s) to apply beside the weights (GGUF, as llmforge sft --lora-rank writes)");
    cmd->add_option("--lora-scale", o->lora_scale, "scale of the adapters");
    cmd->callback([o] {
        if (o->prompt.empty() == o->tokens.empty()) throw_bad_input("logits: give -p PROMPT or --tokens IDS");
        Model m = load_for_cli(o->model, o->tokenizer, !o->prompt.empty(), !o->no_mmap, o->ggml ? Repack::GgmlDigits : Repack::All);
        warn_context(m, o->ctx);
        std::vector<int32_t> ids;
        if (!o->prompt.empty()) {
            ids = m.vocab->encode(o->prompt, !o->no_bos, true);
        } else {
            ids = parse_token_list(o->tokens, m.config.n_vocab, "logits");
        }
        if (ids.empty()) throw_bad_input("logits: no tokens");
        ThreadPool pool(o->threads);
        Transformer tf(m, pool, o->ctx, o->batch, parse_cache_types(o->cache), 1, o->ggml ? Numerics::Ggml : Numerics::Fast);
        apply_lora_adapters(tf, m, o->lora, o->lora_scale);
        const int64_t V = m.config.n_vocab;
        std::vector<float> all;
        if (o->incremental) {
            for (int32_t id : ids) {
                const auto& l = tf.eval(&id, 1);
                all.insert(all.end(), l.begin(), l.end());
            }
        } else {
            all = tf.eval(ids, true);
        }
        for (size_t i = 0; i < ids.size(); ++i) {
            std::printf("%d", ids[i]);
            for (int64_t v = 0; v < V; ++v) std::printf(" %.7g", static_cast<double>(all[i * V + v]));
            std::printf("\n");
        }
    });
}

}  // namespace llmforge::cli
