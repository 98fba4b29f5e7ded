// UTF-8 helpers, including a streaming decoder that never emits half a character.
#pragma once
#include <cstddef>
#include <string>

namespace llmforge {

// Length of the UTF-8 sequence starting with byte c (1..4), judged from the lead byte alone.
size_t utf8_len(unsigned char c);
// True if s is entirely valid UTF-8.
bool utf8_valid(const std::string& s);
// Appends code point cp (at most U+10FFFF) as UTF-8.
void utf8_append(std::string& out, char32_t cp);

// Feed bytes as tokens arrive; push() returns the longest prefix that forms complete characters.
// An invalid sequence is replaced by U+FFFD so a stream never shows a broken character. flush() ends the stream.
class Utf8Stream {
public:
    std::string push(const std::string& bytes);
    std::string flush();

private:
    std::string pending_;
};

}  // namespace llmforge
