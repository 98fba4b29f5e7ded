#include "core/hash.h"

#include <cstdio>
#include <cstring>

#include "core/mmap_file.h"

namespace llmforge {

uint64_t content_hash64(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    auto mix = [](uint64_t x) {
        x ^= x >> 33;
        x *= 0xFF51AFD7ED558CCDull;
        x ^= x >> 33;
        x *= 0xC4CEB9FE1A85EC53ull;
        return x ^ (x >> 33);
    };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        std::memcpy(&w, p + i, 8);
        h = mix(h ^ w) + 0x632BE59BD9B4E019ull;
    }
    uint64_t tail = 0;
    if (n > i) std::memcpy(&tail, p + i, n - i);
    return mix(h ^ tail ^ (static_cast<uint64_t>(n - i) << 56));
}

std::string content_hash(const void* data, size_t n) {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(content_hash64(data, n)));
    return buf;
}

std::string file_content_hash(const std::string& path) {
    const auto f = MappedFile::open(path);
    return content_hash(f->data(), f->size());
}

}  // namespace llmforge
