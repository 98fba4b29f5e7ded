// Helpers shared by the unit tests: where the golden data lives, and file reading.
#pragma once
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/mmap_file.h"

namespace test {

// LLMFORGE_GOLDEN, else ../shared/golden beside the source tree.
inline std::string golden_dir() {
    if (const char* g = std::getenv("LLMFORGE_GOLDEN"); g && *g) return g;
    return std::string(LLMFORGE_SOURCE_DIR) + "/../shared/golden";
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// "[1, 2, 3]" or "1 2 3" → ids
inline std::vector<int32_t> parse_ids(const std::string& s) {
    std::vector<int32_t> v;
    std::string cur;
    for (char c : s) {
        if ((c >= '0' && c <= '9') || c == '-') cur += c;
        else if (!cur.empty()) { v.push_back(std::stoi(cur)); cur.clear(); }
    }
    if (!cur.empty()) v.push_back(std::stoi(cur));
    return v;
}

// "c1 bb": bytes in hexadecimal, for messages.
inline std::string hex(const std::string& bytes) {
    static const char* h = "0123456789abcdef";
    std::string out;
    for (unsigned char c : bytes) {
        if (!out.empty()) out += ' ';
        out += h[c >> 4];
        out += h[c & 15];
    }
    return out;
}

inline std::string tmp_dir() {
    const char* t = std::getenv("TMPDIR");
    return t && *t ? t : "/tmp";
}

inline std::string tmp_prefix(pid_t pid) { return "llmforge_test_" + std::to_string(pid) + "_"; }

// $TMPDIR/llmforge_test_PID_NAME. Whatever a test leaves under such names (files or folders) is removed when the
// test process exits, so that repeated runs of the suite do not fill /tmp; a forked child's exit removes nothing.
inline std::string tmp_path(const std::string& name) {
    static const bool registered = [] {
        static const pid_t owner = ::getpid();
        std::atexit([] {
            if (::getpid() != owner) return;
            const std::string prefix = tmp_prefix(owner);
            std::error_code ec;
            for (std::filesystem::directory_iterator it(tmp_dir(), ec), end; !ec && it != end; it.increment(ec))
                if (it->path().filename().string().rfind(prefix, 0) == 0) std::filesystem::remove_all(it->path(), ec);
        });
        return true;
    }();
    (void)registered;
    return tmp_dir() + "/" + tmp_prefix(::getpid()) + name;
}

// Runs the CLI binary ($LLMFORGE_BIN, set by CTest) with args, stdout discarded; returns its exit status (128+signal
// if killed, -1 without LLMFORGE_BIN) and its stderr.
inline int run_cli(const std::string& args, std::string* err) {
    const char* bin = std::getenv("LLMFORGE_BIN");
    if (!bin) return -1;
    const std::string errf = tmp_path("cli_stderr.txt");
    const int st = std::system((std::string(bin) + " " + args + " > /dev/null 2> " + errf).c_str());
    *err = read_file(errf);
    std::remove(errf.c_str());
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

}  // namespace test

#define REQUIRE_GOLDEN()                                                                              \
    do {                                                                                              \
        if (!llmforge::file_exists(test::golden_dir() + "/stories260K/stories260K.gguf"))             \
            GTEST_SKIP() << "golden data not found at " << test::golden_dir() << " (set LLMFORGE_GOLDEN)"; \
    } while (0)
