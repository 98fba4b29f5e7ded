// Errors: every failure llmforge reports is an llmforge::Error with a one-line message.
// kind tells the CLI which exit status to use (DESIGN.md §3: 1 runtime failure, 2 bad usage or bad input).
#pragma once
#include <stdexcept>
#include <string>

namespace llmforge {

enum class ErrorKind { Runtime = 1, BadInput = 2 };

class Error : public std::runtime_error {
public:
    Error(ErrorKind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
    ErrorKind kind() const { return kind_; }
    int exit_code() const { return static_cast<int>(kind_); }
private:
    ErrorKind kind_;
};

// Helpers that format like printf and throw.
[[noreturn]] void throw_bad_input(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
[[noreturn]] void throw_runtime(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
std::string strprintf(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace llmforge
