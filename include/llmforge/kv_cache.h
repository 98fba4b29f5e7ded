// The key/value cache: the keys and values of past positions, so that each new token costs one pass over the weights.
//
// A standalone object owned by whoever runs sequences (a Transformer for itself, later the serving engine, a chat
// session, perplexity) and passed to the forward pass. It holds n_seq sequences of up to n_ctx positions each, every
// layer: cells [seq][layer][pos][kv_dim], in f16 (llama.cpp's default: half the memory) or f32 (exact, for checks
// against a float32 reference), and how many positions each sequence has filled.
#pragma once
#include <cstdint>
#include <vector>

#include "llmforge/dtype.h"

namespace llmforge {

struct ModelConfig;

class KVCache {
public:
    KVCache(const ModelConfig& cfg, int64_t n_ctx, int n_seq = 1, DType type = DType::F16);
    // The bytes a cache of this size takes (keys and values).
    static double bytes(const ModelConfig& cfg, int64_t n_ctx, int n_seq, DType type);

    int64_t n_ctx() const { return n_ctx_; }
    int n_seq() const { return n_seq_; }
    DType type() const { return type_; }
    int64_t n_layer() const { return n_layer_; }
    int64_t kv_dim() const { return kv_dim_; }

    // Positions filled in sequence s; set after a pass stored its rows (throws for a sequence that does not exist).
    int64_t n_past(int s) const;
    void set_n_past(int s, int64_t n);
    // s's cells become a copy of src's (its n_past(src) cells)
    void copy_seq(int src, int dst);

    // Stores n consecutive rows of keys and values [n, kv_dim] at positions pos, pos + 1, … of sequence s, layer l.
    void store(int s, int64_t l, int64_t pos, const float* k, const float* v, int64_t n);
    // The cells of sequence s in layer l: [n_ctx][kv_dim], in f32 or f16 (null for the other type).
    const float* k32(int s, int64_t l) const { return type_ == DType::F32 ? k32_.data() + at(s, l) : nullptr; }
    const float* v32(int s, int64_t l) const { return type_ == DType::F32 ? v32_.data() + at(s, l) : nullptr; }
    const uint16_t* k16(int s, int64_t l) const { return type_ == DType::F16 ? k16_.data() + at(s, l) : nullptr; }
    const uint16_t* v16(int s, int64_t l) const { return type_ == DType::F16 ? v16_.data() + at(s, l) : nullptr; }

    // With ggml arithmetic: the index of this cache's first cell in llama.cpp's KV cache (llama-perplexity packs
    // several chunks into one cache, one after another); it decides how keys fall into ggml's 16-lane sums.
    int64_t ggml_cell_offset = 0;

private:
    size_t at(int64_t s, int64_t l) const { return static_cast<size_t>((s * n_layer_ + l) * n_ctx_ * kv_dim_); }
    int64_t n_ctx_, n_layer_, kv_dim_;
    int n_seq_;
    DType type_;
    std::vector<int64_t> past_;
    std::vector<float> k32_, v32_;
    std::vector<uint16_t> k16_, v16_;
};

}  // namespace llmforge
