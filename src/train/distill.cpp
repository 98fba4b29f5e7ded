// llmforge distill: the student trained against the teacher's next-token distributions (include/llmforge/distill.h)
// as an Objective of the shared training loop.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <memory>

#include "core/hash.h"
#include "core/threadpool.h"
#include "llmforge/bpe.h"
#include "llmforge/comm.h"
#include "llmforge/compute.h"
#include "llmforge/data.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/train.h"
#include "train/sample_policy.h"

namespace fs = std::filesystem;

namespace llmforge {

Model prune_layers(const Model& m, const std::vector<int64_t>& keep) {
    if (keep.empty()) throw_bad_input("--keep-layers: no layers to keep");
    std::vector<int64_t> seen;
    for (int64_t l : keep) {
        if (l < 0 || l >= m.config.n_layer)
            throw_bad_input("--keep-layers: layer %lld does not exist (the teacher has layers 0 to %lld)", static_cast<long long>(l),
                            static_cast<long long>(m.config.n_layer - 1));
        if (std::find(seen.begin(), seen.end(), l) != seen.end()) throw_bad_input("--keep-layers: layer %lld given twice", static_cast<long long>(l));
        seen.push_back(l);
    }
    Model p = m.shell();
    p.config.n_layer = static_cast<int64_t>(keep.size());
    for (const Tensor& t : m.tensors) {
        if (t.name.rfind("blk.", 0) != 0) {
            p.add(t);
            continue;
        }
        const size_t dot = t.name.find('.', 4);
        const int64_t l = std::stoll(t.name.substr(4, dot - 4));
        const auto it = std::find(keep.begin(), keep.end(), l);
        if (it == keep.end()) continue;
        Tensor c = t;
        c.name = "blk." + std::to_string(it - keep.begin()) + t.name.substr(dot);
        p.add(std::move(c));
    }
    p.check();
    return p;
}

namespace {

// The teacher, forward only, beside the student: its logits on the student's rows, the loss between them.
class DistillObjective : public Objective {
public:
    DistillObjective(std::shared_ptr<Model> teacher, const DistillOptions& o, std::shared_ptr<TeacherCache> cache, const DataLoader* train)
        : teacher_model_(std::move(teacher)), c_(o.loss), pool_(o.train.n_threads > 0 ? o.train.n_threads : ThreadPool::default_threads()),
          cache_(std::move(cache)), train_(train), on_policy_(o.on_policy), gen_tokens_(o.gen_tokens), gen_temp_(o.gen_temp), seed_(o.train.seed) {}

    void attach(TrainableModel& tm, const Model*, bool) override {
        student_cfg_ = tm.config();
        tm.set_keep_logits(true);
        teacher_ = std::make_unique<TrainableModel>(*teacher_model_, pool_, false, true);  // frozen: read in place, forward only
        teacher_->set_keep_logits(true);
    }

    double train(TrainableModel& tm, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t row0, int64_t B, int64_t T, float scale,
                 nlohmann::json& stats) override {
        const int32_t* x = in.data() + row0 * T;
        const int32_t* y = tg.data() + row0 * T;
        const int64_t N = B * T, V = tm.config().n_vocab;
        dz_.resize(static_cast<size_t>(N * V));
        DistillLoss r;
        uint64_t h = 0;
        if (draw_on_policy(&h)) {
            r = on_policy(tm, x, B, T, h, scale);
            tm.backward_logits(dz_.data());
            add(stats, "on_policy", 1.0);
            add(stats, "divergence", r.divergence);
            return r.loss;
        }
        if (on_policy_ > 0) add(stats, "on_policy", 0.0);
        if (cache_) {  // the teacher's top-k of these rows' windows, from the cache
            const int64_t k = cache_->k();
            ids_.resize(static_cast<size_t>(N * k));
            lp_.resize(static_cast<size_t>(N * k));
            rest_.resize(static_cast<size_t>(N));
            const std::vector<uint64_t>& win = train_->last_windows();
            pool_.parallel_for(N, [&](int64_t b, int64_t e) {
                for (int64_t p = b; p < e; ++p)
                    cache_->read(win[static_cast<size_t>(row0 + p / T)], p % T, ids_.data() + p * k, lp_.data() + p * k, rest_.data() + p);
            });
            tm.forward(x, y, B, T);
            r = distill_batch(tm.logits(), y, N, V, nullptr, ids_.data(), lp_.data(), rest_.data(), k, c_, scale, dz_.data(), &pool_);
        } else {
            teacher_->forward(x, y, B, T);
            tm.forward(x, y, B, T);
            r = distill_batch(tm.logits(), y, N, V, teacher_->logits(), nullptr, nullptr, nullptr, 0, c_, scale, dz_.data(), &pool_);
        }
        tm.backward_logits(dz_.data());
        add(stats, "divergence", r.divergence);
        add(stats, "ce", r.ce);
        return r.loss;
    }

    // The student's cross-entropy (val_loss: its perplexity is the measure), the teacher's on the same windows, and
    // KL(teacher ‖ student) at temperature 1 over the full distributions.
    nlohmann::json validate(TrainableModel& tm, BatchSource& val, int64_t batches) override {
        std::vector<int32_t> in, tg;
        double ce = 0, kl = 0, teacher_ce = 0;
        int64_t n = 0;
        DistillLossConfig kc;
        kc.alpha = 1.0f;
        for (int64_t b = 0; b < batches; ++b) {
            const int64_t T = val.next(in, tg), B = static_cast<int64_t>(in.size()) / T;
            teacher_ce += teacher_->forward(in.data(), tg.data(), B, T);
            tm.forward(in.data(), tg.data(), B, T);
            const DistillLoss r = distill_batch(tm.logits(), tg.data(), B * T, tm.config().n_vocab, teacher_->logits(), nullptr, nullptr, nullptr, 0, kc,
                                                1.0f, nullptr, &pool_);
            ce += r.ce;
            kl += r.divergence;
            ++n;
        }
        const double vl = n ? ce / static_cast<double>(n) : NAN;
        return {{"val_loss", vl}, {"val_ppl", std::exp(vl)}, {"val_kl", n ? kl / static_cast<double>(n) : NAN},
                {"val_teacher_loss", n ? teacher_ce / static_cast<double>(n) : NAN}};
    }

    // On-policy or not, for the batch just drawn: from the seed and the whole batch's windows (every process draws the
    // same; a resumed run draws as the first did). *hash: the draw's 64 bits (the sampling seed).
    bool draw_on_policy(uint64_t* hash = nullptr) const {
        if (on_policy_ <= 0) return false;
        const std::vector<uint64_t>& all = train_->last_windows();
        const uint64_t h = content_hash64(all.data(), all.size() * sizeof(uint64_t)) ^ (seed_ * 0x9E3779B97F4A7C15ull);
        if (hash) *hash = h;
        return static_cast<double>(h >> 11) * 0x1.0p-53 < on_policy_;
    }

    int64_t gen_tokens(int64_t T) const { return gen_tokens_ > 0 ? gen_tokens_ : T / 2; }  // G: --gen-tokens, or half the row

    // The rows' first T − G tokens as prompts, G tokens sampled by the student; the divergence on the sampled positions.
    DistillLoss on_policy(TrainableModel& tm, const int32_t* x, int64_t B, int64_t T, uint64_t seed, float scale) {
        const int64_t G = gen_tokens(T), P = T - G, V = tm.config().n_vocab;
        std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(B));
        std::vector<const std::vector<int32_t>*> ptrs;
        for (int64_t b = 0; b < B; ++b) {
            prompts[static_cast<size_t>(b)].assign(x + b * T, x + b * T + P);
            ptrs.push_back(&prompts[static_cast<size_t>(b)]);
        }
        const PolicySamples smp = sample_policy(tm, pool_, ptrs, 1, {}, G, gen_temp_, seed, gen_temp_ == 0, nullptr);
        gin_.assign(static_cast<size_t>(B * T), 0);
        gtg_.assign(static_cast<size_t>(B * T), -1);
        for (int64_t b = 0; b < B; ++b) {
            const std::vector<int32_t>& s = smp.seq[static_cast<size_t>(b)];
            for (size_t t = 0; t < s.size() && t < static_cast<size_t>(T); ++t) {
                gin_[static_cast<size_t>(b * T) + t] = s[t];
                if (t + 1 >= static_cast<size_t>(P) && t + 1 < s.size()) gtg_[static_cast<size_t>(b * T) + t] = s[t + 1];
            }
        }
        teacher_->forward(gin_.data(), gtg_.data(), B, T);
        tm.forward(gin_.data(), gtg_.data(), B, T);
        DistillLossConfig c = c_;
        c.alpha = 1.0f;  // no labels: the student's own tokens are not targets
        return distill_batch(tm.logits(), gtg_.data(), B * T, V, teacher_->logits(), nullptr, nullptr, nullptr, 0, c, scale, dz_.data(), &pool_);
    }

    // The teacher's forward pass (none with a cache: its FLOPs were spent once, when it was made); on an on-policy batch
    // the teacher's pass and the student's sampling of G of the T tokens (each counted at context T).
    double extra_flops_per_token(int64_t T) const override {
        const double teacher = compute::token_flops(teacher_model_->config, T).forward();
        if (draw_on_policy())
            return teacher + compute::token_flops(student_cfg_, T).forward() * static_cast<double>(gen_tokens(T)) / static_cast<double>(T);
        return cache_ ? 0.0 : teacher;
    }

private:
    static void add(nlohmann::json& stats, const char* key, double v) { stats[key] = stats.value(key, 0.0) + v; }
    std::shared_ptr<Model> teacher_model_;
    DistillLossConfig c_;
    ThreadPool pool_;
    std::unique_ptr<TrainableModel> teacher_;
    std::shared_ptr<TeacherCache> cache_;
    const DataLoader* train_;
    std::vector<float> dz_, lp_, rest_;
    std::vector<int32_t> ids_, gin_, gtg_;
    double on_policy_;
    int64_t gen_tokens_;
    float gen_temp_;
    uint64_t seed_;
    ModelConfig student_cfg_;
};

}  // namespace

DistillReport distill(const DistillOptions& o) {
    o.loss.validate();
    if (!(o.on_policy >= 0 && o.on_policy <= 1)) throw_bad_input("--on-policy must be between 0 and 1");
    if (o.gen_tokens < 0 || o.gen_tokens >= o.train.seq_len)
        throw_bad_input("--gen-tokens %lld: between 1 and --seq-len − 1 (%lld), or 0 for half of it", static_cast<long long>(o.gen_tokens),
                        static_cast<long long>(o.train.seq_len - 1));
    if (!(o.gen_temp >= 0) || !std::isfinite(o.gen_temp)) throw_bad_input("--gen-temp must be 0 (greedy) or more");
    PretrainOptions t = o.train;
    if (!fs::exists(t.data_dir + "/tokenizer.json")) throw_bad_input("'%s' is not a directory written by llmforge prepare (no tokenizer.json)", t.data_dir.c_str());
    auto teacher = std::make_shared<Model>(load_model(o.teacher_path));
    if (teacher->config.encoder) throw_bad_input("'%s' is an encoder: a teacher must predict next tokens", o.teacher_path.c_str());
    const int64_t V = teacher->config.n_vocab;
    // the data's tokenizer must be the teacher's: the same pieces for the same ids
    const Vocab data_vocab = Vocab::from_bpe(BpeTokenizer::load(t.data_dir + "/tokenizer.json"));
    if (teacher->vocab) {
        const Vocab& tv = *teacher->vocab;
        int32_t differ = -1;
        for (int32_t i = 0; i < std::min(tv.size(), data_vocab.size()) && differ < 0; ++i)
            if (tv.pieces[static_cast<size_t>(i)] != data_vocab.pieces[static_cast<size_t>(i)]) differ = i;
        if (tv.size() != data_vocab.size() || differ >= 0)
            throw_bad_input("the data in '%s' was tokenized with another tokenizer than the teacher's (%d tokens vs %d%s): distillation needs a shared tokenizer",
                            t.data_dir.c_str(), data_vocab.size(), tv.size(), differ >= 0 ? strprintf(", token %d differs", differ).c_str() : "");
    } else if (data_vocab.size() > V) {
        throw_bad_input("the data's tokenizer has %d tokens, the teacher's vocabulary %lld: distillation needs a shared tokenizer", data_vocab.size(),
                        static_cast<long long>(V));
    }
    if (t.seq_len > teacher->config.n_ctx)
        throw_bad_input("--seq-len %lld is longer than the teacher's context (%lld)", static_cast<long long>(t.seq_len),
                        static_cast<long long>(teacher->config.n_ctx));

    TrainSetup s;
    s.what = "distillation";
    s.vocab = teacher->vocab ? *teacher->vocab : data_vocab;
    if (!o.keep_layers.empty()) {
        if (!o.student_path.empty()) throw_bad_input("give either --student or --keep-layers, not both");
        auto pruned = std::make_shared<Model>(prune_layers(*teacher, o.keep_layers));
        s.cfg = pruned->config;
        s.init = [pruned] { return *pruned; };
    } else if (!o.student_path.empty()) {
        auto student = std::make_shared<Model>(load_model(o.student_path));
        if (student->config.n_vocab != V)
            throw_bad_input("the student's vocabulary (%lld tokens) differs from the teacher's (%lld): distillation needs a shared tokenizer",
                            static_cast<long long>(student->config.n_vocab), static_cast<long long>(V));
        s.cfg = student->config;
        s.init = [student] { return *student; };
    } else {
        s.cfg = t.model;
        s.cfg.n_vocab = V;
        if (s.cfg.n_ctx < t.seq_len) s.cfg.n_ctx = t.seq_len;
        s.cfg.validate();
        const ModelConfig cfg = s.cfg;
        const uint64_t seed = t.seed;
        s.init = [cfg, seed] { return init_random(cfg, DType::F32, seed); };
    }
    if (s.cfg.encoder) throw_bad_input("the student must be a language model, not an encoder");
    if (s.cfg.n_ctx < t.seq_len) s.cfg.n_ctx = t.seq_len;
    std::shared_ptr<TeacherCache> cache;
    if (!o.teacher_cache.empty()) {
        cache = std::make_shared<TeacherCache>(o.teacher_cache);
        cache->check(o.teacher_path, V, t.data_dir, t.seq_len, o.loss.temperature);
    }
    auto train = std::make_unique<DataLoader>(t.data_dir, "train", t.batch_size, t.seq_len, t.seed, true);
    const DataLoader* train_view = train.get();
    if (cache) {
        if (train->windows() != cache->split_windows())
            throw_bad_input("the teacher cache '%s' was made from %llu windows, the data has %llu: it was made for other data", o.teacher_cache.c_str(),
                            static_cast<unsigned long long>(cache->split_windows()), static_cast<unsigned long long>(train->windows()));
        train->restrict_to(cache->window_ids());  // the student trains on the windows the cache holds
    }
    s.train = std::move(train);
    s.val = std::make_unique<DataLoader>(t.data_dir, "val", 1, t.seq_len, t.seed, false);
    s.sample_text = [](const Vocab&, const std::string& prompt) { return "<|endoftext|>" + prompt; };
    s.validate_at_start = true;
    auto objective = std::make_shared<DistillObjective>(teacher, o, cache, train_view);
    s.objective = objective;
    DistillReport rep;
    rep.teacher_params = teacher->config.n_params();
    rep.student_params = s.cfg.n_params();
    s.hparams_extra = {{"teacher", o.teacher_path}, {"teacher_params", rep.teacher_params}, {"loss", divergence_name(o.loss.divergence)},
                       {"temperature", o.loss.temperature}, {"alpha", o.loss.alpha}, {"data", t.data_dir}};
    if (o.loss.divergence == Divergence::JSD) s.hparams_extra["beta"] = o.loss.beta;
    if (o.on_policy > 0) s.hparams_extra["on_policy"] = {{"lambda", o.on_policy}, {"gen_tokens", o.gen_tokens > 0 ? o.gen_tokens : t.seq_len / 2},
                                                         {"gen_temp", o.gen_temp}};
    if (!o.keep_layers.empty()) s.hparams_extra["keep_layers"] = o.keep_layers;
    if (!o.student_path.empty()) s.hparams_extra["student"] = o.student_path;
    if (cache) s.hparams_extra["teacher_cache"] = {{"path", o.teacher_cache}, {"top_k", cache->k()}, {"teacher_hash", cache->teacher_hash()},
                                                   {"data_hash", cache->data_hash()}};
    s.on_validation = [&rep](const nlohmann::json& v, bool last) {
        if (v.contains("val_teacher_loss")) rep.teacher_val_loss = v.at("val_teacher_loss").get<double>();
        if (last && v.contains("val_kl")) rep.last_val_kl = v.at("val_kl").get<double>();
    };
    if (world().rank() == 0)
        log_text(strprintf("llmforge: distilling %s (%lld parameters) into a student of %lld parameters: %s at τ %g, α %g%s\n", o.teacher_path.c_str(),
                           static_cast<long long>(rep.teacher_params), static_cast<long long>(rep.student_params), divergence_name(o.loss.divergence),
                           static_cast<double>(o.loss.temperature), static_cast<double>(o.loss.alpha),
                           o.keep_layers.empty() ? "" : strprintf(", the teacher's blocks kept: %zu of %lld", o.keep_layers.size(),
                                                                  static_cast<long long>(teacher->config.n_layer)).c_str()));
    rep.result = run_training(t, s);
    return rep;
}

}  // namespace llmforge
