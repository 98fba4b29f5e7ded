// llmforge: one binary, one subcommand per pipeline stage (DESIGN.md §3).
#include <cstdio>
#include <random>
#include <exception>
#include <new>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/mmap_file.h"

namespace llmforge::cli {

void add_sampling_options(CLI::App* cmd, SamplerParams& s, int64_t& seed) {
    cmd->add_option("--temp", s.temp, "temperature (0: greedy)");
    cmd->add_option("--top-k", s.top_k, "keep the k most likely tokens (0: off)");
    cmd->add_option("--top-p", s.top_p, "nucleus sampling mass (1: off)");
    cmd->add_option("--min-p", s.min_p, "drop tokens below min-p × the top probability (0: off)");
    cmd->add_option("--repeat-penalty", s.repeat_penalty, "penalty for repeated tokens (1: off)");
    cmd->add_option("--repeat-last-n", s.repeat_last_n, "how many recent tokens the penalty considers (-1: all)");
    cmd->add_option("-s,--seed", seed, "random seed (-1: random)");
}

uint64_t seed_or_random(int64_t seed) { return seed < 0 ? std::random_device{}() : static_cast<uint64_t>(seed); }

std::string human_bytes(double b) {
    const char* u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (b >= 1024 && i < 4) { b /= 1024; ++i; }
    char buf[32];
    std::snprintf(buf, sizeof(buf), i ? "%.2f %s" : "%.0f %s", b, u[i]);
    return buf;
}

DType parse_cache_type(const std::string& s) {
    const DType t = dtype_from_name(s);
    if (t != DType::F16 && t != DType::F32) throw_bad_input("--cache-type must be f16 or f32, not '%s'", s.c_str());
    return t;
}

std::string human_count(double n) {
    char buf[32];
    if (n >= 1e9) std::snprintf(buf, sizeof(buf), "%.2fB", n / 1e9);
    else if (n >= 1e6) std::snprintf(buf, sizeof(buf), "%.2fM", n / 1e6);
    else if (n >= 1e3) std::snprintf(buf, sizeof(buf), "%.2fK", n / 1e3);
    else std::snprintf(buf, sizeof(buf), "%.0f", n);
    return buf;
}

Model load_for_cli(const std::string& path, const std::string& tokenizer, bool need_tokenizer, bool use_mmap, bool repack) {
    LoadOptions o;
    o.use_mmap = use_mmap;
    o.repack = repack;
    o.tokenizer_path = tokenizer;
    o.require_tokenizer = need_tokenizer;
    if (!tokenizer.empty() && !file_exists(tokenizer)) throw_bad_input("tokenizer file '%s' does not exist", tokenizer.c_str());
    Model m = load_model(path, o);
    std::fprintf(stderr, "llmforge: loaded %s (%s, %s parameters, %s mapped, %s in memory)\n", path.c_str(), arch_name(m.config.arch),
                 human_count(static_cast<double>(m.config.n_params())).c_str(), human_bytes(static_cast<double>(m.mapped_bytes)).c_str(),
                 human_bytes(static_cast<double>(m.owned_bytes)).c_str());
    int packed = 0;
    for (const Tensor& t : m.tensors) packed += t.layout == Tensor::Layout::Panels;
    if (packed > 0) std::fprintf(stderr, "llmforge: %d f32 matrices repacked in memory for the CPU's matrix products\n", packed);
    return m;
}

}  // namespace llmforge::cli

int main(int argc, char** argv) {
    CLI::App app{"llmforge — a complete large-language-model system: train, align, evaluate, compress and serve Transformers"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "llmforge 0.1.0");
    using namespace llmforge::cli;
    add_info(app);
    add_init(app);
    add_convert(app);
    add_generate(app);
    add_tokenize(app);
    add_tokenizer(app);
    add_train_steps(app);
    add_align_loss(app);
    add_reward(app);
    add_dpo(app);
    add_rlhf(app);
    add_grpo(app);
    add_plot(app);
    add_prepare(app);
    add_pretrain(app);
    add_logits(app);
    add_bench(app);
    add_chat_template(app);
    add_sft(app);
    add_lora(app);
    add_chat(app);
    add_perplexity(app);
    add_bleu(app);
    add_rouge(app);
    add_eval(app);
    add_serve(app);
    add_arena(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        app.exit(e);
        return 2;
    } catch (const llmforge::Error& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "llmforge: error: %s\n", e.what());
        return e.exit_code();
    } catch (const std::bad_alloc&) {
        std::fprintf(stderr, "llmforge: error: out of memory\n");
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "llmforge: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
