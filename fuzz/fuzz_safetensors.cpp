// A Hugging Face model folder: model.safetensors (8-byte header length, JSON header, tensor data) and config.json,
// loaded as `llmforge convert` and `generate` load them. Input: config.json, then "\n#####\n", then the safetensors
// file.
#include "fuzz_common.h"
#include "llmforge/model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const auto p = fuzz::parts(data, n, 2);
    fuzz::file("config.json", p[0]);
    const std::string path = fuzz::file("model.safetensors", p[1]);
    FUZZ_EXPECTING_ERRORS({ llmforge::Model m = llmforge::load_model(path); });
    return 0;
}
