// Internal state of BpeTokenizer, shared by encoding (bpe.cpp), file I/O (bpe_io.cpp) and training (bpe_train.cpp).
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "llmforge/bpe.h"
#include "tokenizer/regex_split.h"

namespace llmforge::detail {

inline uint64_t hash_bytes(const void* data, size_t n) {
    // 8 bytes at a time, multiply-xorshift mixing; good enough for short token strings.
    const auto* p = static_cast<const unsigned char*>(data);
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = (h ^ w ^ (static_cast<uint64_t>(n) << 59)) * 0x94d049bb133111ebull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

// bytes → token id, open addressing over the tokenizer's own token strings.
class TokenIndex {
public:
    void build(const std::vector<std::string>& tokens, const std::vector<uint8_t>& include);
    int32_t find(const void* data, size_t n) const {
        if (slots_.empty()) return -1;
        size_t i = hash_bytes(data, n) & mask_;
        for (;;) {
            const int32_t id = slots_[i];
            if (id < 0) return -1;
            const std::string& t = (*tokens_)[static_cast<size_t>(id)];
            if (t.size() == n && std::memcmp(t.data(), data, n) == 0) return id;
            i = (i + 1) & mask_;
        }
    }

private:
    const std::vector<std::string>* tokens_ = nullptr;
    std::vector<int32_t> slots_;
    size_t mask_ = 0;
};

// (left id, right id) → (merge rank, merged id).
class PairTable {
public:
    struct Entry { uint64_t key; int32_t rank; int32_t id; };
    void reserve(size_t n);
    // Keeps the first (lowest-rank) entry for a pair.
    void insert(int32_t a, int32_t b, int32_t rank, int32_t id);
    const Entry* find(int32_t a, int32_t b) const {
        const uint64_t k = key(a, b);
        size_t i = slot(k);
        for (;;) {
            const Entry& e = slots_[i];
            if (e.key == k) return &e;
            if (e.key == kEmpty) return nullptr;
            i = (i + 1) & mask_;
        }
    }
    size_t size() const { return count_; }

private:
    static constexpr uint64_t kEmpty = ~0ull;
    static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }
    size_t slot(uint64_t k) const { return static_cast<size_t>((k * 0x9e3779b97f4a7c15ull) >> 20) & mask_; }
    std::vector<Entry> slots_;
    size_t mask_ = 0, count_ = 0;
};

}  // namespace llmforge::detail

namespace llmforge {

struct BpeTokenizer::Impl {
    std::vector<std::string> tokens;   // id → raw bytes (added tokens: their content)
    std::vector<uint8_t> valid;        // id is assigned (tiktoken's special ids leave holes)
    std::vector<uint8_t> special;      // id is a special (control) added token
    detail::TokenIndex index;          // bytes → id, for the BPE vocabulary (not added tokens)
    std::vector<std::pair<int32_t, int32_t>> merges;
    detail::PairTable pairs;
    int32_t byte_token[256];           // the token of each single byte (-1 if the vocabulary lacks it)
    std::vector<SplitRule> rules;
    std::vector<detail::RegexSplitter> splitters;
    std::vector<AddedToken> added;     // sorted longest content first, for matching
    bool added_first_byte[256] = {};
    bool has_plain_added = false;    // some added token is not special: matched even when specials are not
    bool nfc = false, whole_token_first = false, add_prefix_space = false;
    uint64_t serial = 0;               // tells thread-local caches apart

    void build();  // index, pair table, byte tokens, splitters; checks consistency
    void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
    void encode_piece(const unsigned char* p, size_t n, std::vector<int32_t>& out) const;
    void merge_small(const unsigned char* p, size_t n, std::vector<int32_t>& out) const;
    void merge_large(const unsigned char* p, size_t n, std::vector<int32_t>& out) const;
    void pre_split(std::string_view text, std::vector<std::pair<size_t, size_t>>& pieces) const;
};

}  // namespace llmforge
