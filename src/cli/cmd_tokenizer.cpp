// llmforge tokenizer train --input FILE... --vocab-size N -o tokenizer.json: learn a byte-level BPE vocabulary.
// llmforge tokenizer info FILE: what a tokenizer file holds.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/mmap_file.h"

namespace llmforge::cli {

namespace {

std::string pattern_by_name(const std::string& p) {
    if (p == "gpt4" || p == "cl100k") return bpe_patterns::cl100k;
    if (p == "gpt4o" || p == "o200k") return bpe_patterns::o200k;
    if (p == "gpt2") return bpe_patterns::gpt2;
    if (p == "qwen2") return bpe_patterns::qwen2;
    return p;  // a regex of the user's own
}

}  // namespace

void add_tokenizer(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenizer", "Train or inspect byte-level BPE tokenizers");
    cmd->require_subcommand(1);

    auto* train = cmd->add_subcommand("train", "Learn a byte-level BPE vocabulary from text files and write tokenizer.json");
    struct TrainOpts {
        std::vector<std::string> inputs, specials;
        std::string out, pattern = "gpt4";
        int32_t vocab_size = 32000;
        uint64_t min_frequency = 2;
        int threads = 0;
        bool no_default_specials = false, nfc = false, json = false, quiet = false;
    };
    auto t = std::make_shared<TrainOpts>();
    train->add_option("--input", t->inputs, "text files (UTF-8)")->required()->expected(1, -1);
    train->add_option("--vocab-size", t->vocab_size, "tokens in all: 256 bytes + merges + special tokens")->check(CLI::Range(257, 1 << 22));
    train->add_option("-o,--output", t->out, "tokenizer.json to write")->required();
    train->add_option("--pattern", t->pattern, "pre-tokeniser: gpt4 (cl100k, default), gpt4o (o200k), gpt2, qwen2, or a regex");
    train->add_option("--special", t->specials, "special tokens (default <|endoftext|> <|im_start|> <|im_end|>)");
    train->add_flag("--no-default-specials", t->no_default_specials, "no special tokens unless given with --special");
    train->add_option("--min-frequency", t->min_frequency, "stop when the best pair occurs fewer times (default 2)");
    train->add_flag("--nfc", t->nfc, "NFC-normalise text (the tokenizer then normalises at encode time too)");
    train->add_option("-t,--threads", t->threads, "threads for counting (default: all cores)");
    train->add_flag("--json", t->json, "print the training report as JSON");
    train->add_flag("-q,--quiet", t->quiet, "no progress lines");
    train->callback([t] {
        BpeTrainOptions o;
        o.vocab_size = t->vocab_size;
        o.pattern = pattern_by_name(t->pattern);
        if (!t->specials.empty() || t->no_default_specials) o.special_tokens = t->specials;
        o.min_frequency = t->min_frequency;
        o.n_threads = t->threads;
        o.nfc = t->nfc;
        o.progress = !t->quiet;
        for (const std::string& f : t->inputs)
            if (!file_exists(f)) throw_bad_input("training file '%s' does not exist", f.c_str());
        BpeTrainStats st;
        const BpeTokenizer tok = train_bpe(t->inputs, o, &st);
        tok.save_hf_json(t->out);
        const nlohmann::json report = {{"output", t->out}, {"vocab_size", tok.size()}, {"merges", st.merges}, {"bytes", st.bytes},
                                       {"pre_tokens", st.pieces}, {"unique_pre_tokens", st.unique_pieces},
                                       {"seconds_count", st.seconds_count}, {"seconds_merge", st.seconds_merge},
                                       {"seconds", st.seconds_count + st.seconds_merge}, {"peak_rss_bytes", st.peak_rss}};
        if (t->json) {
            std::printf("%s\n", report.dump().c_str());
        } else {
            std::printf("wrote %s: %d tokens (%llu merges) from %s of text, %llu distinct pre-tokens; counting %.1f s, merging %.1f s; peak memory %s\n",
                        t->out.c_str(), tok.size(), static_cast<unsigned long long>(st.merges), human_bytes(static_cast<double>(st.bytes)).c_str(),
                        static_cast<unsigned long long>(st.unique_pieces), st.seconds_count, st.seconds_merge,
                        human_bytes(static_cast<double>(st.peak_rss)).c_str());
        }
        if (static_cast<int32_t>(st.merges) + 256 + static_cast<int32_t>(o.special_tokens.size()) < t->vocab_size)
            std::fprintf(stderr, "llmforge: note: the text supports only %llu merges at --min-frequency %llu; the vocabulary is smaller than asked\n",
                         static_cast<unsigned long long>(st.merges), static_cast<unsigned long long>(o.min_frequency));
    });

    auto* info = cmd->add_subcommand("info", "Describe a tokenizer file (tokenizer.json, *.tiktoken, encoder.json/vocab.bpe, GGUF)");
    auto file = std::make_shared<std::string>();
    info->add_option("file", *file, "tokenizer file")->required();
    info->callback([file] {
        const BpeTokenizer tok = BpeTokenizer::load(*file);
        std::printf("tokens         %d\n", tok.size());
        std::printf("merges         %zu\n", tok.merges().size());
        std::printf("normalizer     %s\n", tok.nfc() ? "NFC" : "none");
        for (const SplitRule& r : tok.pre_rules()) std::printf("pre-tokenizer  /%s/\n", r.pattern.c_str());
        std::printf("added tokens   %zu\n", tok.added_tokens().size());
        size_t shown = 0;
        for (const AddedToken& a : tok.added_tokens())
            if (shown++ < 16) std::printf("  %6d  %s%s\n", a.id, a.content.c_str(), a.special ? "  (special)" : "");
    });
}

}  // namespace llmforge::cli
