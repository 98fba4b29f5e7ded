// Pre-training by next-token prediction: the loop around TrainableModel, AdamW and the DataLoader, with validation,
// samples, metrics, a loss plot and crash-safe checkpoints.
//
// OUT/ holds: checkpoint/ (model.gguf with the tokenizer, optimizer.bin, state.json — replaced atomically as a whole),
// metrics.jsonl (one line per step — loss, learning rate, gradient norm, tokens/s, and the compute account: model FLOPs,
// seconds, the measured peak FLOP/s and MFU = flops / seconds / peak_flops; validation lines carry "val_loss"), loss.svg,
// samples.txt, and model.gguf at the end.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "llmforge/data.h"
#include "llmforge/model.h"
#include "llmforge/train.h"

namespace llmforge {

struct PretrainOptions {
    ModelConfig model;                 // n_vocab and n_ctx are set from the tokenizer and seq_len when 0
    std::string data_dir, out_dir;
    int64_t steps = 1000, batch_size = 8, seq_len = 256, grad_accum = 1;
    float lr = 6e-4f, min_lr = 6e-5f, weight_decay = 0.1f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, clip = 1.0f;
    std::string schedule = "cosine";
    std::string precision = "f32";     // matrix products: f32, or bf16 (bf16 operands, f32 accumulation, f32 masters)
    bool recompute = false;            // activation checkpointing: keep block inputs only, recompute in the backward pass
    int64_t warmup = 100;
    uint64_t seed = 1;
    int64_t eval_every = 100, eval_batches = 8, save_every = 200, sample_every = 0;
    std::string sample_prompt = "";
    int n_threads = 0;
    bool resume = false;
    bool progress = true;
    // Set by the caller (the command line: on SIGINT/SIGTERM) to save a checkpoint and return with interrupted = true.
    const std::atomic<bool>* stop = nullptr;
};

struct PretrainResult {
    int64_t steps_done = 0;
    float last_loss = 0, last_val_loss = -1;
    float start_val_loss = -1;     // before the first update (fresh runs)
    float baseline_val_loss = -1;  // the unigram baseline on the same validation tokens (pre-training)
    bool interrupted = false;
    // the compute account (model FLOPs as include/llmforge/compute.h counts them; a resumed run's sums include the
    // steps before it): FLOPs and seconds of the training steps, the measured peak, their MFU, this run's wall time
    double flops = 0, seconds = 0, peak_flops = 0, mfu = 0, wall_seconds = 0;
};

// Throws a bad-input Error before training starts for bad settings (heads not dividing d_model, NaN learning rate,
// a model that cannot fit in memory, empty data); a runtime Error if the loss turns NaN (the last good checkpoint is
// kept). opts.stop set: a checkpoint is saved and it returns with interrupted = true.
PretrainResult pretrain(const PretrainOptions& opts);

// A training objective other than next-token cross-entropy (reward models, DPO): run_training hands it each
// micro-batch instead of calling forward()/backward() itself.
struct Objective {
    virtual ~Objective() = default;
    // Once the model is built (and LoRA enabled), before the optimiser: add heads, compute cached reference values.
    // saved: on --resume, the checkpoint's model (or, under LoRA, its adapter), which holds the head; else null.
    virtual void attach(TrainableModel& tm, const Model* saved, bool resume) = 0;
    // Forward and backward of rows [row0, row0 + B) of the global batch just drawn from the train source; gradients
    // scaled by `scale`. Returns the loss; adds statistics (averaged over the step's micro-batches by the loop).
    virtual double train(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B,
                         int64_t T, float scale, nlohmann::json& stats) = 0;
    // Validation over `batches` batches of the validation source (from its start): "val_loss" and other "val_*" keys.
    virtual nlohmann::json validate(TrainableModel& tm, BatchSource& val, int64_t batches) = 0;
    // Model FLOPs per trained token beyond the trained model's own (a teacher's or a reference's forward passes), for
    // the compute account; sequences of T tokens.
    virtual double extra_flops_per_token(int64_t /*T*/) const { return 0.0; }
};

// What a training run needs besides its options: the vocabulary, the model's shape and starting weights, and the
// batches. pretrain() fills it from prepared token shards; sft() from conversations.
struct TrainSetup {
    std::string what = "pretraining";
    Vocab vocab;
    ModelConfig cfg;
    std::function<Model()> init;                  // starting weights (not called when resuming)
    std::unique_ptr<BatchSource> train, val;      // val: batches of one row (may be null)
    std::function<std::string(const Vocab&, const std::string& prompt)> sample_text;  // text samples start from (null: none)
    nlohmann::json hparams_extra = nlohmann::json::object();  // recorded in state.json
    // LoRA: rank > 0 trains adapters only; checkpoints then hold adapter.gguf (the base comes from init() on resume),
    // and the run ends with OUT/adapter.gguf (and, with save_merged, the merged OUT/model.gguf).
    LoraConfig lora;
    bool save_merged = false;
    std::shared_ptr<Objective> objective;         // null: next-token cross-entropy
    // Called with the validation metrics of the step-0 evaluation (before any update) and of the last step.
    std::function<void(const nlohmann::json&, bool last)> on_validation;
    bool validate_at_start = false;
    // A reference the validation loss is reported beside (pre-training: the unigram model of the training split):
    // its mean loss per target over `batches` batches of the validation source, from its start. Null: none.
    std::function<double(BatchSource& val, int64_t batches)> baseline;
    std::string baseline_name = "baseline";
};
// The training loop shared by pre-training and fine-tuning (progress, metrics, checkpoints, resume, signals, MPI).
PretrainResult run_training(const PretrainOptions& opts, TrainSetup& setup);

// Checkpoints: OUT/checkpoint/ holds model.gguf (adapter.gguf under LoRA), optimizer.bin and state.json (`state`),
// written whole under a temporary name and swapped in with renames, so a complete checkpoint exists at every moment.
void save_training_checkpoint(const std::string& out, const TrainableModel& tm, const Vocab& vocab, const AdamW& opt, const nlohmann::json& state);
std::string find_checkpoint(const std::string& out);  // its directory, or "" when OUT has none
void load_optimizer_state(const std::string& path, AdamW& opt, size_t n_params);
// A checkpoint's model (GGUF layout) in the layout of the model the run started from (LLaMA from Hugging Face: RoPE
// halves), exactly, so that a resumed run repeats the uninterrupted one bit for bit.
Model to_training_layout(Model checkpoint_model, const ModelConfig& start);
// Keeps the lines of OUT/metrics.jsonl of steps ≤ `step` (a resumed run continues the same curve).
void truncate_metrics(const std::string& path, int64_t step);

// Writes an SVG line plot of training and validation loss from OUT/metrics.jsonl.
void write_loss_svg(const std::string& metrics_path, const std::string& svg_path);

}  // namespace llmforge

namespace llmforge {

// Supervised fine-tuning on conversations (the article's second stage): the loss covers the assistant turns only.
struct SftOptions {
    PretrainOptions train;           // steps (0: from epochs), batch size, seq_len (0: the model's context), optimiser, …
    std::string model_path, data_path, val_path, template_path;
    double epochs = 1.0;             // used when train.steps == 0
    double val_fraction = 0.05;      // held out from data_path when no val_path (at least one conversation)
    bool skip_bad = true;            // --on-bad-example skip|fail
    LoraConfig lora;                 // rank > 0: LoRA instead of full fine-tuning
    bool merge = false;              // LoRA: also write the merged model
};
struct SftReport {
    int64_t examples = 0, val_examples = 0, skipped = 0, tokens = 0, trained_tokens = 0;
    double fill = 0;                 // share of batch positions holding real tokens (the rest is padding)
    PretrainResult result;
};
SftReport sft(SftOptions opts);

}  // namespace llmforge
