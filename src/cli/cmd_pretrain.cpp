// llmforge prepare --input FILE... --tokenizer T -o DIR       clean, deduplicate, tokenise into shards
// llmforge pretrain (--preset NAME | --config FILE) --data DIR -o DIR [--resume]   next-token pre-training
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/comm.h"
#include "llmforge/data.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"
#include "llmforge/pretrain.h"

namespace llmforge::cli {

void add_prepare(CLI::App& app) {
    auto* cmd = app.add_subcommand("prepare", "Clean, deduplicate and tokenise text into training shards");
    auto o = std::make_shared<PrepareOptions>();
    auto json = std::make_shared<bool>(false);
    cmd->add_option("--input", o->inputs, "text files (documents split at blank lines) or .jsonl with \"text\"")->required()->expected(1, -1);
    cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file (tokenizer.json, *.tiktoken, …)")->required();
    cmd->add_option("-o,--output", o->out_dir, "output directory")->required();
    cmd->add_option("--split", o->split, "documents of a text file: paragraph, line or file");
    cmd->add_option("--val-fraction", o->val_fraction, "fraction of documents held out for validation")->check(CLI::Range(0.0, 0.5));
    cmd->add_option("--min-chars", o->min_chars, "drop documents shorter than this after cleaning");
    cmd->add_option("--near-dup", o->near_dup_threshold, "MinHash similarity at which a document counts as a near-duplicate (>1 off)");
    add_threads_option(cmd, o->n_threads, "threads (0: all cores)", 0);
    cmd->add_flag("--json", *json, "print the report as JSON");
    cmd->add_flag("-q,--quiet", [o](int64_t) { o->progress = false; }, "no progress lines");
    cmd->callback([o, json] {
        const PrepareReport r = prepare_data(*o);
        if (*json) {
            std::printf("%s\n", read_text_file(o->out_dir + "/data.json").c_str());
            return;
        }
        std::printf("%llu documents (%s) in; removed: %llu empty or short, %llu exact duplicates, %llu near-duplicates; "
                    "cleaning removed %llu control characters, replaced %llu invalid bytes, changed %llu documents\n",
                    static_cast<unsigned long long>(r.documents_in), human_bytes(static_cast<double>(r.bytes_in)).c_str(),
                    static_cast<unsigned long long>(r.removed_empty), static_cast<unsigned long long>(r.removed_exact_dup),
                    static_cast<unsigned long long>(r.removed_near_dup), static_cast<unsigned long long>(r.control_chars_removed),
                    static_cast<unsigned long long>(r.invalid_bytes_replaced), static_cast<unsigned long long>(r.normalised_docs));
        std::printf("train: %llu documents, %llu tokens; validation: %llu documents, %llu tokens; %.1f s → %s\n",
                    static_cast<unsigned long long>(r.documents_train), static_cast<unsigned long long>(r.tokens_train),
                    static_cast<unsigned long long>(r.documents_val), static_cast<unsigned long long>(r.tokens_val), r.seconds, o->out_dir.c_str());
    });
}

// The options every training command shares (loop, optimiser, schedule, checkpoints).
void add_training_options(CLI::App* cmd, const std::shared_ptr<PretrainOptions>& o) {
    cmd->add_option("-o,--output", o->out_dir, "run directory: checkpoints, metrics, plot, samples")->required();
    cmd->add_option("--steps", o->steps, "optimizer steps");
    cmd->add_option("-b,--batch-size", o->batch_size, "sequences per micro-batch")->check(at_least(1));
    cmd->add_option("--seq-len", o->seq_len, "tokens per sequence");
    cmd->add_option("--grad-accum", o->grad_accum, "micro-batches per step (global batch = batch-size × grad-accum)");
    cmd->add_option("--lr", o->lr, "peak learning rate");
    cmd->add_option("--min-lr", o->min_lr, "final learning rate");
    cmd->add_option("--schedule", o->schedule, "cosine, linear, wsd or constant");
    cmd->add_option("--warmup", o->warmup, "warm-up steps");
    cmd->add_option("--precision", o->precision,
                    "matrix products: f32 or bf16 (bf16 operands, f32 accumulation; master weights and optimizer stay f32; bf16 is used only "
                    "where a product of the model's shape measures faster than f32 at start-up, and a resumed run keeps the choice)");
    cmd->add_flag("--recompute", o->recompute,
                  "activation checkpointing: keep only each block's input and recompute the block in the backward pass (far less "
                  "memory for activations, about a third more arithmetic; same results)");
    cmd->add_option("--wd", o->weight_decay, "AdamW weight decay (matrices only)");
    cmd->add_option("--clip-grad", o->clip, "clip gradients to this global norm (0: off)")->check(at_least(0, " (0: off)"));
    add_seed_option(cmd, o->seed, "seed for initialisation and data order (--resume needs the run's)");
    cmd->add_option("--eval-every", o->eval_every, "validation every N steps");
    cmd->add_option("--eval-batches", o->eval_batches, "validation windows per evaluation");
    cmd->add_option("--save-every", o->save_every, "checkpoint every N steps");
    cmd->add_option("--sample-every", o->sample_every, "generate a sample every N steps (0: off)");
    cmd->add_option("--sample-prompt", o->sample_prompt, "text the samples start from")->default_str("the beginning of a document");
    add_threads_option(cmd, o->n_threads, "threads (0: all cores)", 0);
    cmd->add_flag("--resume", o->resume, "continue from OUT/checkpoint");
    cmd->add_flag("-q,--quiet", [o](int64_t) { o->progress = false; }, "no progress line");
}

namespace {
// A fresh model's shape: --preset or --config, with sizes overridden (pretrain, and distill's fresh student).
struct ShapeOptions {
    std::string preset, config;
    int64_t layers = 0, d_model = 0, heads = 0, kv_heads = 0, d_ff = 0;
};

void add_shape_options(CLI::App* cmd, const std::shared_ptr<ShapeOptions>& x, const std::string& what) {
    cmd->add_option("--preset", x->preset, what + " preset (llmforge info --preset NAME); sizes can be overridden below")->default_str("none");
    cmd->add_option("--config", x->config, what + " config as JSON: Hugging Face config.json fields (GPT-2 or LLaMA)")->default_str("none");
    cmd->add_option("--layers", x->layers, "number of blocks");
    cmd->add_option("--d-model", x->d_model, "model width");
    cmd->add_option("--heads", x->heads, "attention heads");
    cmd->add_option("--kv-heads", x->kv_heads, "key/value heads (LLaMA; grouped-query attention)");
    cmd->add_option("--d-ff", x->d_ff, "MLP width");
}

// The shape asked for; n_vocab and n_ctx are left 0 (from the tokenizer and --seq-len).
ModelConfig shape_from_options(const ShapeOptions& x, const char* cmd) {
    if (x.preset.empty() == x.config.empty()) throw_bad_input("%s: give exactly one of --preset or --config", cmd);
    ModelConfig c = !x.preset.empty() ? preset(x.preset) : config_from_hf_json(read_text_file(x.config), x.config);
    c.n_vocab = 0;
    if (x.layers) c.n_layer = x.layers;
    if (x.d_model) c.n_embd = x.d_model;
    if (x.heads) { c.n_head = x.heads; if (c.fused_qkv) c.n_head_kv = x.heads; }  // a fused QKV has as many KV heads as heads
    if (x.kv_heads) c.n_head_kv = x.kv_heads;
    if (c.n_head_kv > c.n_head) c.n_head_kv = c.n_head;
    if (x.d_ff) c.n_ff = x.d_ff;
    c.n_ctx = 0;
    return c;
}

// ", validation loss 3.21 (perplexity 24.8; unigram baseline 412.30; untrained 8228.26)"
std::string validation_summary(const PretrainResult& r) {
    if (r.last_val_loss < 0) return "";
    std::string val = strprintf(", validation loss %.4f (perplexity %.2f", r.last_val_loss, std::exp(static_cast<double>(r.last_val_loss)));
    if (r.baseline_val_loss >= 0) val += strprintf("; unigram baseline %.2f", std::exp(static_cast<double>(r.baseline_val_loss)));
    if (r.start_val_loss >= 0) val += strprintf("; untrained %.2f", std::exp(static_cast<double>(r.start_val_loss)));
    return val + ")";
}
}  // namespace

void add_pretrain(CLI::App& app) {
    auto* cmd = app.add_subcommand("pretrain", "Pre-train a model by next-token prediction on prepared shards");
    auto o = std::make_shared<PretrainOptions>();
    auto x = std::make_shared<ShapeOptions>();
    add_shape_options(cmd, x, "model");
    cmd->add_option("--data", o->data_dir, "directory written by llmforge prepare")->required();
    add_training_options(cmd, o);
    cmd->callback([o, x] {
        o->model = shape_from_options(*x, "pretrain");
        const StopOnSignal stop;  // Ctrl-C: a checkpoint, then out
        o->stop = stop.flag();
        const PretrainResult r = pretrain(*o);
        if (world().rank() == 0)
            std::printf("%s after %lld steps: train loss %.4f%s\n", r.interrupted ? "interrupted" : "done", static_cast<long long>(r.steps_done), r.last_loss,
                        validation_summary(r).c_str());
        if (r.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

void add_distill(CLI::App& app) {
    auto* cmd = app.add_subcommand("distill", "Knowledge distillation: train a small student on prepared shards against a teacher's next-token distributions");
    auto o = std::make_shared<PretrainOptions>();
    auto x = std::make_shared<ShapeOptions>();
    auto d = std::make_shared<DistillOptions>();
    auto loss = std::make_shared<std::string>("forward-kl");
    o->lr = 1e-3f;
    o->min_lr = 1e-4f;
    cmd->add_option("--teacher", d->teacher_path, "the teacher (GGUF, safetensors, …; may be quantised)")->required();
    cmd->add_option("--student", d->student_path, "start the student from this model (the teacher's vocabulary)")->default_str("none: a fresh one from --preset/--config");
    cmd->add_option("--keep-layers", d->keep_layers, "the student is the teacher with only these blocks, e.g. 0,3,7 (a layer-pruned copy)")
        ->delimiter(',')->default_str("none");
    cmd->add_option("--teacher-cache", d->teacher_cache, "train on the teacher's top-k from this file (llmforge distill-cache) instead of running it "
                                                          "on every batch; the teacher still runs for validation")->default_str("none: the teacher runs");
    cmd->add_option("--on-policy", d->on_policy, "on-policy distillation (GKD's λ): the share of batches whose rows the student continues itself "
                                                 "from their first --seq-len − --gen-tokens tokens, trained on the divergence alone")
        ->capture_default_str()->check(between(0, 1));
    cmd->add_option("--gen-tokens", d->gen_tokens, "on-policy: tokens the student samples per row")->default_str("half of --seq-len")->check(at_least(0));
    cmd->add_option("--gen-temp", d->gen_temp, "on-policy: the student's sampling temperature (0: greedy)")->capture_default_str()->check(at_least(0));
    add_shape_options(cmd, x, "a fresh student's");
    cmd->add_option("--data", o->data_dir, "directory written by llmforge prepare, with the teacher's tokenizer")->required();
    cmd->add_option("--loss", *loss, "forward-kl (KL(teacher ‖ student)), reverse-kl (KL(student ‖ teacher)) or jsd (generalised JSD(β))")
        ->capture_default_str()->check(CLI::IsMember({"forward-kl", "reverse-kl", "jsd"}));
    cmd->add_option("--temp", d->loss.temperature, "distillation temperature τ: both distributions softened to softmax(z/τ) (the divergence is scaled by τ²)")
        ->capture_default_str()->check(above(0));
    cmd->add_option("--alpha", d->loss.alpha, "weight of the distillation term; 1 − α weighs the hard-label cross-entropy")->capture_default_str()->check(between(0, 1));
    cmd->add_option("--beta", d->loss.beta, "jsd: the teacher's weight β in the mixture β·p + (1 − β)·q")->capture_default_str()->check(between(1e-6, 1 - 1e-6));
    add_training_options(cmd, o);
    cmd->callback([o, x, d, loss] {
        d->loss.divergence = parse_divergence(*loss);
        const bool fresh = d->student_path.empty() && d->keep_layers.empty();
        if (fresh) o->model = shape_from_options(*x, "distill");
        else if (!x->preset.empty() || !x->config.empty()) throw_bad_input("distill: --preset/--config describe a fresh student; not with --student or --keep-layers");
        d->train = *o;
        const StopOnSignal stop;
        d->train.stop = stop.flag();
        const DistillReport r = distill(*d);
        if (world().rank() == 0) {
            std::printf("%s after %lld steps: train loss %.4f%s", r.result.interrupted ? "interrupted" : "done", static_cast<long long>(r.result.steps_done),
                        r.result.last_loss, validation_summary(r.result).c_str());
            if (r.last_val_kl >= 0) std::printf("; KL(teacher ‖ student) %.4f; teacher perplexity %.2f", r.last_val_kl, std::exp(r.teacher_val_loss));
            std::printf("; student %lld parameters, teacher %lld\n", static_cast<long long>(r.student_params), static_cast<long long>(r.teacher_params));
        }
        if (r.result.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

void add_sft(CLI::App& app) {
    auto* cmd = app.add_subcommand("sft", "Supervised fine-tuning on conversations (JSONL, OpenAI messages); the loss covers assistant turns only");
    auto o = std::make_shared<PretrainOptions>();
    auto x = std::make_shared<SftOptions>();
    auto bad = std::make_shared<std::string>("skip");
    o->steps = 0;        // from --epochs unless given
    o->seq_len = 0;      // the model's context
    o->lr = 1e-4f;
    o->min_lr = 1e-5f;
    o->warmup = 10;
    o->weight_decay = 0.0f;
    o->eval_every = 50;
    o->save_every = 100;
    cmd->add_option("-m,--model", x->model_path, "the model to tune (GGUF, safetensors dir, llama2.c .bin)")->required();
    cmd->add_option("--data", x->data_path, "conversations: one {\"messages\": [...]} per line")->required();
    cmd->add_option("--val", x->val_path, "held-out conversations (default: --val-fraction of --data)")->default_str("--val-fraction of --data");
    cmd->add_option("--val-fraction", x->val_fraction, "share of --data held out for validation when no --val")->check(CLI::Range(0.0, 0.5));
    cmd->add_option("--template", x->template_path, "chat template (Jinja) to use and store with the model (default: the model's, else ChatML)")->default_str("the model's, else ChatML");
    cmd->add_option("--epochs", x->epochs, "passes over the data when --steps is not given");
    cmd->add_option("--on-bad-example", *bad, "skip (default: count and report them) or fail (stop at the first, with file and line)")
        ->check(CLI::IsMember({"skip", "fail"}));
    cmd->add_option("--lora-rank", x->lora.rank, "train LoRA adapters of this rank instead of every weight (0: full fine-tuning)");
    cmd->add_option("--lora-alpha", x->lora.alpha, "LoRA alpha: the adapters are scaled by alpha/rank");
    cmd->add_option("--lora-targets", x->lora.targets, "weights to adapt: attn_q attn_k attn_v attn_qkv attn_output ffn_gate ffn_up ffn_down, or all "
                                                       "(default: the attention projections)");
    cmd->add_flag("--merge", x->merge, "LoRA: also write OUT/model.gguf with the adapters merged in (default: OUT/adapter.gguf only)");
    add_training_options(cmd, o);
    cmd->callback([o, x, bad] {
        x->train = *o;
        x->skip_bad = *bad == "skip";
        const StopOnSignal stop;
        x->train.stop = stop.flag();
        const SftReport r = sft(*x);
        if (world().rank() == 0)
            std::printf("%s after %lld steps: train loss %.4f%s; %lld conversations (%lld skipped), %.0f%% of batch positions were tokens\n",
                        r.result.interrupted ? "interrupted" : "done", static_cast<long long>(r.result.steps_done), r.result.last_loss,
                        r.result.last_val_loss >= 0 ? (", validation loss " + std::to_string(r.result.last_val_loss)).c_str() : "",
                        static_cast<long long>(r.examples), static_cast<long long>(r.skipped), 100 * r.fill);
        if (r.result.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

}  // namespace llmforge::cli
