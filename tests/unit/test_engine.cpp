// Continuous batching: the batch-invariant products, Transformer::decode against eval() alone, and the serving engine
// (greedy output under load equals a lone request's; stop strings; n choices; cancellation; the bounded queue).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <random>
#include <thread>

#include <unistd.h>

#include "core/kernels.h"
#include "llmforge/engine.h"
#include "llmforge/error.h"
#include "llmforge/model.h"
#include "llmforge/transformer.h"

using namespace llmforge;

namespace {
bool same_bits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

int32_t argmax(const float* l, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; ++i)
        if (l[i] > l[best]) best = i;
    return static_cast<int32_t>(best);
}
}  // namespace

// Each output of matmul_rowwise is bit for bit the same whatever n is (and close to the exact product).
TEST(Batching, RowwiseProductIsBatchInvariant) {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0, 1);
    ThreadPool pool(2);
    int checked = 0;
    for (const char* isa : {"scalar", "avx2", "avx512"}) {
        if (!kernels::set_isa(isa)) continue;
        for (DType t : {DType::F32, DType::F16, DType::BF16})
            for (auto [rows, cols] : {std::pair<int, int>{7, 33}, {40, 256}, {13, 1000}})
                for (int n : {2, 3, 4, 5, 9, 17}) {
                    std::vector<float> w(static_cast<size_t>(rows * cols)), x(static_cast<size_t>(n * cols));
                    for (auto& v : w) v = nd(rng);
                    for (auto& v : x) v = nd(rng);
                    std::vector<uint8_t> wb(w.size() * dtype_size(t));
                    convert_from_f32(t, w.data(), wb.data(), w.size());
                    std::vector<float> wr(w.size());
                    convert_to_f32(t, wb.data(), wr.data(), w.size());
                    std::vector<float> y(static_cast<size_t>(n * rows)), y1(static_cast<size_t>(rows));
                    kernels::matmul_rowwise(t, wb.data(), x.data(), y.data(), n, rows, cols, pool);
                    for (int i = 0; i < n; ++i) {
                        kernels::matmul_rowwise(t, wb.data(), x.data() + i * cols, y1.data(), 1, rows, cols, pool);
                        ASSERT_TRUE(same_bits(y1.data(), y.data() + i * rows, static_cast<size_t>(rows)))
                            << isa << " " << dtype_name(t) << " " << rows << "x" << cols << " n=" << n << " row " << i;
                        for (int r = 0; r < rows; ++r) {
                            double ref = 0, mag = 0;
                            for (int c = 0; c < cols; ++c) {
                                // f16 (bf16) weights multiply the activations rounded to f16 (bf16): llama.cpp's vec_dot_type
                                const float xc = t == DType::F16    ? f16_to_f32(f32_to_f16(x[i * cols + c]))
                                                 : t == DType::BF16 ? bf16_to_f32(f32_to_bf16(x[i * cols + c]))
                                                                    : x[i * cols + c];
                                ref += static_cast<double>(wr[r * cols + c]) * xc;
                                mag += std::fabs(static_cast<double>(wr[r * cols + c]) * xc);
                            }
                            ASSERT_NEAR(y1[r], ref, 1e-5 * mag + 1e-6);
                        }
                        ++checked;
                    }
                }
    }
    EXPECT_GT(checked, 0);
    kernels::set_isa("avx512") || kernels::set_isa("avx2") || kernels::set_isa("scalar");
}

// Four sequences decoded together — joining and leaving at different steps — give the logits each gets decoded alone.
TEST(Batching, DecodeTogetherEqualsDecodeAloneBitForBit) {
    ThreadPool pool(2);
    for (const char* preset_name : {"llama-tiny", "gpt2-tiny"})
        for (DType wt : {DType::F32, DType::F16})
            for (DType kv : {DType::F16, DType::F32}) {
                const Model m = init_random(preset(preset_name), wt, 7);
                const int64_t V = m.config.n_vocab;
                const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 200}, {1, 17}, {1, 300, 301, 302, 303, 4, 5}, {1, 42, 43}};
                const int steps = 12;
                // alone: greedy continuation and the logits of every step
                std::vector<std::vector<int32_t>> toks(4);
                std::vector<std::vector<float>> alone(4);
                for (int s = 0; s < 4; ++s) {
                    Transformer tf(m, pool, 64, 512, kv);
                    std::vector<float> l = tf.eval(prompts[s]);
                    const int32_t seq0 = 0;
                    for (int k = 0; k < steps; ++k) {
                        const int32_t t = argmax(l.data(), V);
                        toks[s].push_back(t);
                        tf.decode(&seq0, &t, 1, l.data());
                        alone[s].insert(alone[s].end(), l.begin(), l.end());
                    }
                    // decoding is the computation eval() does, its products summed in another order
                    Transformer tf2(m, pool, 64, 512, kv);
                    tf2.eval(prompts[s]);
                    const std::vector<float>& le = tf2.eval(&toks[s][0], 1);
                    for (int64_t v = 0; v < V; v += 7) ASSERT_NEAR(le[v], alone[s][v], 2e-3 * (1 + std::fabs(le[v])));
                }
                // together: sequence s joins at step s and sequence 1 leaves after 6 steps
                Transformer tf(m, pool, 64, 512, kv, 4);
                std::vector<int> done(4, 0);
                for (int round = 0; round < steps + 4; ++round) {
                    if (round < 4) {
                        tf.set_seq(round);
                        tf.eval(prompts[round]);
                    }
                    std::vector<int32_t> seqs, in;
                    for (int s = 0; s < 4 && s <= round; ++s)
                        if (done[s] < steps && !(s == 1 && done[s] >= 6)) {
                            seqs.push_back(s);
                            in.push_back(toks[s][done[s]]);
                        }
                    if (seqs.empty()) continue;
                    std::vector<float> out(seqs.size() * V);
                    tf.decode(seqs.data(), in.data(), static_cast<int64_t>(seqs.size()), out.data());
                    for (size_t i = 0; i < seqs.size(); ++i) {
                        const int s = seqs[i];
                        ASSERT_TRUE(same_bits(out.data() + i * V, alone[s].data() + done[s] * V, static_cast<size_t>(V)))
                            << preset_name << " " << dtype_name(wt) << " kv " << dtype_name(kv) << " seq " << s << " step " << done[s];
                        ++done[s];
                    }
                }
                EXPECT_EQ(tf.n_past_of(0), static_cast<int64_t>(prompts[0].size()) + steps);
                EXPECT_EQ(tf.n_past_of(1), static_cast<int64_t>(prompts[1].size()) + 6);
            }
}

// A prompt fed through decode() in chunks of any size, alone or beside other sequences' rows, gives the same bits:
// what the engine's chunked prefill relies on.
TEST(Batching, PromptChunksDoNotChangeResults) {
    ThreadPool pool(2);
    for (const char* preset_name : {"llama-tiny", "gpt2-tiny"})
        for (DType wt : {DType::F32, DType::F16}) {
            const Model m = init_random(preset(preset_name), wt, 3);
            const int64_t V = m.config.n_vocab;
            const std::vector<int32_t> prompt = {1, 50, 51, 52, 7, 8, 9, 10, 300, 301, 4};
            const std::vector<int32_t> other = {1, 99, 98};
            // whole: the prompt in one call, logits of every row
            Transformer a(m, pool, 64, 64, DType::F16, 2);
            std::vector<int32_t> seq0(prompt.size(), 0);
            std::vector<float> whole(prompt.size() * V);
            a.decode(seq0.data(), prompt.data(), static_cast<int64_t>(prompt.size()), whole.data());
            // chunks of 1, 4 and 6 with another sequence's rows in front; only the last row's logits wanted
            for (size_t chunk : {size_t{1}, size_t{4}, size_t{6}}) {
                Transformer b(m, pool, 64, 64, DType::F16, 2);
                size_t done = 0, other_done = 0;
                std::vector<float> out(2 * V);
                while (done < prompt.size()) {
                    std::vector<int32_t> seqs, toks;
                    std::vector<uint8_t> want;
                    if (other_done < other.size()) {
                        seqs.push_back(1);
                        toks.push_back(other[other_done++]);
                        want.push_back(0);
                    }
                    const size_t take = std::min(chunk, prompt.size() - done);
                    for (size_t t = 0; t < take; ++t) {
                        seqs.push_back(0);
                        toks.push_back(prompt[done + t]);
                        want.push_back(t + 1 == take ? 1 : 0);
                    }
                    b.decode(seqs.data(), toks.data(), static_cast<int64_t>(seqs.size()), out.data(), want.data());
                    done += take;
                    ASSERT_TRUE(same_bits(out.data(), whole.data() + (done - 1) * V, static_cast<size_t>(V)))
                        << preset_name << " " << dtype_name(wt) << " chunk " << chunk << " row " << done - 1;
                }
                EXPECT_EQ(b.n_past_of(0), static_cast<int64_t>(prompt.size()));
                EXPECT_EQ(b.n_past_of(1), static_cast<int64_t>(std::min(other.size(), other_done)));
            }
        }
}

// The largest |a − b| over the logits and the largest |a| (what a tolerance is relative to).
std::pair<double, double> max_diff_and_magnitude(const std::vector<float>& a, const std::vector<float>& b) {
    double diff = 0, mag = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
        mag = std::max(mag, static_cast<double>(std::fabs(a[i])));
    }
    return {diff, mag};
}

// Decoding the prompt token by token gives, at every position, the bits of the whole prompt in one pass.
void expect_steps_equal_whole(const Model& m, ThreadPool& pool, const std::vector<int32_t>& prompt, const std::string& what) {
    const int64_t V = m.config.n_vocab, T = static_cast<int64_t>(prompt.size());
    Transformer whole(m, pool, 64, 64, DType::F16, 1), steps(m, pool, 64, 64, DType::F16, 1);
    std::vector<int32_t> seq0(prompt.size(), 0);
    std::vector<float> all(static_cast<size_t>(T * V)), one(static_cast<size_t>(V));
    whole.decode(seq0.data(), prompt.data(), T, all.data());
    for (int64_t t = 0; t < T; ++t) {
        steps.decode(seq0.data(), prompt.data() + t, 1, one.data());
        ASSERT_TRUE(same_bits(one.data(), all.data() + t * V, static_cast<size_t>(V))) << what << " token " << t;
    }
}

// A model whose f32 matrices are repacked into panels (as --no-mmap loads them): the same logits as the row-major model
// up to summation order, decoding token by token gives the bits of the whole prompt in one step, and such a model
// refuses to be saved (its bytes are no longer the file's layout).
TEST(Batching, RepackedModelMatchesRowMajor) {
    ThreadPool pool(2);
    if (!kernels::has_panel_kernels()) GTEST_SKIP() << "no panel kernels on this CPU: repack_for_cpu leaves models row-major";
    for (const char* preset_name : {"llama-tiny", "gpt2-tiny"}) {
        const Model plain = init_random(preset(preset_name), DType::F32, 4);
        Model packed = init_random(preset(preset_name), DType::F32, 4);
        EXPECT_GT(repack_for_cpu(packed, pool), 0) << preset_name;
        int n_packed = 0;
        for (const Tensor& t : packed.tensors) n_packed += t.layout == Tensor::Layout::Panels;
        EXPECT_GT(n_packed, 0);
        EXPECT_EQ(packed.get("token_embd.weight").layout, Tensor::Layout::Rows);  // rows are looked up: never packed
        const std::vector<int32_t> prompt = {1, 50, 51, 52, 7, 8, 9, 10, 300, 301, 4, 17, 90};
        const int64_t T = static_cast<int64_t>(prompt.size());
        Transformer a(plain, pool, 64, 64, DType::F32), b(packed, pool, 64, 64, DType::F32);
        const std::vector<float> la = a.eval(prompt.data(), T, true);
        const std::vector<float> lb = b.eval(prompt.data(), T, true);
        const auto [diff, mag] = max_diff_and_magnitude(la, lb);
        EXPECT_LE(diff, 1e-5 * mag) << preset_name;
        expect_steps_equal_whole(packed, pool, prompt, preset_name);
        EXPECT_THROW(save_model(packed, "/tmp/llmforge-never-written.gguf"), Error);
    }
}

// f16 and f32 matrices into panels: from a mapped GGUF into memory of its own (the file's pages released from the
// mapping), and in place for a model in memory. The logits equal the row-major model's up to summation order (and the
// f16 activations' rounding), token-by-token decoding gives the bits of the whole prompt in one pass, ggml arithmetic's
// loading (float_panels = false) keeps them row-major, and the file is unchanged.
TEST(Batching, MappedPanelsMatchRowMajor) {
    ThreadPool pool(2);
    if (!kernels::has_f16_panel_kernels() || !kernels::has_panel_kernels()) GTEST_SKIP() << "no panel kernels on this CPU: repack_for_cpu leaves models row-major";
    for (const DType dt : {DType::F16, DType::F32}) {
        const std::string path = "/tmp/llmforge-test-panels-" + std::to_string(::getpid()) + ".gguf";
        save_model(init_random(preset("llama-tiny"), dt, 4), path);
        const std::vector<uint8_t> file_before = [&] {
            std::ifstream in(path, std::ios::binary);
            return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
        }();
        LoadOptions rows_o;
        const Model plain = load_model(path, rows_o);
        LoadOptions mapped_o;
        mapped_o.repack = true;
        LoadOptions memory_o = mapped_o;
        memory_o.use_mmap = false;
        LoadOptions ggml_o = mapped_o;
        ggml_o.float_panels = false;
        const Model ggml = load_model(path, ggml_o);
        for (const Tensor& t : ggml.tensors) EXPECT_EQ(t.layout, Tensor::Layout::Rows) << t.name;
        for (const LoadOptions& o : {mapped_o, memory_o}) {
            const Model packed = load_model(path, o);
            int n_packed = 0;
            for (const Tensor& t : packed.tensors) {
                n_packed += t.layout == Tensor::Layout::Panels;
                const bool product = t.name.rfind("blk.", 0) == 0 && t.shape.size() == 2;
                if (product) {
                    EXPECT_EQ(t.layout, t.shape[0] % 32 == 0 ? Tensor::Layout::Panels : Tensor::Layout::Rows) << t.name;
                    EXPECT_EQ(packed.in_mapped_file(t.data, 1), o.use_mmap && t.layout == Tensor::Layout::Rows) << t.name;
                }
            }
            EXPECT_GE(n_packed, 4 * packed.config.n_layer) << o.use_mmap;
            EXPECT_EQ(packed.get("token_embd.weight").layout, Tensor::Layout::Rows);
            const std::vector<int32_t> prompt = {1, 50, 51, 52, 7, 8, 9, 10, 300, 301, 4, 17, 90};
            const int64_t T = static_cast<int64_t>(prompt.size());
            Transformer a(plain, pool, 64, 64, DType::F32), b(packed, pool, 64, 64, DType::F32);
            const std::vector<float> la = a.eval(prompt.data(), T, true), lb = b.eval(prompt.data(), T, true);
            const auto [diff, mag] = max_diff_and_magnitude(la, lb);
            EXPECT_LE(diff, (dt == DType::F16 ? 1e-3 : 1e-5) * mag) << o.use_mmap;  // (f16: the row-major GEMM keeps the activations in f32)
            EXPECT_GT(mag, 0.0);
            expect_steps_equal_whole(packed, pool, prompt, o.use_mmap ? "mapped" : "in memory");
            EXPECT_THROW(save_model(packed, "/tmp/llmforge-never-written.gguf"), Error);
            Transformer g(packed, pool, 64, 64, DType::F16, 1, Numerics::Ggml);
            EXPECT_THROW(g.eval(prompt.data(), T, true), Error);  // panels do not sum in ggml's order
        }
        std::ifstream in(path, std::ios::binary);
        EXPECT_EQ(std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {}), file_before);
        std::remove(path.c_str());
    }
}

TEST(Batching, DecodeRejectsBadSteps) {
    ThreadPool pool(1);
    const Model m = init_random(preset("llama-tiny"), DType::F32, 1);
    Transformer tf(m, pool, 8, 512, DType::F16, 2);
    std::vector<float> out(2 * m.config.n_vocab);
    const int32_t twice[2] = {0, 0}, toks[2] = {3, 4}, bad_tok[1] = {100000}, bad_seq[1] = {5};
    EXPECT_THROW(tf.decode(twice, bad_tok, 1, out.data()), Error);
    EXPECT_THROW(tf.decode(bad_seq, toks, 1, out.data()), Error);
    tf.set_seq(1);
    tf.eval(std::vector<int32_t>(8, 3));
    const int32_t one[1] = {1};
    EXPECT_THROW(tf.decode(one, toks, 1, out.data()), Error);  // its context is full
}

namespace {
// Collects a job's events; wait() blocks until on_done.
struct Collector {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::vector<std::string> text;
    std::vector<std::vector<int32_t>> ids;
    std::vector<std::string> finish;
    std::vector<float> embedding;
    int64_t prompt_tokens = -1, completion_tokens = -1;
    std::string error;
    JobPtr make(int n) {
        text.assign(static_cast<size_t>(n), "");
        ids.assign(static_cast<size_t>(n), {});
        finish.assign(static_cast<size_t>(n), "");
        auto j = std::make_shared<Job>();
        j->n = n;
        j->on_token = [this](const TokenEvent& e) {
            std::lock_guard<std::mutex> lk(mu);
            text[static_cast<size_t>(e.choice)] += e.text;
            if (e.id >= 0) ids[static_cast<size_t>(e.choice)].push_back(e.id);
        };
        j->on_finish = [this](int c, const std::string& r) {
            std::lock_guard<std::mutex> lk(mu);
            finish[static_cast<size_t>(c)] = r;
        };
        j->on_embedding = [this](const std::vector<float>& e) { embedding = e; };
        j->on_done = [this](int64_t p, int64_t c, const std::string& err) {
            std::lock_guard<std::mutex> lk(mu);
            prompt_tokens = p;
            completion_tokens = c;
            error = err;
            done = true;
            cv.notify_all();
        };
        return j;
    }
    void wait() {
        std::unique_lock<std::mutex> lk(mu);
        ASSERT_TRUE(cv.wait_for(lk, std::chrono::seconds(60), [&] { return done; })) << "the job never finished";
    }
};

JobPtr greedy(Collector& c, std::vector<int32_t> prompt, int max_tokens) {
    JobPtr j = c.make(1);
    j->prompt = std::move(prompt);
    j->max_tokens = max_tokens;
    j->sampling.temp = 0;
    j->ignore_eos = true;
    return j;
}
}  // namespace

TEST(Engine, GreedyUnderLoadEqualsLoneRequests) {
    ThreadPool pool(2);
    const Model m = init_random(preset("llama-tiny"), DType::F16, 3);
    EngineOptions opt;
    opt.n_slots = 4;
    opt.n_ctx = 96;
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < 10; ++i) {
        prompts.push_back({1, 10 + i, 20 + 3 * i, 7});
        for (int k = 0; k < 2 * i; ++k) prompts.back().push_back(40 + 5 * k + i);  // 4 to 22 tokens
    }
    std::vector<std::vector<int32_t>> lone(prompts.size());
    {
        Engine e(m, pool, opt);
        for (size_t i = 0; i < prompts.size(); ++i) {
            Collector c;
            ASSERT_TRUE(e.submit(greedy(c, prompts[i], 20 + static_cast<int>(i))));
            c.wait();
            lone[i] = c.ids[0];
            EXPECT_EQ(c.finish[0], "length");
            EXPECT_EQ(c.completion_tokens, 20 + static_cast<int64_t>(i));
            EXPECT_EQ(c.prompt_tokens, static_cast<int64_t>(prompts[i].size()));
        }
        EXPECT_EQ(e.stats().slots_busy, 0);
    }
    // under load, with prompts cut into chunks of 3 that ride along with the others' decoding
    opt.prefill_chunk = 3;
    Engine e(m, pool, opt);
    std::vector<Collector> cs(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) ASSERT_TRUE(e.submit(greedy(cs[i], prompts[i], 20 + static_cast<int>(i))));
    for (size_t i = 0; i < prompts.size(); ++i) {
        cs[i].wait();
        EXPECT_EQ(cs[i].ids[0], lone[i]) << "request " << i << " " << cs[i].error << " " << cs[i].finish[0];
    }
    const EngineStats st = e.stats();
    EXPECT_EQ(st.slots_busy, 0);
    EXPECT_EQ(st.kv_cells_used, 0);
    EXPECT_EQ(st.jobs_done, prompts.size());
    EXPECT_LT(st.decode_steps, 10u * 25u);  // steps were shared
}

TEST(Engine, StopStringsChoicesCancelAndQueue) {
    ThreadPool pool(2);
    const Model m = init_random(preset("llama-tiny"), DType::F32, 5);
    const Vocab& vocab = *m.vocab;
    EngineOptions opt;
    opt.n_slots = 3;
    opt.n_ctx = 64;
    opt.max_queue = 3;
    Engine e(m, pool, opt);
    // the greedy text without a stop string, then with a stop string taken from its middle
    Collector a;
    ASSERT_TRUE(e.submit(greedy(a, {1, 65, 66, 67}, 30)));
    a.wait();
    const std::string full = a.text[0];
    ASSERT_EQ(full, vocab.decode(a.ids[0]));
    ASSERT_GE(full.size(), 6u);
    const std::string stop = full.substr(full.size() / 2, 3);
    Collector b;
    JobPtr jb = greedy(b, {1, 65, 66, 67}, 30);
    jb->stop = {stop, "\x01never"};
    ASSERT_TRUE(e.submit(jb));
    b.wait();
    EXPECT_EQ(b.finish[0], "stop");
    EXPECT_EQ(b.text[0], full.substr(0, full.find(stop)));
    // n = 3 sampled choices: three answers, reproducible with the seed
    auto sampled = [&](Collector& c) {
        JobPtr j = c.make(3);
        j->prompt = {1, 70, 71};
        j->max_tokens = 12;
        j->sampling.temp = 1.0f;
        j->sampling.top_k = 0;
        j->sampling.min_p = 0;
        j->sampling.top_p = 1;
        j->sampling.seed = 99;
        j->ignore_eos = true;
        j->logprobs = true;
        j->top_logprobs = 3;
        return j;
    };
    Collector c1, c2;
    ASSERT_TRUE(e.submit(sampled(c1)));
    c1.wait();
    ASSERT_TRUE(e.submit(sampled(c2)));
    c2.wait();
    EXPECT_EQ(c1.ids, c2.ids);
    EXPECT_NE(c1.ids[0], c1.ids[1]);
    EXPECT_EQ(c1.completion_tokens, 36);
    // n larger than the slots, a prompt longer than a slot's context, an empty prompt: refused
    Collector bad;
    JobPtr jn = greedy(bad, {1, 2}, 3);
    jn->n = 4;
    EXPECT_THROW(e.submit(jn), Error);
    EXPECT_THROW(e.submit(greedy(bad, std::vector<int32_t>(64, 3), 3)), Error);
    EXPECT_THROW(e.submit(greedy(bad, {}, 3)), Error);
    // The queue holds at most 3 waiting jobs; cancelled jobs — running or queued — free everything. A job whose
    // callback blocks holds the engine thread, so that the queue fills deterministically.
    std::mutex gate_mu;
    std::condition_variable gate_cv;
    bool inside = false, open = false;
    Collector blocker;
    JobPtr jblock = greedy(blocker, {1, 80}, 50);
    auto collect = jblock->on_token;
    jblock->on_token = [&, collect](const TokenEvent& ev) {
        {
            std::unique_lock<std::mutex> lk(gate_mu);
            inside = true;
            gate_cv.notify_all();
            gate_cv.wait(lk, [&] { return open; });
        }
        collect(ev);
    };
    ASSERT_TRUE(e.submit(jblock));
    {
        std::unique_lock<std::mutex> lk(gate_mu);
        ASSERT_TRUE(gate_cv.wait_for(lk, std::chrono::seconds(30), [&] { return inside; }));
    }
    std::vector<Collector> waiting(4);
    std::vector<JobPtr> queued;
    int accepted = 0;
    for (auto& c : waiting) {
        queued.push_back(greedy(c, {1, 81}, 2));
        accepted += e.submit(queued.back()) ? 1 : 0;
    }
    EXPECT_EQ(accepted, 3);  // the fourth finds the queue full
    EXPECT_EQ(e.stats().queued, 3);
    jblock->cancelled = true;
    for (int i = 0; i < 3; ++i) queued[static_cast<size_t>(i)]->cancelled = true;
    {
        std::lock_guard<std::mutex> lk(gate_mu);
        open = true;
    }
    gate_cv.notify_all();
    blocker.wait();
    EXPECT_EQ(blocker.finish[0], "cancelled");
    EXPECT_EQ(blocker.ids[0].size(), 1u);  // the token it was blocked in, then no more
    for (int i = 0; i < 3; ++i) {
        waiting[static_cast<size_t>(i)].wait();
        EXPECT_EQ(waiting[static_cast<size_t>(i)].finish[0], "cancelled");
        EXPECT_EQ(waiting[static_cast<size_t>(i)].completion_tokens, 0);
    }
    const EngineStats st = e.stats();
    EXPECT_EQ(st.slots_busy, 0);
    EXPECT_EQ(st.queued, 0);
    EXPECT_EQ(st.kv_cells_used, 0);
    EXPECT_EQ(st.jobs_cancelled, 4u);
}

TEST(Engine, EmbeddingsAreNormalisedMeanOfFinalHiddenStates) {
    ThreadPool pool(2);
    const Model m = init_random(preset("llama-tiny"), DType::F32, 9);
    const std::vector<int32_t> prompt = {1, 100, 101, 102, 103};
    Transformer tf(m, pool, 64);
    const std::vector<float> h = tf.embed(prompt.data(), 5);
    const int64_t C = m.config.n_embd;
    std::vector<double> mean(static_cast<size_t>(C), 0.0);
    for (int64_t i = 0; i < 5; ++i)
        for (int64_t c = 0; c < C; ++c) mean[c] += h[i * C + c] / 5.0;
    double norm = 0;
    for (double v : mean) norm += v * v;
    norm = std::sqrt(norm);
    // the hidden states are those behind the logits: the output matrix applied to the last row gives eval()'s logits
    Transformer tf2(m, pool, 64);
    const std::vector<float> logits = tf2.eval(prompt);
    const Tensor& out = m.get("output.weight");
    std::vector<float> w(static_cast<size_t>(out.numel()));
    convert_to_f32(out.dtype, out.data, w.data(), w.size());
    for (int64_t r = 0; r < m.config.n_vocab; r += 37) {
        double s = 0;
        for (int64_t c = 0; c < C; ++c) s += static_cast<double>(w[r * C + c]) * h[4 * C + c];
        EXPECT_NEAR(s, logits[r], 1e-4);
    }
    EngineOptions opt;
    opt.n_slots = 1;
    opt.n_ctx = 64;
    Engine e(m, pool, opt);
    Collector c;
    JobPtr j = c.make(1);
    j->prompt = prompt;
    j->embedding = true;
    ASSERT_TRUE(e.submit(j));
    c.wait();
    ASSERT_EQ(c.embedding.size(), static_cast<size_t>(C));
    double n2 = 0;
    for (int64_t i = 0; i < C; ++i) {
        EXPECT_NEAR(c.embedding[i], mean[i] / norm, 1e-6);
        n2 += static_cast<double>(c.embedding[i]) * c.embedding[i];
    }
    EXPECT_NEAR(n2, 1.0, 1e-5);
    EXPECT_EQ(c.prompt_tokens, 5);
}

// A lazy grammar (tool_choice "auto"): the answer is free until the trigger appears, then follows the grammar from
// the trigger on. Trigger "e" on a random model: some free text, the first "e", at most three more characters and
// "!", the end.
TEST(Engine, LazyGrammarAppliesFromItsTrigger) {
    ThreadPool pool(2);
    const Model m = init_random(preset("llama-tiny"), DType::F32, 5);
    EngineOptions opt;
    opt.n_slots = 4;
    opt.n_ctx = 200;
    Engine e(m, pool, opt);
    auto g = std::make_shared<const CompiledGrammar>(Grammar::parse("root ::= \"e\" [^!]{0,3} \"!\""), GrammarVocab::from(*m.vocab));
    int triggered = 0, followed = 0;
    for (uint64_t seed = 1; seed <= 6; ++seed) {
        Collector c;
        JobPtr j = c.make(2);
        j->prompt = m.vocab->encode("Once upon a time", true, false);
        j->max_tokens = 150;
        j->sampling.temp = 1;
        j->sampling.seed = seed;
        j->ignore_eos = true;
        j->grammar = g;
        j->grammar_trigger = "e";
        ASSERT_TRUE(e.submit(j));
        c.wait();
        for (int k = 0; k < 2; ++k) {
            const std::string& t = c.text[static_cast<size_t>(k)];
            const size_t at = t.find('e');
            if (at == std::string::npos) {
                EXPECT_EQ(c.finish[static_cast<size_t>(k)], "length") << t;  // never triggered: free to the end
                continue;
            }
            ++triggered;
            // from the first "e": the grammar's sentence, and the answer ends with it
            const std::string rest = t.substr(at);
            EXPECT_EQ(c.finish[static_cast<size_t>(k)], "stop") << t;
            EXPECT_EQ(rest.back(), '!') << t;
            EXPECT_EQ(rest.find('!'), rest.size() - 1) << t;
            GrammarMatcher gm(Grammar::parse("root ::= \"e\" [^!]{0,3} \"!\""));
            EXPECT_TRUE(gm.accept(rest) && gm.can_end()) << t;
            ++followed;
        }
    }
    EXPECT_GE(triggered, 6);
    EXPECT_EQ(followed, triggered);
}
