// The library's log sink (see log.h).
#include "llmforge/log.h"

#include <cstdarg>
#include <cstdio>
#include <mutex>

namespace llmforge {

namespace {
std::mutex g_mu;
LogSink g_sink;
bool g_terminal = false;
}  // namespace

void set_log_sink(LogSink sink, bool terminal) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_sink = std::move(sink);
    g_terminal = terminal;
}

bool log_terminal() {
    std::lock_guard<std::mutex> lock(g_mu);
    return g_terminal;
}

bool log_enabled() {
    std::lock_guard<std::mutex> lock(g_mu);
    return static_cast<bool>(g_sink);
}

void log_text(const std::string& text) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_sink) g_sink(text);
}

void log_line(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    const int n = std::vsnprintf(nullptr, 0, fmt, ap);
    va_end(ap);
    std::string s(n > 0 ? static_cast<size_t>(n) : 0, '\0');
    if (n > 0) std::vsnprintf(s.data(), s.size() + 1, fmt, ap2);
    va_end(ap2);
    s += '\n';
    log_text(s);
}

LogSink stderr_log_sink() {
    return [](const std::string& text) {
        std::fwrite(text.data(), 1, text.size(), stderr);
        std::fflush(stderr);
    };
}

}  // namespace llmforge
