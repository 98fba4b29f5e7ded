// llmforge train-steps -m MODEL --batch-file BATCH.json [--steps N] [optimizer flags] [--grads-out DIR] [-o DIR]
// Runs N AdamW steps on one fixed batch and prints the losses: the training engine in isolation, for checking it
// against references (as `logits` does for inference). BATCH.json: {"inputs": [[ids]], "targets": [[ids]]}, [B][T].
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/json_int.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "llmforge/train.h"

namespace llmforge::cli {

void add_train_steps(CLI::App& app) {
    auto* cmd = app.add_subcommand("train-steps", "Run AdamW steps on one fixed batch; print losses (for checking the trainer)");
    struct Opts {
        std::string model, batch, grads_out, out, schedule = "constant";
        int steps = 1, warmup = 0, threads = 0;
        float lr = 1e-3f, min_lr = 0.0f, wd = 0.0f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, clip = 0.0f;
        LoraConfig lora;
        std::string lora_init_out;
        bool recompute = false;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model to start from")->required();
    cmd->add_option("--batch-file", o->batch, "JSON {\"inputs\": [[...]], \"targets\": [[...]]}")->required();
    cmd->add_option("--steps", o->steps, "optimizer steps (0: forward and backward only)")->check(CLI::Range(0, 1000000));
    cmd->add_option("--lr", o->lr, "peak learning rate");
    cmd->add_option("--min-lr", o->min_lr, "final learning rate of the decay");
    cmd->add_option("--schedule", o->schedule, "constant, cosine, linear or wsd");
    cmd->add_option("--warmup", o->warmup, "warm-up steps");
    cmd->add_option("--wd", o->wd, "AdamW weight decay (matrices only)");
    cmd->add_option("--beta1", o->beta1, "AdamW β1");
    cmd->add_option("--beta2", o->beta2, "AdamW β2");
    cmd->add_option("--eps", o->eps, "AdamW ε");
    cmd->add_option("--clip-grad", o->clip, "clip gradients to this global norm (0: off)");
    add_threads_option(cmd, o->threads);
    cmd->add_option("--grads-out", o->grads_out, "write the first step's gradients (before clipping) as a model")->default_str("none: not written");
    cmd->add_option("-o,--output", o->out, "write the parameters after the last step")->default_str("none: not written");
    cmd->add_flag("--recompute", o->recompute, "activation checkpointing: recompute each block in the backward pass (same results)");
    cmd->add_option("--lora-rank", o->lora.rank, "train LoRA adapters of this rank instead of the weights (0: off)");
    cmd->add_option("--lora-alpha", o->lora.alpha, "LoRA alpha (scale alpha/rank)");
    cmd->add_option("--lora-targets", o->lora.targets, "weights to adapt: attn_q attn_k attn_v attn_qkv attn_output ffn_gate ffn_up ffn_down, or all");
    cmd->add_option("--lora-b-std", o->lora.init_b_std, "start B from N(0, std²) instead of zeros (so the first gradients of A are not zero)");
    cmd->add_option("--lora-seed", o->lora.seed, "seed of the adapters' initialisation");
    cmd->add_option("--lora-init-out", o->lora_init_out, "write the adapters' starting values (GGUF adapter)")->default_str("none: not written");
    cmd->callback([o] {
        for (float x : {o->lr, o->min_lr, o->wd, o->beta1, o->beta2, o->eps, o->clip})
            if (!std::isfinite(x)) throw_bad_input("optimizer settings must be finite numbers");
        const Model init = load_model(o->model);
        nlohmann::json b;
        try {
            b = nlohmann::json::parse(read_text_file(o->batch));
        } catch (const nlohmann::json::exception& e) {
            throw_bad_input("'%s': malformed JSON (%s)", o->batch.c_str(), e.what());
        }
        std::vector<int32_t> inputs, targets;
        int64_t B = 0, T = 0;
        try {
            for (const auto& row : b.at("inputs")) {
                if (T == 0) T = static_cast<int64_t>(row.size());
                if (static_cast<int64_t>(row.size()) != T || T == 0) throw_bad_input("'%s': rows of inputs differ in length", o->batch.c_str());
                for (const auto& id : row) inputs.push_back(static_cast<int32_t>(json_integer(id, 0, INT32_MAX, "'" + o->batch + "': an input id")));
                ++B;
            }
            for (const auto& row : b.at("targets"))
                for (const auto& id : row) targets.push_back(static_cast<int32_t>(json_integer(id, INT32_MIN, INT32_MAX, "'" + o->batch + "': a target id")));
        } catch (const nlohmann::json::exception& e) {
            throw_bad_input("'%s': expected {\"inputs\": [[ids]], \"targets\": [[ids]]} (%s)", o->batch.c_str(), e.what());
        }
        if (targets.size() != inputs.size()) throw_bad_input("'%s': inputs and targets differ in shape", o->batch.c_str());
        ThreadPool pool(o->threads > 0 ? o->threads : ThreadPool::default_threads());
        TrainableModel tm(init, pool, false, o->lora.rank > 0);  // LoRA: the base read as stored (quantised: QLoRA)
        tm.set_recompute(o->recompute);
        if (o->lora.rank > 0) {
            tm.enable_lora(o->lora);
            if (!o->lora_init_out.empty()) save_lora_adapter(tm.to_model(false), o->lora_init_out);
        }
        auto save = [&](const Model& m, const std::string& path) {
            if (tm.lora()) save_lora_adapter(m, path);
            else save_model(m, path);
        };
        AdamW opt(tm.n_params(), AdamWConfig{o->beta1, o->beta2, o->eps, o->wd});
        LrSchedule sched;
        sched.kind = LrSchedule::parse(o->schedule);
        sched.lr_max = o->lr;
        sched.lr_min = o->min_lr;
        sched.warmup = o->warmup;
        sched.total = o->steps;
        nlohmann::json losses = nlohmann::json::array(), norms = nlohmann::json::array(), lrs = nlohmann::json::array();
        for (int s = 0; s < std::max(1, o->steps); ++s) {
            tm.zero_grad();
            losses.push_back(tm.forward(inputs.data(), targets.data(), B, T));
            tm.backward();
            if (s == 0 && !o->grads_out.empty()) save(tm.to_model(true), o->grads_out);
            if (o->steps == 0) break;
            norms.push_back(o->clip > 0 ? tm.clip_grad_norm(o->clip) : tm.grad_norm());
            const float lr = sched.at(s);
            lrs.push_back(lr);
            opt.step(tm, lr, pool);
        }
        if (!o->out.empty()) save(tm.to_model(false), o->out);
        std::printf("%s\n", nlohmann::json({{"losses", losses}, {"grad_norms", norms}, {"lrs", lrs}}).dump().c_str());
    });
}

}  // namespace llmforge::cli
