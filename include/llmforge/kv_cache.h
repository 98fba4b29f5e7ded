// The key/value cache: the keys and values of past positions, so that each new token costs one pass over the weights.
//
// A standalone object owned by whoever runs sequences (a Transformer for itself, later the serving engine, a chat
// session, perplexity) and passed to the forward pass. It holds n_seq sequences of up to n_ctx positions each, every
// layer: cells [seq][layer][pos][kv_dim], and how many positions each sequence has filled. Keys and values each have
// their element type (llama.cpp's --cache-type-k / --cache-type-v): f16 (llama.cpp's default: half the memory), f32
// (exact, for checks against a float32 reference), or one of ggml's 32-value block types q8_0, q4_0, q4_1, q5_0, q5_1
// and iq4_nl (a row quantised as ggml's CPU backend stores it: q8_0 with its x86 rounding, the others with their
// reference quantisers), which need a head dimension that is a multiple of 32.
//
// Sliding-window models (every layer attending to the last W positions) need no more than W positions per sequence:
// given n_batch, the most positions one pass stores for a sequence, a cache whose context is longer than
// W + n_batch − 1 keeps only that many cells, as a ring (position p in cell p mod cells()).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge {

struct ModelConfig;

// The element types of the keys and of the values; one DType converts to both.
struct KVCacheType {
    DType k = DType::F16, v = DType::F16;
    KVCacheType() = default;
    KVCacheType(DType t) : k(t), v(t) {}  // NOLINT(google-explicit-constructor): one type for both
    KVCacheType(DType k_type, DType v_type) : k(k_type), v(v_type) {}
    bool operator==(const KVCacheType& o) const { return k == o.k && v == o.v; }
    bool operator!=(const KVCacheType& o) const { return !(*this == o); }
    std::string name() const;  // "f16", or "q8_0/f16" (keys/values) where they differ
};
// Throws a bad-input Error unless t can hold keys or values ("--cache-type-k" …: what names the option).
void check_kv_type(DType t, const char* what);

class KVCache {
public:
    // n_batch: the most positions of one sequence a pass stores (0: the cache holds every position, no ring).
    KVCache(const ModelConfig& cfg, int64_t n_ctx, int n_seq = 1, KVCacheType type = {}, int64_t n_batch = 0);
    // The cells per sequence such a cache keeps, and the bytes it takes (keys and values).
    static int64_t cells_for(const ModelConfig& cfg, int64_t n_ctx, int64_t n_batch);
    static double bytes(const ModelConfig& cfg, int64_t n_ctx, int n_seq, KVCacheType type, int64_t n_batch = 0);

    int64_t n_ctx() const { return n_ctx_; }  // positions a sequence may reach
    int64_t cells() const { return cells_; }  // cells kept per sequence and layer (n_ctx, or a ring of fewer)
    bool ring() const { return cells_ < n_ctx_; }
    int64_t cell(int64_t pos) const { return pos % cells_; }
    int64_t window() const { return window_; }  // the model's sliding window (0: none)
    // The most positions of one sequence a pass may store (n_ctx without a ring).
    int64_t max_pass() const { return ring() ? cells_ - window_ + 1 : n_ctx_; }
    int n_seq() const { return n_seq_; }
    KVCacheType type() const { return type_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t kv_dim() const { return kv_dim_; }

    // Positions filled in sequence s; set after a pass stored its rows (throws for a sequence that does not exist).
    int64_t n_past(int s) const;
    void set_n_past(int s, int64_t n);
    // Can sequence s go back to n positions and continue from there? Always without a ring; with one, only if the
    // keys position n would attend to are still in their cells (or n is 0).
    bool can_truncate(int s, int64_t n) const;
    // s's cells become a copy of src's (its n_past(src) cells)
    void copy_seq(int src, int dst);

    // Stores n consecutive rows of keys and values [n, kv_dim] at positions pos, pos + 1, … of sequence s, layer l
    // (n ≤ max_pass()).
    void store(int s, int64_t l, int64_t pos, const float* k, const float* v, int64_t n);
    // The cells of sequence s in layer l: [cells()][kv_dim] (position p in row cell(p)), as f32 or f16 (null where
    // the keys or values have another type), or as rows of k_row_bytes() / v_row_bytes() bytes of any type.
    const float* k32(int s, int64_t l) const { return type_.k == DType::F32 ? reinterpret_cast<const float*>(k_bytes(s, l)) : nullptr; }
    const float* v32(int s, int64_t l) const { return type_.v == DType::F32 ? reinterpret_cast<const float*>(v_bytes(s, l)) : nullptr; }
    const uint16_t* k16(int s, int64_t l) const { return type_.k == DType::F16 ? reinterpret_cast<const uint16_t*>(k_bytes(s, l)) : nullptr; }
    const uint16_t* v16(int s, int64_t l) const { return type_.v == DType::F16 ? reinterpret_cast<const uint16_t*>(v_bytes(s, l)) : nullptr; }
    const uint8_t* k_bytes(int s, int64_t l) const { return k_.data() + at(s, l) * k_row_; }
    const uint8_t* v_bytes(int s, int64_t l) const { return v_.data() + at(s, l) * v_row_; }
    size_t k_row_bytes() const { return k_row_; }
    size_t v_row_bytes() const { return v_row_; }

    // With ggml arithmetic: the index of this cache's first cell in llama.cpp's KV cache (llama-perplexity packs
    // several chunks into one cache, one after another); it decides how keys fall into ggml's 16-lane sums.
    int64_t ggml_cell_offset = 0;

private:
    // the first row of sequence s, layer l
    size_t at(int64_t s, int64_t l) const { return static_cast<size_t>((s * n_layer_ + l) * cells_); }
    void store_rows(DType t, const float* x, uint8_t* dst, int64_t rows) const;
    int64_t n_ctx_, cells_, window_, n_layer_, kv_dim_;
    int n_seq_;
    KVCacheType type_;
    size_t k_row_, v_row_;  // bytes per cell
    std::vector<int64_t> past_;
    std::vector<uint8_t> k_, v_;  // (a vector's storage is aligned for floats)
};

}  // namespace llmforge
