// Shared by the libFuzzer targets (fuzz/README.md): files made from the input, and the rule that a parser of outside
// data may only fail with llmforge::Error — any other exception, a crash, a leak, undefined behaviour, an allocation
// beyond libFuzzer's -malloc_limit_mb or a hang is a finding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "llmforge/error.h"

namespace fuzz {

// A folder of this process's own under $TMPDIR (default /tmp), removed at exit. (Held in a string that is never
// destroyed: the exit handler runs after static destructors would have.)
inline const std::string& scratch() {
    static const std::string* dir = [] {
        const char* t = std::getenv("TMPDIR");
        auto* d = new std::string(std::string(t && *t ? t : "/tmp") + "/llmforge-fuzz-" + std::to_string(getpid()));
        std::filesystem::create_directories(*d);
        std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(scratch(), ec);
        });
        return d;
    }();
    return *dir;
}

// Writes `bytes` to scratch()/name and returns the path.
inline std::string file(const std::string& name, std::string_view bytes) {
    const std::string p = scratch() + "/" + name;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
}

// Several inputs in one (a model and its tokenizer, a template and its context): the parts are separated by the line
// "\n#####\n" (the seed corpora use it; mutations keep it or merge parts). Missing parts are empty.
inline std::vector<std::string_view> parts(const uint8_t* data, size_t n, size_t count) {
    std::string_view s(reinterpret_cast<const char*>(data), n);
    std::vector<std::string_view> out;
    static constexpr std::string_view sep = "\n#####\n";
    while (out.size() + 1 < count) {
        const size_t at = s.find(sep);
        if (at == std::string_view::npos) break;
        out.push_back(s.substr(0, at));
        s.remove_prefix(at + sep.size());
    }
    out.push_back(s);
    while (out.size() < count) out.push_back({});
    return out;
}

}  // namespace fuzz

// The body of LLVMFuzzerTestOneInput: runs the block; llmforge::Error is the expected way to refuse bad input.
#define FUZZ_EXPECTING_ERRORS(...)         \
    do {                                   \
        try {                              \
            __VA_ARGS__                    \
        } catch (const llmforge::Error&) { \
        }                                  \
    } while (0)
