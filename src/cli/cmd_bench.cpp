// llmforge bench -m MODEL [-p 128] [-n 64] [-r 5] [-t T]: prompt-processing and generation speed, measured as
// llama-bench measures them (pp: one batch of p tokens into an empty cache; tg: n tokens decoded one at a time).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "cli/common.h"
#include "core/kernels.h"
#include "core/threadpool.h"
#include "llmforge/error.h"
#include "llmforge/transformer.h"

namespace llmforge::cli {

void add_bench(CLI::App& app) {
    auto* cmd = app.add_subcommand("bench", "Measure prompt processing (pp) and generation (tg) speed, like llama-bench (and with its flags: -p, -n, -r)");
    struct Opts { std::string model;
        CacheTypeOptions cache; int64_t pp = 128, tg = 64, reps = 5; int threads = ThreadPool::default_threads(); bool json = false, no_mmap = false;
        std::string numerics = "fast"; };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model file")->required();
    cmd->add_option("-p,--n-prompt", o->pp, "prompt tokens (0: skip)")->check(at_least(0, " (0: skip)"));
    cmd->add_option("-n,--n-gen", o->tg, "generated tokens (0: skip)")->check(at_least(0, " (0: skip)"));
    cmd->add_option("-r,--repetitions", o->reps, "repetitions of each test")->check(at_least(1));
    add_threads_option(cmd, o->threads);
    add_cache_type_options(cmd, o->cache);
    cmd->add_flag("--json", o->json, "print one JSON object");
    cmd->add_flag("--no-mmap", o->no_mmap, "read the weights into memory instead of mapping the file");
    cmd->add_option("--numerics", o->numerics, "fast; batch-invariant (the mode generate --draft runs in: what a verification pass "
                                               "of -p rows costs there); ggml (llama.cpp's rounding)")
        ->capture_default_str()->check(CLI::IsMember({"fast", "batch-invariant", "ggml"}));
    cmd->callback([o] {
        Model m = load_for_cli(o->model, "", false, !o->no_mmap, repack_for(parse_numerics(o->numerics)));
        ThreadPool pool(o->threads);
        const int64_t ctx = std::max<int64_t>(o->pp + o->tg, 16);
        Transformer tf(m, pool, ctx, std::max<int64_t>(o->pp, 1), parse_cache_types(o->cache), 1, parse_numerics(o->numerics));
        std::mt19937 rng(42);
        std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(m.config.n_vocab - 1));
        using clock = std::chrono::steady_clock;
        // column widths (in characters): the model path as long as it is, t/s as wide as "123456.78 ± 12345.67"
        const int model_w = std::max<int>(5, static_cast<int>(o->model.size())), ts_w = 20;
        auto run = [&](const char* name, int64_t n, bool batched) {
            if (n <= 0) return nlohmann::json();
            std::vector<double> rates;
            for (int64_t r = -1; r < o->reps; ++r) {  // r = -1: warm-up, not counted
                tf.reset();
                std::vector<int32_t> ids(static_cast<size_t>(n));
                for (auto& t : ids) t = tok(rng);
                const auto t0 = clock::now();
                if (batched) tf.eval(ids);
                else for (int32_t id : ids) tf.eval(&id, 1);
                const double s = std::chrono::duration<double>(clock::now() - t0).count();
                if (r >= 0) rates.push_back(static_cast<double>(n) / s);
            }
            double mean = 0, var = 0;
            for (double x : rates) mean += x;
            mean /= static_cast<double>(rates.size());
            for (double x : rates) var += (x - mean) * (x - mean);
            const double sd = rates.size() > 1 ? std::sqrt(var / static_cast<double>(rates.size() - 1)) : 0;
            const std::string test = std::string(name) + std::to_string(n);
            if (!o->json) {
                char ts[64];
                std::snprintf(ts, sizeof(ts), "%.2f ± %.2f", mean, sd);
                std::printf("| %-*s | %-6s | %7d | %-8s | %*s |\n", model_w, o->model.c_str(), dtype_name(m.get("blk.0.ffn_up.weight").dtype),
                            o->threads, test.c_str(), ts_w + 1, ts);  // + 1: "±" is two bytes, one column
            }
            return nlohmann::json{{"test", test}, {"tokens_per_s", mean}, {"stddev", sd}, {"samples", rates}};
        };
        if (!o->json) {
            std::printf("| %-*s | %-6s | %7s | %-8s | %*s |\n", model_w, "model", "type", "threads", "test", ts_w, "t/s");
            std::printf("|%s|%s|%s|%s|%s|\n", std::string(static_cast<size_t>(model_w) + 2, '-').c_str(), std::string(8, '-').c_str(),
                        std::string(9, '-').c_str(), std::string(10, '-').c_str(), std::string(static_cast<size_t>(ts_w) + 2, '-').c_str());
        }
        nlohmann::json res = {{"model", o->model}, {"threads", o->threads}, {"isa", kernels::isa_name()}, {"numerics", o->numerics}, {"results", nlohmann::json::array()}};
        if (auto j = run("pp", o->pp, true); !j.is_null()) res["results"].push_back(j);
        if (auto j = run("tg", o->tg, false); !j.is_null()) res["results"].push_back(j);
        if (o->json) std::printf("%s\n", res.dump().c_str());
    });
}

}  // namespace llmforge::cli
