// The key/value cache (see kv_cache.h).
#include "llmforge/kv_cache.h"

#include <algorithm>

#include "core/quants.h"
#include "llmforge/error.h"
#include "llmforge/model.h"

namespace llmforge {

int64_t KVCache::cells_for(const ModelConfig& cfg, int64_t n_ctx, int64_t n_batch) {
    const int64_t w = cfg.sliding_window;
    for (int64_t l = 0; l < cfg.n_layer; ++l)
        if (cfg.window_of(l) != w) return n_ctx;  // a layer with another window (or none) needs every position
    // a pass of n_batch positions starting at p needs the keys from p − w + 1 while storing up to p + n_batch − 1
    if (w > 0 && n_batch > 0 && w + n_batch - 1 < n_ctx) return w + n_batch - 1;
    return n_ctx;
}

namespace {
bool kv_block_type(DType t) {
    return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1 || t == DType::IQ4_NL;
}
size_t kv_row_bytes(DType t, int64_t kv_dim) { return t == DType::F32 ? 4 * static_cast<size_t>(kv_dim) : t == DType::F16 ? 2 * static_cast<size_t>(kv_dim) : quant::row_bytes(t, kv_dim); }
}  // namespace

std::string KVCacheType::name() const { return k == v ? dtype_name(k) : std::string(dtype_name(k)) + "/" + dtype_name(v); }

void check_kv_type(DType t, const char* what) {
    if (t != DType::F32 && t != DType::F16 && !kv_block_type(t))
        throw_bad_input("%s must be f32, f16, q8_0, q4_0, q4_1, q5_0, q5_1 or iq4_nl, not %s", what, dtype_name(t));
}

double KVCache::bytes(const ModelConfig& cfg, int64_t n_ctx, int n_seq, KVCacheType type, int64_t n_batch) {
    return static_cast<double>(n_seq) * static_cast<double>(cfg.n_layer * cells_for(cfg, n_ctx, n_batch)) *
           static_cast<double>(kv_row_bytes(type.k, cfg.kv_dim()) + kv_row_bytes(type.v, cfg.kv_dim()));
}

KVCache::KVCache(const ModelConfig& cfg, int64_t n_ctx, int n_seq, KVCacheType type, int64_t n_batch)
    : n_ctx_(n_ctx), cells_(cells_for(cfg, n_ctx, n_batch)), window_(cfg.sliding_window), n_layer_(cfg.n_layer), kv_dim_(cfg.kv_dim()),
      n_seq_(n_seq), type_(type) {
    if (n_seq < 1) throw_bad_input("the number of sequences must be at least 1, not %d", n_seq);
    if (n_ctx < 1) throw_bad_input("the KV cache needs a context of at least 1 position, not %lld", static_cast<long long>(n_ctx));
    check_kv_type(type.k, "the KV cache's key type");
    check_kv_type(type.v, "the KV cache's value type");
    if ((kv_block_type(type.k) || kv_block_type(type.v)) && cfg.head_dim() % 32 != 0)
        throw_bad_input("a %s KV cache needs a head dimension that is a multiple of 32, not %lld", type.name().c_str(),
                        static_cast<long long>(cfg.head_dim()));
    k_row_ = kv_row_bytes(type.k, kv_dim_);
    v_row_ = kv_row_bytes(type.v, kv_dim_);
    past_.assign(static_cast<size_t>(n_seq), 0);
    const size_t rows = static_cast<size_t>(n_seq) * static_cast<size_t>(n_layer_ * cells_);
    k_.assign(rows * k_row_, 0);
    v_.assign(rows * v_row_, 0);
}

int64_t KVCache::n_past(int s) const {
    if (s < 0 || s >= n_seq_) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq_ - 1);
    return past_[static_cast<size_t>(s)];
}

void KVCache::set_n_past(int s, int64_t n) {
    if (s < 0 || s >= n_seq_) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq_ - 1);
    past_[static_cast<size_t>(s)] = std::clamp<int64_t>(n, 0, n_ctx_);
}

bool KVCache::can_truncate(int s, int64_t n) const {
    const int64_t past = n_past(s);
    if (!ring() || n <= 0 || n >= past) return true;
    // cells hold positions past − cells .. past − 1; position n attends from n − window + 1
    return std::max<int64_t>(0, n - window_ + 1) >= past - cells_;
}

void KVCache::copy_seq(int src, int dst) {
    const int64_t n = n_past(src);
    n_past(dst);  // checks dst
    if (src == dst) return;
    const size_t cells = static_cast<size_t>(std::min(n, cells_));  // a ring's cells are at the same places
    for (int64_t l = 0; l < n_layer_; ++l) {
        std::copy_n(k_.data() + at(src, l) * k_row_, cells * k_row_, k_.data() + at(dst, l) * k_row_);
        std::copy_n(v_.data() + at(src, l) * v_row_, cells * v_row_, v_.data() + at(dst, l) * v_row_);
    }
    past_[static_cast<size_t>(dst)] = n;
}

// rows of kv_dim values into the cells at dst, as ggml's CPU backend stores them (ggml_cpy's from_float)
void KVCache::store_rows(DType t, const float* x, uint8_t* dst, int64_t rows) const {
    const size_t cnt = static_cast<size_t>(rows * kv_dim_);
    if (t == DType::F32) std::copy_n(x, cnt, reinterpret_cast<float*>(dst));
    else if (t == DType::F16) convert_f32_to_f16(x, reinterpret_cast<uint16_t*>(dst), cnt);
    else if (t == DType::Q8_0) quant::quantize_activations(DType::Q8_0, x, dst, static_cast<int64_t>(cnt));  // its x86 rounding
    else quant::quantize(t, x, dst, rows, kv_dim_);  // the reference quantisers
}

void KVCache::store(int s, int64_t l, int64_t pos, const float* k, const float* v, int64_t n) {
    if (n > max_pass())
        throw_runtime("a pass of %lld positions overwrites keys it still needs in a sliding-window KV cache of %lld cells (at most %lld)",
                      static_cast<long long>(n), static_cast<long long>(cells_), static_cast<long long>(max_pass()));
    while (n > 0) {  // a ring wraps at most once
        const int64_t c = cell(pos), m = std::min(n, cells_ - c);
        const size_t row = at(s, l) + static_cast<size_t>(c);
        store_rows(type_.k, k, k_.data() + row * k_row_, m);
        store_rows(type_.v, v, v_.data() + row * v_row_, m);
        k += m * kv_dim_;
        v += m * kv_dim_;
        pos += m;
        n -= m;
    }
}

}  // namespace llmforge
