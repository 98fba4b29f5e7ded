// The pre-training loop. One step: B·grad_accum windows of T+1 tokens → forward/backward (gradients averaged over the
// micro-batches) → clip by global norm → AdamW at the scheduled learning rate.
#include "llmforge/pretrain.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/json_int.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "formats/formats.h"
#include "llmforge/bpe.h"
#include "llmforge/comm.h"
#include "llmforge/compute.h"
#include "llmforge/data.h"
#include "llmforge/error.h"
#include "llmforge/generate.h"
#include "llmforge/log.h"
#include "llmforge/train.h"

namespace llmforge {

namespace fs = std::filesystem;

namespace {


void fsync_dir(const std::string& d) {
    const int fd = ::open(d.c_str(), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

void write_file_atomic(const std::string& path, const std::string& text) {
    AtomicWriter w(path);
    w.write(text.data(), text.size());
    w.commit();
}

struct State {
    int64_t step = 0;  // steps completed
    DataLoader::Position data;
    uint64_t seed = 0;
    kernels::Precision precision = kernels::Precision::F32;  // the products' precision in use (bf16 only where it measured faster)
    double flops = 0, seconds = 0;  // model FLOPs and wall time of the steps done (a resumed run continues the sums)
};

void save_checkpoint(const std::string& out, const TrainableModel& tm, const Vocab& vocab, const AdamW& opt, const State& st,
                     const nlohmann::json& hparams) {
    save_training_checkpoint(out, tm, vocab, opt,
                             {{"step", st.step}, {"epoch", st.data.epoch}, {"index", st.data.index}, {"seed", st.seed},
                              {"precision_used", kernels::precision_name(st.precision)}, {"flops", st.flops}, {"seconds", st.seconds},
                              {"hparams", hparams}});
}

}  // namespace

// The checkpoint directory is written whole under a temporary name, then swapped in with renames: at every moment
// OUT/checkpoint (or, between the two renames, OUT/checkpoint.old) is a complete checkpoint.
void save_training_checkpoint(const std::string& out, const TrainableModel& tm, const Vocab& vocab, const AdamW& opt, const nlohmann::json& state) {
    const std::string tmp = out + "/checkpoint.tmp", cur = out + "/checkpoint", old = out + "/checkpoint.old";
    fs::remove_all(tmp);  // a killed run's half-written one
    // a failed write (a full disk, a read-only directory) leaves the last complete checkpoint and removes its half
    struct Cleanup {
        std::string dir;
        bool done = false;
        ~Cleanup() {
            std::error_code ec;
            if (!done) fs::remove_all(dir, ec);
        }
    } cleanup{tmp};
    try {
        fs::create_directories(tmp);
    } catch (const fs::filesystem_error& e) {
        throw_runtime("cannot write the checkpoint '%s': %s", tmp.c_str(), e.code().message().c_str());
    }
    Model m = tm.to_model(false);
    m.vocab = vocab;
    if (tm.lora()) save_lora_adapter(m, tmp + "/adapter.gguf");
    else save_model(m, tmp + "/model.gguf");
    {
        AtomicWriter w(tmp + "/optimizer.bin");
        const char magic[8] = {'L', 'F', 'A', 'D', 'A', 'M', 'W', '1'};
        w.write(magic, 8);
        const int64_t t = opt.steps();
        const uint64_t n = tm.n_params();
        w.write(&t, 8);
        w.write(&n, 8);
        w.write(opt.m().data(), n * sizeof(float));
        w.write(opt.v().data(), n * sizeof(float));
        w.commit();
    }
    write_file_atomic(tmp + "/state.json", state.dump(1) + "\n");
    fsync_dir(tmp);
    try {
        if (fs::exists(cur)) {
            fs::remove_all(old);
            fs::rename(cur, old);
        }
        fs::rename(tmp, cur);
        cleanup.done = true;
        fsync_dir(out);
        fs::remove_all(old);
    } catch (const fs::filesystem_error& e) {
        throw_runtime("cannot put the checkpoint in place in '%s': %s", out.c_str(), e.code().message().c_str());
    }
}

std::string find_checkpoint(const std::string& out) {
    if (fs::exists(out + "/checkpoint/state.json")) return out + "/checkpoint";
    if (fs::exists(out + "/checkpoint.old/state.json")) return out + "/checkpoint.old";
    return "";
}

void load_optimizer_state(const std::string& path, AdamW& opt, size_t n_params) {
    const std::string b = read_text_file(path);
    if (b.size() != 24 + 2 * n_params * sizeof(float) || b.compare(0, 8, "LFADAMW1") != 0)
        throw_bad_input("'%s' is not an optimizer state for this model", path.c_str());
    int64_t t;
    uint64_t n;
    std::memcpy(&t, b.data() + 8, 8);
    std::memcpy(&n, b.data() + 16, 8);
    if (n != n_params) throw_bad_input("'%s' holds %llu parameters, the model %zu", path.c_str(), static_cast<unsigned long long>(n), n_params);
    std::memcpy(opt.m().data(), b.data() + 24, n * sizeof(float));
    std::memcpy(opt.v().data(), b.data() + 24 + n * sizeof(float), n * sizeof(float));
    opt.set_steps(t);
}

// Keeps the metrics lines of steps ≤ `step` (a resumed run continues the same curve without duplicates).
void truncate_metrics(const std::string& path, int64_t step) {
    if (!fs::exists(path)) return;
    std::ifstream in(path);
    std::string keep, line;
    while (std::getline(in, line)) {
        try {
            const auto j = nlohmann::json::parse(line);
            if (j.value("step", int64_t(0)) <= step) keep += line + "\n";
        } catch (const nlohmann::json::exception&) {
            break;  // a torn last line from a crash
        }
    }
    write_file_atomic(path, keep);
}

namespace {
std::string fmt(double v, int prec = 4) {
    std::ostringstream s;
    s.precision(prec);
    s << v;
    return s.str();
}

}  // namespace

void write_loss_svg(const std::string& metrics_path, const std::string& svg_path) {
    std::vector<std::pair<double, double>> train, val;
    std::ifstream in(metrics_path);
    std::string line;
    while (std::getline(in, line)) {
        try {
            const auto j = nlohmann::json::parse(line);
            if (j.contains("loss")) train.emplace_back(j["step"].get<double>(), j["loss"].get<double>());
            if (j.contains("val_loss")) val.emplace_back(j["step"].get<double>(), j["val_loss"].get<double>());
        } catch (const nlohmann::json::exception&) {
        }
    }
    if (train.empty()) return;
    double x1 = 1, y0 = 1e30, y1 = -1e30;
    for (const auto* s : {&train, &val})
        for (const auto& [x, y] : *s) {
            x1 = std::max(x1, x);
            if (std::isfinite(y)) { y0 = std::min(y0, y); y1 = std::max(y1, y); }
        }
    y0 = std::floor(y0 * 2) / 2;
    y1 = std::ceil(y1 * 2) / 2;
    if (y1 <= y0) y1 = y0 + 1;
    const double W = 720, H = 420, L = 60, R = 20, T = 30, Bm = 45;
    auto X = [&](double x) { return L + (W - L - R) * x / x1; };
    auto Y = [&](double y) { return T + (H - T - Bm) * (1 - (y - y0) / (y1 - y0)); };
    std::ostringstream s;
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s << "<text x=\"" << L << "\" y=\"18\" font-size=\"14\">llmforge pretrain: loss (nats/token)</text>\n";
    for (int i = 0; i <= 5; ++i) {
        const double y = y0 + (y1 - y0) * i / 5;
        s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(y) << "\" y2=\"" << Y(y) << "\" stroke=\"#ddd\"/>";
        s << "<text x=\"" << L - 6 << "\" y=\"" << Y(y) + 4 << "\" text-anchor=\"end\">" << fmt(y, 3) << "</text>\n";
        const double x = x1 * i / 5;
        s << "<text x=\"" << X(x) << "\" y=\"" << H - Bm + 16 << "\" text-anchor=\"middle\">" << static_cast<long long>(x) << "</text>\n";
    }
    s << "<text x=\"" << (W + L) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">step</text>\n";
    auto poly = [&](const std::vector<std::pair<double, double>>& pts, const char* color, double width) {
        s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"" << width << "\" points=\"";
        for (const auto& [x, y] : pts)
            if (std::isfinite(y)) s << X(x) << "," << Y(std::clamp(y, y0, y1)) << " ";
        s << "\"/>\n";
    };
    poly(train, "#1f77b4", 1);
    if (!val.empty()) poly(val, "#d62728", 2);
    s << "<text x=\"" << W - R - 150 << "\" y=\"" << T + 14 << "\" fill=\"#1f77b4\">train</text>";
    if (!val.empty()) s << "<text x=\"" << W - R - 90 << "\" y=\"" << T + 14 << "\" fill=\"#d62728\">validation</text>";
    s << "\n</svg>\n";
    write_file_atomic(svg_path, s.str());
}

namespace {
void check_options(const PretrainOptions& o) {
    for (float x : {o.lr, o.min_lr, o.weight_decay, o.beta1, o.beta2, o.eps, o.clip})
        if (!std::isfinite(x)) throw_bad_input("learning-rate and optimizer settings must be finite numbers");
    if (o.lr <= 0) throw_bad_input("the learning rate must be positive");
    if (o.steps <= 0 || o.batch_size <= 0 || o.seq_len <= 1 || o.grad_accum <= 0)
        throw_bad_input("--steps, --batch-size, --grad-accum must be positive and --seq-len at least 2");
    LrSchedule::parse(o.schedule);
    if (o.precision != "f32" && o.precision != "bf16") throw_bad_input("--precision must be f32 or bf16, not '%s'", o.precision.c_str());
}
}  // namespace

PretrainResult pretrain(const PretrainOptions& o) {
    check_options(o);
    if (!fs::exists(o.data_dir + "/tokenizer.json")) throw_bad_input("'%s' is not a directory written by llmforge prepare (no tokenizer.json)", o.data_dir.c_str());
    TrainSetup s;
    const BpeTokenizer tok = BpeTokenizer::load(o.data_dir + "/tokenizer.json");
    s.vocab = Vocab::from_bpe(tok);
    s.cfg = o.model;
    if (s.cfg.n_vocab == 0) s.cfg.n_vocab = tok.size();
    if (s.cfg.n_ctx == 0 || s.cfg.n_ctx < o.seq_len) s.cfg.n_ctx = o.seq_len;
    if (s.cfg.n_vocab < tok.size()) throw_bad_input("the model's vocabulary (%lld) is smaller than the tokenizer's (%d)", static_cast<long long>(s.cfg.n_vocab), tok.size());
    s.cfg.validate();
    const ModelConfig cfg = s.cfg;
    const uint64_t seed = o.seed;
    s.init = [cfg, seed] { return init_random(cfg, DType::F32, seed); };
    s.train = std::make_unique<DataLoader>(o.data_dir, "train", o.batch_size, o.seq_len, o.seed, true);
    s.val = std::make_unique<DataLoader>(o.data_dir, "val", 1, o.seq_len, o.seed, false);
    s.sample_text = [](const Vocab&, const std::string& prompt) { return "<|endoftext|>" + prompt; };
    s.validate_at_start = true;
    // The baseline a language model must beat: the unigram model — each token's frequency in the training split (add-one
    // smoothed), with no context at all. Its loss on the validation windows shows what the context-using model learned.
    s.baseline_name = "unigram";
    s.baseline = [dir = o.data_dir, V = s.cfg.n_vocab](BatchSource& val, int64_t batches) {
        std::vector<double> count(static_cast<size_t>(V), 1.0);
        double total = static_cast<double>(V);
        for (const auto& e : fs::directory_iterator(dir)) {
            const std::string n = e.path().filename().string();
            if (n.rfind("train_", 0) != 0 || e.path().extension() != ".bin") continue;
            const TokenShard sh(e.path().string());
            for (uint64_t i = 0; i < sh.size(); ++i) {
                const int32_t t = sh[i];
                if (t >= 0 && t < V) count[static_cast<size_t>(t)] += 1, total += 1;
            }
        }
        val.seek({});
        std::vector<int32_t> in, tg;
        double nll = 0, n = 0;
        for (int64_t b = 0; b < batches; ++b) {
            val.next(in, tg);
            for (int32_t t : tg)
                if (t >= 0 && t < V) nll -= std::log(count[static_cast<size_t>(t)] / total), n += 1;
        }
        val.seek({});
        return n > 0 ? nll / n : NAN;
    };
    return run_training(o, s);
}

// The checkpoint holds GGUF's LLaMA layout (RoPE pairs interleaved, rows of Wq/Wk permuted). When the run started
// from a Hugging Face layout, return to it — an exact row permutation — so that a resumed run computes bit for bit
// what the uninterrupted one did (the dot products over head dimensions keep their order).
Model to_training_layout(Model init, const ModelConfig& start) {
    if (!(start.uses_rope() && start.rope_style != init.config.rope_style)) return init;
    Model h = init.shell();
    h.config.rope_style = start.rope_style;
    for (const Tensor& t : init.tensors) {
        const bool q = t.name.find(".attn_q.weight") != std::string::npos, k = t.name.find(".attn_k.weight") != std::string::npos;
        if (q || k) h.add(h.own(t.name, t.dtype, t.shape, formats::permute_rope_rows(t, q ? start.n_head : start.n_head_kv, start.rope_style == RopeStyle::Half)));
        else h.add(t);
    }
    return h;
}

namespace {
// --precision bf16 where it pays: the bf16 products (AVX512-BF16's vdpbf16ps where the CPU has it, emulated elsewhere)
// are used only if one of this model's products — a batch of activations times the MLP's up projection — measures
// faster in bf16 than in f32 on this CPU; otherwise the products run in f32 (on an Intel Xeon with AVX512-BF16 they
// measured 0.78x of f32 in training, on AMD Zen 4 1.5x). Best of three after a warm-up, each way.
kernels::Precision measure_bf16(const ModelConfig& cfg, int64_t rows, ThreadPool& pool, double& t_bf16, double& t_f32) {
    const int64_t n = std::clamp<int64_t>(rows, 64, 512), K = cfg.n_embd, R = cfg.n_ff;
    std::vector<float> a(static_cast<size_t>(n * K)), b(static_cast<size_t>(R * K)), c(static_cast<size_t>(n * R));
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : a) v = u(rng);
    for (float& v : b) v = u(rng);
    auto time = [&](kernels::Precision p) {
        const auto t0 = std::chrono::steady_clock::now();
        kernels::gemm(a.data(), false, b.data(), false, c.data(), n, R, K, false, p, pool);
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    time(kernels::Precision::BF16);
    time(kernels::Precision::F32);
    t_bf16 = t_f32 = 1e30;
    for (int r = 0; r < 3; ++r) {
        t_bf16 = std::min(t_bf16, time(kernels::Precision::BF16));
        t_f32 = std::min(t_f32, time(kernels::Precision::F32));
    }
    return t_bf16 < t_f32 ? kernels::Precision::BF16 : kernels::Precision::F32;
}
std::string human_flops(double f) {  // FLOP/s
    return f >= 1e12 ? strprintf("%.3g TFLOP/s", f / 1e12) : strprintf("%.3g GFLOP/s", f / 1e9);
}
std::string human_seconds(double s) { return s >= 120 ? strprintf("%.1f min", s / 60) : strprintf("%.2f s", s); }

// The machine's peak for MFU: the best rate of a 1024×1024×1024 product (2·1024³ FLOPs) in the training precision on
// the training threads, after a warm-up, best of three.
double measure_peak_flops(kernels::Precision p, ThreadPool& pool) {
    const int64_t n = 1024;
    std::vector<float> a(static_cast<size_t>(n * n)), b(static_cast<size_t>(n * n)), c(static_cast<size_t>(n * n));
    std::mt19937 rng(2);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : a) v = u(rng);
    for (float& v : b) v = u(rng);
    double best = 1e30;
    for (int r = 0; r < 4; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        kernels::gemm(a.data(), false, b.data(), false, c.data(), n, n, n, false, p, pool);
        const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (r > 0) best = std::min(best, t);
    }
    return 2.0 * static_cast<double>(n * n * n) / best;
}
}  // namespace

PretrainResult run_training(const PretrainOptions& o, TrainSetup& s) {
    check_options(o);
    const LrSchedule::Kind kind = LrSchedule::parse(o.schedule);
    kernels::Precision prec = o.precision == "bf16" ? kernels::Precision::BF16 : kernels::Precision::F32;
    // Data parallelism: every process draws the same global batch and trains on its slice; gradients are averaged
    // with an all-reduce, so every process takes the same optimizer step. Process 0 does the I/O.
    Communicator& comm = world();
    const int W = comm.size(), R = comm.rank();
    const bool lead = R == 0;
    if (o.batch_size % W != 0)
        throw_bad_input("--batch-size %lld must be a multiple of the %d processes", static_cast<long long>(o.batch_size), W);
    const int64_t B_local = o.batch_size / W;
    if (lead) fs::create_directories(o.out_dir);
    const Vocab& vocab = s.vocab;
    const ModelConfig cfg = s.cfg;
    // memory: weights, gradients, Adam m and v (16 B/param) — under LoRA the base as stored (read in place) — +
    // activations (estimated from the buffers we allocate); checked before the model is made, or under LoRA once the
    // base is mapped (its stored size)
    auto check_memory = [&](const Model* base) {
        const double N = static_cast<double>(o.batch_size * o.seq_len), C = static_cast<double>(cfg.n_embd), F = static_cast<double>(cfg.n_ff);
        // (recomputing: the residual stream of every block and one block's intermediates)
        const double block = N * (10 * C + 3 * F) + static_cast<double>(o.batch_size * cfg.n_head) * static_cast<double>(o.seq_len * o.seq_len);
        const double acts = 4.0 * ((o.recompute ? static_cast<double>(cfg.n_layer) * N * C + block : static_cast<double>(cfg.n_layer) * block) +
                                   N * static_cast<double>(cfg.n_vocab) * 1.0);
        double stored = 0;
        const bool lora = s.lora.rank > 0;
        if (lora)
            for (const Tensor& t : base->tensors) stored += static_cast<double>(t.nbytes());
        const double need = (lora ? stored : 16.0 * static_cast<double>(cfg.n_params())) + acts;
        const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
        if (need > 0.9 * have)
            throw_bad_input("this configuration needs about %.1f GiB to train (%s + activations%s), more than the %.1f GiB of memory here",
                            need / (1 << 30),
                            lora ? strprintf("the base as stored, %.1f GiB", stored / (1 << 30)).c_str()
                                 : strprintf("%lld parameters at 16 B each", static_cast<long long>(cfg.n_params())).c_str(),
                            o.recompute ? "" : "; --recompute keeps fewer", have / (1 << 30));
    };
    if (s.lora.rank == 0) check_memory(nullptr);
    ThreadPool pool(o.n_threads > 0 ? o.n_threads : ThreadPool::default_threads());
    BatchSource& train = *s.train;
    BatchSource* val = s.val.get();
    const int64_t eval_batches = val ? std::min<int64_t>(o.eval_batches, static_cast<int64_t>(val->windows())) : 0;

    nlohmann::json hparams = {{"arch", cfg.arch}, {"n_layer", cfg.n_layer}, {"n_embd", cfg.n_embd}, {"n_head", cfg.n_head},
                              {"n_head_kv", cfg.n_head_kv}, {"n_ff", cfg.n_ff}, {"n_vocab", cfg.n_vocab}, {"n_ctx", cfg.n_ctx},
                              {"n_params", cfg.n_params()}, {"batch_size", o.batch_size}, {"seq_len", o.seq_len},
                              {"grad_accum", o.grad_accum}, {"lr", o.lr}, {"min_lr", o.min_lr}, {"schedule", o.schedule},
                              {"warmup", o.warmup}, {"steps", o.steps}, {"weight_decay", o.weight_decay}, {"clip", o.clip}, {"seed", o.seed},
                              {"precision", o.precision}, {"recompute", o.recompute}, {"task", s.what}};
    for (auto it = s.hparams_extra.begin(); it != s.hparams_extra.end(); ++it) hparams[it.key()] = it.value();
    if (s.lora.rank > 0) hparams["lora"] = {{"rank", s.lora.rank}, {"alpha", s.lora.alpha}, {"targets", s.lora.targets}};
    State st;
    st.seed = o.seed;
    Model init;
    std::string ck;
    if (o.resume) {
        ck = find_checkpoint(o.out_dir);
        if (ck.empty()) throw_bad_input("--resume: '%s' has no checkpoint", o.out_dir.c_str());
        init = s.lora.rank > 0 ? s.init() : load_model(ck + "/model.gguf");
        const auto sj = nlohmann::json::parse(read_text_file(ck + "/state.json"));
        const std::string what = "'" + ck + "/state.json':";
        st.step = json_integer(sj.at("step"), 0, INT64_MAX, what + " step");
        st.data.epoch = static_cast<uint64_t>(json_integer(sj.at("epoch"), 0, INT64_MAX, what + " epoch"));
        st.data.index = static_cast<uint64_t>(json_integer(sj.at("index"), 0, INT64_MAX, what + " index"));
        if (!sj.at("seed").is_number_integer()) throw_bad_input("%s seed is not an integer", what.c_str());
        st.seed = sj.at("seed").get<uint64_t>();  // any 64-bit value (--seed)
        st.flops = sj.value("flops", 0.0);
        st.seconds = sj.value("seconds", 0.0);
        // the products' precision the run chose at its start (bf16 measured against f32): the same again, so that the
        // resumed run continues bit for bit
        if (sj.contains("precision_used")) prec = sj.at("precision_used").get<std::string>() == "bf16" ? kernels::Precision::BF16 : kernels::Precision::F32;
        if (st.seed != o.seed)  // the data order and the samples follow the seed: another one would not continue the run
            throw_bad_input("--resume: this run was started with --seed %llu, not %llu: resume with -s %llu",
                            static_cast<unsigned long long>(st.seed), static_cast<unsigned long long>(o.seed),
                            static_cast<unsigned long long>(st.seed));
        init = to_training_layout(std::move(init), cfg);
        if (init.config.n_params() != cfg.n_params())
            throw_bad_input("--resume: the checkpoint's model (%lld parameters) differs from the one asked for (%lld)",
                            static_cast<long long>(init.config.n_params()), static_cast<long long>(cfg.n_params()));
        train.seek(st.data);
    } else {
        init = s.init();
    }
    if (s.lora.rank > 0) check_memory(&init);
    // process 0 measures and decides for every process; LLMFORGE_BF16_CHOICE=bf16 or f32 pins the choice instead (tests,
    // benchmarks)
    const char* pinned = std::getenv("LLMFORGE_BF16_CHOICE");
    if (prec == kernels::Precision::BF16 && ck.empty() && pinned && *pinned) {
        if (std::string(pinned) != "bf16" && std::string(pinned) != "f32") throw_bad_input("LLMFORGE_BF16_CHOICE must be bf16 or f32, not '%s'", pinned);
        prec = std::string(pinned) == "bf16" ? kernels::Precision::BF16 : kernels::Precision::F32;
    } else if (prec == kernels::Precision::BF16 && ck.empty()) {
        double tb = 0, tf = 0;
        double vote = lead && measure_bf16(cfg, B_local * o.seq_len, pool, tb, tf) == kernels::Precision::BF16 ? 1.0 : 0.0;
        comm.allreduce_sum(&vote, 1);
        if (vote < 0.5) prec = kernels::Precision::F32;
        if (lead)
            log_text(strprintf("llmforge: --precision bf16: a %lld×%lld×%lld product takes %.2f ms in bf16 (%s) and %.2f ms in f32 here: %s\n",
                               static_cast<long long>(std::clamp<int64_t>(B_local * o.seq_len, 64, 512)), static_cast<long long>(cfg.n_embd),
                               static_cast<long long>(cfg.n_ff), tb * 1e3, kernels::has_native_bf16() ? "AVX512-BF16" : "emulated", tf * 1e3,
                               prec == kernels::Precision::BF16 ? "training with bf16 products" : "bf16 is not faster on this CPU, training with f32 products"));
    }
    st.precision = prec;
    hparams["precision_used"] = kernels::precision_name(prec);
    TrainableModel tm(init, pool, false, s.lora.rank > 0);
    tm.set_matmul_precision(prec);
    tm.set_recompute(o.recompute);
    Model adapter;
    if (s.lora.rank > 0) {
        if (!ck.empty()) {
            adapter = load_lora_adapter(ck + "/adapter.gguf", cfg);
            tm.enable_lora(s.lora, &adapter);
        } else {
            tm.enable_lora(s.lora);
        }
    }
    if (s.objective) s.objective->attach(tm, ck.empty() ? nullptr : s.lora.rank > 0 ? &adapter : &init, !ck.empty());
    adapter = Model();
    init = Model();  // the trainer holds its own f32 copy
    AdamW opt(tm.n_params(), AdamWConfig{o.beta1, o.beta2, o.eps, o.weight_decay});
    if (!ck.empty()) load_optimizer_state(ck + "/optimizer.bin", opt, tm.n_params());
    LrSchedule sched;
    sched.kind = kind;
    sched.lr_max = o.lr;
    sched.lr_min = o.min_lr;
    sched.warmup = o.warmup;
    sched.total = o.steps;

    const std::string metrics_path = o.out_dir + "/metrics.jsonl";
    if (lead) {  // what a killed run may have left half-written: a checkpoint being saved, files being replaced
        std::error_code ec;
        fs::remove_all(o.out_dir + "/checkpoint.tmp", ec);
        remove_stale_temporaries_in(o.out_dir);
    }
    if (lead) {
        if (o.resume) truncate_metrics(metrics_path, st.step);
        else write_file_atomic(metrics_path, "");
    }
    std::ofstream metrics;
    if (lead) metrics.open(metrics_path, std::ios::app);
    if (lead && W > 1) log_text(strprintf("llmforge: data parallel over %d processes (%s), %lld sequences each\n", W, comm.backend(), static_cast<long long>(B_local)));
    if (lead) log_text(strprintf("llmforge: %s %s, %lld parameters (%lld layers, d_model %lld, %lld heads), vocab %lld, %lld train tokens, "
                         "batch %lld × %lld × %lld accum = %lld tokens/step%s\n",
                 s.what.c_str(), cfg.arch.c_str(), static_cast<long long>(cfg.n_params()), static_cast<long long>(cfg.n_layer), static_cast<long long>(cfg.n_embd),
                 static_cast<long long>(cfg.n_head), static_cast<long long>(cfg.n_vocab), static_cast<long long>(train.tokens()),
                 static_cast<long long>(o.batch_size), static_cast<long long>(o.seq_len), static_cast<long long>(o.grad_accum),
                 static_cast<long long>(o.batch_size * o.seq_len * o.grad_accum), o.resume ? (" (resumed at step " + std::to_string(st.step) + ")").c_str() : ""));


    auto eval_val = [&]() {
        val->seek({});  // the same windows every time, from the start of the split
        if (s.objective) return s.objective->validate(tm, *val, eval_batches);
        std::vector<int32_t> in, tg;
        double sum = 0;
        for (int64_t i = 0; i < eval_batches; ++i) {
            const int64_t T = val->next(in, tg);
            sum += tm.forward(in.data(), tg.data(), static_cast<int64_t>(in.size()) / T, T);
        }
        const double vl = eval_batches ? sum / static_cast<double>(eval_batches) : NAN;
        return nlohmann::json{{"val_loss", vl}, {"val_ppl", std::exp(vl)}};
    };
    auto sample = [&](int64_t step) {
        Model m = tm.lora() ? tm.merged_model() : tm.to_model(false);
        m.vocab = vocab;
        ThreadPool sp(1);
        Transformer tf(m, sp, std::min<int64_t>(cfg.n_ctx, 256), 64, DType::F32);
        GenerateParams gp;
        gp.n_predict = 64;
        gp.sampling.temp = 0.8f;
        gp.sampling.seed = o.seed + static_cast<uint64_t>(step);
        gp.parse_special = true;
        const GenerateResult r = generate(tf, vocab, s.sample_text(vocab, o.sample_prompt), gp);
        std::ofstream f(o.out_dir + "/samples.txt", std::ios::app);
        f << "--- step " << step << "\n" << o.sample_prompt << r.text << "\n";
        log_text(strprintf("\n--- sample at step %lld: %s%s\n", static_cast<long long>(step), o.sample_prompt.c_str(), r.text.c_str()));
    };

    // the compute account: model FLOPs per token (include/llmforge/compute.h) against the measured peak of every process
    const double lora_params = tm.lora() ? static_cast<double>(tm.n_params()) : -1.0;
    double peak = lead ? measure_peak_flops(prec, pool) : 0.0;
    comm.allreduce_sum(&peak, 1);
    peak *= W;
    if (lead)
        log_text(strprintf("llmforge: MFU is reported against %s, the measured peak of %s (a 1024×1024×1024 %s product on %d threads%s)\n",
                           human_flops(peak).c_str(), W > 1 ? "every process together" : "this machine", kernels::precision_name(prec),
                           pool.size(), W > 1 ? strprintf(", × %d processes", W).c_str() : ""));
    const auto wall0 = std::chrono::steady_clock::now();
    const double wall_before = st.seconds;

    PretrainResult res;
    std::string vs_baseline;  // "; unigram baseline 412.30" after each validation perplexity
    if (lead && s.baseline && eval_batches > 0) {
        res.baseline_val_loss = static_cast<float>(s.baseline(*val, eval_batches));
        vs_baseline = strprintf("; %s baseline %.2f", s.baseline_name.c_str(), std::exp(static_cast<double>(res.baseline_val_loss)));
        log_text(strprintf("llmforge: %s baseline on the validation tokens: loss %.4f (perplexity %.2f)\n", s.baseline_name.c_str(),
                     static_cast<double>(res.baseline_val_loss), std::exp(static_cast<double>(res.baseline_val_loss))));
    }
    if (lead && !o.resume && o.sample_every > 0 && s.sample_text) sample(0);  // what the untrained model writes
    Progress prog("training", static_cast<double>(o.steps), "steps", o.progress && lead);
    prog.resume_at(static_cast<double>(st.step));
    std::vector<int32_t> in, tg;
    if (lead && s.validate_at_start && !o.resume && eval_batches > 0) {
        const nlohmann::json v = eval_val();
        res.start_val_loss = static_cast<float>(v.at("val_loss").get<double>());
        if (s.objective) log_text(strprintf("llmforge: before training: %s\n", v.dump().c_str()));
        else log_text(strprintf("llmforge: before training: validation loss %.4f (perplexity %.2f%s)\n", static_cast<double>(res.start_val_loss),
                          std::exp(static_cast<double>(res.start_val_loss)), vs_baseline.c_str()));
        if (s.on_validation) s.on_validation(v, false);
    }
    for (; st.step < o.steps;) {
        const auto t0 = std::chrono::steady_clock::now();
        tm.zero_grad();
        double loss = 0;
        double step_tokens = 0, step_flops = 0;
        nlohmann::json stats = nlohmann::json::object();
        for (int64_t a = 0; a < o.grad_accum; ++a) {
            const int64_t T = train.next(in, tg);  // the global batch; this process trains on rows [R·Bl, (R+1)·Bl)
            const int64_t rows = static_cast<int64_t>(in.size()) / T, Bl = rows / W;  // (a preference batch has 2 rows per pair)
            if (Bl * W != rows) throw_bad_input("a batch of %lld rows does not split over %d processes", static_cast<long long>(rows), W);
            const size_t off = static_cast<size_t>(R * Bl * T);
            step_tokens += static_cast<double>(rows * T);
            step_flops += static_cast<double>(rows * T) *
                          (compute::train_flops_per_token(cfg, T, lora_params) + (s.objective ? s.objective->extra_flops_per_token(T) : 0.0));
            if (s.objective) {
                loss += s.objective->train(tm, in, tg, R * Bl, Bl, T, 1.0f / static_cast<float>(o.grad_accum), stats) / static_cast<double>(o.grad_accum);
            } else {
                loss += tm.forward(in.data() + off, tg.data() + off, Bl, T) / static_cast<double>(o.grad_accum);
                tm.backward(1.0f / static_cast<float>(o.grad_accum));
            }
        }
        double flags[2] = {loss, o.stop && o.stop->load() ? 1.0 : 0.0};  // the caller asked to stop (any rank)
        if (W > 1) {
            comm.allreduce_sum(tm.grad(), tm.n_params());
            const float inv = 1.0f / static_cast<float>(W);
            float* g = tm.grad();
            for (size_t i = 0; i < tm.n_params(); ++i) g[i] *= inv;
            comm.allreduce_sum(flags, 2);
            loss = flags[0] / W;
        }
        if (!std::isfinite(loss))
            throw_runtime("the loss became %s at step %lld; stopping (the last good checkpoint in %s is kept)", std::isnan(loss) ? "NaN" : "infinite",
                          static_cast<long long>(st.step + 1), o.out_dir.c_str());
        const double norm = o.clip > 0 ? tm.clip_grad_norm(o.clip) : tm.grad_norm();
        const float lr = sched.at(st.step);
        opt.step(tm, lr, pool);
        ++st.step;
        st.data = train.position();
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        st.flops += step_flops;
        st.seconds += secs;
        nlohmann::json line = {{"step", st.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", norm}, {"tokens_per_s", step_tokens / secs},
                               {"flops", step_flops}, {"seconds", secs}, {"peak_flops", peak}, {"mfu", step_flops / secs / peak}};
        for (auto it = stats.begin(); it != stats.end(); ++it) line[it.key()] = it.value().get<double>() / static_cast<double>(o.grad_accum);
        res.last_loss = static_cast<float>(loss);
        const bool last = st.step == o.steps;
        if (lead && o.eval_every > 0 && (st.step % o.eval_every == 0 || last) && eval_batches > 0) {
            const nlohmann::json v = eval_val();
            for (auto it = v.begin(); it != v.end(); ++it) line[it.key()] = it.value();
            const double vl = v.at("val_loss").get<double>();
            res.last_val_loss = static_cast<float>(vl);
            if (s.objective) {
                std::string extra;
                for (auto it = v.begin(); it != v.end(); ++it)
                    if (it.key() != "val_loss" && it.value().is_number()) extra += ", " + it.key().substr(4) + " " + fmt(it.value().get<double>());
                log_text(strprintf("\nstep %lld: train loss %.4f, validation loss %.4f%s\n", static_cast<long long>(st.step), loss, vl, extra.c_str()));
            } else {
                log_text(strprintf("%sstep %lld: train loss %.4f, validation loss %.4f (perplexity %.2f%s)\n", "\n", static_cast<long long>(st.step), loss, vl,
                             std::exp(vl), vs_baseline.c_str()));
            }
            if (last && s.on_validation) s.on_validation(v, true);
        }
        if (lead) {
            metrics << line.dump() << "\n";
            metrics.flush();
            if (!metrics) throw_runtime("cannot write '%s': %s", metrics_path.c_str(), std::strerror(errno));
        }
        if (lead && o.sample_every > 0 && s.sample_text && (st.step % o.sample_every == 0 || last)) sample(st.step);
        const bool interrupted = flags[1] > 0;  // any process was signalled: all stop at this step
        if (lead && ((o.save_every > 0 && st.step % o.save_every == 0) || last || interrupted)) {
            save_checkpoint(o.out_dir, tm, vocab, opt, st, hparams);
            write_loss_svg(metrics_path, o.out_dir + "/loss.svg");
        }
        char note[160];
        std::snprintf(note, sizeof(note), "loss %.4f  lr %.2e  %.0f tok/s", loss, static_cast<double>(lr), step_tokens / secs);
        prog.set_note(note);
        prog.update(static_cast<double>(st.step));
        if (interrupted) {
            res.interrupted = true;
            if (lead) log_text(strprintf("\nllmforge: interrupted; checkpoint saved at step %lld (resume with --resume)\n", static_cast<long long>(st.step)));
            break;
        }
    }
    prog.finish();
    res.steps_done = st.step;
    res.flops = st.flops;
    res.seconds = st.seconds;
    res.peak_flops = peak;
    res.mfu = st.seconds > 0 ? st.flops / st.seconds / peak : 0;
    res.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
    if (lead && st.seconds > 0)
        log_text(strprintf("llmforge: compute: %.4g FLOPs in %s of steps%s (%s of wall time this run): %s, MFU %.1f %% of the measured %s\n", st.flops,
                           human_seconds(st.seconds).c_str(), wall_before > 0 ? " (with the resumed run's)" : "", human_seconds(res.wall_seconds).c_str(),
                           human_flops(st.flops / st.seconds).c_str(), 100.0 * res.mfu, human_flops(peak).c_str()));
    if (!res.interrupted && lead) {
        if (!tm.lora() || s.save_merged) {
            Model m = tm.lora() ? tm.merged_model() : tm.to_model(false);
            m.vocab = vocab;
            save_model(m, o.out_dir + "/model.gguf");
        }
        if (tm.lora()) {
            Model a = tm.to_model(false);
            a.vocab = vocab;
            save_lora_adapter(a, o.out_dir + "/adapter.gguf");
        }
    }
    return res;
}

}  // namespace llmforge
