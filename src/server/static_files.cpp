#include "server/static_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "llmforge/error.h"

namespace llmforge::server {

namespace fs = std::filesystem;

std::string mime_type(std::string_view p) {
    auto ends = [&](std::string_view s) { return p.size() >= s.size() && p.substr(p.size() - s.size()) == s; };
    if (ends(".html")) return "text/html; charset=utf-8";
    if (ends(".js")) return "text/javascript; charset=utf-8";
    if (ends(".css")) return "text/css; charset=utf-8";
    if (ends(".svg")) return "image/svg+xml";
    if (ends(".woff2")) return "font/woff2";
    if (ends(".png")) return "image/png";
    if (ends(".json")) return "application/json";
    return "application/octet-stream";
}

std::optional<std::string> percent_decode(std::string_view raw) {
    auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
    };
    std::string s;
    for (size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] != '%') {
            s += raw[i];
            continue;
        }
        if (i + 2 >= raw.size()) return std::nullopt;
        const int a = hex(raw[i + 1]), b = hex(raw[i + 2]);
        if (a < 0 || b < 0) return std::nullopt;
        s += static_cast<char>(a * 16 + b);
        i += 2;
    }
    return s;
}

std::optional<std::string> clean_url_path(std::string_view raw) {
    if (raw.empty() || raw[0] != '/') return std::nullopt;
    auto decoded = percent_decode(raw);
    if (!decoded) return std::nullopt;
    const std::string& s = *decoded;
    if (s.find('\0') != std::string::npos || s.find('\\') != std::string::npos) return std::nullopt;
    // every segment: non-empty (except a trailing slash), no leading dot (".", "..", hidden files)
    size_t start = 1;
    while (start <= s.size()) {
        size_t end = s.find('/', start);
        if (end == std::string::npos) end = s.size();
        const std::string_view seg(s.data() + start, end - start);
        if (seg.empty() && end != s.size()) return std::nullopt;
        if (!seg.empty() && seg[0] == '.') return std::nullopt;
        start = end + 1;
    }
    return s;
}

StaticFiles::StaticFiles(std::string dir) {
    if (dir.empty()) return;
    std::error_code ec;
    const fs::path c = fs::canonical(dir, ec);
    if (ec || !fs::is_directory(c)) throw_bad_input("--web-dir %s: not a folder", dir.c_str());
    dir_ = c.string();
}

std::optional<StaticFile> StaticFiles::get(std::string_view raw_path) const {
    auto p = clean_url_path(raw_path);
    if (!p) return std::nullopt;
    std::string path = *p;
    if (path == "/") path = "/index.html";
    else if (path == "/arena" || path == "/arena/") path = "/arena.html";
    if (dir_.empty()) {
        for (const EmbeddedFile* f = kEmbeddedFiles; f->path; ++f)
            if (path == f->path) return StaticFile{std::string(reinterpret_cast<const char*>(f->begin), static_cast<size_t>(f->end - f->begin)), mime_type(path)};
        return std::nullopt;
    }
    // from the folder: the resolved file (symbolic links followed) must still be inside it
    std::error_code ec;
    const fs::path real = fs::canonical(fs::path(dir_) / path.substr(1), ec);
    if (ec) return std::nullopt;
    const std::string r = real.string();
    if (r.size() <= dir_.size() || r.compare(0, dir_.size(), dir_) != 0 || r[dir_.size()] != '/') return std::nullopt;
    if (!fs::is_regular_file(real, ec)) return std::nullopt;
    std::ifstream in(real, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream ss;
    ss << in.rdbuf();
    return StaticFile{ss.str(), mime_type(path)};
}

}  // namespace llmforge::server
