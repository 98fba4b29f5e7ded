// llama2.c: the model .bin (a header of seven int32 and the weights) and its tokenizer.bin. Input: the model, then
// "\n#####\n", then the tokenizer.
#include "fuzz_common.h"
#include "llmforge/model.h"
#include "llmforge/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    const std::string model = fuzz::file("model.bin", p[0]);
    const std::string tok = fuzz::file("tokenizer.bin", p[1]);
    FUZZ_EXPECTING_ERRORS({
        llmforge::LoadOptions lo;
        lo.tokenizer_path = tok;
        lo.require_tokenizer = true;
        llmforge::Model m = llmforge::load_model(model, lo);
        if (m.vocab) (void)m.vocab->decode(m.vocab->encode("Once upon a time, 你好", true));
    });
    FUZZ_EXPECTING_ERRORS({
        llmforge::Vocab v = llmforge::Vocab::from_llama2c(tok, 512);
        (void)v.decode(v.encode("Once upon a time", true));
    });
    return 0;
}
