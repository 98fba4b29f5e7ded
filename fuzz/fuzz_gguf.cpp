// GGUF: the header, metadata and tensor table (gguf::read), then everything a model load reads from them — the
// architecture's hyper-parameters, the vocabulary (SentencePiece, BPE, WordPiece), the chat template's source — and,
// for a file that loads, a tokenizer round trip.
#include "fuzz_common.h"
#include "llmforge/gguf.h"
#include "llmforge/model.h"
#include "llmforge/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const std::string path = fuzz::file("model.gguf", {reinterpret_cast<const char*>(data), n});
    FUZZ_EXPECTING_ERRORS({
        const llmforge::gguf::File f = llmforge::gguf::read(path);
        FUZZ_EXPECTING_ERRORS({  // the vocabulary alone (vocabulary-only files have no tensors)
            llmforge::Vocab v = llmforge::Vocab::from_gguf(f.meta, path);
            (void)v.decode(v.encode("Hello, world! 你好", true, true));
        });
        llmforge::LoadOptions lo;
        lo.use_mmap = true;
        llmforge::Model m = llmforge::load_model(path, lo);
        if (m.vocab) {
            const auto ids = m.vocab->encode("Hello, world! Ünïcödé 你好 <s>", true, true);
            (void)m.vocab->decode(ids);
        }
    });
    return 0;
}
