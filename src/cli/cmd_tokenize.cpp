// llmforge tokenize (-m MODEL | --tokenizer FILE) [--ids] TEXT: ids, or an id → piece table like llama-tokenize.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/mmap_file.h"
#include "llmforge/utf8.h"

namespace llmforge::cli {

void add_tokenize(CLI::App& app) {
    auto* cmd = app.add_subcommand("tokenize", "Split text into token ids");
    struct Opts { std::string model, tokenizer, text, file; bool ids = false, no_bos = false, parse_special = false, json = false; };
    auto o = std::make_shared<Opts>();
    cmd->add_option("-m,--model", o->model, "model whose vocabulary to use");
    cmd->add_option("--tokenizer", o->tokenizer, "a tokenizer file: tokenizer.json, *.tiktoken, encoder.json/vocab.bpe, a GGUF with a vocabulary, or llama2.c tokenizer.bin");
    cmd->add_option("text", o->text, "text to tokenize");
    cmd->add_option("-f,--file", o->file, "read the text from a file");
    cmd->add_flag("--ids", o->ids, "print only the ids, as [a, b, c]");
    cmd->add_flag("--no-bos", o->no_bos, "do not add the beginning-of-sequence token");
    cmd->add_flag("--parse-special", o->parse_special, "recognise control tokens such as <s> written in the text");
    cmd->add_flag("--json", o->json, "print {\"ids\": [...], \"pieces\": [...]}");
    cmd->callback([o] {
        if (o->model.empty() && o->tokenizer.empty()) throw_bad_input("tokenize: give -m MODEL or --tokenizer FILE");
        const std::string text = o->file.empty() ? o->text : read_text_file(o->file);
        Vocab vocab;
        if (!o->model.empty()) {
            LoadOptions lo;
            lo.tokenizer_path = o->tokenizer;
            lo.require_tokenizer = true;
            vocab = *load_model(o->model, lo).vocab;
        } else {
            vocab = Vocab::load(o->tokenizer);
        }
        // Byte-level BPE takes any bytes; SentencePiece needs characters.
        if (!vocab.bpe && !utf8_valid(text)) throw_bad_input("tokenize: the text is not valid UTF-8");
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
