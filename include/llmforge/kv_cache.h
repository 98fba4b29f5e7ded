// The key/value cache: the keys and values of past positions, so that each new token costs one pass over the weights.
//
// A standalone object owned by whoever runs sequences (a Transformer for itself, later the serving engine, a chat
// session, perplexity) and passed to the forward pass. It holds n_seq sequences of up to n_ctx positions each, every
// layer: cells [seq][layer][pos][kv_dim], in f16 (llama.cpp's default: half the memory) or f32 (exact, for checks
// against a float32 reference), and how many positions each sequence has filled.
//
// Sliding-window models (every layer attending to the last W positions) need no more than W positions per sequence:
// given n_batch, the most positions one pass stores for a sequence, a cache whose context is longer than
// W + n_batch − 1 keeps only that many cells, as a ring (position p in cell p mod cells()).
#pragma once
#include <cstdint>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge {

struct ModelConfig;

class KVCache {
public:
    // n_batch: the most positions of one sequence a pass stores (0: the cache holds every position, no ring).
    KVCache(const ModelConfig& cfg, int64_t n_ctx, int n_seq = 1, DType type = DType::F16, int64_t n_batch = 0);
    // The cells per sequence such a cache keeps, and the bytes it takes (keys and values).
    static int64_t cells_for(const ModelConfig& cfg, int64_t n_ctx, int64_t n_batch);
    static double bytes(const ModelConfig& cfg, int64_t n_ctx, int n_seq, DType type, int64_t n_batch = 0);

    int64_t n_ctx() const { return n_ctx_; }  // positions a sequence may reach
    int64_t cells() const { return cells_; }  // cells kept per sequence and layer (n_ctx, or a ring of fewer)
    bool ring() const { return cells_ < n_ctx_; }
    int64_t cell(int64_t pos) const { return pos % cells_; }
    int64_t window() const { return window_; }  // the model's sliding window (0: none)
    // The most positions of one sequence a pass may store (n_ctx without a ring).
    int64_t max_pass() const { return ring() ? cells_ - window_ + 1 : n_ctx_; }
    int n_seq() const { return n_seq_; }
    DType type() const { return type_; }
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
    // The cells of sequence s in layer l: [cells()][kv_dim] (position p in row cell(p)), in f32 or f16 (null for the
    // other type).
    const float* k32(int s, int64_t l) const { return type_ == DType::F32 ? k32_.data() + at(s, l) : nullptr; }
    const float* v32(int s, int64_t l) const { return type_ == DType::F32 ? v32_.data() + at(s, l) : nullptr; }
    const uint16_t* k16(int s, int64_t l) const { return type_ == DType::F16 ? k16_.data() + at(s, l) : nullptr; }
    const uint16_t* v16(int s, int64_t l) const { return type_ == DType::F16 ? v16_.data() + at(s, l) : nullptr; }

    // With ggml arithmetic: the index of this cache's first cell in llama.cpp's KV cache (llama-perplexity packs
    // several chunks into one cache, one after another); it decides how keys fall into ggml's 16-lane sums.
    int64_t ggml_cell_offset = 0;

private:
    size_t at(int64_t s, int64_t l) const { return static_cast<size_t>((s * n_layer_ + l) * cells_ * kv_dim_); }
    int64_t n_ctx_, cells_, window_, n_layer_, kv_dim_;
    int n_seq_;
    DType type_;
    std::vector<int64_t> past_;
    std::vector<float> k32_, v32_;
    std::vector<uint16_t> k16_, v16_;
};

}  // namespace llmforge
