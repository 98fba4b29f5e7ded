// Loads a model and streams a completion of a prompt: llmforge as a library (docs/library.md).
//   complete MODEL "PROMPT" [MAX_TOKENS]
#include <cstdio>
#include <cstdlib>
#include <string>

#include <llmforge/llmforge.h>

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s MODEL PROMPT [MAX_TOKENS]\n", argv[0]);
        return 2;
    }
    try {
        llmforge::Llm llm(argv[1]);  // GGUF, a Hugging Face directory or a llama2.c .bin
        llmforge::SamplerParams sampling;
        sampling.temp = 0;  // greedy
        const llmforge::Completion c = llm.complete(argv[2], argc > 3 ? std::atoi(argv[3]) : 64, sampling, [](const std::string& piece) {
            std::fputs(piece.c_str(), stdout);  // each piece as soon as it is whole UTF-8
            std::fflush(stdout);
            return true;  // false would stop here
        });
        std::printf("\n[%lld prompt tokens, %lld generated, stop: %s]\n", static_cast<long long>(c.prompt_tokens),
                    static_cast<long long>(c.tokens), c.stop_reason.c_str());
    } catch (const llmforge::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return e.exit_code();
    }
}
