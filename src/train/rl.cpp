// Reinforcement learning from roll-outs: RLHF with PPO (`llmforge rlhf`) and GRPO (`llmforge grpo`).
//
// Each step: draw prompts; sample answers from the current policy with the KV-cache Transformer (several sequences
// decoded together); score them (a reward model, or a verifier program); compute log-probabilities of the answers
// under the policy (and its value head, for PPO) and under the frozen reference (the starting model; under LoRA the
// same weights with the adapters off); then several optimiser steps on the clipped objective (align.h). Metrics,
// samples, checkpoints, --resume and Ctrl-C behave as in pre-training.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <thread>

#include "core/json_int.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "train/sample_policy.h"
#include "llmforge/grammar.h"
#include "llmforge/align.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/sampler.h"
#include "llmforge/transformer.h"
#include "llmforge/utf8.h"

namespace llmforge::align {

namespace fs = std::filesystem;

namespace {


constexpr const char* kValueHead = "cls.value";

struct PromptItem {
    nlohmann::ordered_json line;     // the whole JSONL object (the verifier sees its other fields)
    nlohmann::ordered_json messages; // the conversation up to the answer
    std::vector<int32_t> ids;        // rendered with the generation prompt
};

std::vector<PromptItem> load_prompts(const std::string& path, const ChatFormat& fmt, int64_t max_len, int64_t* skipped) {
    if (!file_exists(path)) throw_bad_input("prompt file '%s' does not exist", path.c_str());
    std::ifstream in(path, std::ios::binary);
    std::vector<PromptItem> out;
    std::string line;
    int64_t lineno = 0, shown = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        try {
            PromptItem p;
            try {
                p.line = nlohmann::ordered_json::parse(line);
            } catch (const nlohmann::json::exception&) {
                throw_bad_input("not a JSON object");
            }
            if (!p.line.is_object() || !p.line.contains("prompt")) throw_bad_input("expected {\"prompt\": text or messages, …}");
            const auto& pr = p.line["prompt"];
            if (pr.is_string()) p.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", pr}}});
            else if (pr.is_array()) p.messages = pr;
            else throw_bad_input("\"prompt\" must be a string or a list of messages");
            validate_messages(p.messages);
            p.ids = fmt.tokenize(fmt.render(p.messages, true));
            if (p.ids.empty()) throw_bad_input("the prompt has no tokens");
            if (static_cast<int64_t>(p.ids.size()) >= max_len)
                throw_bad_input("the prompt is %zu tokens long: no room for an answer in the context of %lld", p.ids.size(), static_cast<long long>(max_len));
            out.push_back(std::move(p));
        } catch (const Error& e) {
            ++*skipped;
            if (shown++ < 20) log_text(strprintf("llmforge: skipped %s:%lld: %s\n", path.c_str(), static_cast<long long>(lineno), e.what()));
        }
    }
    return out;
}

// Answers to score. Rewards are NaN where none could be had (counted by reason).
class Rewarder {
public:
    virtual ~Rewarder() = default;
    virtual std::vector<double> score(const std::vector<const PromptItem*>& prompts, const std::vector<std::string>& answers) = 0;
    nlohmann::json skipped = nlohmann::json::object();
    int64_t total_skipped() const {
        int64_t n = 0;
        for (auto it = skipped.begin(); it != skipped.end(); ++it) n += it.value().get<int64_t>();
        return n;
    }

protected:
    void skip(const std::string& why) { skipped[why] = skipped.value(why, int64_t{0}) + 1; }
};

class ModelRewarder : public Rewarder {
public:
    ModelRewarder(const std::string& path, int threads) : rm_(path, threads) {}
    std::vector<double> score(const std::vector<const PromptItem*>& prompts, const std::vector<std::string>& answers) override {
        std::vector<std::vector<int32_t>> seqs;
        for (size_t i = 0; i < prompts.size(); ++i) {
            nlohmann::ordered_json m = prompts[i]->messages;
            m.push_back({{"role", "assistant"}, {"content", answers[i]}});
            seqs.push_back(rm_.encode(m));
        }
        const std::vector<float> r = rm_.score(seqs);
        std::vector<double> out(r.begin(), r.end());
        for (double& v : out)
            if (!std::isfinite(v)) {
                skip("reward model gave NaN");
                v = NAN;
            }
        return out;
    }

private:
    RewardModel rm_;
};

class ProgramRewarder : public Rewarder {
public:
    ProgramRewarder(std::string cmd, double timeout, int jobs, bool lines) : cmd_(std::move(cmd)), timeout_(timeout), jobs_(std::max(1, jobs)) {
        if (lines)
            for (int j = 0; j < jobs_; ++j) kept_.push_back(std::make_unique<PersistentVerifier>(cmd_));
    }
    std::vector<double> score(const std::vector<const PromptItem*>& prompts, const std::vector<std::string>& answers) override {
        // `jobs` programs at a time (started per answer they mostly wait on process start-up)
        std::vector<VerifierResult> res(prompts.size());
        std::atomic<size_t> next{0};
        auto work = [&](int j) {
            for (size_t i; (i = next++) < prompts.size();) {
                nlohmann::ordered_json in = prompts[i]->line;
                in["answer"] = answers[i];
                const std::string line = in.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
                res[i] = kept_.empty() ? run_verifier(cmd_, line + "\n", timeout_) : kept_[static_cast<size_t>(j)]->score(line, timeout_);
            }
        };
        std::vector<std::thread> th;
        for (int j = 1; j < std::min<int>(jobs_, static_cast<int>(prompts.size())); ++j) th.emplace_back(work, j);
        work(0);
        for (auto& t : th) t.join();
        std::vector<double> out;
        for (const VerifierResult& r : res) {
            switch (r.status) {
                case VerifierResult::Status::Ok: out.push_back(r.value); continue;
                case VerifierResult::Status::Timeout: skip("verifier timed out"); break;
                case VerifierResult::Status::Failed: skip("verifier failed (" + r.detail + ")"); break;
                case VerifierResult::Status::Garbage: skip("verifier printed no number"); break;
            }
            out.push_back(NAN);
        }
        return out;
    }

private:
    std::string cmd_;
    double timeout_;
    int jobs_;
    std::vector<std::unique_ptr<PersistentVerifier>> kept_;  // --verifier-lines: one running program per job
};

// A batch of answers laid out for training: row r = prompt + answer, inputs the whole sequence, targets the next token
// where it is an answer token.
struct Rollouts {
    int64_t B = 0, T = 0;
    std::vector<int32_t> inputs, targets;
    std::vector<size_t> prompt;        // index into the prompt list, per row
    std::vector<std::string> text;     // the answer, decoded
    std::vector<int64_t> answer_len;   // tokens
    std::vector<uint8_t> finished;     // ended with a stop token (else cut at max_new or the context)
};

// grammar (or null): every answer follows it; the stops are allowed where it may end.
Rollouts roll_out(TrainableModel& tm, ThreadPool& pool, const Vocab& vocab, const std::vector<int32_t>& stops, const std::vector<PromptItem>& prompts,
                  const std::vector<size_t>& chosen, int64_t per_prompt, int64_t max_new, double temperature, uint64_t seed, bool greedy,
                  const std::shared_ptr<const CompiledGrammar>& grammar) {
    std::vector<const std::vector<int32_t>*> ps;
    for (size_t i : chosen) ps.push_back(&prompts[i].ids);
    PolicySamples smp = sample_policy(tm, pool, ps, per_prompt, stops, max_new, temperature, seed, greedy, grammar);
    const std::vector<std::vector<int32_t>>& seq = smp.seq;
    const std::vector<std::vector<int32_t>>& ans = smp.ans;
    const int64_t rows = static_cast<int64_t>(seq.size());
    Rollouts ro;
    ro.finished = smp.finished;
    ro.B = rows;
    for (const auto& s : seq) ro.T = std::max<int64_t>(ro.T, static_cast<int64_t>(s.size()));
    const int32_t pad = vocab.eos >= 0 ? vocab.eos : 0;
    ro.inputs.assign(static_cast<size_t>(ro.B * ro.T), pad);
    ro.targets.assign(static_cast<size_t>(ro.B * ro.T), -1);
    for (int64_t r = 0; r < rows; ++r) {
        const auto& s = seq[static_cast<size_t>(r)];
        const size_t P = prompts[chosen[static_cast<size_t>(r / per_prompt)]].ids.size();
        for (size_t t = 0; t < s.size(); ++t) {
            ro.inputs[static_cast<size_t>(r * ro.T) + t] = s[t];
            if (t + 1 >= P && t + 1 < s.size()) ro.targets[static_cast<size_t>(r * ro.T) + t] = s[t + 1];
        }
        ro.prompt.push_back(chosen[static_cast<size_t>(r / per_prompt)]);
        std::vector<int32_t> a = ans[static_cast<size_t>(r)];
        if (ro.finished[static_cast<size_t>(r)] && !a.empty()) a.pop_back();  // the stop token is not text
        Utf8Stream u;  // the answer as valid UTF-8 (a broken byte sequence becomes U+FFFD) for scorers, logs and samples
        ro.text.push_back(u.push(vocab.decode(a)) + u.flush());
        ro.answer_len.push_back(static_cast<int64_t>(ans[static_cast<size_t>(r)].size()));
    }
    return ro;
}

// Rows [r0, r1) of a [B, T] array.
template <class X>
std::vector<X> rows_of(const std::vector<X>& v, int64_t T, const std::vector<int64_t>& rows) {
    std::vector<X> out;
    out.reserve(rows.size() * static_cast<size_t>(T));
    for (int64_t r : rows) out.insert(out.end(), v.begin() + r * T, v.begin() + (r + 1) * T);
    return out;
}

// mean ± 1.96 s/√n
std::array<double, 3> normal_ci(const std::vector<double>& x) {
    const double n = static_cast<double>(x.size());
    if (x.empty()) return {NAN, NAN, NAN};
    double m = 0, v = 0;
    for (double y : x) m += y;
    m /= n;
    for (double y : x) v += (y - m) * (y - m);
    const double se = n > 1 ? std::sqrt(v / (n - 1) / n) : 0.0;
    return {m, m - 1.96 * se, m + 1.96 * se};
}

// mean and a 95 % interval: Wilson's for rewards that are all 0 or 1, else mean ± 1.96 s/√n
std::array<double, 3> mean_ci(const std::vector<double>& x) {
    const double n = static_cast<double>(x.size());
    if (x.empty()) return {NAN, NAN, NAN};
    double m = 0;
    bool binary = true;
    for (double v : x) {
        m += v;
        binary = binary && (v == 0.0 || v == 1.0);
    }
    m /= n;
    if (binary) {
        const double z = 1.96, den = 1 + z * z / n, mid = (m + z * z / (2 * n)) / den, half = z * std::sqrt(m * (1 - m) / n + z * z / (4 * n * n)) / den;
        return {m, mid - half, mid + half};
    }
    return normal_ci(x);
}

Model without_heads(const Model& src) {
    Model m;
    m.config = src.config;
    m.meta = src.meta;
    m.vocab = src.vocab;
    m.storage = src.storage;
    m.format = src.format;
    for (const Tensor& t : src.tensors)
        if (t.name.rfind("cls.", 0) != 0) m.add(t);
    return m;
}

void write_text_atomic(const std::string& path, const std::string& text) {
    AtomicWriter w(path);
    w.write(text.data(), text.size());
    w.commit();
}

}  // namespace

RlReport rl_train(const RlOptions& o) {
    const bool ppo = o.method == "ppo";
    if (!ppo && o.method != "grpo") throw_bad_input("unknown method '%s' (ppo, grpo)", o.method.c_str());
    if (o.reward_model.empty() == o.verifier.empty()) throw_bad_input("give exactly one of --reward-model or --verifier");
    for (double x : {static_cast<double>(o.lr), static_cast<double>(o.clip), o.temperature, o.ppo.beta, o.grpo.beta, o.ppo.clip, o.grpo.clip_low, o.grpo.clip_high})
        if (!std::isfinite(x)) throw_bad_input("learning-rate, clipping, temperature and β settings must be finite numbers");
    if (o.lr <= 0) throw_bad_input("the learning rate must be positive");
    if (o.steps <= 0 || o.prompts_per_step <= 0 || o.max_new <= 0 || o.epochs <= 0 || o.minibatch < 0)
        throw_bad_input("--steps, --batch-size, --n-predict and --epochs must be positive");
    if (!ppo && o.group < 2) throw_bad_input("GRPO needs groups of at least 2 answers (--group)");
    if (!(o.temperature > 0)) throw_bad_input("--temp must be positive (the policy gradient needs sampled answers)");
    if (ppo && o.ppo.beta < 0) throw_bad_input("--beta must not be negative");
    if (o.verifier_timeout <= 0) throw_bad_input("--verifier-timeout must be positive");
    fs::create_directories(o.out_dir);

    Model start = load_model(o.model_path);
    if (!start.vocab || start.vocab->size() == 0) throw_bad_input("'%s' has no tokenizer", o.model_path.c_str());
    Vocab vocab = *start.vocab;
    if (!o.template_path.empty()) vocab.chat_template = read_text_file(o.template_path);
    if (vocab.chat_template.empty()) {
        if (vocab.find("<|im_start|>") < 0 || vocab.find("<|im_end|>") < 0)
            throw_bad_input("'%s' has no chat template and no <|im_start|>/<|im_end|> tokens for ChatML: give --template", o.model_path.c_str());
        vocab.chat_template = kChatMLTemplate;
    }
    const ChatFormat fmt(vocab);
    const std::vector<int32_t> stops = fmt.stop_tokens();
    std::shared_ptr<const CompiledGrammar> grammar;
    if (!o.grammar.empty()) {
        std::shared_ptr<const Grammar> g;
        try {
            g = Grammar::parse(o.grammar);
        } catch (const Error& e) {
            throw Error(e.kind(), std::string("roll-out grammar: ") + e.what());
        }
        grammar = std::make_shared<const CompiledGrammar>(g, GrammarVocab::from(vocab));
    }
    const ModelConfig cfg = start.config;
    int64_t skipped_prompts = 0;
    const std::vector<PromptItem> prompts = load_prompts(o.prompts_path, fmt, cfg.n_ctx, &skipped_prompts);
    if (prompts.empty()) throw_bad_input("'%s' has no usable prompts (%lld skipped)", o.prompts_path.c_str(), static_cast<long long>(skipped_prompts));
    if (o.eval_samples < 0 || o.eval_samples > 256) throw_bad_input("--eval-samples must be between 0 and 256");
    std::vector<PromptItem> eval_prompts;
    if (!o.eval_path.empty()) {
        int64_t sk = 0;
        eval_prompts = load_prompts(o.eval_path, fmt, cfg.n_ctx, &sk);
        if (static_cast<int64_t>(eval_prompts.size()) > o.eval_max) eval_prompts.resize(static_cast<size_t>(o.eval_max));
    }
    std::unique_ptr<Rewarder> rewarder;
    if (!o.reward_model.empty()) rewarder = std::make_unique<ModelRewarder>(o.reward_model, o.n_threads);
    else rewarder = std::make_unique<ProgramRewarder>(o.verifier, o.verifier_timeout, o.verifier_jobs > 0 ? o.verifier_jobs : ThreadPool::default_threads(),
                                                       o.verifier_lines);

    ThreadPool pool(o.n_threads > 0 ? o.n_threads : ThreadPool::default_threads());
    const std::string ck = o.resume ? find_checkpoint(o.out_dir) : "";
    if (o.resume && ck.empty()) throw_bad_input("--resume: '%s' has no checkpoint", o.out_dir.c_str());
    nlohmann::json state = nlohmann::json::object();
    Model init, adapter;
    if (!ck.empty()) {
        state = nlohmann::json::parse(read_text_file(ck + "/state.json"));
        if (o.lora.rank > 0) adapter = load_lora_adapter(ck + "/adapter.gguf", cfg);
        else init = to_training_layout(load_model(ck + "/model.gguf"), cfg);
    }
    const bool lora = o.lora.rank > 0;
    TrainableModel tm(lora || ck.empty() ? start : init, pool, false, lora);
    tm.set_logit_temperature(static_cast<float>(o.temperature));
    tm.set_recompute(o.recompute);
    if (lora) tm.enable_lora(o.lora, ck.empty() ? nullptr : &adapter);
    if (ppo) {
        const Model* saved = ck.empty() ? nullptr : lora ? &adapter : &init;
        tm.add_head(kValueHead, 1, o.seed + 17, 0.0f, saved && saved->find(std::string(kValueHead) + ".weight") ? saved : nullptr);
    }
    // the reference: under LoRA the same weights with the adapters off; else a frozen copy of the starting model
    std::unique_ptr<TrainableModel> ref;
    const bool need_ref = ppo || o.grpo.beta != 0;
    if (need_ref && !lora) {
        ref = std::make_unique<TrainableModel>(start, pool, false, true);
        ref->set_logit_temperature(static_cast<float>(o.temperature));
    }
    init = Model();
    adapter = Model();
    AdamW opt(tm.n_params(), AdamWConfig{o.beta1, o.beta2, o.eps, o.weight_decay});
    if (!ck.empty()) load_optimizer_state(ck + "/optimizer.bin", opt, tm.n_params());
    LrSchedule sched;
    sched.kind = LrSchedule::parse(o.schedule);
    sched.lr_max = o.lr;
    sched.lr_min = o.min_lr;
    sched.warmup = o.warmup;
    sched.total = o.steps;

    // a resumed run's counters (a corrupt state.json: refused by name, never converted)
    auto counter = [&](const char* key) {
        return state.contains(key) ? json_integer(state[key], 0, INT64_MAX, "'" + ck + "/state.json': " + key) : int64_t{0};
    };
    int64_t step = counter("step");
    if (state.contains("beta") && !state["beta"].is_number()) throw_bad_input("'%s/state.json': beta is not a number", ck.c_str());
    double beta = state.contains("beta") ? state["beta"].get<double>() : ppo ? o.ppo.beta : o.grpo.beta;
    uint64_t epoch = static_cast<uint64_t>(counter("epoch")), index = static_cast<uint64_t>(counter("index"));
    const nlohmann::json hparams = {{"method", o.method}, {"model", o.model_path}, {"prompts", o.prompts_path}, {"reward_model", o.reward_model},
                                    {"verifier", o.verifier}, {"steps", o.steps}, {"batch_size", o.prompts_per_step}, {"group", o.group},
                                    {"max_new", o.max_new}, {"temperature", o.temperature}, {"epochs", o.epochs}, {"minibatch", o.minibatch},
                                    {"lr", o.lr}, {"beta", ppo ? o.ppo.beta : o.grpo.beta}, {"kl", ppo ? static_cast<int>(o.ppo.kl) : 3},
                                    {"adaptive_kl", o.adaptive_kl}, {"target_kl", o.target_kl}, {"gamma", o.ppo.gamma}, {"lambda", o.ppo.lambda},
                                    {"clip", ppo ? o.ppo.clip : o.grpo.clip_low}, {"seed", o.seed}, {"lora_rank", o.lora.rank}};
    const std::string metrics_path = o.out_dir + "/metrics.jsonl";
    if (o.resume) truncate_metrics(metrics_path, step);
    else if (!o.eval_only) write_text_atomic(metrics_path, "");
    std::ofstream metrics;
    if (!o.eval_only) metrics.open(metrics_path, std::ios::app);
    if (!o.resume && !o.eval_only) write_text_atomic(o.out_dir + "/samples.txt", "");
    log_text(strprintf("llmforge: %s on %zu prompts (%lld skipped), %lld %s per step, answers of ≤ %lld tokens, %lld parameters trained%s\n",
                 ppo ? "RLHF with PPO" : "GRPO", prompts.size(), static_cast<long long>(skipped_prompts),
                 static_cast<long long>(ppo ? o.prompts_per_step : o.prompts_per_step * o.group), ppo ? "roll-outs" : "answers",
                 static_cast<long long>(o.max_new), static_cast<long long>(tm.n_params()), o.resume ? (", resumed at step " + std::to_string(step)).c_str() : ""));

    // the prompt order: shuffled per epoch with the seed
    auto order_of = [&](uint64_t ep) {
        std::vector<size_t> ord(prompts.size());
        std::iota(ord.begin(), ord.end(), size_t{0});
        std::mt19937_64 rng(o.seed * 1000003ull + ep);
        std::shuffle(ord.begin(), ord.end(), rng);
        return ord;
    };
    std::vector<size_t> order = order_of(epoch);
    auto next_prompts = [&](int64_t n) {
        std::vector<size_t> out;
        for (int64_t i = 0; i < n; ++i) {
            if (index >= order.size()) {
                ++epoch;
                index = 0;
                order = order_of(epoch);
            }
            out.push_back(order[index++]);
        }
        return out;
    };

    RlReport rep;
    // Each evaluation's answers and rewards, one JSON line per held-out prompt (its line's fields, "answer", "reward":
    // null when it got none), in OUT/eval-TAG.jsonl; the first one's rewards stay for the paired before/after change.
    std::vector<double> start_rewards;
    const std::string start_file = o.out_dir + "/eval-start.jsonl";
    auto evaluate = [&](const char* when, const std::string& tag) -> std::array<double, 3> {
        if (eval_prompts.empty()) return {NAN, NAN, NAN};
        std::vector<size_t> all(eval_prompts.size());
        std::iota(all.begin(), all.end(), size_t{0});
        std::vector<double> rewards, sample_rewards, best_rewards;
        std::string lines;
        Progress prog(std::string("evaluation ") + when, static_cast<double>(all.size()), "prompts", o.progress);
        for (size_t b0 = 0; b0 < all.size(); b0 += 16) {
            const std::vector<size_t> part(all.begin() + static_cast<long>(b0), all.begin() + static_cast<long>(std::min(all.size(), b0 + 16)));
            const Rollouts ro = roll_out(tm, pool, vocab, stops, eval_prompts, part, 1, o.max_new, 1.0, o.seed, true, grammar);
            std::vector<const PromptItem*> ps;
            for (size_t i : ro.prompt) ps.push_back(&eval_prompts[i]);
            const std::vector<double> got = rewarder->score(ps, ro.text);
            // G sampled answers per prompt besides the greedy one (their own seed per chunk and evaluation)
            Rollouts so;
            std::vector<double> sgot;
            if (o.eval_samples > 0) {
                so = roll_out(tm, pool, vocab, stops, eval_prompts, part, o.eval_samples, o.max_new, o.temperature,
                              o.seed ^ (0x51ED27ull * (b0 + 1) + std::hash<std::string>{}(tag)), false, grammar);
                std::vector<const PromptItem*> sps;
                for (size_t i : so.prompt) sps.push_back(&eval_prompts[i]);
                sgot = rewarder->score(sps, so.text);
            }
            for (size_t k = 0; k < got.size(); ++k) {
                rewards.push_back(std::isfinite(got[k]) ? got[k] : 0.0);  // no reward counts as 0
                nlohmann::ordered_json j = ps[k]->line;
                j["answer"] = ro.text[k];
                j["reward"] = std::isfinite(got[k]) ? nlohmann::ordered_json(got[k]) : nlohmann::ordered_json(nullptr);
                if (o.eval_samples > 0) {
                    nlohmann::ordered_json arr = nlohmann::ordered_json::array();
                    double best = -INFINITY;
                    for (int64_t g = 0; g < o.eval_samples; ++g) {
                        const size_t r = k * static_cast<size_t>(o.eval_samples) + static_cast<size_t>(g);
                        const bool ok = std::isfinite(sgot[r]);
                        arr.push_back({{"answer", so.text[r]}, {"reward", ok ? nlohmann::ordered_json(sgot[r]) : nlohmann::ordered_json(nullptr)}});
                        sample_rewards.push_back(ok ? sgot[r] : 0.0);
                        best = std::max(best, ok ? sgot[r] : 0.0);
                    }
                    best_rewards.push_back(best);
                    j["samples"] = std::move(arr);
                }
                lines += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
            }
            prog.update(static_cast<double>(std::min(all.size(), b0 + 16)));
        }
        prog.finish();
        write_text_atomic(o.out_dir + "/eval-" + tag + ".jsonl", lines);
        if (tag == "start") start_rewards = rewards;
        if (tag == "end" && start_rewards.size() == rewards.size()) {
            std::vector<double> diff(rewards.size());
            for (size_t k = 0; k < diff.size(); ++k) diff[k] = rewards[k] - start_rewards[k];
            const auto c = normal_ci(diff);
            rep.eval_change = c[0], rep.eval_change_lo = c[1], rep.eval_change_hi = c[2];
        }
        rep.eval_n = static_cast<int64_t>(rewards.size());
        if (o.eval_samples > 0) {
            const auto sm = mean_ci(sample_rewards), bo = mean_ci(best_rewards);
            rep.eval_sample_mean = sm[0], rep.eval_best_of = bo[0];
            log_text(strprintf("llmforge: held-out %s, %lld sampled answers per prompt (temperature %g): mean reward %.4f, best of %lld %.4f\n", when,
                         static_cast<long long>(o.eval_samples), o.temperature, sm[0], static_cast<long long>(o.eval_samples), bo[0]));
        }
        const auto ci = mean_ci(rewards);
        log_text(strprintf("llmforge: held-out mean reward %s: %.4f (95%% CI %.4f–%.4f, %zu prompts, greedy answers)\n", when, ci[0], ci[1], ci[2], rewards.size()));
        if (tag == "end" && std::isfinite(rep.eval_change))
            log_text(strprintf("llmforge: held-out change, prompt by prompt: %+.4f (95%% CI %+.4f to %+.4f, paired)\n", rep.eval_change,
                         rep.eval_change_lo, rep.eval_change_hi));
        return ci;
    };
    if (o.eval_only) {
        if (eval_prompts.empty()) throw_bad_input("--eval-only needs --eval prompts");
        const auto c = evaluate("of the model", "model");
        rep.eval_start = c[0], rep.eval_start_lo = c[1], rep.eval_start_hi = c[2];
        rep.skipped_rewards = rewarder->total_skipped();
        return rep;
    }
    if (!o.resume || !state.contains("eval_start")) {
        const auto c = evaluate("before training", "start");
        rep.eval_start = c[0], rep.eval_start_lo = c[1], rep.eval_start_hi = c[2];
    } else {
        rep.eval_start = state["eval_start"].at(0).get<double>();
        rep.eval_start_lo = state["eval_start"].at(1).get<double>();
        rep.eval_start_hi = state["eval_start"].at(2).get<double>();
        if (fs::exists(start_file)) {  // the first evaluation's rewards, for the paired change at the end
            std::ifstream in(start_file);
            for (std::string line; std::getline(in, line);) {
                const auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object()) break;
                start_rewards.push_back(j.contains("reward") && j["reward"].is_number() ? j["reward"].get<double>() : 0.0);
            }
        }
    }

    auto save = [&]() {
        nlohmann::json st = {{"step", step}, {"beta", beta}, {"epoch", epoch}, {"index", index}, {"seed", o.seed}, {"hparams", hparams}};
        if (std::isfinite(rep.eval_start)) st["eval_start"] = {rep.eval_start, rep.eval_start_lo, rep.eval_start_hi};
        save_training_checkpoint(o.out_dir, tm, vocab, opt, st);
    };


    Progress prog(ppo ? "rlhf" : "grpo", static_cast<double>(o.steps), "steps", o.progress);
    prog.resume_at(static_cast<double>(step));
    const int64_t per = ppo ? 1 : o.group;
    while (step < o.steps) {
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<size_t> chosen = next_prompts(o.prompts_per_step);
        Rollouts ro = roll_out(tm, pool, vocab, stops, prompts, chosen, per, o.max_new, o.temperature, o.seed + 7919ull * static_cast<uint64_t>(step + 1), false, grammar);
        const double t_gen = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::vector<const PromptItem*> ps;
        for (size_t i : ro.prompt) ps.push_back(&prompts[i]);
        const int64_t skipped_before = rewarder->total_skipped();
        const std::vector<double> scores = rewarder->score(ps, ro.text);
        const int64_t B = ro.B, T = ro.T, N = B * T;
        // rows without a reward leave the batch (their tokens leave the loss)
        std::vector<uint8_t> valid(static_cast<size_t>(B), 1);
        for (int64_t r = 0; r < B; ++r)
            if (!std::isfinite(scores[static_cast<size_t>(r)])) valid[static_cast<size_t>(r)] = 0;
        std::vector<double> adv_seq(static_cast<size_t>(B), 0.0);
        if (!ppo) {  // group-normalised advantages over each group's answers that have a reward (≥ 2 of them)
            for (int64_t g = 0; g < B / per; ++g) {
                std::vector<double> rw;
                for (int64_t i = 0; i < per; ++i)
                    if (valid[static_cast<size_t>(g * per + i)]) rw.push_back(scores[static_cast<size_t>(g * per + i)]);
                if (rw.size() < 2) {
                    for (int64_t i = 0; i < per; ++i) valid[static_cast<size_t>(g * per + i)] = 0;
                    continue;
                }
                const std::vector<double> a = grpo_advantages(rw, static_cast<int64_t>(rw.size()), o.grpo.scale_rewards);
                size_t k = 0;
                for (int64_t i = 0; i < per; ++i)
                    if (valid[static_cast<size_t>(g * per + i)]) adv_seq[static_cast<size_t>(g * per + i)] = a[k++];
            }
        }
        for (int64_t r = 0; r < B; ++r)
            if (!valid[static_cast<size_t>(r)]) std::fill(ro.targets.begin() + r * T, ro.targets.begin() + (r + 1) * T, -1);
        std::vector<int64_t> live;
        for (int64_t r = 0; r < B; ++r)
            if (valid[static_cast<size_t>(r)]) live.push_back(r);
        nlohmann::json line = {{"step", step + 1}};
        double mean_score = 0, mean_len = 0;
        for (int64_t r = 0; r < B; ++r) mean_len += static_cast<double>(ro.answer_len[static_cast<size_t>(r)]) / static_cast<double>(B);
        int64_t n_valid = 0;
        for (int64_t r = 0; r < B; ++r)
            if (std::isfinite(scores[static_cast<size_t>(r)])) { mean_score += scores[static_cast<size_t>(r)]; ++n_valid; }
        mean_score = n_valid ? mean_score / static_cast<double>(n_valid) : NAN;
        line["reward"] = mean_score;
        line["answer_tokens"] = mean_len;
        line["skipped"] = rewarder->total_skipped() - skipped_before;
        const float lr = sched.at(step);
        line["lr"] = lr;
        if (!live.empty()) {
            // log-probabilities of the answers under the policy (as sampled: old) and the reference
            tm.set_compute_entropy(true);
            tm.forward(ro.inputs.data(), ro.targets.data(), B, T);
            tm.set_compute_entropy(false);
            const std::vector<float> old_lp = tm.token_logprobs();
            const std::vector<float> old_v = ppo ? tm.head_values() : std::vector<float>();
            double ent = 0;
            int64_t M = 0;
            for (int64_t n = 0; n < N; ++n)
                if (ro.targets[static_cast<size_t>(n)] >= 0) { ent += tm.token_entropy()[static_cast<size_t>(n)]; ++M; }
            line["entropy"] = M ? ent / static_cast<double>(M) : 0.0;
            std::vector<float> ref_lp;
            if (need_ref) {
                if (lora) {
                    tm.set_adapters_enabled(false);
                    tm.forward(ro.inputs.data(), ro.targets.data(), B, T);
                    tm.set_adapters_enabled(true);
                    ref_lp = tm.token_logprobs();
                } else {
                    ref->forward(ro.inputs.data(), ro.targets.data(), B, T);
                    ref_lp = ref->token_logprobs();
                }
            }
            PpoConfig pc = o.ppo;
            pc.beta = beta;
            PpoTargets tg;
            if (ppo) {
                std::vector<float> sc(static_cast<size_t>(B), 0.0f);
                for (int64_t r = 0; r < B; ++r) sc[static_cast<size_t>(r)] = valid[static_cast<size_t>(r)] ? static_cast<float>(scores[static_cast<size_t>(r)]) : 0.0f;
                tg = ppo_targets(old_lp, ref_lp, old_v, sc, ro.targets, B, T, pc);
                line["kl"] = tg.mean_kl * static_cast<double>(B) / static_cast<double>(live.size());
                line["beta"] = beta;
            } else if (need_ref) {
                double kl = 0;  // Σ over each answer's tokens of log π/ref, averaged over answers (as PPO reports it)
                for (int64_t n = 0; n < N; ++n)
                    if (ro.targets[static_cast<size_t>(n)] >= 0) kl += static_cast<double>(old_lp[static_cast<size_t>(n)]) - ref_lp[static_cast<size_t>(n)];
                line["kl"] = kl / static_cast<double>(live.size());
            }
            // optimiser steps: epochs × minibatches of the live rows
            const int64_t mb = o.minibatch > 0 ? std::min<int64_t>(o.minibatch, static_cast<int64_t>(live.size())) : static_cast<int64_t>(live.size());
            std::mt19937_64 rng(o.seed * 31ull + static_cast<uint64_t>(step));
            double loss_sum = 0, clip_sum = 0, vloss_sum = 0, pl_sum = 0, akl_sum = 0, norm_sum = 0;
            int64_t updates = 0;
            for (int64_t e = 0; e < o.epochs; ++e) {
                std::vector<int64_t> perm = live;
                std::shuffle(perm.begin(), perm.end(), rng);
                for (size_t m0 = 0; m0 < perm.size(); m0 += static_cast<size_t>(mb)) {
                    std::vector<int64_t> rows(perm.begin() + static_cast<long>(m0), perm.begin() + static_cast<long>(std::min(perm.size(), m0 + static_cast<size_t>(mb))));
                    const int64_t b = static_cast<int64_t>(rows.size());
                    const std::vector<int32_t> in = rows_of(ro.inputs, T, rows), tgt = rows_of(ro.targets, T, rows);
                    const std::vector<float> olp = rows_of(old_lp, T, rows);
                    tm.zero_grad();
                    tm.forward(in.data(), tgt.data(), b, T);
                    const std::vector<float> lp = tm.token_logprobs();
                    std::vector<float> dlogp, dval;
                    if (ppo) {
                        PpoTargets sub;
                        sub.advantages = rows_of(tg.advantages, T, rows);
                        sub.returns = rows_of(tg.returns, T, rows);
                        const std::vector<float> ov = rows_of(old_v, T, rows);
                        const PpoStats st = ppo_loss(lp, tm.head_values(), olp, ov, sub, tgt, pc, &dlogp, &dval);
                        loss_sum += st.loss;
                        clip_sum += st.clip_fraction;
                        vloss_sum += st.value_loss;
                        pl_sum += st.policy_loss;
                        akl_sum += st.approx_kl;
                    } else {
                        std::vector<double> adv;
                        for (int64_t r : rows) adv.push_back(adv_seq[static_cast<size_t>(r)]);
                        const std::vector<float> rlp = need_ref ? rows_of(ref_lp, T, rows) : std::vector<float>();
                        const GrpoStats st = grpo_loss(lp, olp, rlp, adv, tgt, b, T, o.grpo, &dlogp);
                        loss_sum += st.loss;
                        clip_sum += st.clip_fraction;
                    }
                    if (!std::isfinite(loss_sum))
                        throw_runtime("the loss became NaN at step %lld; stopping (the last good checkpoint in %s is kept)", static_cast<long long>(step + 1),
                                      o.out_dir.c_str());
                    tm.backward_custom(dlogp.data(), ppo ? dval.data() : nullptr);
                    norm_sum += o.clip > 0 ? tm.clip_grad_norm(o.clip) : tm.grad_norm();
                    opt.step(tm, lr, pool);
                    ++updates;
                }
            }
            const double u = static_cast<double>(updates);
            line["loss"] = loss_sum / u;
            line["clip_fraction"] = clip_sum / u;
            line["grad_norm"] = norm_sum / u;
            if (ppo) {
                line["policy_loss"] = pl_sum / u;
                line["value_loss"] = vloss_sum / u;
                line["approx_kl"] = akl_sum / u;
                if (o.adaptive_kl) {  // Ziegler et al. 2019: β ← β (1 + clip(KL/target − 1, ±0.2) · n/horizon)
                    const double err = std::clamp(line["kl"].get<double>() / o.target_kl - 1.0, -0.2, 0.2);
                    beta *= 1.0 + err * static_cast<double>(B) / o.kl_horizon;
                }
            }
        } else {
            log_text(strprintf("\nllmforge: step %lld: no answer got a reward (%s); no update\n", static_cast<long long>(step + 1), rewarder->skipped.dump().c_str()));
        }
        ++step;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        line["seconds"] = secs;
        line["generation_seconds"] = t_gen;
        const bool last = step == o.steps;
        if (!eval_prompts.empty() && o.eval_every > 0 && step % o.eval_every == 0 && !last) {
            const auto c = evaluate(("at step " + std::to_string(step)).c_str(), "step-" + std::to_string(step));
            line["eval_reward"] = c[0];
        }
        if (last && !eval_prompts.empty()) {
            const auto c = evaluate("after training", "end");
            rep.eval_end = c[0], rep.eval_end_lo = c[1], rep.eval_end_hi = c[2];
            line["eval_reward"] = c[0];
        }
        metrics << line.dump() << "\n";
        metrics.flush();
        if (!metrics) throw_runtime("cannot write '%s': %s", metrics_path.c_str(), std::strerror(errno));
        if (o.sample_every > 0 && (step % o.sample_every == 0 || last)) {
            std::ofstream f(o.out_dir + "/samples.txt", std::ios::app);
            const PromptItem& p = prompts[ro.prompt[0]];
            const std::string q = p.messages.back().value("content", "");
            f << "--- step " << step << " (reward " << scores[0] << ")\n" << q << "\n→ " << ro.text[0] << "\n";
            log_text(strprintf("\n--- sample at step %lld (reward %.3f): %s → %s\n", static_cast<long long>(step), scores[0], q.c_str(), ro.text[0].c_str()));
        }
        rep.last_reward = mean_score;
        rep.last_kl = line.value("kl", NAN);
        const bool interrupted = o.stop && o.stop->load();
        if ((o.save_every > 0 && step % o.save_every == 0) || last || interrupted) save();
        char note[200];
        std::snprintf(note, sizeof(note), "reward %.3f  kl %.3f  %.1f s/step", mean_score, line.value("kl", 0.0), secs);
        prog.set_note(note);
        prog.update(static_cast<double>(step));
        if (interrupted) {
            rep.interrupted = true;
            log_text(strprintf("\nllmforge: interrupted; checkpoint saved at step %lld (resume with --resume)\n", static_cast<long long>(step)));
            break;
        }
    }
    prog.finish();
    rep.steps_done = step;
    rep.skipped_rewards = rewarder->total_skipped();
    if (rep.skipped_rewards > 0) log_text(strprintf("llmforge: answers without a reward: %s\n", rewarder->skipped.dump().c_str()));
    if (!rep.interrupted) {
        Model m = without_heads(tm.lora() ? tm.merged_model() : tm.to_model(false));
        m.vocab = vocab;
        save_model(m, o.out_dir + "/model.gguf");
        if (tm.lora()) {
            Model a = without_heads(tm.to_model(false));
            save_lora_adapter(a, o.out_dir + "/adapter.gguf");
        }
    }
    return rep;
}

}  // namespace llmforge::align
