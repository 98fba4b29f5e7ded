// Reward-model training (Bradley–Terry) and DPO on preference pairs, run by the shared training loop (pretrain.h)
// through its Objective hook; and RewardModel, which scores sequences with a trained reward model.
#include <array>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/mmap_file.h"
#include "core/progress.h"
#include "llmforge/align.h"
#include "llmforge/comm.h"
#include "llmforge/error.h"
#include "llmforge/log.h"

namespace llmforge::align {

namespace {

constexpr const char* kHead = "cls.output";  // llama.cpp's name for a classifier's output head (LLM_TENSOR_CLS_OUT)

// Rows [row0, row0 + B) of a batch.
struct Slice {
    std::vector<int32_t> in, tg;
    Slice(const std::vector<int32_t>& i, const std::vector<int32_t>& t, int64_t row0, int64_t B, int64_t T)
        : in(i.begin() + row0 * T, i.begin() + (row0 + B) * T), tg(t.begin() + row0 * T, t.begin() + (row0 + B) * T) {}
};

void add_stat(nlohmann::json& stats, const char* key, double v) { stats[key] = stats.value(key, 0.0) + v; }

// ---- the reward model: r = head(h at the last token); loss −log σ(r⁺ − r⁻) (+ centring)
class RewardObjective : public Objective {
public:
    RewardObjective(PairBatches* train, double center, uint64_t seed) : train_(train), center_(center), seed_(seed) {}
    void attach(TrainableModel& tm, const Model* saved, bool) override {
        tm.set_lm_head(false);
        const Tensor* h = saved ? saved->find(std::string(kHead) + ".weight") : nullptr;
        // N(0, 1/(C+1)): the initial rewards are O(1) whatever the width
        tm.add_head(kHead, 1, seed_, 1.0f / std::sqrt(static_cast<float>(tm.config().n_embd + 1)), h ? saved : nullptr);
    }
    double train(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B, int64_t T, float scale,
                 nlohmann::json& stats) override {
        const BtStats st = pass(tm, in, tg, row0, B, T, train_->last_lengths(), scale, true);
        add_stat(stats, "accuracy", st.accuracy);
        add_stat(stats, "margin", st.margin);
        return st.loss;
    }
    nlohmann::json validate(TrainableModel& tm, BatchSource& val, int64_t batches) override {
        auto& pb = dynamic_cast<PairBatches&>(val);
        std::vector<int32_t> in, tg;
        double loss = 0, acc = 0, margin = 0, mean = 0, pairs = 0;
        for (int64_t i = 0; i < batches; ++i) {
            const int64_t T = pb.next(in, tg), B = static_cast<int64_t>(in.size()) / T;
            const BtStats st = pass(tm, in, tg, 0, B, T, pb.last_lengths(), 1.0f, false);
            const double P = static_cast<double>(B / 2);
            loss += st.loss * P;
            acc += st.accuracy * P;
            margin += st.margin * P;
            mean += st.mean_reward * P;
            pairs += P;
        }
        return {{"val_loss", loss / pairs}, {"val_accuracy", acc / pairs}, {"val_margin", margin / pairs}, {"val_mean_reward", mean / pairs}};
    }

private:
    BtStats pass(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B, int64_t T,
                 const std::vector<int64_t>& lengths, float scale, bool grad) {
        if (B % 2) throw_bad_input("a preference batch slice must hold whole pairs");
        const Slice s(in, tg, row0, B, T);
        tm.forward(s.in.data(), s.tg.data(), B, T);
        const std::vector<float>& v = tm.head_values();
        std::vector<float> rc, rr;
        for (int64_t p = 0; p < B / 2; ++p) {
            rc.push_back(v[static_cast<size_t>(2 * p * T + lengths[static_cast<size_t>(row0 + 2 * p)] - 1)]);
            rr.push_back(v[static_cast<size_t>((2 * p + 1) * T + lengths[static_cast<size_t>(row0 + 2 * p + 1)] - 1)]);
        }
        std::vector<float> dc, dr;
        const BtStats st = bradley_terry(rc, rr, center_, grad ? &dc : nullptr, grad ? &dr : nullptr);
        if (!std::isfinite(st.loss)) throw_runtime("the reward model's loss became NaN");
        if (grad) {
            std::vector<float> dh(static_cast<size_t>(B * T), 0.0f);
            for (int64_t p = 0; p < B / 2; ++p) {
                dh[static_cast<size_t>(2 * p * T + lengths[static_cast<size_t>(row0 + 2 * p)] - 1)] = dc[static_cast<size_t>(p)] * scale;
                dh[static_cast<size_t>((2 * p + 1) * T + lengths[static_cast<size_t>(row0 + 2 * p + 1)] - 1)] = dr[static_cast<size_t>(p)] * scale;
            }
            tm.backward_custom(nullptr, dh.data());
        }
        return st;
    }
    PairBatches* train_;
    double center_;
    uint64_t seed_;
};

// ---- DPO: the policy against its starting point, whose sequence log-probabilities are computed once and cached
class DpoObjective : public Objective {
public:
    DpoObjective(const std::vector<PreferencePair>* train_pairs, const std::vector<PreferencePair>* val_pairs, PairBatches* train, double beta,
                 double ls, double rpo_alpha, int64_t batch, int32_t pad, std::string cache_path, bool progress)
        : tp_(train_pairs), vp_(val_pairs), train_(train), beta_(beta), ls_(ls), alpha_(rpo_alpha), batch_(batch), pad_(pad),
          cache_(std::move(cache_path)), progress_(progress) {}

    void attach(TrainableModel& tm, const Model*, bool resume) override {
        if (resume && file_exists(cache_)) {
            const auto j = nlohmann::json::parse(read_text_file(cache_));
            ref_train_ = j.at("train").get<std::vector<std::array<double, 2>>>();
            ref_val_ = j.at("val").get<std::vector<std::array<double, 2>>>();
            if (ref_train_.size() != tp_->size() || ref_val_.size() != vp_->size())
                throw_bad_input("'%s' was computed for other data (%zu/%zu pairs, now %zu/%zu)", cache_.c_str(), ref_train_.size(), ref_val_.size(),
                                tp_->size(), vp_->size());
            return;
        }
        if (resume) throw_bad_input("--resume: the reference log-probabilities '%s' are missing", cache_.c_str());
        // before any update the policy is the reference (under LoRA the adapters start as a no-op)
        Progress prog("reference log-probabilities", static_cast<double>(tp_->size() + vp_->size()), "pairs", progress_);
        ref_train_ = reference(tm, *tp_, prog);
        ref_val_ = reference(tm, *vp_, prog);
        prog.finish();
        if (world().rank() == 0) {
            const std::string text = nlohmann::json{{"train", ref_train_}, {"val", ref_val_}}.dump();
            AtomicWriter w(cache_);
            w.write(text.data(), text.size());
            w.commit();
        }
    }
    double train(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B, int64_t T, float scale,
                 nlohmann::json& stats) override {
        std::vector<size_t> idx(train_->last_pairs().begin() + row0 / 2, train_->last_pairs().begin() + (row0 + B) / 2);
        double logp_acc = 0;
        const DpoStats st = pass(tm, in, tg, row0, B, T, idx, ref_train_, scale, true, &logp_acc);
        add_stat(stats, "accuracy", st.accuracy);
        add_stat(stats, "margin", st.margin);
        add_stat(stats, "chosen_reward", st.chosen_reward);
        add_stat(stats, "rejected_reward", st.rejected_reward);
        add_stat(stats, "chosen_nll", st.chosen_nll);
        return st.loss;
    }
    nlohmann::json validate(TrainableModel& tm, BatchSource& val, int64_t batches) override {
        auto& pb = dynamic_cast<PairBatches&>(val);
        std::vector<int32_t> in, tg;
        double loss = 0, acc = 0, margin = 0, lacc = 0, nll = 0, pairs = 0;
        for (int64_t i = 0; i < batches; ++i) {
            const int64_t T = pb.next(in, tg), B = static_cast<int64_t>(in.size()) / T;
            double la = 0;
            const DpoStats st = pass(tm, in, tg, 0, B, T, pb.last_pairs(), ref_val_, 1.0f, false, &la);
            const double P = static_cast<double>(B / 2);
            loss += st.loss * P;
            acc += st.accuracy * P;
            margin += st.margin * P;
            lacc += la * P;
            nll += st.chosen_nll * P;
            pairs += P;
        }
        return {{"val_loss", loss / pairs}, {"val_accuracy", acc / pairs}, {"val_margin", margin / pairs}, {"val_logp_accuracy", lacc / pairs},
                {"val_chosen_nll", nll / pairs}};
    }

private:
    std::vector<std::array<double, 2>> reference(TrainableModel& tm, const std::vector<PreferencePair>& pairs, Progress& prog) {
        std::vector<std::array<double, 2>> out(pairs.size());
        if (pairs.empty()) return out;
        PairBatches pb(&pairs, batch_, pad_, 0, false);
        std::vector<int32_t> in, tg;
        for (uint64_t b = 0; b < pb.windows(); ++b) {
            const int64_t T = pb.next(in, tg), B = static_cast<int64_t>(in.size()) / T;
            tm.forward(in.data(), tg.data(), B, T);
            const std::vector<double> seq = sequence_logprobs(tm.token_logprobs(), tg, B, T);
            for (int64_t p = 0; p < B / 2; ++p) out[pb.last_pairs()[static_cast<size_t>(p)]] = {seq[static_cast<size_t>(2 * p)], seq[static_cast<size_t>(2 * p + 1)]};
            prog.add(static_cast<double>(B / 2));
        }
        return out;
    }
    DpoStats pass(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B, int64_t T,
                  const std::vector<size_t>& idx, const std::vector<std::array<double, 2>>& ref, float scale, bool grad, double* logp_acc) {
        if (B % 2) throw_bad_input("a preference batch slice must hold whole pairs");
        const Slice s(in, tg, row0, B, T);
        tm.forward(s.in.data(), s.tg.data(), B, T);
        const std::vector<double> seq = sequence_logprobs(tm.token_logprobs(), s.tg, B, T);
        std::vector<double> pc, pr, rc, rr, nc;
        *logp_acc = 0;
        for (int64_t p = 0; p < B / 2; ++p) {
            nc.push_back(static_cast<double>(std::count_if(s.tg.begin() + 2 * p * T, s.tg.begin() + (2 * p + 1) * T, [](int32_t t) { return t >= 0; })));
            pc.push_back(seq[static_cast<size_t>(2 * p)]);
            pr.push_back(seq[static_cast<size_t>(2 * p + 1)]);
            rc.push_back(ref[idx[static_cast<size_t>(p)]][0]);
            rr.push_back(ref[idx[static_cast<size_t>(p)]][1]);
            *logp_acc += (pc.back() > pr.back() ? 1.0 : 0.0) / static_cast<double>(B / 2);
        }
        std::vector<double> dc, dr;
        const DpoStats st = dpo(pc, pr, rc, rr, beta_, ls_, alpha_, &nc, grad ? &dc : nullptr, grad ? &dr : nullptr);
        if (!std::isfinite(st.loss)) throw_runtime("the DPO loss became NaN");
        if (grad) {
            std::vector<float> dl(static_cast<size_t>(B * T), 0.0f);
            for (int64_t r = 0; r < B; ++r) {
                const double d = (r % 2 == 0 ? dc : dr)[static_cast<size_t>(r / 2)] * scale;
                for (int64_t t = 0; t < T; ++t)
                    if (s.tg[static_cast<size_t>(r * T + t)] >= 0) dl[static_cast<size_t>(r * T + t)] = static_cast<float>(d);
            }
            tm.backward_custom(dl.data(), nullptr);
        }
        return st;
    }
    const std::vector<PreferencePair>*tp_, *vp_;
    PairBatches* train_;
    double beta_, ls_, alpha_;
    int64_t batch_;
    int32_t pad_;
    std::string cache_;
    bool progress_;
    std::vector<std::array<double, 2>> ref_train_, ref_val_;
};

// The parts reward_train and dpo_train share: the model, its chat format, the pairs (with a held-out split), the setup.
struct PrefRun {
    std::shared_ptr<Model> model;
    Vocab vocab;
    std::unique_ptr<ChatFormat> fmt;
    PreferenceDataset data;
    std::vector<PreferencePair> val;
    int32_t pad = 0;
};

PrefRun load_run(PreferenceOptions& o, PreferenceReport& rep) {
    PrefRun r;
    r.model = std::make_shared<Model>(load_model(o.model_path));
    if (!r.model->vocab || r.model->vocab->size() == 0) throw_bad_input("'%s' has no tokenizer", o.model_path.c_str());
    r.vocab = *r.model->vocab;
    if (!o.template_path.empty()) r.vocab.chat_template = read_text_file(o.template_path);
    if (r.vocab.chat_template.empty()) {
        if (r.vocab.find("<|im_start|>") < 0 || r.vocab.find("<|im_end|>") < 0)
            throw_bad_input("'%s' has no chat template and no <|im_start|>/<|im_end|> tokens for ChatML: give --template", o.model_path.c_str());
        r.vocab.chat_template = kChatMLTemplate;
    }
    r.fmt = std::make_unique<ChatFormat>(r.vocab);
    PretrainOptions& t = o.train;
    ChatDataOptions dopt;
    dopt.max_tokens = r.model->config.n_ctx;
    dopt.skip_bad = o.skip_bad;
    r.data = load_preferences_jsonl(o.data_path, *r.fmt, dopt);
    const bool lead = world().rank() == 0;
    if (lead) {
        for (const std::string& p : r.data.problems) log_text(strprintf("llmforge: skipped %s\n", p.c_str()));
        if (r.data.skipped > static_cast<int64_t>(r.data.problems.size()))
            log_text(strprintf("llmforge: … and %lld more\n", static_cast<long long>(r.data.skipped - static_cast<int64_t>(r.data.problems.size()))));
    }
    if (!o.val_path.empty()) {
        r.val = load_preferences_jsonl(o.val_path, *r.fmt, dopt).pairs;
    } else if (r.data.pairs.size() >= 2 && o.val_fraction > 0) {
        std::mt19937_64 rng(t.seed + 12345);
        std::shuffle(r.data.pairs.begin(), r.data.pairs.end(), rng);
        const size_t nv = std::max<size_t>(1, static_cast<size_t>(std::llround(o.val_fraction * static_cast<double>(r.data.pairs.size()))));
        r.val.assign(std::make_move_iterator(r.data.pairs.end() - static_cast<long>(nv)), std::make_move_iterator(r.data.pairs.end()));
        r.data.pairs.resize(r.data.pairs.size() - nv);
    }
    if (r.data.pairs.empty()) throw_bad_input("'%s' has no usable preference pairs (%lld skipped)", o.data_path.c_str(), static_cast<long long>(r.data.skipped));
    rep.pairs = static_cast<int64_t>(r.data.pairs.size());
    rep.val_pairs = static_cast<int64_t>(r.val.size());
    rep.skipped = r.data.skipped;
    r.pad = r.vocab.eos >= 0 ? r.vocab.eos : 0;
    if (t.seq_len <= 0) t.seq_len = r.model->config.n_ctx;
    return r;
}

void fill_setup(TrainSetup& s, PrefRun& r, PreferenceOptions& o, const char* what) {
    PretrainOptions& t = o.train;
    s.what = what;
    s.vocab = r.vocab;
    s.cfg = r.model->config;
    const std::string base_path = o.model_path;
    s.init = [model = r.model, base_path]() mutable {
        if (model) {
            Model m = std::move(*model);
            model.reset();
            return m;
        }
        return load_model(base_path);
    };
    auto train = std::make_unique<PairBatches>(&r.data.pairs, t.batch_size, r.pad, t.seed, true);
    if (t.steps <= 0)
        t.steps = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * static_cast<double>(train->windows()) / static_cast<double>(t.grad_accum))));
    s.train = std::move(train);
    if (!r.val.empty()) {
        s.val = std::make_unique<PairBatches>(&r.val, t.batch_size, r.pad, t.seed, false);
        const int64_t nb = static_cast<int64_t>(s.val->windows());
        if (t.eval_batches <= 0 || t.eval_batches > nb) t.eval_batches = nb;
    }
    s.lora = o.lora;
    s.save_merged = o.merge;
    s.hparams_extra = {{"data", o.data_path}, {"pairs", r.data.pairs.size()}, {"base_model", o.model_path}};
    s.validate_at_start = true;
    if (world().rank() == 0)
        log_text(strprintf("llmforge: %s: %zu preference pairs (%zu held out, %lld skipped); %lld steps of %lld pairs\n", what, r.data.pairs.size(),
                     r.val.size(), static_cast<long long>(r.data.skipped), static_cast<long long>(t.steps), static_cast<long long>(t.batch_size)));
}

}  // namespace

PreferenceReport reward_train(PreferenceOptions o) {
    PreferenceReport rep;
    PrefRun r = load_run(o, rep);
    TrainSetup s;
    fill_setup(s, r, o, "reward model");
    auto* train = dynamic_cast<PairBatches*>(s.train.get());
    s.objective = std::make_shared<RewardObjective>(train, o.center, o.train.seed);
    s.on_validation = [&rep](const nlohmann::json& v, bool last) { (last ? rep.end_val_accuracy : rep.start_val_accuracy) = v.value("val_accuracy", -1.0); };
    rep.result = run_training(o.train, s);
    return rep;
}

PreferenceReport dpo_train(PreferenceOptions o) {
    if (!(o.beta > 0) || !std::isfinite(o.beta)) throw_bad_input("--beta must be a positive number");
    if (!(o.label_smoothing >= 0 && o.label_smoothing < 0.5)) throw_bad_input("--label-smoothing must be in [0, 0.5)");
    if (!(o.rpo_alpha >= 0) || !std::isfinite(o.rpo_alpha)) throw_bad_input("--rpo-alpha must be a number ≥ 0");
    PreferenceReport rep;
    PrefRun r = load_run(o, rep);
    TrainSetup s;
    fill_setup(s, r, o, "DPO");
    s.sample_text = [fmt = std::make_shared<ChatFormat>(s.vocab)](const Vocab&, const std::string& prompt) {
        return fmt->render(nlohmann::ordered_json::array({{{"role", "user"}, {"content", prompt.empty() ? "Hello" : prompt}}}), true);
    };
    auto* train = dynamic_cast<PairBatches*>(s.train.get());
    s.objective = std::make_shared<DpoObjective>(&r.data.pairs, &r.val, train, o.beta, o.label_smoothing, o.rpo_alpha, o.train.batch_size, r.pad,
                                                 o.train.out_dir + "/reference_logps.json", o.train.progress && world().rank() == 0);
    s.on_validation = [&rep](const nlohmann::json& v, bool last) {
        (last ? rep.end_val_accuracy : rep.start_val_accuracy) = v.value("val_accuracy", -1.0);
        (last ? rep.end_logp_accuracy : rep.start_logp_accuracy) = v.value("val_logp_accuracy", -1.0);
    };
    rep.result = run_training(o.train, s);
    return rep;
}

// ---- scoring with a trained reward model ---------------------------------------------------------------------------
struct RewardModel::Impl {
    Model model;
    Vocab vocab;
    std::unique_ptr<ChatFormat> fmt;
    ThreadPool pool;
    std::unique_ptr<TrainableModel> tm;
    explicit Impl(int n) : pool(n) {}
};

RewardModel::RewardModel(const std::string& path, int n_threads) : impl_(std::make_unique<Impl>(n_threads > 0 ? n_threads : ThreadPool::default_threads())) {
    impl_->model = load_model(path);
    if (!impl_->model.find(std::string(kHead) + ".weight"))
        throw_bad_input("'%s' is not a reward model (no %s.weight tensor; train one with `llmforge reward train`)", path.c_str(), kHead);
    if (!impl_->model.vocab) throw_bad_input("'%s' has no tokenizer", path.c_str());
    impl_->vocab = *impl_->model.vocab;
    if (impl_->vocab.chat_template.empty()) impl_->vocab.chat_template = kChatMLTemplate;
    impl_->fmt = std::make_unique<ChatFormat>(impl_->vocab);
    impl_->tm = std::make_unique<TrainableModel>(impl_->model, impl_->pool, false, true);
    impl_->tm->set_lm_head(false);
    impl_->tm->add_head(kHead, 1, 0, 0.0f, &impl_->model);
}

RewardModel::~RewardModel() = default;

const Vocab& RewardModel::vocab() const { return impl_->vocab; }

std::vector<int32_t> RewardModel::encode(const nlohmann::ordered_json& messages) const { return impl_->fmt->encode_for_training(messages).ids; }

std::vector<float> RewardModel::score(const std::vector<std::vector<int32_t>>& seqs, int64_t batch) {
    std::vector<float> out;
    const int64_t n_ctx = impl_->tm->config().n_ctx;
    for (size_t b0 = 0; b0 < seqs.size(); b0 += static_cast<size_t>(batch)) {
        const size_t b1 = std::min(seqs.size(), b0 + static_cast<size_t>(batch));
        int64_t T = 1;
        for (size_t i = b0; i < b1; ++i) {
            if (seqs[i].empty()) throw_bad_input("an empty sequence has no reward");
            if (static_cast<int64_t>(seqs[i].size()) > n_ctx)
                throw_bad_input("a sequence of %zu tokens is longer than the reward model's context (%lld)", seqs[i].size(), static_cast<long long>(n_ctx));
            T = std::max<int64_t>(T, static_cast<int64_t>(seqs[i].size()));
        }
        const int64_t B = static_cast<int64_t>(b1 - b0);
        std::vector<int32_t> in(static_cast<size_t>(B * T), 0), tg(static_cast<size_t>(B * T), -1);
        for (size_t i = b0; i < b1; ++i) std::copy(seqs[i].begin(), seqs[i].end(), in.begin() + static_cast<long>((i - b0) * static_cast<size_t>(T)));
        impl_->tm->forward(in.data(), tg.data(), B, T);
        for (size_t i = b0; i < b1; ++i) out.push_back(impl_->tm->head_values()[(i - b0) * static_cast<size_t>(T) + seqs[i].size() - 1]);
    }
    return out;
}

}  // namespace llmforge::align
