#include "llmforge/utf8.h"

namespace llmforge {

size_t utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) return 2;
    if ((c & 0xf0) == 0xe0) return 3;
    if ((c & 0xf8) == 0xf0) return 4;
    return 1;  // continuation or invalid lead byte: a sequence of its own (invalid)
}

void utf8_append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

// Length of a valid sequence at s[i], 0 if incomplete (needs more bytes), -1 if invalid.
static int seq_status(const std::string& s, size_t i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    int n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return -1;
    for (int k = 1; k < n; ++k) {
        if (i + k >= s.size()) return 0;
        const unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xc0) != 0x80) return -1;
        cp = (cp << 6) | (d & 0x3f);
        // reject overlong 3/4-byte forms and surrogates as early as the second byte allows
        if (k == 1) {
            if (n == 3 && c == 0xe0 && d < 0xa0) return -1;
            if (n == 3 && c == 0xed && d >= 0xa0) return -1;
            if (n == 4 && c == 0xf0 && d < 0x90) return -1;
            if (n == 4 && c == 0xf4 && d >= 0x90) return -1;
        }
    }
    return n;
}

bool utf8_valid(const std::string& s) {
    for (size_t i = 0; i < s.size();) {
        int n = seq_status(s, i);
        if (n <= 0) return false;
        i += static_cast<size_t>(n);
    }
    return true;
}

std::string Utf8Stream::push(const std::string& bytes) {
    pending_ += bytes;
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        int n = seq_status(pending_, i);
        if (n == 0) break;  // wait for the rest of the character
        if (n < 0) {
            out += "\xef\xbf\xbd";
            ++i;
            continue;
        }
        out.append(pending_, i, static_cast<size_t>(n));
        i += static_cast<size_t>(n);
    }
    pending_.erase(0, i);
    return out;
}

std::string Utf8Stream::flush() {
    std::string out = pending_.empty() ? "" : "\xef\xbf\xbd";  // a truncated character at the end
    pending_.clear();
    return out;
}

}  // namespace llmforge
