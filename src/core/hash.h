// A fast 64-bit content hash, for noticing that a file or a set of files changed (RAG indexes, distillation caches):
// 8 bytes at a time through a multiply–xorshift mix (MurmurHash3's finaliser constants), seeded with the length. Not
// cryptographic: it detects accidents (another model, other data), not an adversary.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace llmforge {

uint64_t content_hash64(const void* data, size_t n);
std::string content_hash(const void* data, size_t n);  // 16 hex digits
inline std::string content_hash(const std::string& s) { return content_hash(s.data(), s.size()); }
// The hash of a file's bytes (memory-mapped); a bad-input Error if it cannot be read.
std::string file_content_hash(const std::string& path);

}  // namespace llmforge
