// Alignment objectives (the article's third stage): the Bradley–Terry loss of a reward model, PPO with the KL penalty
// of RLHF, DPO and GRPO — each as a function of the per-token log-probabilities and head outputs that
// TrainableModel::forward() produces, returning the loss and its derivatives with respect to them, which
// TrainableModel::backward_custom() turns into parameter gradients.
//
// Layout: a batch is B rows of T positions, flattened n = b·T + t; the tokens of a response are the positions whose
// target is ≥ 0 (`mask`), in order; position n predicts target n, so head outputs at n are the value of the state
// before that token. All reductions run in double.
#pragma once
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmforge/chat_data.h"
#include "llmforge/data.h"
#include "llmforge/pretrain.h"

namespace llmforge::align {

// ---- reward model: −log σ(r⁺ − r⁻) (+ centring) --------------------------------------------------------------------
struct BtStats {
    double loss = 0, accuracy = 0, margin = 0, mean_reward = 0;
};
// rewards of P pairs; center > 0 adds center · mean((r⁺ + r⁻)²) (Eisenstein et al. 2023; TRL's
// center_rewards_coefficient). Fills d loss / d r⁺ and d r⁻.
BtStats bradley_terry(const std::vector<float>& chosen, const std::vector<float>& rejected, double center, std::vector<float>* dchosen,
                      std::vector<float>* drejected);

// ---- DPO (Rafailov et al. 2023): −log σ(β[(π⁺ − ref⁺) − (π⁻ − ref⁻)]), sequence log-probabilities -------------------
struct DpoStats {
    double loss = 0, accuracy = 0, margin = 0, chosen_reward = 0, rejected_reward = 0;
    double chosen_nll = 0;  // mean over pairs of −log π(y⁺)/|y⁺| (reported whether or not rpo_alpha weighs it in)
};
// label_smoothing ε (cDPO): −(1−ε) log σ(βh) − ε log σ(−βh). Rewards are the implicit β(π − ref).
// rpo_alpha α (RPO, Pang et al. 2024, "Iterative Reasoning Preference Optimization"; TRL's rpo_alpha) adds
// α · mean(−log π(y⁺|x) / |y⁺|), the chosen answers' per-token negative log-likelihood, which keeps DPO from lowering
// the likelihood of the chosen answers along with the rejected ones; chosen_tokens holds |y⁺| per pair (needed when
// α > 0 or for chosen_nll; may be null otherwise).
DpoStats dpo(const std::vector<double>& pol_chosen, const std::vector<double>& pol_rejected, const std::vector<double>& ref_chosen,
             const std::vector<double>& ref_rejected, double beta, double label_smoothing, double rpo_alpha,
             const std::vector<double>* chosen_tokens, std::vector<double>* dchosen, std::vector<double>* drejected);

// Σ of log p over each row's response tokens (targets ≥ 0): [B].
std::vector<double> sequence_logprobs(const std::vector<float>& logp, const std::vector<int32_t>& targets, int64_t B, int64_t T);

// ---- PPO for RLHF (Ouyang et al. 2022; Ziegler et al. 2019) --------------------------------------------------------
enum class KlEstimator { K1, K2, K3 };  // Schulman's estimators of KL(π‖ref) from samples of π: log r, ½(log r)², (r − 1) − log r
KlEstimator parse_kl(const std::string& name);
// per-token estimate from log π (the sampling policy) and log ref
double kl_estimate(KlEstimator k, double logp, double ref_logp);

struct PpoConfig {
    double beta = 0.05;        // KL penalty coefficient in the reward
    KlEstimator kl = KlEstimator::K1;
    double gamma = 1.0, lambda = 0.95;
    double clip = 0.2;         // policy ratio clip ε
    double value_clip = 0.2;   // value clip around the roll-out's values
    double vf_coef = 0.1;
    bool whiten = true;        // normalise advantages over the batch's response tokens
};
// Per-token rewards (−β·KL, plus the score at each row's last response token), advantages by GAE(γ, λ) and returns
// (advantage + value), all [B·T] (0 outside responses), from the roll-out's log-probabilities and values.
struct PpoTargets {
    std::vector<float> rewards, advantages, returns, kl;
    double mean_kl = 0;        // Σ over response tokens of the KL estimate, averaged over rows
    double mean_score = 0;
};
PpoTargets ppo_targets(const std::vector<float>& old_logp, const std::vector<float>& ref_logp, const std::vector<float>& old_values,
                       const std::vector<float>& scores, const std::vector<int32_t>& targets, int64_t B, int64_t T, const PpoConfig& cfg);
struct PpoStats {
    double loss = 0, policy_loss = 0, value_loss = 0, clip_fraction = 0, value_clip_fraction = 0, approx_kl = 0, ratio_mean = 0;
};
// loss = mean_t max(−A·ρ, −A·clip(ρ, 1 ± ε)) + vf_coef · ½ mean_t max((V − R)², (clip(V, V_old ± ε_v) − R)²), ρ =
// exp(log π − log π_old), means over the response tokens of the batch. Fills d loss / d log π and d loss / d V.
PpoStats ppo_loss(const std::vector<float>& logp, const std::vector<float>& values, const std::vector<float>& old_logp,
                  const std::vector<float>& old_values, const PpoTargets& tg, const std::vector<int32_t>& targets, const PpoConfig& cfg,
                  std::vector<float>* dlogp, std::vector<float>* dvalues);

// ---- GRPO (Shao et al. 2024) ---------------------------------------------------------------------------------------
struct GrpoConfig {
    double clip_low = 0.2, clip_high = 0.2;
    double beta = 0.0;              // per-token KL to the reference (k3), 0: off
    bool scale_rewards = true;      // divide by the group's standard deviation (false: Dr. GRPO)
    std::string aggregate = "sequence";  // "sequence": mean over each row's tokens, then over rows; "token": over all tokens
};
// Group-normalised advantages: rows [g·G, (g+1)·G) share a prompt; A = (r − mean) / (std + 1e-4) (unbiased std).
std::vector<double> grpo_advantages(const std::vector<double>& rewards, int64_t group, bool scale);
struct GrpoStats {
    double loss = 0, clip_fraction = 0, kl = 0;
};
GrpoStats grpo_loss(const std::vector<float>& logp, const std::vector<float>& old_logp, const std::vector<float>& ref_logp,
                    const std::vector<double>& advantages, const std::vector<int32_t>& targets, int64_t B, int64_t T, const GrpoConfig& cfg,
                    std::vector<float>* dlogp);

// ---- preference data: {"prompt", "chosen", "rejected"} per line (the arena's export) --------------------------------
// prompt: a string (one user turn) or OpenAI messages ending before the answer; chosen/rejected: strings (the
// assistant's answer) or messages. Both sides are rendered with the chat template; only the answer's tokens count.
struct PreferencePair {
    ChatTokens chosen, rejected;
};
struct PreferenceDataset {
    std::vector<PreferencePair> pairs;
    int64_t lines = 0, skipped = 0;
    std::vector<std::string> problems;  // "FILE:LINE: what", the first 20
};
PreferenceDataset load_preferences_jsonl(const std::string& path, const ChatFormat& fmt, const ChatDataOptions& opt);

// Batches of P pairs as 2P rows (row 2i: pair i's chosen answer, row 2i + 1: its rejected one), each row the whole
// sequence (inputs = its tokens, so the last position sees the last token), targets = the next token where it is an
// answer token, else −1; padded to the longest row. Shuffled per epoch with the seed (or in order).
class PairBatches : public BatchSource {
public:
    PairBatches(const std::vector<PreferencePair>* pairs, int64_t P, int32_t pad_id, uint64_t seed, bool shuffle);
    int64_t next(std::vector<int32_t>& inputs, std::vector<int32_t>& targets) override;
    DataPosition position() const override { return pos_; }
    void seek(DataPosition p) override;
    uint64_t windows() const override { return batches_.size(); }
    uint64_t tokens() const override { return tokens_; }
    // of the last batch: the pair index of each pair, and each row's length (its last token is at length − 1)
    const std::vector<size_t>& last_pairs() const { return last_pairs_; }
    const std::vector<int64_t>& last_lengths() const { return last_lengths_; }

private:
    void plan_epoch(uint64_t epoch);
    const std::vector<PreferencePair>* pairs_;
    int64_t P_;
    int32_t pad_;
    uint64_t seed_;
    bool shuffle_;
    uint64_t tokens_ = 0, planned_epoch_ = ~0ull;
    std::vector<std::vector<size_t>> batches_;
    DataPosition pos_;
    std::vector<size_t> last_pairs_;
    std::vector<int64_t> last_lengths_;
};

// ---- the training commands ------------------------------------------------------------------------------------------
struct PreferenceOptions {
    PretrainOptions train;            // steps (0: from epochs), batch size (pairs), optimiser, checkpoints, …
    std::string model_path, data_path, val_path, template_path;
    double epochs = 1.0, val_fraction = 0.1;
    bool skip_bad = true;
    LoraConfig lora;
    bool merge = false;
    // reward model
    double center = 0.0;              // reward centring coefficient
    // DPO
    double beta = 0.1, label_smoothing = 0.0;
    double rpo_alpha = 0.0;           // weight of the chosen answers' per-token NLL (RPO); 0: plain DPO
};
struct PreferenceReport {
    int64_t pairs = 0, val_pairs = 0, skipped = 0;
    double start_val_accuracy = -1, end_val_accuracy = -1;  // reward: pairwise accuracy; DPO: implicit-reward accuracy
    double start_logp_accuracy = -1, end_logp_accuracy = -1;  // DPO: log π(chosen) > log π(rejected)
    PretrainResult result;
};
// `llmforge reward train`: a Transformer with a scalar head (GGUF tensors cls.output.weight [1, C], cls.output.bias
// [1]) trained with the Bradley–Terry loss; OUT/model.gguf is the reward model.
PreferenceReport reward_train(PreferenceOptions opts);
// `llmforge dpo`: the policy trained with DPO against its starting point as the reference, whose log-probabilities are
// computed once before the first step and cached in OUT/reference_logps.json.
PreferenceReport dpo_train(PreferenceOptions opts);

// A reward model's scores: one per (prompt, answer) — sequences rendered with its chat template.
class RewardModel {
public:
    RewardModel(const std::string& path, int n_threads);
    ~RewardModel();
    // rewards of chat-formatted sequences (their whole tokens), in batches
    std::vector<float> score(const std::vector<std::vector<int32_t>>& seqs, int64_t batch = 8);
    std::vector<int32_t> encode(const nlohmann::ordered_json& messages) const;  // the conversation's tokens
    const Vocab& vocab() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- rewards from a program ------------------------------------------------------------------------------------------
struct VerifierResult {
    enum class Status { Ok, Timeout, Failed, Garbage } status = Status::Ok;
    double value = 0;
    std::string detail;
};
// Runs `sh -c command` with `input` on its standard input; its standard output must be one finite number.
VerifierResult run_verifier(const std::string& command, const std::string& input, double timeout_s);

// A verifier kept running (--verifier-lines): `sh -c command` is started once and answers one JSON object per input
// line with one line holding a number, in order — a program with a slow start (Python importing its libraries, a
// model to load) pays it once instead of once per answer. One that exits is started again for the next answer; one
// that has not answered within the time-out is killed with its process group and started again; a line that is not
// one finite number gives no reward for that answer only.
class PersistentVerifier {
public:
    explicit PersistentVerifier(std::string command);
    ~PersistentVerifier();
    PersistentVerifier(const PersistentVerifier&) = delete;
    PersistentVerifier& operator=(const PersistentVerifier&) = delete;
    VerifierResult score(const std::string& json_line, double timeout_s);  // json_line: one line, no '\n'

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- reinforcement learning from roll-outs: PPO (RLHF) and GRPO -------------------------------------------------------
struct RlOptions {
    std::string method = "ppo";          // ppo | grpo
    std::string model_path, out_dir, prompts_path, eval_path, template_path;
    std::string reward_model, verifier;  // one of them: a reward model (llmforge reward train) or a program
    double verifier_timeout = 10;
    int verifier_jobs = 0;               // programs run at once (0: as many as threads)
    bool verifier_lines = false;         // keep the programs running: one JSON line in, one number line out
    int64_t steps = 100;
    int64_t prompts_per_step = 8;        // PPO: roll-outs per step; GRPO: prompts per step (G answers each)
    int64_t group = 4;                   // GRPO's G
    int64_t max_new = 64;                // tokens per answer at most
    double temperature = 1.0;            // sampling temperature of the roll-outs (the policy's log-probabilities use it too)
    std::string grammar;                 // GBNF every roll-out follows (the evaluations' answers too); "": free text
    int64_t epochs = 4;                  // PPO epochs over each batch of roll-outs (GRPO: μ, iterations per batch)
    int64_t minibatch = 0;               // roll-outs per optimiser step (0: all of the step's)
    float lr = 1e-5f, min_lr = 1e-6f, weight_decay = 0.0f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, clip = 1.0f;
    std::string schedule = "constant";
    int64_t warmup = 0;
    PpoConfig ppo;
    bool adaptive_kl = false;            // Ziegler et al.'s controller: β follows KL towards target_kl
    double target_kl = 6.0, kl_horizon = 10000;
    GrpoConfig grpo;
    uint64_t seed = 1;
    int n_threads = 0;
    int64_t save_every = 20, sample_every = 10, eval_every = 0, eval_max = 500;
    bool resume = false, progress = true;
    bool eval_only = false;              // only the held-out evaluation of the starting model (no training)
    int64_t eval_samples = 0;            // each evaluation also samples this many answers per prompt (at --temperature)
    LoraConfig lora;
    bool recompute = false;              // activation checkpointing (TrainableModel::set_recompute)
    const std::atomic<bool>* stop = nullptr;  // set by the caller (SIGINT/SIGTERM): save a checkpoint and return
};
struct RlReport {
    int64_t steps_done = 0;
    bool interrupted = false;
    double last_reward = NAN, last_kl = NAN;
    // held-out evaluation (greedy answers, mean reward with a 95 % interval): before the first step and after the last
    int64_t eval_n = 0;
    double eval_start = NAN, eval_end = NAN, eval_start_lo = NAN, eval_start_hi = NAN, eval_end_lo = NAN, eval_end_hi = NAN;
    // after − before, prompt by prompt: the mean difference with a 95 % interval (paired; narrower than two intervals)
    double eval_change = NAN, eval_change_lo = NAN, eval_change_hi = NAN;
    // with eval_samples G, of the last evaluation: the sampled answers' mean reward, and the mean over prompts of the
    // best of the G rewards (pass@G for a 0/1 verifier)
    double eval_sample_mean = NAN, eval_best_of = NAN;
    int64_t skipped_rewards = 0;
};
RlReport rl_train(const RlOptions& opts);

}  // namespace llmforge::align
