// llmforge tokenize (-m MODEL | --tokenizer FILE) [--ids] TEXT: ids, or an id → piece table like llama-tokenize.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/bpe.h"
#include "llmforge/data.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

namespace {

// Splits text into n parts of about equal size, cutting after a newline.
std::vector<std::string> split_parts(const std::string& text, int n) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (int k = 1; k < n && start < text.size(); ++k) {
        size_t cut = std::max(start, text.size() * static_cast<size_t>(k) / static_cast<size_t>(n));
        cut = text.find('\n', cut);
        if (cut == std::string::npos) break;
        parts.push_back(text.substr(start, cut + 1 - start));
        start = cut + 1;
    }
    parts.push_back(text.substr(start));
    return parts;
}

template <class Opts>
void count_tokens(const Vocab& vocab, const std::string& text, const Opts& o) {
    const std::vector<std::string> parts = split_parts(text, o.threads);
    const auto t0 = std::chrono::steady_clock::now();
    size_t n = 0;
    if (vocab.bpe) {
        for (const auto& ids : vocab.bpe->encode_batch(parts, o.threads, o.parse_special)) n += ids.size();
    } else {
        for (const auto& p : parts) n += vocab.encode(p, false, o.parse_special).size();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double mbps = static_cast<double>(text.size()) / 1e6 / s;
    if (o.json) {
        nlohmann::json j = {{"tokens", n}, {"bytes", text.size()}, {"parts", parts.size()}, {"threads", o.threads}, {"seconds", s}, {"mb_per_s", mbps}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%zu\n", n);
    }
    std::fprintf(stderr, "llmforge: %zu tokens from %zu bytes in %.3f s (%.2f MB/s, %.2f bytes/token)\n", n, text.size(), s, mbps,
                 static_cast<double>(text.size()) / static_cast<double>(std::max<size_t>(n, 1)));
}

// One JSON document {"text": ...} per line in, one id list per line out.
template <class Opts>
void encode_jsonl(const Vocab& vocab, const std::string& data, const Opts& o) {
    const std::vector<std::string> texts = jsonl_texts(data, o.file);
    std::vector<std::vector<int32_t>> ids;
    if (vocab.bpe) {
        ids = vocab.bpe->encode_batch(texts, o.threads, o.parse_special);
        if (!o.no_bos && vocab.add_bos && vocab.bos >= 0)
            for (auto& v : ids) v.insert(v.begin(), vocab.bos);
    } else {
        for (const auto& t : texts) ids.push_back(vocab.encode(t, !o.no_bos, o.parse_special));
    }
    std::string out;
    for (const auto& v : ids) {
        out += '[';
        for (size_t i = 0; i < v.size(); ++i) {
            if (i) out += ',';
            out += std::to_string(v[i]);
        }
        out += "]\n";
    }
    std::fwrite(out.data(), 1, out.size(), stdout);
}

}  // namespace

void add_tokenize(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenize", "Split text into token ids");
    struct Opts {
        std::string model, tokenizer, text, file;
        bool ids = false, no_bos = false, parse_special = false, json = false, count = false, jsonl = false;
        int threads = 1;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model whose vocabulary to use")->default_str("none");
    cmd->add_option("--tokenizer", o->tokenizer, "a tokenizer file: tokenizer.json, *.tiktoken, encoder.json/vocab.bpe, a GGUF with a vocabulary, or llama2.c tokenizer.bin")->default_str("none");
    cmd->add_option("text", o->text, "text to tokenize (none: -f FILE, else standard input)");
    cmd->add_option("-f,--file", o->file, "read the text from a file")->default_str("none: TEXT, else standard input");
    cmd->add_flag("--ids", o->ids, "print only the ids, as [a, b, c]");
    cmd->add_flag("--no-bos", o->no_bos, "do not add the beginning-of-sequence token");
    cmd->add_flag("--parse-special", o->parse_special, "recognise control tokens such as <s> written in the text");
    cmd->add_flag("--json", o->json, "print {\"ids\": [...], \"pieces\": [...]} (with --count: the counts and timing)");
    cmd->add_flag("--count", o->count, "print only the number of tokens (and the encoding speed on stderr)");
    cmd->add_flag("--jsonl", o->jsonl, "the input (-f) is JSON lines with a \"text\" field: print one id list per line, encoded on -t threads");
    add_threads_option(cmd, o->threads, "threads for --jsonl and --count (--count splits the text at newlines)");
    cmd->callback([o] {
        if (o->model.empty() && o->tokenizer.empty()) throw_bad_input("tokenize: give -m MODEL or --tokenizer FILE");
        if (!o->text.empty() && !o->file.empty()) throw_bad_input("tokenize: give the text as an argument or with -f FILE, not both");
        // the text: the argument, -f FILE, or else standard input (a pipe, or typed until Ctrl-D)
        const std::string text = !o->file.empty() ? read_text_file(o->file) : !o->text.empty() ? o->text : read_stdin();
        Vocab vocab;
        if (!o->tokenizer.empty()) {
            vocab = Vocab::load(o->tokenizer);
        } else if (gguf::has_magic(o->model)) {
            vocab = Vocab::load(o->model);  // the vocabulary alone: vocabulary-only GGUF files (ggml-vocab-*.gguf) work too
        } else {
            LoadOptions lo;
            lo.require_tokenizer = true;
            vocab = *load_model(o->model, lo).vocab;
        }
        // Byte-level BPE takes any bytes; SentencePiece needs characters.
        if (!vocab.bpe && !utf8_valid(text)) throw_bad_input("tokenize: the text is not valid UTF-8");
        if (o->jsonl) {
            encode_jsonl(vocab, text, *o);
            return;
        }
        if (o->count) {
            count_tokens(vocab, text, *o);
            return;
        }
        const std::vector<int32_t> ids = vocab.encode(text, !o->no_bos, o->parse_special);
        if (o->json) {
            nlohmann::json pieces = nlohmann::json::array();
            for (int32_t id : ids) pieces.push_back(vocab.token_to_piece(id, true));
            nlohmann::json j = {{"ids", ids}, {"pieces", pieces}};
            std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
        } else if (o->ids) {
            std::printf("[");
            for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? ", %d" : "%d", ids[i]);
            std::printf("]\n");
        } else {
            for (int32_t id : ids) std::printf("%6d -> '%s'\n", id, vocab.token_to_piece(id, true).c_str());
        }
    });
}

}  // namespace llmforge::cli
