// llmforge distill-cache --teacher T --data DIR -o FILE [--seq-len T --top-k K --temp τ --dtype f16|f32]
//   the teacher's top-k next-token distributions over every training window, once, for `distill --teacher-cache`
// llmforge distill-loss -m STUDENT --teacher TEACHER --spec SPEC.json [--grads-out DIR] [-t N]
// One forward and backward pass of a distillation loss on fixed data (include/llmforge/distill.h), printing the loss,
// its parts and the teacher's top-k as JSON and writing the student's gradients: the losses in isolation, for checking
// them against PyTorch.
//
// SPEC: {"inputs": [[ids]], "targets": [[ids]] (−1: not trained on), "loss": "forward-kl" | "reverse-kl" | "jsd",
//        "temperature": τ, "beta": β (JSD), "alpha": α, "top_k": k (0: the full teacher distribution)}
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"
#include "llmforge/train.h"

namespace llmforge::cli {

void add_distill_loss(CLI::App& app) {
    auto* cmd = app.add_subcommand("distill-loss", "One forward/backward pass of a distillation loss on fixed data (for checking it)");
    struct Opts {
        std::string model, teacher, spec, grads_out;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "the student")->required();
    cmd->add_option("--teacher", o->teacher, "the teacher (same vocabulary)")->required();
    cmd->add_option("--spec", o->spec, "JSON: the batch and the loss's settings")->required();
    cmd->add_option("--grads-out", o->grads_out, "write the student's gradients as a model")->default_str("none: not written");
    add_threads_option(cmd, o->threads);
    cmd->callback([o] {
        SpecBatch batch = read_spec_batch(o->spec);
        const nlohmann::json& s = batch.spec;
        const Model student = load_model(o->model), teacher = load_model(o->teacher);
        const int64_t V = student.config.n_vocab;
        if (teacher.config.n_vocab != V)
            throw_bad_input("the teacher's vocabulary (%lld tokens) differs from the student's (%lld): distillation needs a shared tokenizer",
                            static_cast<long long>(teacher.config.n_vocab), static_cast<long long>(V));
        DistillLossConfig c;
        c.divergence = parse_divergence(s.value("loss", std::string("forward-kl")));
        c.temperature = s.value("temperature", 1.0f);
        c.beta = s.value("beta", 0.5f);
        c.alpha = s.value("alpha", 0.5f);
        c.validate();
        const int k = s.value("top_k", 0);
        std::vector<int32_t>& inputs = batch.inputs;
        std::vector<int32_t>& targets = batch.targets;
        const int64_t B = batch.B, T = batch.T;
        const int64_t N = B * T;
        ThreadPool pool(o->threads > 0 ? o->threads : ThreadPool::default_threads());
        TrainableModel tt(teacher, pool, false, true);  // frozen: forward only
        tt.set_keep_logits(true);
        tt.forward(inputs.data(), targets.data(), B, T);
        TrainableModel tm(student, pool);
        tm.set_keep_logits(true);
        tm.zero_grad();
        tm.forward(inputs.data(), targets.data(), B, T);
        std::vector<float> dz(static_cast<size_t>(N * V));
        nlohmann::json out;
        DistillLoss r;
        if (k > 0) {
            std::vector<int32_t> ids(static_cast<size_t>(N * k));
            std::vector<float> lp(static_cast<size_t>(N * k)), rest(static_cast<size_t>(N));
            for (int64_t n = 0; n < N; ++n)
                teacher_topk(tt.logits() + n * V, V, c.temperature, k, ids.data() + n * k, lp.data() + n * k, rest.data() + n);
            r = distill_batch(tm.logits(), targets.data(), N, V, nullptr, ids.data(), lp.data(), rest.data(), k, c, 1.0f, dz.data(), &pool);
            out["top_ids"] = ids;
            out["top_logp"] = lp;
            out["log_rest"] = rest;
        } else {
            r = distill_batch(tm.logits(), targets.data(), N, V, tt.logits(), nullptr, nullptr, nullptr, 0, c, 1.0f, dz.data(), &pool);
        }
        tm.backward_logits(dz.data());
        out["loss"] = r.loss;
        out["divergence"] = r.divergence;
        out["ce"] = r.ce;
        out["positions"] = r.positions;
        if (!o->grads_out.empty()) save_model(tm.to_model(true), o->grads_out);
        std::printf("%s\n", out.dump().c_str());
    });
}

void add_distill_cache(CLI::App& app) {
    auto* cmd = app.add_subcommand("distill-cache",
                                   "Run a teacher once over prepared shards and keep each position's top-k next-token log-probabilities and the remaining "
                                   "mass, for many `distill --teacher-cache` runs");
    auto o = std::make_shared<TeacherCacheOptions>();
    auto dtype = std::make_shared<std::string>("f16");
    auto json = std::make_shared<bool>(false);
    cmd->add_option("--teacher", o->teacher_path, "the teacher (GGUF, safetensors, …; may be quantised)")->required();
    cmd->add_option("--data", o->data_dir, "directory written by llmforge prepare, with the teacher's tokenizer (its train split is cached)")->required();
    cmd->add_option("-o,--output", o->out, "the cache file (written atomically)")->required();
    cmd->add_option("--seq-len", o->seq_len, "tokens per window: the --seq-len the students will train with")->capture_default_str()->check(at_least(1));
    cmd->add_option("--top-k", o->top_k, "tokens kept per position (the rest as one remaining mass)")->capture_default_str()->check(at_least(1));
    cmd->add_option("--temp", o->temperature, "the temperature τ of the kept distributions: the students' --temp")->capture_default_str()->check(above(0));
    cmd->add_option("--dtype", *dtype, "storage of the log-probabilities: f16 (half the size, ~4e-4 relative) or f32 (exact)")
        ->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
    cmd->add_option("--max-windows", o->max_windows, "cache this many windows, spread evenly over the split (students train on them; 0: all)")
        ->capture_default_str()->check(at_least(0));
    cmd->add_option("-b,--batch-size", o->batch_size, "windows per teacher pass")->capture_default_str()->check(at_least(1));
    add_threads_option(cmd, o->n_threads, "threads (0: all cores)", 0)->default_str("0: all cores");
    cmd->add_flag("--json", *json, "print the report as JSON");
    cmd->add_flag("-q,--quiet", [o](int64_t) { o->progress = false; }, "no progress lines");
    cmd->callback([o, dtype, json] {
        o->precision = dtype_from_name(*dtype);
        const TeacherCacheReport r = build_teacher_cache(*o);
        if (*json) {
            std::printf("%s\n", nlohmann::json({{"file", o->out}, {"windows", r.windows}, {"positions", r.positions}, {"bytes", r.bytes},
                                                 {"seconds", r.seconds}, {"teacher_hash", r.teacher_hash}, {"data_hash", r.data_hash}})
                                    .dump()
                                    .c_str());
        } else {
            std::printf("%s: the top %lld of %llu positions (%llu windows of %lld), %.1f MB, in %.1f s\n", o->out.c_str(), static_cast<long long>(o->top_k),
                        static_cast<unsigned long long>(r.positions), static_cast<unsigned long long>(r.windows), static_cast<long long>(o->seq_len),
                        static_cast<double>(r.bytes) / 1e6, r.seconds);
        }
    });
}

}  // namespace llmforge::cli
