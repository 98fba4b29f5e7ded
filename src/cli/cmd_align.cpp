// llmforge reward train | reward score, and llmforge dpo: the preference-based parts of alignment (align.h).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/align.h"
#include "llmforge/comm.h"
#include "llmforge/error.h"

namespace llmforge::cli {

namespace {

// The options reward training and DPO share, with defaults suited to fine-tuning.
void add_preference_options(CLI::App* cmd, const std::shared_ptr<PretrainOptions>& o, const std::shared_ptr<align::PreferenceOptions>& x,
                            const std::shared_ptr<std::string>& bad) {
    o->steps = 0;  // from --epochs unless given
    o->seq_len = 0;
    o->batch_size = 4;
    o->lr = 1e-5f;
    o->min_lr = 1e-6f;
    o->warmup = 10;
    o->weight_decay = 0.0f;
    o->eval_every = 50;
    o->eval_batches = 0;  // every held-out pair
    o->save_every = 100;
    cmd->add_option("-m,--model", x->model_path, "the model to start from (usually an SFT model: GGUF, safetensors dir)")->required();
    cmd->add_option("--data", x->data_path, "preference pairs: one {\"prompt\", \"chosen\", \"rejected\"} per line (llmforge arena export writes them)")->required();
    cmd->add_option("--val", x->val_path, "held-out pairs (default: --val-fraction of --data)")->default_str("--val-fraction of --data");
    cmd->add_option("--val-fraction", x->val_fraction, "share of --data held out when no --val")->check(CLI::Range(0.0, 0.5));
    cmd->add_option("--template", x->template_path, "chat template (Jinja) (default: the model's, else ChatML)")->default_str("the model's, else ChatML");
    cmd->add_option("--epochs", x->epochs, "passes over the pairs when --steps is not given");
    cmd->add_option("--on-bad-example", *bad, "skip (default: count and report) or fail (stop at the first, with file and line)")->check(CLI::IsMember({"skip", "fail"}));
    cmd->add_option("--lora-rank", x->lora.rank, "train LoRA adapters of this rank (0: every weight)");
    cmd->add_option("--lora-alpha", x->lora.alpha, "LoRA alpha (scale alpha/rank)");
    cmd->add_option("--lora-targets", x->lora.targets, "weights to adapt (all: attention and MLP)")->default_str("the attention projections");
    cmd->add_flag("--merge", x->merge, "LoRA: also write OUT/model.gguf with the adapters merged in");
    add_training_options(cmd, o);
    cmd->get_option("--batch-size")->description("preference pairs per micro-batch (each pair is two sequences)");
}

void print_report(const char* what, const align::PreferenceReport& r, bool json, bool dpo) {
    if (world().rank() != 0) return;
    if (json) {
        nlohmann::json j = {{"task", what}, {"steps", r.result.steps_done}, {"train_loss", r.result.last_loss}, {"val_loss", r.result.last_val_loss},
                            {"pairs", r.pairs}, {"val_pairs", r.val_pairs}, {"skipped", r.skipped}, {"val_accuracy_start", r.start_val_accuracy},
                            {"val_accuracy_end", r.end_val_accuracy}, {"interrupted", r.result.interrupted}};
        if (dpo) {
            j["val_logp_accuracy_start"] = r.start_logp_accuracy;
            j["val_logp_accuracy_end"] = r.end_logp_accuracy;
        }
        std::printf("%s\n", j.dump().c_str());
        return;
    }
    std::printf("%s %s after %lld steps: train loss %.4f", what, r.result.interrupted ? "interrupted" : "done", static_cast<long long>(r.result.steps_done),
                r.result.last_loss);
    if (r.end_val_accuracy >= 0)
        std::printf("; held-out %s accuracy %.3f (before: %.3f)", dpo ? "implicit-reward" : "pairwise", r.end_val_accuracy, r.start_val_accuracy);
    if (dpo && r.end_logp_accuracy >= 0) std::printf(", log-likelihood ranking %.3f (before: %.3f)", r.end_logp_accuracy, r.start_logp_accuracy);
    std::printf("; %lld pairs (%lld held out, %lld skipped)\n", static_cast<long long>(r.pairs), static_cast<long long>(r.val_pairs), static_cast<long long>(r.skipped));
}

}  // namespace

void add_reward(CLI::App& app) {
    auto* cmd = app.add_subcommand("reward", "Reward models: train one on preference pairs (Bradley–Terry), or score answers with one");
    cmd->require_subcommand(1);
    {
        auto* tr = cmd->add_subcommand("train", "Train a reward model r(x, y): a scalar head on the model, loss −log σ(r(chosen) − r(rejected))");
        auto o = std::make_shared<PretrainOptions>();
        auto x = std::make_shared<align::PreferenceOptions>();
        auto bad = std::make_shared<std::string>("skip");
        auto json = std::make_shared<bool>(false);
        add_preference_options(tr, o, x, bad);
        tr->add_option("--center", x->center, "reward centring coefficient: adds c · mean((r⁺ + r⁻)²) so rewards stay near 0")->check(CLI::Range(0.0, 10.0));
        tr->add_flag("--json", *json, "print the result as JSON");
        tr->callback([o, x, bad, json] {
            x->train = *o;
            x->skip_bad = *bad == "skip";
            const StopOnSignal stop;
            x->train.stop = stop.flag();
            const align::PreferenceReport r = align::reward_train(*x);
            print_report("reward model", r, *json, false);
            if (r.result.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
        });
    }
    {
        auto* sc = cmd->add_subcommand("score", "Score answers with a reward model: a prompt and a response, or a file of preference pairs (accuracy)");
        struct Opts {
            std::string model, prompt, response, data;
            int threads = 0;
            bool json = false;
        };
        auto o = std::make_shared<Opts>();
        sc->add_option("-m,--model", o->model, "reward model (written by llmforge reward train)")->required();
        sc->add_option("-p,--prompt", o->prompt, "the user's message")->default_str("none");
        sc->add_option("-r,--response", o->response, "the answer to score")->default_str("none");
        sc->add_option("--data", o->data, "preference pairs (JSONL): print each pair's rewards and the pairwise accuracy")->default_str("none");
        add_threads_option(sc, o->threads, "threads (0: all cores)", 0);
        sc->add_flag("--json", o->json, "print JSON");
        sc->callback([o] {
            if (o->data.empty() == (o->prompt.empty() && o->response.empty()))
                throw_bad_input("reward score: give --prompt and --response, or --data");
            align::RewardModel rm(o->model, o->threads);
            if (o->data.empty()) {
                if (o->response.empty()) throw_bad_input("reward score: --response is missing");
                const nlohmann::ordered_json msgs = nlohmann::ordered_json::array(
                    {{{"role", "user"}, {"content", o->prompt}}, {{"role", "assistant"}, {"content", o->response}}});
                const float r = rm.score({rm.encode(msgs)})[0];
                if (o->json) std::printf("%s\n", nlohmann::json({{"reward", r}}).dump().c_str());
                else std::printf("%.6f\n", static_cast<double>(r));
                return;
            }
            const ChatFormat fmt(rm.vocab());
            ChatDataOptions dopt;
            const align::PreferenceDataset ds = align::load_preferences_jsonl(o->data, fmt, dopt);
            for (const std::string& p : ds.problems) std::fprintf(stderr, "llmforge: skipped %s\n", p.c_str());
            if (ds.pairs.empty()) throw_bad_input("'%s' has no usable preference pairs", o->data.c_str());
            std::vector<std::vector<int32_t>> seqs;
            for (const auto& p : ds.pairs) {
                seqs.push_back(p.chosen.ids);
                seqs.push_back(p.rejected.ids);
            }
            const std::vector<float> r = rm.score(seqs);
            double correct = 0;
            nlohmann::json rows = nlohmann::json::array();
            for (size_t i = 0; i < ds.pairs.size(); ++i) {
                correct += r[2 * i] > r[2 * i + 1] ? 1.0 : 0.0;
                rows.push_back({{"chosen", r[2 * i]}, {"rejected", r[2 * i + 1]}});
            }
            const double n = static_cast<double>(ds.pairs.size()), acc = correct / n;
            // Wilson 95 % interval of the accuracy
            const double z = 1.96, den = 1 + z * z / n, mid = (acc + z * z / (2 * n)) / den;
            const double half = z * std::sqrt(acc * (1 - acc) / n + z * z / (4 * n * n)) / den;
            if (o->json) {
                std::printf("%s\n", nlohmann::json({{"pairs", ds.pairs.size()}, {"skipped", ds.skipped}, {"accuracy", acc}, {"ci95", {mid - half, mid + half}},
                                                    {"rewards", rows}}).dump().c_str());
            } else {
                for (const auto& row : rows) std::printf("%.6f\t%.6f\n", row["chosen"].get<double>(), row["rejected"].get<double>());
                std::printf("pairwise accuracy %.4f (95%% CI %.4f–%.4f) over %zu pairs (%lld skipped)\n", acc, mid - half, mid + half, ds.pairs.size(),
                            static_cast<long long>(ds.skipped));
            }
        });
    }
}

void add_dpo(CLI::App& app) {
    auto* cmd = app.add_subcommand("dpo", "Direct preference optimisation: −log σ(β[(log π(y⁺) − log ref(y⁺)) − (log π(y⁻) − log ref(y⁻))])");
    auto o = std::make_shared<PretrainOptions>();
    auto x = std::make_shared<align::PreferenceOptions>();
    auto bad = std::make_shared<std::string>("skip");
    auto json = std::make_shared<bool>(false);
    add_preference_options(cmd, o, x, bad);
    o->lr = 5e-6f;
    o->min_lr = 5e-7f;
    cmd->add_option("--beta", x->beta, "β: strength of the implicit KL constraint to the reference");
    cmd->add_option("--label-smoothing", x->label_smoothing, "cDPO: the share of labels assumed flipped");
    cmd->add_option("--rpo-alpha", x->rpo_alpha,
                    "RPO: add this weight × the chosen answers' per-token negative log-likelihood, so the chosen answers' likelihood is "
                    "held up while the rejected ones' falls (0: plain DPO; Pang et al. 2024 use 1)");
    cmd->add_flag("--json", *json, "print the result as JSON");
    cmd->callback([o, x, bad, json] {
        x->train = *o;
        x->skip_bad = *bad == "skip";
        const StopOnSignal stop;
        x->train.stop = stop.flag();
        const align::PreferenceReport r = align::dpo_train(*x);
        print_report("DPO", r, *json, true);
        if (r.result.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

namespace {

// The options RLHF (PPO) and GRPO share.
void add_rl_options(CLI::App* cmd, const std::shared_ptr<align::RlOptions>& o) {
    cmd->add_option("-m,--model", o->model_path, "the policy to start from (usually an SFT model); also the frozen reference")->required();
    cmd->add_option("--prompts", o->prompts_path, "prompts: one {\"prompt\": text or messages, …} per line (other fields go to the verifier)")->required();
    cmd->add_option("-o,--output", o->out_dir, "run directory: checkpoints, metrics.jsonl, samples.txt, model.gguf")->required();
    cmd->add_option("--reward-model", o->reward_model, "score answers with this reward model (llmforge reward train)")->default_str("none");
    cmd->add_option("--verifier", o->verifier, "score answers with this program: sh -c CMD reads {\"prompt\", \"answer\", …} as JSON on stdin, prints a number")->default_str("none");
    cmd->add_option("--verifier-timeout", o->verifier_timeout, "seconds a verifier may take per answer; slower ones are killed and the answer skipped");
    cmd->add_option("--verifier-jobs", o->verifier_jobs, "verifier programs run at once")->default_str("the thread count");
    cmd->add_flag("--verifier-lines", o->verifier_lines,
                  "keep each verifier program running: it reads one JSON object per line and prints one number per line, in order "
                  "(start-up paid once, not per answer)");
    cmd->add_option("--eval", o->eval_path, "held-out prompts: mean reward of greedy answers before and after training, with a 95% interval")->default_str("none: no evaluation");
    cmd->add_option("--eval-max", o->eval_max, "evaluate at most this many held-out prompts");
    cmd->add_flag("--eval-only", o->eval_only, "evaluate the model on --eval and stop (no training; -o is still needed for the run directory)");
    cmd->add_option("--eval-every", o->eval_every, "also evaluate every N steps (0: only before and after)");
    cmd->add_option("--eval-samples", o->eval_samples,
                    "each evaluation also samples this many answers per held-out prompt at --temperature and scores them; the eval "
                    "files list them (\"samples\": [{\"answer\", \"reward\"}]) — on-policy data for DPO pairs or rejection sampling");
    cmd->add_option("--template", o->template_path, "chat template (Jinja) (default: the model's, else ChatML)")->default_str("the model's, else ChatML");
    cmd->add_option("--steps", o->steps, "steps: roll-outs, then optimiser updates");
    cmd->add_option("-n,--n-predict", o->max_new, "tokens per answer at most")->check(at_least(1));
    cmd->add_option("--temp", o->temperature, "sampling temperature of the roll-outs; log-probabilities use the same")->check(above(0));
    auto grammar = std::make_shared<GrammarOptions>();  // every roll-out and evaluation answer follows it
    add_grammar_options(cmd, *grammar);
    cmd->parse_complete_callback([o, grammar] { o->grammar = grammar_source(*grammar); });
    cmd->add_option("--mini-batch", o->minibatch, "answers per optimiser update")->default_str("all of a step's");
    cmd->add_option("--lr", o->lr, "learning rate");
    cmd->add_option("--min-lr", o->min_lr, "final learning rate of a decaying schedule");
    cmd->add_option("--schedule", o->schedule, "constant, cosine, linear or wsd");
    cmd->add_option("--warmup", o->warmup, "warm-up steps");
    cmd->add_option("--wd", o->weight_decay, "AdamW weight decay");
    cmd->add_option("--clip-grad", o->clip, "clip gradients to this global norm (0: off)")->check(at_least(0, " (0: off)"));
    add_seed_option(cmd, o->seed, "seed: prompt order and sampling");
    cmd->add_option("--save-every", o->save_every, "checkpoint every N steps");
    cmd->add_option("--sample-every", o->sample_every, "print an answer every N steps (0: off)");
    cmd->add_option("--lora-rank", o->lora.rank, "train LoRA adapters of this rank (the reference is then the base with the adapters off)");
    cmd->add_option("--lora-alpha", o->lora.alpha, "LoRA alpha");
    cmd->add_option("--lora-targets", o->lora.targets, "weights to adapt");
    cmd->add_flag("--recompute", o->recompute, "activation checkpointing: recompute each block in the backward pass (less memory, same results)");
    add_threads_option(cmd, o->n_threads, "threads (0: all cores)", 0);
    cmd->add_flag("--resume", o->resume, "continue from OUT/checkpoint");
    cmd->add_flag("-q,--quiet", [o](int64_t) { o->progress = false; }, "no progress line");
}

void print_rl(const align::RlReport& r, bool json) {
    if (json) {
        std::printf("%s\n", nlohmann::json({{"steps", r.steps_done}, {"interrupted", r.interrupted}, {"last_reward", r.last_reward}, {"last_kl", r.last_kl},
                                            {"eval_prompts", r.eval_n}, {"eval_start", {r.eval_start, r.eval_start_lo, r.eval_start_hi}},
                                            {"eval_end", {r.eval_end, r.eval_end_lo, r.eval_end_hi}},
                                            {"eval_change", {r.eval_change, r.eval_change_lo, r.eval_change_hi}},
                                            {"eval_sample_mean", r.eval_sample_mean}, {"eval_best_of", r.eval_best_of},
                                            {"skipped_rewards", r.skipped_rewards}})
                                .dump()
                                .c_str());
        return;
    }
    std::printf("%s after %lld steps: mean reward %.4f, KL %.4f", r.interrupted ? "interrupted" : "done", static_cast<long long>(r.steps_done), r.last_reward,
                r.last_kl);
    if (r.eval_n > 0)
        std::printf("; held-out mean reward %.4f [%.4f, %.4f] → %.4f [%.4f, %.4f] over %lld prompts", r.eval_start, r.eval_start_lo, r.eval_start_hi, r.eval_end,
                    r.eval_end_lo, r.eval_end_hi, static_cast<long long>(r.eval_n));
    if (std::isfinite(r.eval_change))
        std::printf(", change %+.4f [%+.4f, %+.4f] prompt by prompt", r.eval_change, r.eval_change_lo, r.eval_change_hi);
    std::printf("; %lld answers without a reward\n", static_cast<long long>(r.skipped_rewards));
}

}  // namespace

void add_rlhf(CLI::App& app) {
    auto* cmd = app.add_subcommand("rlhf", "RLHF with PPO: maximise E[r(x, y)] − β·KL(π‖π_ref) with a value head, GAE and the clipped objective");
    auto o = std::make_shared<align::RlOptions>();
    auto kl = std::make_shared<std::string>("k1");
    auto json = std::make_shared<bool>(false);
    o->method = "ppo";
    o->epochs = 4;
    add_rl_options(cmd, o);
    cmd->add_option("-b,--batch-size", o->prompts_per_step, "roll-outs per step")->check(at_least(1));
    cmd->add_option("--ppo-epochs", o->epochs, "passes over each batch of roll-outs");
    cmd->add_option("--beta", o->ppo.beta, "β: weight of the KL penalty in the per-token reward");
    cmd->add_option("--kl", *kl, "KL estimator per token: k1 (log π/ref), k2 or k3")->check(CLI::IsMember({"k1", "k2", "k3"}));
    cmd->add_flag("--adaptive-kl", o->adaptive_kl, "adapt β towards --target-kl (Ziegler et al. 2019)");
    cmd->add_option("--target-kl", o->target_kl, "KL the adaptive β aims at, in nats per answer");
    cmd->add_option("--kl-horizon", o->kl_horizon, "horizon of the adaptive β, in roll-outs");
    cmd->add_option("--gamma", o->ppo.gamma, "discount γ");
    cmd->add_option("--lambda", o->ppo.lambda, "GAE λ");
    cmd->add_option("--cliprange", o->ppo.clip, "policy ratio clip ε (TRL's cliprange)")->check(at_least(0));
    cmd->add_option("--cliprange-value", o->ppo.value_clip, "value clip around the roll-out's values (TRL's cliprange_value)")->check(at_least(0));
    cmd->add_option("--vf-coef", o->ppo.vf_coef, "weight of the value loss");
    cmd->add_flag("!--no-whiten", o->ppo.whiten, "do not normalise advantages over the batch");
    cmd->add_flag("--json", *json, "print the result as JSON");
    cmd->callback([o, kl, json] {
        o->ppo.kl = align::parse_kl(*kl);
        const StopOnSignal stop;
        o->stop = stop.flag();
        const align::RlReport r = align::rl_train(*o);
        print_rl(r, *json);
        if (r.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

void add_grpo(CLI::App& app) {
    auto* cmd = app.add_subcommand("grpo", "GRPO: G answers per prompt, advantages normalised within each group, clipped ratio, optional KL to the reference");
    auto o = std::make_shared<align::RlOptions>();
    auto json = std::make_shared<bool>(false);
    o->method = "grpo";
    o->epochs = 1;
    add_rl_options(cmd, o);
    cmd->add_option("-b,--batch-size", o->prompts_per_step, "prompts per step (each gets --group answers)")->check(at_least(1));
    cmd->add_option("--group", o->group, "answers per prompt G");
    cmd->add_option("--iterations", o->epochs, "μ: updates per batch of answers");
    cmd->add_option("--beta", o->grpo.beta, "β of the per-token KL (k3) to the reference (0: off)");
    cmd->add_option("--cliprange", o->grpo.clip_low, "ratio clip ε (TRL's epsilon)")->check(at_least(0));
    cmd->add_option("--cliprange-high", o->grpo.clip_high, "upper ratio clip (TRL's epsilon_high; DAPO uses 0.28)")->check(at_least(0))->default_str("--cliprange");
    cmd->add_flag("!--no-scale-rewards", o->grpo.scale_rewards, "do not divide advantages by the group's standard deviation (Dr. GRPO)");
    cmd->add_option("--loss-aggregation", o->grpo.aggregate, "sequence (mean per answer, then over answers) or token (over all tokens)")
        ->check(CLI::IsMember({"sequence", "token"}));
    cmd->add_flag("--json", *json, "print the result as JSON");
    cmd->callback([o, json, cmd] {
        if (cmd->count("--cliprange-high") == 0) o->grpo.clip_high = o->grpo.clip_low;
        const StopOnSignal stop;
        o->stop = stop.flag();
        const align::RlReport r = align::rl_train(*o);
        print_rl(r, *json);
        if (r.interrupted) throw Error(ErrorKind::Runtime, "interrupted (checkpoint saved)");
    });
}

}  // namespace llmforge::cli
