// Where the library's messages go. Library code never prints and never installs signal handlers: what it has to say
// (notices, warnings, progress lines) goes to the log sink the program sets — silent by default, as llama.cpp's
// llama_log_set — and long jobs stop when a flag the program owns is set (see PretrainOptions::stop, RlOptions::stop).
// The llmforge command line sets a sink that writes to stderr and sets the flag on SIGINT/SIGTERM.
#pragma once
#include <functional>
#include <string>

namespace llmforge {

// Receives text exactly as it should appear: whole lines end with '\n'; a progress line redrawn in place starts with
// '\r' and ends without one. Called from one thread at a time.
using LogSink = std::function<void(const std::string& text)>;

// terminal: whether the sink shows a terminal (progress bars are then redrawn in place rather than printed every few
// seconds). An empty sink discards everything (the default).
void set_log_sink(LogSink sink, bool terminal = false);
bool log_terminal();
bool log_enabled();  // a sink is set

// A line (the newline is added), printf-style; and text as it is.
void log_line(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void log_text(const std::string& text);

// A sink writing to standard error (what the command line uses).
LogSink stderr_log_sink();

}  // namespace llmforge
