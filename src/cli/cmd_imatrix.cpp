// llmforge imatrix -m MODEL -f TEXT -o FILE [-c CTX] [-b BATCH] [--chunks N] [--process-output] [-t N]
// The importance matrix llama-imatrix computes, in its file format (for `llmforge quantize --imatrix` or llama-quantize).
#include <cstdio>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "llmforge/error.h"
#include "llmforge/eval.h"
#include "llmforge/quantize.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

void add_imatrix(CLI::App& app) {
    auto* cmd = app.add_subcommand("imatrix", "Importance matrix of a model on a calibration text, in llama-imatrix's file format");
    struct Opts {
        std::string model, file, out = "imatrix.dat", tokenizer, tokens;
        CacheTypeOptions cache;
        int64_t ctx = 512, batch = 512, chunks = -1;
        bool process_output = false, no_mmap = false;
        int threads = ThreadPool::default_threads();
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file (f32, f16 or bf16 is best: the matrix describes its activations)")->required();
    auto* f = cmd->add_option("-f,--file", o->file, "calibration text (this or --tokens)")->default_str("none");
    auto* t = cmd->add_option("--tokens", o->tokens, "calibration as token ids instead (comma-separated; no BOS is put first)")->default_str("none");
    f->excludes(t);
    t->excludes(f);
    cmd->add_option("-o,--output", o->out, "importance matrix to write");
    cmd->add_option("-c,--ctx-size", o->ctx, "tokens per chunk")->check(at_least(16));
    cmd->add_option("-b,--batch-size", o->batch, "tokens per forward pass (passes under 16 tokens are not counted, as in llama-imatrix)")->check(at_least(16));
    cmd->add_option("--chunks", o->chunks, "use at most this many chunks (-1: all)")->check(at_least(-1, " (-1: all)"));
    cmd->add_flag("--process-output", o->process_output, "also collect output.weight's inputs");
    add_cache_type_options(cmd, o->cache, " (as llama.cpp)");
    cmd->add_option("--tokenizer", o->tokenizer, "llama2.c tokenizer.bin for a .bin model")->default_str("the model's own");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    add_threads_option(cmd, o->threads);
    cmd->callback([o] {
        if (o->file.empty() && o->tokens.empty()) throw_bad_input("imatrix: give the calibration text (-f FILE) or --tokens");
        Model m = load_for_cli(o->model, o->tokenizer, o->tokens.empty(), !o->no_mmap);
        ImatrixOptions io;
        io.n_ctx = o->ctx;
        io.n_batch = o->batch;
        io.max_chunks = o->chunks;
        io.process_output = o->process_output;
        io.kv_type = parse_cache_types(o->cache);
        std::vector<int32_t> tokens;
        if (!o->tokens.empty()) {
            tokens = parse_token_list(o->tokens, m.config.n_vocab, "imatrix");
            io.add_bos = false;
            io.dataset = "tokens";
        } else {
            std::string text = read_text_file(o->file);
            if (!utf8_valid(text)) throw_bad_input("imatrix: '%s' is not valid UTF-8", o->file.c_str());
            io.add_bos = m.vocab->add_bos;
            io.dataset = o->file;
            tokens = m.vocab->encode(text, io.add_bos);
        }
        const int64_t total = std::min<int64_t>(static_cast<int64_t>(tokens.size()) / o->ctx, o->chunks < 0 ? INT64_MAX : o->chunks);
        std::fprintf(stderr, "imatrix: %s: %zu tokens, %lld chunks of %lld\n", io.dataset.c_str(), tokens.size(), static_cast<long long>(total),
                     static_cast<long long>(o->ctx));
        ThreadPool pool(o->threads);
        Progress prog("imatrix", static_cast<double>(std::max<int64_t>(total, 1)), "chunks", true);
        io.progress = [&](int64_t done, int64_t) { prog.update(static_cast<double>(done)); };
        const ImportanceMatrix im = compute_imatrix(m, tokens, pool, io);
        prog.finish();
        write_imatrix(im, o->out);
        std::printf("imatrix: wrote %s: %zu matrices, %d chunks of %lld tokens\n", o->out.c_str(), im.entries.size(), im.chunks,
                    static_cast<long long>(o->ctx));
    });
}

}  // namespace llmforge::cli
