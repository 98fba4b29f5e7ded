// llmforge init --preset NAME -o model.gguf: a model with seeded random weights.
#include <cstdio>
#include <optional>

#include "cli/common.h"
#include "llmforge/error.h"

namespace llmforge::cli {

void add_init(CLI::App& app) {
    auto* cmd = app.add_subcommand("init", "Write a model with random weights (seeded) for tests and benchmarks");
    auto preset_name = std::make_shared<std::string>();
    auto out = std::make_shared<std::string>();
    auto dtype = std::make_shared<std::string>("f32");
    auto seed = std::make_shared<int64_t>(42);
    auto ctx = std::make_shared<int64_t>(0);
    auto tokenizer = std::make_shared<std::string>();
    cmd->add_option("--preset", *preset_name, "configuration name (see `llmforge info --preset`)")->required();
    cmd->add_option("-o,--output", *out, "output file: .gguf, .bin (llama2.c) or a safetensors directory")->required();
    cmd->add_option("--dtype", *dtype, "weight type: f32, f16 or bf16");
    add_seed_option(cmd, *seed, "random seed of the weights");
    cmd->add_option("-c,--ctx-size", *ctx, "context length (0: the preset's)")->check(at_least(0, " (0: the preset's)"));
    cmd->add_option("--tokenizer", *tokenizer,
                    "give the model this vocabulary (a GGUF's, tokenizer.json with the tokenizer_config.json beside it, tiktoken, "
                    "tokenizer.bin); the embedding then has its size")->default_str("a byte-fallback vocabulary of the preset's size");
    cmd->callback([=] {
        *seed = static_cast<int64_t>(seed_or_random(*seed) & 0x7fffffffffffffffull);
        (void)format_for_output(*out);  // a name whose format we cannot tell: say so before any work
        ModelConfig c = preset(*preset_name);
        if (*ctx > 0) c.n_ctx = *ctx;
        std::optional<Vocab> vocab;
        if (!tokenizer->empty()) {
            vocab = Vocab::load(*tokenizer);
            c.n_vocab = vocab->size();
        }
        const DType t = dtype_from_name(*dtype);
        if (t == DType::Unknown) throw_bad_input("init: --dtype must be f32, f16 or bf16, not '%s'", dtype->c_str());
        std::fprintf(stderr, "llmforge: initialising %s (%s parameters, %s) with seed %llu\n", c.name.c_str(),
                     human_count(static_cast<double>(c.n_params())).c_str(), dtype_name(t), static_cast<unsigned long long>(*seed));
        if (format_for_output(*out) == FileFormat::GGUF) {
            init_random_gguf(c, t, *seed, *out, vocab ? &*vocab : nullptr);  // streamed: bounded memory whatever the model size
        } else {
            Model m = init_random(c, t, *seed, vocab ? &*vocab : nullptr);
            save_model(m, *out, t);
        }
        std::fprintf(stderr, "llmforge: wrote %s\n", out->c_str());
    });
}

}  // namespace llmforge::cli
