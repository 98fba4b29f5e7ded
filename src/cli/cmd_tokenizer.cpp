// llmforge tokenizer train --input FILE... --vocab-size N -o tokenizer.json: learn a byte-level BPE vocabulary.
// llmforge tokenizer info FILE: what a tokenizer file holds.
// llmforge tokenizer convert IN OUT.json: any tokenizer (GGUF vocabulary, tokenizer.bin, tiktoken, …) as tokenizer.json.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/bpe.h"
#include "llmforge/error.h"
#include "llmforge/tokenizer.h"

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
    train->add_option("--pattern", t->pattern, "pre-tokeniser: gpt4 (cl100k), gpt4o (o200k), gpt2, qwen2, or a regex");
    train->add_option("--special", t->specials, "special tokens");
    train->add_flag("--no-default-specials", t->no_default_specials, "no special tokens unless given with --special");
    train->add_option("--min-frequency", t->min_frequency, "stop when the best pair occurs fewer times");
    train->add_flag("--nfc", t->nfc, "NFC-normalise text (the tokenizer then normalises at encode time too)");
    add_threads_option(train, t->threads, "threads for counting (0: all cores)", 0);
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

    auto* info = cmd->add_subcommand("info", "Describe a tokenizer file (tokenizer.json, *.tiktoken, encoder.json/vocab.bpe, GGUF, tokenizer.bin)");
    auto file = std::make_shared<std::string>();
    info->add_option("file", *file, "tokenizer file")->required();
    info->callback([file] {
        const Vocab v = Vocab::load(*file);
        if (!v.bpe) {  // a SentencePiece-style vocabulary (GGUF "llama", llama2.c, a byte-fallback tokenizer.json)
            int bytes = 0, control = 0, user = 0;
            float lo = 0, hi = 0;
            for (int32_t i = 0; i < v.size(); ++i) {
                const TokenType t = v.types[static_cast<size_t>(i)];
                bytes += t == TokenType::Byte;
                control += t == TokenType::Control || t == TokenType::Unknown;
                user += t == TokenType::UserDefined;
                lo = i ? std::min(lo, v.scores[static_cast<size_t>(i)]) : v.scores[0];
                hi = i ? std::max(hi, v.scores[static_cast<size_t>(i)]) : v.scores[0];
            }
            auto piece = [&](int32_t id) { return id >= 0 ? v.pieces[static_cast<size_t>(id)] + " (" + std::to_string(id) + ")" : std::string("none"); };
            std::printf("model          SentencePiece-style BPE (merges the pair whose piece scores highest; byte fallback)\n");
            std::printf("tokens         %d (%d byte tokens, %d control, %d user-defined)\n", v.size(), bytes, control, user);
            std::printf("scores         %g … %g\n", static_cast<double>(lo), static_cast<double>(hi));
            std::printf("special        bos %s, eos %s, unk %s\n", piece(v.bos).c_str(), piece(v.eos).c_str(), piece(v.unk).c_str());
            std::printf("adds           %s%s%s\n", v.add_bos ? "BOS " : "", v.add_eos ? "EOS " : "", v.add_space_prefix ? "a space prefix" : "no space prefix");
            std::printf("chat template  %s\n", v.chat_template.empty() ? "none" : (std::to_string(v.chat_template.size()) + " bytes").c_str());
            return;
        }
        const BpeTokenizer& tok = *v.bpe;
        std::printf("tokens         %d\n", tok.size());
        std::printf("merges         %zu\n", tok.merges().size());
        std::printf("normalizer     %s\n", tok.nfc() ? "NFC" : "none");
        for (const SplitRule& r : tok.pre_rules()) std::printf("pre-tokenizer  /%s/\n", r.pattern.c_str());
        std::printf("added tokens   %zu\n", tok.added_tokens().size());
        size_t shown = 0;
        for (const AddedToken& a : tok.added_tokens())
            if (shown++ < 16) std::printf("  %6d  %s%s\n", a.id, a.content.c_str(), a.special ? "  (special)" : "");
    });

    auto* conv = cmd->add_subcommand("convert", "Write any tokenizer as a Hugging Face tokenizer.json (and tokenizer_config.json beside it)");
    auto in = std::make_shared<std::string>(), out = std::make_shared<std::string>();
    conv->add_option("input", *in, "tokenizer file: GGUF (a model or a vocabulary), tokenizer.bin, tokenizer.json, *.tiktoken, …")->required();
    conv->add_option("output", *out, "tokenizer.json to write; tokenizer_config.json (special tokens, chat template) goes beside it")->required();
    conv->callback([in, out] {
        const Vocab v = Vocab::load(*in);
        const std::string text = v.to_hf_json();
        const size_t slash = out->rfind('/');
        const std::string cfg = (slash == std::string::npos ? std::string(".") : out->substr(0, slash)) + "/tokenizer_config.json";
        for (const auto& [path, body] : {std::pair<std::string, std::string>{*out, text}, {cfg, v.hf_tokenizer_config()}}) {
            AtomicWriter w(path);
            w.write(body.data(), body.size());
            w.commit();
        }
        std::fprintf(stderr, "llmforge: wrote %s and %s (%d tokens)\n", out->c_str(), cfg.c_str(), v.size());
    });
}

}  // namespace llmforge::cli
