// tiktoken rank files ("base64(token) rank" per line), as cl100k_base's pattern reads them, then a round trip.
#include "fuzz_common.h"
#include "llmforge/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const std::string path = fuzz::file("cl100k_base.tiktoken", {reinterpret_cast<const char*>(data), n});
    FUZZ_EXPECTING_ERRORS({
        llmforge::BpeTokenizer t = llmforge::BpeTokenizer::from_tiktoken(path);
        (void)t.decode(t.encode("Hello, world!  Ünïcödé 你好 123456 <|endoftext|>"));
    });
    return 0;
}
