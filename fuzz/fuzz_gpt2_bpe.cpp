// GPT-2's encoder.json + vocab.bpe. Input: encoder.json, then "\n#####\n", then vocab.bpe.
#include "fuzz_common.h"
#include "llmforge/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    const std::string enc = fuzz::file("encoder.json", p[0]);
    const std::string bpe = fuzz::file("vocab.bpe", p[1]);
    FUZZ_EXPECTING_ERRORS({
        llmforge::BpeTokenizer t = llmforge::BpeTokenizer::from_gpt2_files(enc, bpe);
        (void)t.decode(t.encode("Hello, world!  Ünïcödé 你好 123456"));
    });
    return 0;
}
