// llmforge perplexity -m MODEL -f FILE [-c CTX] [--stride S] [--kl-base MODEL] [--json]
// The numbers llama-perplexity prints: the running estimate per chunk ([i]x.xxxx) and the final PPL ± error.
#include <cstdio>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "llmforge/error.h"
#include "llmforge/eval.h"
#include "llmforge/tokenizer.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

void add_perplexity(CLI::App& app) {
    auto* cmd = app.add_subcommand("perplexity", "Perplexity of a model on a text, computed as llama.cpp's llama-perplexity does");
    struct Opts {
        std::string model, file, tokenizer, kl_base;
        CacheTypeOptions cache;
        int64_t ctx = 512, stride = 0, llama_stride = 0, batch = 2048, chunks = -1;
        int threads = ThreadPool::default_threads();
        bool json = false, no_mmap = false, no_bos = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("-f,--file", o->file, "text file to score")->required();
    cmd->add_option("-c,--ctx-size", o->ctx, "tokens per chunk")->check(at_least(2));
    cmd->add_option("--stride", o->stride,
                    "sliding window (Hugging Face's method): windows of -c tokens every S tokens, each scoring the tokens not yet scored");
    cmd->add_option("--ppl-stride", o->llama_stride, "llama.cpp's --ppl-stride: windows of -c tokens every S tokens, each scoring its last S");
    cmd->add_option("-b,--batch-size", o->batch, "tokens per forward pass")->check(at_least(1));
    cmd->add_option("--chunks", o->chunks, "score at most this many chunks (-1: all)")->check(at_least(-1, " (-1: all)"));
    cmd->add_option("--kl-base", o->kl_base,
                    "reference model (e.g. the f32 original of a quantised or distilled -m): also report KL(base ‖ model) per token")->default_str("none");
    add_threads_option(cmd, o->threads);
    add_cache_type_options(cmd, o->cache, " (as llama.cpp)");
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_flag("--no-bos", o->no_bos, "do not put BOS at the start of each chunk");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    cmd->add_flag("--json", o->json, "print one JSON object instead of llama.cpp's lines");
    cmd->callback([o] {
        std::string text = read_text_file(o->file);
        if (!utf8_valid(text)) throw_bad_input("perplexity: '%s' is not valid UTF-8", o->file.c_str());
        if (!text.empty() && text.back() == '\n') text.pop_back();  // as llama.cpp's -f reads a prompt file
        if (text.empty()) throw_bad_input("perplexity: '%s' is empty", o->file.c_str());
        const KVCacheType kv_type = parse_cache_types(o->cache);
        // llama.cpp's order is written for f16 and f32 caches; a quantised one runs the fast kernels
        const bool ggml = kv_type == DType::F16 || kv_type == DType::F32;
        const Repack repack = ggml ? Repack::GgmlDigits : Repack::All;
        Model m = load_for_cli(o->model, o->tokenizer, true, !o->no_mmap, repack);
        std::optional<Model> base;
        if (!o->kl_base.empty()) base.emplace(load_for_cli(o->kl_base, o->tokenizer, true, !o->no_mmap, repack));
        PerplexityOptions po;
        po.n_ctx = o->ctx;
        po.stride = o->stride;
        po.llama_stride = o->llama_stride;
        po.n_batch = o->batch;
        po.max_chunks = o->chunks;
        po.kv_type = kv_type;
        po.ggml_arithmetic = ggml;
        po.add_bos = !o->no_bos && m.vocab->add_bos;
        if (o->ctx > m.config.n_ctx) {
            if (m.config.learned_positions)
                throw_bad_input("perplexity: -c %lld is longer than the %lld learned positions of this model",
                                static_cast<long long>(o->ctx), static_cast<long long>(m.config.n_ctx));
            std::fprintf(stderr, "llmforge: warning: the model was trained on only %lld context tokens (%lld specified)\n",
                         static_cast<long long>(m.config.n_ctx), static_cast<long long>(o->ctx));
        }
        const std::vector<int32_t> tokens = m.vocab->encode(text, po.add_bos);
        std::fprintf(stderr, "perplexity: tokenized %s into %zu tokens\n", o->file.c_str(), tokens.size());
        const int64_t n_chunks = perplexity_chunks(static_cast<int64_t>(tokens.size()), po);
        std::fprintf(stderr, "perplexity: calculating perplexity over %lld chunks, n_ctx=%lld, batch_size=%lld\n",
                     static_cast<long long>(n_chunks), static_cast<long long>(po.n_ctx), static_cast<long long>(std::min(po.n_batch, po.n_ctx)));
        ThreadPool pool(o->threads);
        Progress prog("perplexity", static_cast<double>(n_chunks), "chunks", true);
        // llama-perplexity's running values "[1]12.34,[2]…" go to stdout as each chunk ends — unless stdout is the
        // terminal the progress bar redraws on stderr, where they would share its line: then they come at the end
        const bool hold = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
        std::string running;
        auto on_chunk = [&](int64_t c, int64_t, const PerplexityResult& r) {
            if (!o->json) {
                char item[48];
                std::snprintf(item, sizeof(item), "[%lld]%.4f,", static_cast<long long>(c + 1), r.running_ppl.back());
                if (hold) {
                    running += item;
                } else {
                    std::fputs(item, stdout);
                    std::fflush(stdout);
                }
            }
            char note[64];
            std::snprintf(note, sizeof(note), "PPL %.4f", r.running_ppl.back());
            prog.set_note(note);
            prog.update(static_cast<double>(c + 1));
        };
        const PerplexityResult r = base ? kl_divergence(*base, m, tokens, po, pool, on_chunk) : perplexity(m, tokens, po, pool, on_chunk);
        prog.finish();  // ends the bar's line
        if (hold) std::fputs(running.c_str(), stdout);
        if (o->json) {
            nlohmann::json j = {{"model", o->model}, {"file", o->file}, {"n_ctx", r.n_ctx}, {"stride", po.stride}, {"ppl_stride", po.llama_stride},
                                {"n_tokens", r.n_tokens}, {"n_chunks", r.n_chunks}, {"tokens_scored", r.count},
                                {"ppl", r.ppl}, {"ppl_err", r.ppl_err}, {"nll", r.nll}, {"bytes", r.bytes},
                                {"bits_per_byte", r.bits_per_byte}, {"running_ppl", r.running_ppl}};
            if (r.has_kl)
                j["kl_divergence"] = {{"base", o->kl_base}, {"base_ppl", r.base_ppl}, {"mean", r.kl_mean}, {"err", r.kl_err},
                                      {"median", r.kl_median}, {"p99", r.kl_p99}, {"max", r.kl_max}, {"same_top", r.same_top},
                                      {"mean_delta_p", r.dp_mean}, {"rms_delta_p", r.dp_rms}};
            std::printf("%s\n", j.dump(1).c_str());
            return;
        }
        std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl, r.ppl_err);
        std::printf("bits per byte: %.4f (%lld tokens scored, %lld bytes)\n", r.bits_per_byte, static_cast<long long>(r.count),
                    static_cast<long long>(r.bytes));
        if (r.has_kl) {
            std::printf("base PPL: %.4f   ln(PPL(model)/PPL(base)): %.6f\n", r.base_ppl, std::log(r.ppl / r.base_ppl));
            std::printf("Mean    KLD: %10.6f +/- %10.6f\n", r.kl_mean, r.kl_err);
            std::printf("Maximum KLD: %10.6f\n99.0%%   KLD: %10.6f\nMedian  KLD: %10.6f\n", r.kl_max, r.kl_p99, r.kl_median);
            std::printf("Same top p: %.3f %%\nMean    Δp: %.3f %%\nRMS     Δp: %.3f %%\n", 100 * r.same_top, 100 * r.dp_mean, 100 * r.dp_rms);
        }
    });
}

}  // namespace llmforge::cli
