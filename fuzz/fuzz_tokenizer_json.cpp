// Hugging Face tokenizer.json (byte-level BPE, SentencePiece-style BPE/Unigram, WordPiece), with a
// tokenizer_config.json: loaded as a vocabulary, then a round trip.
// Input: tokenizer.json, then "\n#####\n", then tokenizer_config.json (may be empty).
#include "fuzz_common.h"
#include "llmforge/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    const std::string path = fuzz::file("tokenizer.json", p[0]);
    if (!p[1].empty()) fuzz::file("tokenizer_config.json", p[1]);
    else std::remove((fuzz::scratch() + "/tokenizer_config.json").c_str());
    FUZZ_EXPECTING_ERRORS({
        llmforge::Vocab v = llmforge::Vocab::load(path);
        const auto ids = v.encode("Hello, world!  Ünïcödé 你好 \t\n <|endoftext|> 123456", true, true);
        (void)v.decode(ids, true);
    });
    return 0;
}
