// The web UI's files: embedded in the binary at build time (cmake/embed_web.cmake), or read from a folder given with
// `llmforge serve --web-dir` (for working on the pages). Either way a URL path resolves only to a file inside that
// set: percent-encoded or not, "..", backslashes, NUL bytes and symbolic links leading out of the folder are refused.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace llmforge::server {

struct EmbeddedFile {
    const char* path;  // URL path, e.g. "/index.html"
    const unsigned char* begin;
    const unsigned char* end;
};
extern const EmbeddedFile kEmbeddedFiles[];  // ends with a null entry
extern const bool kEmbeddedVendor;           // marked, DOMPurify and KaTeX were found at build time

struct StaticFile {
    std::string body;
    std::string content_type;
};

// Percent-decodes %XX escapes; nullopt for a malformed escape.
std::optional<std::string> percent_decode(std::string_view s);

// Percent-decodes a URL path and checks it: nullopt when it is malformed or could name something outside the root
// ("..", ".", empty segments beyond a trailing slash, backslash, NUL, a segment starting with a dot).
std::optional<std::string> clean_url_path(std::string_view raw);

class StaticFiles {
public:
    explicit StaticFiles(std::string dir = "");  // "" → the embedded files; else a folder (must exist)
    // The file for a URL path ("/" → /index.html, "/arena" → /arena.html); nullopt → 404.
    std::optional<StaticFile> get(std::string_view raw_path) const;
    const std::string& dir() const { return dir_; }

private:
    std::string dir_;  // canonical, without trailing slash; "" → embedded
};

std::string mime_type(std::string_view path);

}  // namespace llmforge::server
