// llmforge align-loss -m MODEL --spec SPEC.json [--grads-out DIR] [-t N]
// One forward and backward pass of an alignment objective on fixed data, printing the loss, its statistics, the
// intermediate quantities (log-probabilities, head outputs, PPO rewards/advantages) and the head's gradients as JSON,
// and writing the model's gradients: the alignment losses in isolation, for checking them against PyTorch.
//
// SPEC: {"kind": "bt" | "dpo" | "ppo" | "grpo", "inputs": [[ids]], "targets": [[ids]] (−1 outside the responses),
//   bt:   "last": [position of each row's last token], "pairs": [[chosen row, rejected row]], "center": c
//   dpo:  "pairs", "ref_logp": [sequence log-prob of each row under the reference], "beta", "label_smoothing", "rpo_alpha"
//   ppo:  "old_logp", "ref_logp", "old_values": [[per position]], "scores": [per row], "beta", "kl", "gamma",
//         "lambda", "clip", "value_clip", "vf_coef", "whiten"
//   grpo: "old_logp", "ref_logp": [[per position]], "rewards": [per row], "group", "clip_low", "clip_high", "beta",
//         "scale_rewards", "aggregate"
//   "head_seed", "head_std": the scalar head's initialisation (bt, ppo); "temperature": log-probabilities of
//   softmax(logits / τ) (the policy that sampled at τ)}
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/json_int.h"
#include "core/mmap_file.h"
#include "llmforge/align.h"
#include "llmforge/error.h"
#include "llmforge/train.h"

namespace llmforge::cli {

namespace {
std::vector<float> flat(const nlohmann::json& rows) {
    std::vector<float> v;
    for (const auto& r : rows)
        for (const auto& x : r) v.push_back(x.get<float>());
    return v;
}
}  // namespace

void add_align_loss(CLI::App& app) {
    auto* cmd = app.add_subcommand("align-loss", "One forward/backward pass of an alignment loss on fixed data (for checking it)");
    struct Opts {
        std::string model, spec, grads_out;
        int threads = 0;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model")->required();
    cmd->add_option("--spec", o->spec, "JSON: the loss, the batch and the roll-out data")->required();
    cmd->add_option("--grads-out", o->grads_out, "write the model's gradients (without the head) as a model")->default_str("none: not written");
    add_threads_option(cmd, o->threads);
    cmd->callback([o] {
        SpecBatch batch = read_spec_batch(o->spec);
        const nlohmann::json& s = batch.spec;
        const Model init = load_model(o->model);
        ThreadPool pool(o->threads > 0 ? o->threads : ThreadPool::default_threads());
        TrainableModel tm(init, pool);
        const std::string kind = s.at("kind").get<std::string>();
        std::vector<int32_t>& inputs = batch.inputs;
        std::vector<int32_t>& targets = batch.targets;
        const int64_t B = batch.B, T = batch.T;
        const int64_t N = B * T;
        nlohmann::json out;
        const bool head = kind == "bt" || kind == "ppo";
        auto read_pairs = [&] {  // [[chosen row, rejected row]], rows in [0, B)
            std::vector<std::pair<int64_t, int64_t>> pairs;
            const std::string what = "'" + o->spec + "': a pair's row";
            for (const auto& p : s.at("pairs")) pairs.emplace_back(json_integer(p.at(0), 0, B - 1, what), json_integer(p.at(1), 0, B - 1, what));
            return pairs;
        };
        if (head) tm.add_head("cls.output", 1, s.value("head_seed", 7), s.value("head_std", 0.1f));
        if (kind == "bt") tm.set_lm_head(false);
        tm.set_logit_temperature(s.value("temperature", 1.0f));
        tm.zero_grad();
        tm.forward(inputs.data(), targets.data(), B, T);
        const std::vector<float> logp = tm.token_logprobs();
        std::vector<float> dlogp(static_cast<size_t>(N), 0.0f), dhead(static_cast<size_t>(N), 0.0f);
        if (kind == "bt") {
            std::vector<float> rc, rr;
            std::vector<int64_t> last;
            for (const auto& x : s.at("last")) last.push_back(json_integer(x, 0, T - 1, "'" + o->spec + "': a last position"));
            const std::vector<std::pair<int64_t, int64_t>> pairs = read_pairs();
            for (auto [c, r] : pairs) {
                rc.push_back(tm.head_values()[static_cast<size_t>(c * T + last.at(static_cast<size_t>(c)))]);
                rr.push_back(tm.head_values()[static_cast<size_t>(r * T + last.at(static_cast<size_t>(r)))]);
            }
            std::vector<float> dc, dr;
            const align::BtStats st = align::bradley_terry(rc, rr, s.value("center", 0.0), &dc, &dr);
            for (size_t i = 0; i < pairs.size(); ++i) {
                dhead[static_cast<size_t>(pairs[i].first * T + last[static_cast<size_t>(pairs[i].first)])] += dc[i];
                dhead[static_cast<size_t>(pairs[i].second * T + last[static_cast<size_t>(pairs[i].second)])] += dr[i];
            }
            out = {{"loss", st.loss}, {"accuracy", st.accuracy}, {"chosen", rc}, {"rejected", rr}};
            tm.backward_custom(nullptr, dhead.data());
        } else if (kind == "dpo") {
            const std::vector<double> seq = align::sequence_logprobs(logp, targets, B, T);
            const auto ref = s.at("ref_logp").get<std::vector<double>>();
            std::vector<double> pc, pr, rc, rr, nc;
            const std::vector<std::pair<int64_t, int64_t>> pairs = read_pairs();
            for (auto [c, r] : pairs) {
                nc.push_back(static_cast<double>(std::count_if(targets.begin() + c * T, targets.begin() + (c + 1) * T, [](int32_t t) { return t >= 0; })));
                pc.push_back(seq.at(static_cast<size_t>(c)));
                pr.push_back(seq.at(static_cast<size_t>(r)));
                rc.push_back(ref.at(static_cast<size_t>(c)));
                rr.push_back(ref.at(static_cast<size_t>(r)));
            }
            std::vector<double> dc, dr;
            const align::DpoStats st = align::dpo(pc, pr, rc, rr, s.value("beta", 0.1), s.value("label_smoothing", 0.0), s.value("rpo_alpha", 0.0), &nc, &dc,
                                                 &dr);
            std::vector<double> dseq(static_cast<size_t>(B), 0.0);
            for (size_t i = 0; i < pairs.size(); ++i) {
                dseq[static_cast<size_t>(pairs[i].first)] += dc[i];
                dseq[static_cast<size_t>(pairs[i].second)] += dr[i];
            }
            for (int64_t n = 0; n < N; ++n)
                if (targets[static_cast<size_t>(n)] >= 0) dlogp[static_cast<size_t>(n)] = static_cast<float>(dseq[static_cast<size_t>(n / T)]);
            out = {{"loss", st.loss}, {"accuracy", st.accuracy}, {"sequence_logp", seq}};
            tm.backward_custom(dlogp.data(), nullptr);
        } else if (kind == "ppo") {
            align::PpoConfig c;
            c.beta = s.value("beta", c.beta);
            c.kl = align::parse_kl(s.value("kl", std::string("k1")));
            c.gamma = s.value("gamma", c.gamma);
            c.lambda = s.value("lambda", c.lambda);
            c.clip = s.value("clip", c.clip);
            c.value_clip = s.value("value_clip", c.value_clip);
            c.vf_coef = s.value("vf_coef", c.vf_coef);
            c.whiten = s.value("whiten", c.whiten);
            const std::vector<float> old_lp = flat(s.at("old_logp")), ref_lp = flat(s.at("ref_logp")), old_v = flat(s.at("old_values"));
            const auto scores = s.at("scores").get<std::vector<float>>();
            const align::PpoTargets tg = align::ppo_targets(old_lp, ref_lp, old_v, scores, targets, B, T, c);
            std::vector<float> dv;
            const align::PpoStats st = align::ppo_loss(logp, tm.head_values(), old_lp, old_v, tg, targets, c, &dlogp, &dv);
            out = {{"loss", st.loss}, {"policy_loss", st.policy_loss}, {"value_loss", st.value_loss}, {"clip_fraction", st.clip_fraction},
                   {"advantages", tg.advantages}, {"returns", tg.returns}, {"rewards", tg.rewards}, {"values", tm.head_values()}};
            tm.backward_custom(dlogp.data(), dv.data());
        } else if (kind == "grpo") {
            align::GrpoConfig c;
            c.clip_low = s.value("clip_low", c.clip_low);
            c.clip_high = s.value("clip_high", c.clip_high);
            c.beta = s.value("beta", c.beta);
            c.scale_rewards = s.value("scale_rewards", c.scale_rewards);
            c.aggregate = s.value("aggregate", c.aggregate);
            const std::vector<float> old_lp = flat(s.at("old_logp")), ref_lp = flat(s.at("ref_logp"));
            const auto rewards = s.at("rewards").get<std::vector<double>>();
            const std::vector<double> adv = align::grpo_advantages(rewards, json_integer(s.at("group"), 1, B, "'" + o->spec + "': group"), c.scale_rewards);
            const align::GrpoStats st = align::grpo_loss(logp, old_lp, ref_lp, adv, targets, B, T, c, &dlogp);
            out = {{"loss", st.loss}, {"clip_fraction", st.clip_fraction}, {"kl", st.kl}, {"advantages", adv}};
            tm.backward_custom(dlogp.data(), nullptr);
        } else {
            throw_bad_input("unknown loss '%s' (bt, dpo, ppo, grpo)", kind.c_str());
        }
        out["logp"] = logp;
        if (head) {  // the head's starting values and gradients (the model files hold the backbone only)
            for (const auto& p : tm.params())
                if (p.name.rfind("cls.output.", 0) == 0) {
                    out[p.name] = std::vector<float>(tm.data() + p.offset, tm.data() + p.offset + p.numel);
                    out["grad:" + p.name] = std::vector<float>(tm.grad() + p.offset, tm.grad() + p.offset + p.numel);
                }
        }
        if (!o->grads_out.empty()) save_model(tm.to_model(true), o->grads_out);
        std::printf("%s\n", out.dump().c_str());
    });
}

}  // namespace llmforge::cli
