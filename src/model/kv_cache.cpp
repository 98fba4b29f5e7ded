// The key/value cache (see kv_cache.h).
#include "llmforge/kv_cache.h"

#include <algorithm>

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

double KVCache::bytes(const ModelConfig& cfg, int64_t n_ctx, int n_seq, DType type, int64_t n_batch) {
    return 2.0 * static_cast<double>(n_seq) * static_cast<double>(cfg.n_layer * cells_for(cfg, n_ctx, n_batch) * cfg.kv_dim()) *
           static_cast<double>(dtype_size(type));
}

KVCache::KVCache(const ModelConfig& cfg, int64_t n_ctx, int n_seq, DType type, int64_t n_batch)
    : n_ctx_(n_ctx), cells_(cells_for(cfg, n_ctx, n_batch)), window_(cfg.sliding_window), n_layer_(cfg.n_layer), kv_dim_(cfg.kv_dim()),
      n_seq_(n_seq), type_(type) {
    if (n_seq < 1) throw_bad_input("the number of sequences must be at least 1, not %d", n_seq);
    if (n_ctx < 1) throw_bad_input("the KV cache needs a context of at least 1 position, not %lld", static_cast<long long>(n_ctx));
    if (type != DType::F32 && type != DType::F16) throw_bad_input("the KV cache type must be f32 or f16, not %s", dtype_name(type));
    past_.assign(static_cast<size_t>(n_seq), 0);
    const size_t cells = static_cast<size_t>(n_seq) * static_cast<size_t>(n_layer_ * cells_ * kv_dim_);
    if (type == DType::F32) {
        k32_.assign(cells, 0.0f);
        v32_.assign(cells, 0.0f);
    } else {
        k16_.assign(cells, 0);
        v16_.assign(cells, 0);
    }
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
    const size_t cells = static_cast<size_t>(std::min(n, cells_) * kv_dim_);  // a ring's cells are at the same places
    for (int64_t l = 0; l < n_layer_; ++l) {
        const size_t a = at(src, l), b = at(dst, l);
        if (type_ == DType::F32) {
            std::copy_n(k32_.data() + a, cells, k32_.data() + b);
            std::copy_n(v32_.data() + a, cells, v32_.data() + b);
        } else {
            std::copy_n(k16_.data() + a, cells, k16_.data() + b);
            std::copy_n(v16_.data() + a, cells, v16_.data() + b);
        }
    }
    past_[static_cast<size_t>(dst)] = n;
}

void KVCache::store(int s, int64_t l, int64_t pos, const float* k, const float* v, int64_t n) {
    if (n > max_pass())
        throw_runtime("a pass of %lld positions overwrites keys it still needs in a sliding-window KV cache of %lld cells (at most %lld)",
                      static_cast<long long>(n), static_cast<long long>(cells_), static_cast<long long>(max_pass()));
    while (n > 0) {  // a ring wraps at most once
        const int64_t c = cell(pos), m = std::min(n, cells_ - c);
        const size_t off = at(s, l) + static_cast<size_t>(c * kv_dim_), cnt = static_cast<size_t>(m * kv_dim_);
        if (type_ == DType::F32) {
            std::copy_n(k, cnt, k32_.data() + off);
            std::copy_n(v, cnt, v32_.data() + off);
        } else {
            convert_f32_to_f16(k, k16_.data() + off, cnt);
            convert_f32_to_f16(v, v16_.data() + off, cnt);
        }
        k += cnt;
        v += cnt;
        pos += m;
        n -= m;
    }
}

}  // namespace llmforge
