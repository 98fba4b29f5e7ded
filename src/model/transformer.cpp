// The forward pass. Shapes in comments: n = tokens in this pass, C = n_embd, KV = n_head_kv · d_head, F = n_ff.
#include "llmforge/transformer.h"
#include "core/ggml_math.h"
#include "core/kernels_impl.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <unistd.h>

#include "llmforge/error.h"
#include "llmforge/gguf.h"
#include "llmforge/kernels.h"

namespace llmforge {

namespace {
const Tensor* opt(const Model& m, const std::string& name) { return m.find(name); }
const Tensor* req(const Model& m, const std::string& name) { return &m.get(name); }

// Loads row `r` of a 1-D or 2-D weight as f32.
void load_row(const Tensor& t, int64_t r, float* out) {
    const int64_t cols = t.cols();
    const uint8_t* base = static_cast<const uint8_t*>(t.data) + static_cast<size_t>(r * cols) * dtype_size(t.dtype);
    convert_to_f32(t.dtype, base, out, static_cast<size_t>(cols));
}

// GPT-2's GELU, the tanh approximation ("gelu_new").
inline float gelu(float x) {
    const float k = 0.7978845608028654f;  // √(2/π)
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}
}  // namespace

Transformer::Transformer(const Model& model, ThreadPool& pool, int64_t n_ctx, int64_t n_batch, DType kv_type, int n_seq)
    : model_(model), cfg_(model.config), pool_(pool), n_ctx_(n_ctx > 0 ? n_ctx : model.config.n_ctx), n_batch_(std::max<int64_t>(1, n_batch)),
      kv_type_(kv_type), n_seq_(n_seq), past_(static_cast<size_t>(std::max(1, n_seq)), 0) {
    if (n_seq < 1) throw_bad_input("the number of sequences must be at least 1, not %d", n_seq);
    if (kv_type_ != DType::F32 && kv_type_ != DType::F16) throw_bad_input("the KV cache type must be f32 or f16, not %s", dtype_name(kv_type_));
    if (cfg_.learned_positions && n_ctx_ > cfg_.n_ctx)
        throw_bad_input("context %lld is longer than the %lld learned positions of this model", static_cast<long long>(n_ctx_),
                        static_cast<long long>(cfg_.n_ctx));
    n_batch_ = std::max<int64_t>(std::min(n_batch_, n_ctx_), n_seq_);  // decode() takes one token of every sequence
    // the tensors the block description names (a bias only where the description has one)
    const ModelConfig& c = cfg_;
    auto bias = [&](bool has, const std::string& name) { return has ? req(model, name + ".bias") : nullptr; };
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        Layer L{};
        L.attn_norm = req(model, p + "attn_norm.weight");
        L.attn_norm_b = bias(c.norm_bias(), p + "attn_norm");
        if (c.fused_qkv) {
            L.wqkv = req(model, p + "attn_qkv.weight");
            L.bqkv = bias(c.qkv_bias, p + "attn_qkv");
        } else {
            L.wq = req(model, p + "attn_q.weight");
            L.wk = req(model, p + "attn_k.weight");
            L.wv = req(model, p + "attn_v.weight");
            L.bq = bias(c.qkv_bias, p + "attn_q");
            L.bk = bias(c.qkv_bias, p + "attn_k");
            L.bv = bias(c.qkv_bias, p + "attn_v");
        }
        L.wo = req(model, p + "attn_output.weight");
        L.bo = bias(c.out_bias, p + "attn_output");
        L.ffn_norm = req(model, p + "ffn_norm.weight");
        L.ffn_norm_b = bias(c.norm_bias(), p + "ffn_norm");
        if (c.gated_mlp()) {
            L.w_gate = req(model, p + "ffn_gate.weight");
            L.b_gate = bias(c.mlp_bias, p + "ffn_gate");
        }
        L.w_up = req(model, p + "ffn_up.weight");
        L.b_up = bias(c.mlp_bias, p + "ffn_up");
        L.w_down = req(model, p + "ffn_down.weight");
        L.b_down = bias(c.mlp_bias, p + "ffn_down");
        layers_.push_back(L);
    }
    tok_embd_ = req(model, "token_embd.weight");
    pos_embd_ = c.learned_positions ? req(model, "position_embd.weight") : nullptr;
    out_norm_ = req(model, "output_norm.weight");
    out_norm_b_ = bias(c.norm_bias(), "output_norm");
    output_ = opt(model, "output.weight");
    if (!output_) output_ = tok_embd_;  // tied embeddings

    const int64_t C = cfg_.n_embd, KV = cfg_.kv_dim(), F = cfg_.n_ff, B = n_batch_;
    const size_t cache = static_cast<size_t>(n_seq_) * static_cast<size_t>(cfg_.n_layer * n_ctx_ * KV);
    // What the buffers below take: the K and V caches, and f32 activations for a batch of B rows (x, h, q, att, k, v,
    // the MLP's two, GPT-2's qkv) plus the per-thread attention scratch. Refuse, naming the sizes, what cannot fit.
    const double gib = 1024.0 * 1024.0 * 1024.0;
    const double kv_bytes = 2.0 * static_cast<double>(cache) * static_cast<double>(dtype_size(kv_type_));
    const int64_t QKV = C + 2 * KV;  // the fused projection's width
    const double act_bytes = 4.0 * (static_cast<double>(B) * static_cast<double>(4 * C + 2 * KV + 2 * F + (c.fused_qkv ? QKV : 0)) +
                                    static_cast<double>(pool.size()) * static_cast<double>(n_ctx_ + 32 + cfg_.head_dim() * 66));
    const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGE_SIZE));
    if (kv_bytes + act_bytes > have)
        throw_bad_input("a context of %lld tokens (× %d sequence%s) needs %.2f GiB for the KV cache and %.2f GiB of buffers, more than the "
                        "%.2f GiB of memory here: lower the context (-c)",
                        static_cast<long long>(n_ctx_), n_seq_, n_seq_ == 1 ? "" : "s", kv_bytes / gib, act_bytes / gib, have / gib);
    try {
    if (kv_type_ == DType::F32) {
        k_cache_.assign(cache, 0.0f);
        v_cache_.assign(cache, 0.0f);
    } else {
        k_cache16_.assign(cache, 0);
        v_cache16_.assign(cache, 0);
    }
    x_.resize(B * C);
    h_.resize(B * C);
    q_.resize(B * C);
    k_.resize(B * KV);
    v_.resize(B * KV);
    if (c.fused_qkv) qkv_.resize(B * QKV);
    att_.resize(B * C);
    ff_a_.resize(B * F);
    ff_b_.resize(B * F);
    // per thread: a row of scores over the (32-padded) cache, the rounded query, 16 accumulator lanes per output
    scores_.resize(static_cast<size_t>(pool.size()) * (n_ctx_ + 32 + cfg_.head_dim() * (2 + 4 * ggml::kLanes)));
    acc_.resize(static_cast<size_t>(pool.size() * cfg_.head_dim()));
    bias_.resize(static_cast<size_t>(std::max(QKV, F)));
    norm_w_.resize(2 * C);
    rope_cos_.resize(B * cfg_.n_rot() / 2);
    rope_sin_.resize(B * cfg_.n_rot() / 2);
    } catch (const std::bad_alloc&) {
        throw_runtime("out of memory: allocating %.2f GiB for the KV cache (context %lld × %d sequence%s, %s) and %.2f GiB of buffers failed",
                      kv_bytes / gib, static_cast<long long>(n_ctx_), n_seq_, n_seq_ == 1 ? "" : "s", dtype_name(kv_type_), act_bytes / gib);
    }
}

void Transformer::check_tokens(const int32_t* tokens, int64_t n, bool room) const {
    if (room && n_past_ + n > n_ctx_)
        throw_bad_input("%lld tokens do not fit in the context: %lld already used of %lld", static_cast<long long>(n),
                        static_cast<long long>(n_past_), static_cast<long long>(n_ctx_));
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= cfg_.n_vocab)
            throw_bad_input("token id %d is outside the vocabulary (0..%lld)", tokens[i], static_cast<long long>(cfg_.n_vocab - 1));
}

const std::vector<float>& Transformer::eval(const int32_t* tokens, int64_t n, bool all_logits) {
    if (n <= 0) throw_bad_input("nothing to evaluate: no tokens");
    check_tokens(tokens, n, true);
    const int64_t V = cfg_.n_vocab;
    logits_.assign(static_cast<size_t>((all_logits ? n : 1) * V), 0.0f);
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(n_batch_, n - done);
        const bool last = done + m == n;
        if (all_logits) forward(tokens + done, m, 0, logits_.data() + done * V);
        else forward(tokens + done, m, last ? m - 1 : m, logits_.data());
        done += m;
    }
    return logits_;
}

// RMSNorm(x) = x / √(mean(x²) + ε) · w          (LLaMA)
// LayerNorm(x) = (x − mean) / √(var + ε) · w + b   (GPT-2)
void Transformer::norm(const float* x, float* out, int64_t n, const Tensor* w, const Tensor* b) {
    const int64_t C = cfg_.n_embd;
    float* wf = norm_w_.data();
    float* bf = norm_w_.data() + C;
    load_row(*w, 0, wf);
    if (b) load_row(*b, 0, bf);
    else std::fill(bf, bf + C, 0.0f);
    const double eps = cfg_.norm_eps;
    for (int64_t i = 0; i < n; ++i) {
        const float* xi = x + i * C;
        float* oi = out + i * C;
        if (cfg_.norm == NormKind::RMSNorm) {
            double ss = 0;  // f32 squares summed in f64, the mean and root in f32 (as ggml's rms_norm)
            for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xi[c] * xi[c]);
            const float mean = static_cast<float>(ss / static_cast<double>(C));
            const float scale = 1.0f / std::sqrt(mean + cfg_.norm_eps);
            for (int64_t c = 0; c < C; ++c) oi[c] = xi[c] * scale * wf[c];
        } else {
            double mean = 0, var = 0;
            for (int64_t c = 0; c < C; ++c) mean += xi[c];
            mean /= static_cast<double>(C);
            for (int64_t c = 0; c < C; ++c) var += (xi[c] - mean) * (xi[c] - mean);
            var /= static_cast<double>(C);
            const double inv = 1.0 / std::sqrt(var + eps);
            for (int64_t c = 0; c < C; ++c) oi[c] = static_cast<float>((xi[c] - mean) * inv) * wf[c] + bf[c];
        }
    }
}

void Transformer::add_lora(const Model& adapter, float scale) {
    if (!adapter.meta.find("adapter.lora.alpha")) throw_bad_input("the adapter has no adapter.lora.alpha");
    const float alpha = static_cast<float>(adapter.meta.get_float("adapter.lora.alpha", 0));
    int n = 0;
    for (const Tensor& ta : adapter.tensors) {
        if (ta.name.size() < 7 || ta.name.compare(ta.name.size() - 7, 7, ".lora_a") != 0) continue;
        const std::string base = ta.name.substr(0, ta.name.size() - 7);
        const Tensor* w = model_.find(base);
        const Tensor* tb = adapter.find(base + ".lora_b");
        if (!w) throw_bad_input("the adapter adapts '%s', which this model does not have", base.c_str());
        if (!tb) throw_bad_input("the adapter has '%s.lora_a' without '%s.lora_b'", base.c_str(), base.c_str());
        const int64_t r = ta.shape[0];
        if (ta.shape[1] != w->cols() || tb->shape[0] != w->shape[0] || tb->shape[1] != r)
            throw_bad_input("the adapter's shapes for '%s' do not fit the model", base.c_str());
        Lora l;
        l.rank = r;
        l.scale = scale * alpha / static_cast<float>(r);
        l.a.resize(static_cast<size_t>(ta.numel()));
        l.b.resize(static_cast<size_t>(tb->numel()));
        convert_to_f32(ta.dtype, ta.data, l.a.data(), l.a.size());
        convert_to_f32(tb->dtype, tb->data, l.b.data(), l.b.size());
        lora_[w].push_back(std::move(l));
        ++n;
    }
    if (n == 0) throw_bad_input("the adapter holds no .lora_a tensors");
}

// out[n, rows] = in[n, cols] · Wᵀ (+ b) (+ the LoRA adapters of W)
void Transformer::linear(const float* in, float* out, int64_t n, const Tensor* w, const Tensor* b) {
    const int64_t rows = w->shape[0], cols = w->cols();
    if (w->layout == Tensor::Layout::Panels) {  // f32 repacked for the CPU (repack_for_cpu): batch-invariant already
        if (ggml_arith_) throw_bad_input("ggml arithmetic needs row-major weights: load the model without repacking (without --no-mmap)");
        kernels::matmul_panels(static_cast<const float*>(w->data), in, out, n, rows, cols, pool_);
    } else if (ggml_arith_) kernels::matmul_ggml(w->dtype, w->data, in, out, n, rows, cols, pool_);
    else if (rowwise_) kernels::matmul_rowwise(w->dtype, w->data, in, out, n, rows, cols, pool_);
    else kernels::matmul(w->dtype, w->data, in, out, n, rows, cols, pool_);
    if (!lora_.empty()) {
        const auto it = lora_.find(w);
        if (it != lora_.end())
            for (const Lora& l : it->second) {  // out += s · (in Aᵀ) Bᵀ
                lora_tmp_.resize(static_cast<size_t>(n * l.rank));
                kernels::gemm(in, false, l.a.data(), false, lora_tmp_.data(), n, l.rank, cols, false, kernels::Precision::F32, pool_);
                for (float& v : lora_tmp_) v *= l.scale;
                kernels::gemm(lora_tmp_.data(), false, l.b.data(), false, out, n, rows, l.rank, true, kernels::Precision::F32, pool_);
            }
    }
    if (b) {
        float* bias = bias_.data();  // scratch sized for the widest bias (C + 2KV or F)
        load_row(*b, 0, bias);
        for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < rows; ++r) out[i * rows + r] += bias[r];
    }
}

// Rotary position embedding: rotate each pair of dimensions of each head by the angle pos · θ^(−2i/d).
void Transformer::rope(float* x, int64_t n, int64_t n_heads) {
    kernels::active().rope(x, n, n_heads, cfg_.head_dim(), cfg_.n_rot() / 2, cfg_.rope_style == RopeStyle::Interleaved, rope_cos_.data(),
                           rope_sin_.data());
}

// out = softmax(q Kᵀ / √d_k, masked to positions ≤ the query's) · V, for each head; query heads share KV heads in groups.
// attention_ggml: the sums run in the order llama.cpp's CPU backend runs them (model/ggml_math.h), so that an f16 cache rounds exactly
// as llama.cpp's does: scores over the cache padded to 32 cells (masked cells are −∞), exp and block sums as ggml's
// softmax, and the products q·k and p·v as ggml's matrix products take them — tinyBLAS order when several tokens are
// processed and the inner length is a multiple of 16, ggml_vec_dot order otherwise. With an f16 cache q and the
// attention weights are rounded to f16 first, as ggml converts them.
void Transformer::attention_ggml(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0) {
    const int64_t H = cfg_.n_head, HD = cfg_.head_dim(), KV = cfg_.kv_dim(), group = H / cfg_.n_head_kv, C = cfg_.n_embd;
    const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
    const bool f16 = kv_type_ == DType::F16;
    const bool batched = n >= 2;  // llamafile's sgemm serves only prompt processing
    const int64_t n_kv = ggml::kv_cells(pos0 + n, (n_ctx_ + 31) / 32 * 32);
    // where this sequence's cells sit in llama.cpp's cache decides which 16-lane accumulator and which softmax block
    // each key falls in: key t is cell cell_offset_ + t
    const int64_t shift = cell_offset_ % ggml::kLanes;
    const size_t base = cache_at(slot_, layer, 0);
    const float* K = f16 ? nullptr : k_cache_.data() + base;
    const float* Vc = f16 ? nullptr : v_cache_.data() + base;
    const uint16_t* K16 = f16 ? k_cache16_.data() + base : nullptr;
    const uint16_t* V16 = f16 ? v_cache16_.data() + base : nullptr;
    const size_t per_thread = static_cast<size_t>(n_ctx_ + 32 + HD * (2 + 4 * ggml::kLanes));
    // The kernels with 16-lane vectors compute these sums in exactly ggml's order; elsewhere ggml_math.h's scalar forms.
    const kernels::KernelTable& kt = kernels::active();
    const bool vec16 = kt.vec_width == ggml::kLanes && kt.softmax_exp_ggml && kt.round_f16;
    // Batched p·V as tinyBLAS takes it: for each value dimension, one 16-lane FMA over the cells. V is laid out
    // transposed (VT[kv row][cell], zero outside the keys) so that this is a single-accumulator dot product.
    const int64_t n_keys_all = pos0 + n;
    const int64_t n_vt = std::max(n_kv, (shift + n_keys_all + ggml::kLanes - 1) / ggml::kLanes * ggml::kLanes);
    float* VT = nullptr;
    if (batched && vec16) {
        vt_.resize(static_cast<size_t>(KV * n_vt));
        VT = vt_.data();
        pool_.parallel_for(KV, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                float* dst = VT + r * n_vt;
                std::fill(dst, dst + shift, 0.0f);
                std::fill(dst + shift + n_keys_all, dst + n_vt, 0.0f);
                if (f16) {
                    for (int64_t t = 0; t < n_keys_all; ++t) dst[shift + t] = f16_to_f32(V16[t * KV + r]);
                } else {
                    for (int64_t t = 0; t < n_keys_all; ++t) dst[shift + t] = Vc[t * KV + r];
                }
            }
        });
    }
    pool_.run([&](int ith, int nth) {
        float* const row = scores_.data() + ith * per_thread;  // row[shift + t] is key t
        float* const scores = row + shift;
        float* qr = row + n_ctx_ + 32;  // the query rounded to f16
        float* lanes = qr + HD;            // [HD][4][16] accumulators of p·v
        float* kf = lanes + HD * 4 * ggml::kLanes;  // a key row widened to f32
        for (int64_t task = ith; task < n * H; task += nth) {
            const int64_t i = task / H, h = task % H, kvh = h / group;
            const int64_t n_keys = pos0 + i + 1;  // causal mask: keys at positions 0 .. pos0 + i
            const float* qi = q + i * C + h * HD;
            // scores = q·k · scale, −∞ where masked
            for (int64_t t = 0; t < shift; ++t) row[t] = -INFINITY;
            if (vec16) {
                if (f16) {
                    std::copy_n(qi, HD, qr);
                    kt.round_f16(qr, HD);
                    const auto dot = batched && HD % ggml::kLanes == 0 ? kt.dot_seq_f16 : kt.dot_f16;  // tinyBLAS : vec_dot_f16
                    for (int64_t t = 0; t < n_keys; ++t) scores[t] = dot(K16 + t * KV + kvh * HD, qr, HD) * scale;
                } else {
                    for (int64_t t = 0; t < n_keys; ++t) scores[t] = kt.dot_f32(K + t * KV + kvh * HD, qi, HD) * scale;  // vec_dot_f32
                }
            } else if (f16) {
                for (int64_t d = 0; d < HD; ++d) qr[d] = f16_to_f32(f32_to_f16(qi[d]));
                for (int64_t t = 0; t < n_keys; ++t) {
                    const uint16_t* kt = K16 + t * KV + kvh * HD;
                    for (int64_t d = 0; d < HD; ++d) kf[d] = f16_to_f32(kt[d]);
                    const float dot = batched && HD % ggml::kLanes == 0 ? ggml::dot_tinyblas(kf, qr, HD) : ggml::dot_vec<true>(kf, qr, HD);
                    scores[t] = dot * scale;
                }
            } else {
                for (int64_t t = 0; t < n_keys; ++t) scores[t] = ggml::dot_vec<false>(K + t * KV + kvh * HD, qi, HD) * scale;
            }
            const int64_t n_row = shift == 0 ? n_kv : (shift + n_keys + ggml::kLanes - 1) / ggml::kLanes * ggml::kLanes;
            for (int64_t t = shift + n_keys; t < n_row; ++t) row[t] = -INFINITY;
            float mx = -INFINITY;
            for (int64_t t = 0; t < n_row; ++t) mx = std::max(mx, row[t]);
            const double sum = vec16 ? kt.softmax_exp_ggml(row, row, n_row, mx) : ggml::softmax_exp(row, row, n_row, mx);
            const float inv = static_cast<float>(1.0 / sum);
            for (int64_t t = 0; t < n_keys; ++t) scores[t] *= inv;
            if (f16) {
                if (vec16) kt.round_f16(scores, n_keys);
                else
                    for (int64_t t = 0; t < n_keys; ++t) scores[t] = f16_to_f32(f32_to_f16(scores[t]));
            }
            // out = p · V over the cache cells (masked cells have p = 0 and add nothing)
            float* o = out + i * C + h * HD;
            if (VT) {  // row[0, n_row) holds p by cell (zero where masked)
                for (int64_t d = 0; d < HD; ++d) o[d] = kt.dot_seq_f32(VT + (kvh * HD + d) * n_vt, row, n_row);
                continue;
            }
            std::fill(lanes, lanes + HD * 4 * ggml::kLanes, 0.0f);
            auto v_at = [&](int64_t t, int64_t d) { return f16 ? f16_to_f32(V16[t * KV + kvh * HD + d]) : Vc[t * KV + kvh * HD + d]; };
            if (batched) {  // tinyBLAS over n_kv (a multiple of 32): lane t mod 16
                for (int64_t t = 0; t < n_keys; ++t)
                    for (int64_t d = 0; d < HD; ++d) {
                        float& a = lanes[d * 4 * ggml::kLanes + (shift + t) % ggml::kLanes];
                        a = std::fma(scores[t], v_at(t, d), a);
                    }
                for (int64_t d = 0; d < HD; ++d) o[d] = ggml::reduce16(lanes + d * 4 * ggml::kLanes);
            } else {  // ggml_vec_dot over n_kv: four accumulators on blocks of 64, the rest in f64 (f16) or f32
                const int64_t np = n_kv & ~static_cast<int64_t>(4 * ggml::kLanes - 1);
                for (int64_t t = 0; t < std::min(n_keys, np); ++t)
                    for (int64_t d = 0; d < HD; ++d) {
                        float& a = lanes[d * 4 * ggml::kLanes + (t % (4 * ggml::kLanes))];  // (decoding: offset 0)
                        a = std::fma(scores[t], v_at(t, d), a);
                    }
                for (int64_t d = 0; d < HD; ++d) {
                    const float* s = lanes + d * 4 * ggml::kLanes;
                    float r[ggml::kLanes];
                    for (int l = 0; l < ggml::kLanes; ++l) r[l] = (s[l] + s[2 * ggml::kLanes + l]) + (s[ggml::kLanes + l] + s[3 * ggml::kLanes + l]);
                    const float head = np ? ggml::reduce16(r) : 0.0f;
                    if (f16) {
                        double sum64 = head;
                        for (int64_t t = np; t < n_keys; ++t) sum64 += static_cast<double>(scores[t] * v_at(t, d));
                        o[d] = static_cast<float>(sum64);
                    } else {
                        float sum32 = head;
                        for (int64_t t = np; t < n_keys; ++t) sum32 += scores[t] * v_at(t, d);
                        o[d] = sum32;
                    }
                }
            }
        }
    });
}

// The fast form of attention(): vectorised products, f64 sums; q and the weights rounded to f16 with an f16 cache.
void Transformer::attention_fast(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0, const Rows* rows) {
    const int64_t H = cfg_.n_head, HD = cfg_.head_dim(), KV = cfg_.kv_dim(), group = H / cfg_.n_head_kv, C = cfg_.n_embd;
    const float scale = 1.0f / std::sqrt(static_cast<float>(HD));
    const bool f16 = kv_type_ == DType::F16;
    pool_.run([&](int ith, int nth) {
        float* scores = scores_.data() + ith * (n_ctx_ + 32 + HD * (2 + 4 * ggml::kLanes));
        float* qr = scores + n_ctx_;  // the query rounded to f16
        double* acc = acc_.data() + ith * HD;
        for (int64_t task = ith; task < n * H; task += nth) {
            const int64_t i = task / H, h = task % H, kvh = h / group;
            // row i: its sequence's cache, causal mask over keys at positions 0 .. its position
            const int64_t pos = rows ? rows->pos[i] : pos0 + i;
            const size_t base = cache_at(rows ? rows->seq[i] : slot_, layer, 0);
            const float* K = f16 ? nullptr : k_cache_.data() + base;
            const float* Vc = f16 ? nullptr : v_cache_.data() + base;
            const uint16_t* K16 = f16 ? k_cache16_.data() + base : nullptr;
            const uint16_t* V16 = f16 ? v_cache16_.data() + base : nullptr;
            const int64_t n_keys = pos + 1;
            const float* qi = q + i * C + h * HD;
            if (f16) {
                for (int64_t d = 0; d < HD; ++d) qr[d] = f16_to_f32(f32_to_f16(qi[d]));
                qi = qr;
            }
            float mx = -INFINITY;
            for (int64_t t = 0; t < n_keys; ++t) {
                const float dot = f16 ? kernels::dot_f16_acc64(K16 + t * KV + kvh * HD, qi, HD)
                                      : kernels::dot(DType::F32, K + t * KV + kvh * HD, qi, HD);
                const float s = dot * scale;
                scores[t] = s;
                mx = std::max(mx, s);
            }
            double sum = 0;
            for (int64_t t = 0; t < n_keys; ++t) {
                scores[t] = std::exp(scores[t] - mx);
                sum += scores[t];
            }
            const float inv = static_cast<float>(1.0 / sum);
            float* o = out + i * C + h * HD;
            if (f16) {
                std::fill(acc, acc + HD, 0.0);
                for (int64_t t = 0; t < n_keys; ++t) {
                    const float p = f16_to_f32(f32_to_f16(scores[t] * inv));
                    kernels::axpy_f16_acc64(acc, p, V16 + t * KV + kvh * HD, HD);
                }
                for (int64_t d = 0; d < HD; ++d) o[d] = static_cast<float>(acc[d]);
            } else {
                std::fill(o, o + HD, 0.0f);
                for (int64_t t = 0; t < n_keys; ++t) {
                    const float p = scores[t] * inv;
                    const float* vt = Vc + t * KV + kvh * HD;
                    for (int64_t d = 0; d < HD; ++d) o[d] += p * vt[d];
                }
            }
        }
    });
}

void Transformer::attention(const float* q, float* out, int64_t n, int64_t layer, int64_t pos0) {
    // Several tokens at once on 16-lane vectors: the llama.cpp-order kernels are also the faster ones (V transposed
    // once per layer, single-accumulator dot products), so prompts take that path even without ggml arithmetic.
    const kernels::KernelTable& kt = kernels::active();
    const bool fast16 = n >= 2 && kt.vec_width == ggml::kLanes && kt.softmax_exp_ggml != nullptr;
    if (ggml_arith_ || fast16) attention_ggml(q, out, n, layer, pos0);
    else attention_fast(q, out, n, layer, pos0);
}

void Transformer::forward(const int32_t* tokens, int64_t n, int64_t logits_from, float* logits_out, const Rows* rows, float* hidden_out,
                          const uint8_t* want) {
    const int64_t C = cfg_.n_embd, KV = cfg_.kv_dim(), F = cfg_.n_ff, pos0 = n_past_;
    auto pos_of = [&](int64_t i) { return rows ? rows->pos[i] : pos0 + i; };
    rowwise_ = rows != nullptr;
    float* x = x_.data();  // [n, C] the residual stream
    float* h = h_.data();  // [n, C] normalised input of a sub-layer

    // Embeddings: token (+ learned position for GPT-2).
    for (int64_t i = 0; i < n; ++i) {
        load_row(*tok_embd_, tokens[i], x + i * C);
        if (pos_embd_) {
            load_row(*pos_embd_, pos_of(i), h);
            for (int64_t c = 0; c < C; ++c) x[i * C + c] += h[c];
        }
    }
    if (cfg_.uses_rope()) {  // RoPE angles for these positions, shared by every layer and head
        // θ_j = pos · base^(−2j/d), computed in float as successive powers, the way ggml computes it, so that
        // rounding matches llama.cpp bit for bit where it matters (an f16 KV cache amplifies tiny differences).
        const int64_t half = cfg_.n_rot() / 2;
        const float theta_scale = std::pow(cfg_.rope_theta, -2.0f / static_cast<float>(cfg_.n_rot()));
        for (int64_t i = 0; i < n; ++i) {
            float theta = static_cast<float>(pos_of(i));
            for (int64_t j = 0; j < half; ++j) {
                rope_cos_[i * half + j] = std::cos(theta);
                rope_sin_[i * half + j] = std::sin(theta);
                theta *= theta_scale;
            }
        }
    }

    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const Layer& L = layers_[l];
        // ---- attention sub-layer
        norm(x, h, n, L.attn_norm, L.attn_norm_b);
        float* q = q_.data();
        float* k = k_.data();
        float* v = v_.data();
        if (cfg_.fused_qkv) {
            const int64_t QKV = C + 2 * KV;
            linear(h, qkv_.data(), n, L.wqkv, L.bqkv);  // [n, C + 2KV] = q | k | v
            for (int64_t i = 0; i < n; ++i) {
                std::copy_n(qkv_.data() + i * QKV, C, q + i * C);
                std::copy_n(qkv_.data() + i * QKV + C, KV, k + i * KV);
                std::copy_n(qkv_.data() + i * QKV + C + KV, KV, v + i * KV);
            }
        } else {
            linear(h, q, n, L.wq, L.bq);  // [n, C]
            linear(h, k, n, L.wk, L.bk);  // [n, KV]
            linear(h, v, n, L.wv, L.bv);  // [n, KV]
        }
        if (cfg_.uses_rope()) {
            rope(q, n, cfg_.n_head);  // angles for positions pos0 .. pos0 + n - 1, computed above
            rope(k, n, cfg_.n_head_kv);
        }
        // one sequence: n consecutive cells; several: each row's own cell
        for (int64_t i = 0, m = rows ? 1 : n; i < n; i += m) {
            const size_t at = cache_at(rows ? rows->seq[i] : slot_, l, pos_of(i));
            if (kv_type_ == DType::F32) {
                std::copy_n(k + i * KV, m * KV, k_cache_.data() + at);
                std::copy_n(v + i * KV, m * KV, v_cache_.data() + at);
            } else {
                convert_f32_to_f16(k + i * KV, k_cache16_.data() + at, static_cast<size_t>(m * KV));
                convert_f32_to_f16(v + i * KV, v_cache16_.data() + at, static_cast<size_t>(m * KV));
            }
        }
        if (rows) attention_fast(q, att_.data(), n, l, 0, rows);
        else attention(q, att_.data(), n, l, pos0);
        linear(att_.data(), h, n, L.wo, L.bo);
        for (int64_t i = 0; i < n * C; ++i) x[i] += h[i];

        // ---- MLP sub-layer
        norm(x, h, n, L.ffn_norm, L.ffn_norm_b);
        float* a = ff_a_.data();
        float* b = ff_b_.data();
        if (!cfg_.gated_mlp()) {
            linear(h, a, n, L.w_up, L.b_up);  // [n, F]
            for (int64_t i = 0; i < n * F; ++i) a[i] = gelu(a[i]);
        } else {
            linear(h, a, n, L.w_gate, L.b_gate);  // SwiGLU: silu(h W_gate) ⊙ (h W_up)
            linear(h, b, n, L.w_up, L.b_up);
            if (ggml_arith_) {
                const auto silu = kernels::active().silu_ggml;
                for (int64_t i = 0; i < n; ++i) {
                    if (silu) silu(a + i * F, a + i * F, F);
                    else ggml::silu_row(a + i * F, a + i * F, F);
                }
            } else {
                for (int64_t i = 0; i < n * F; ++i) a[i] = a[i] / (1.0f + std::exp(-a[i]));
            }
            for (int64_t i = 0; i < n * F; ++i) a[i] *= b[i];
        }
        linear(a, h, n, L.w_down, L.b_down);
        for (int64_t i = 0; i < n * C; ++i) x[i] += h[i];
    }
    if (rows) {
        for (int64_t i = 0; i < n; ++i) past_[static_cast<size_t>(rows->seq[i])] = rows->pos[i] + 1;
        n_past_ = past_[static_cast<size_t>(slot_)];
    } else {
        n_past_ += n;
    }

    // Final norm and the output projection, only for the rows whose logits are wanted.
    if (hidden_out) {
        norm(x, hidden_out, n, out_norm_, out_norm_b_);
    } else if (want) {  // decode(): the wanted rows, gathered
        int64_t m = 0;
        for (int64_t i = 0; i < n; ++i)
            if (want[i]) std::copy_n(x + i * C, C, q_.data() + (m++) * C);
        if (m > 0) {
            norm(q_.data(), h, m, out_norm_, out_norm_b_);
            linear(h, logits_out, m, output_, nullptr);
        }
    } else if (logits_from < n) {
        const int64_t m = n - logits_from;
        norm(x + logits_from * C, h, m, out_norm_, out_norm_b_);
        linear(h, logits_out, m, output_, nullptr);
    }
    rowwise_ = false;
}

void Transformer::set_seq(int s) {
    if (s < 0 || s >= n_seq_) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq_ - 1);
    past_[static_cast<size_t>(slot_)] = n_past_;
    slot_ = s;
    n_past_ = past_[static_cast<size_t>(s)];
}

int64_t Transformer::n_past_of(int s) const {
    if (s < 0 || s >= n_seq_) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq_ - 1);
    return s == slot_ ? n_past_ : past_[static_cast<size_t>(s)];
}

void Transformer::copy_seq(int src, int dst) {
    const int64_t n = n_past_of(src);
    n_past_of(dst);  // checks dst
    if (src == dst) return;
    const size_t cells = static_cast<size_t>(n * cfg_.kv_dim());
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const size_t a = cache_at(src, l, 0), b = cache_at(dst, l, 0);
        if (kv_type_ == DType::F32) {
            std::copy_n(k_cache_.data() + a, cells, k_cache_.data() + b);
            std::copy_n(v_cache_.data() + a, cells, v_cache_.data() + b);
        } else {
            std::copy_n(k_cache16_.data() + a, cells, k_cache16_.data() + b);
            std::copy_n(v_cache16_.data() + a, cells, v_cache16_.data() + b);
        }
    }
    if (dst == slot_) n_past_ = n;
    else past_[static_cast<size_t>(dst)] = n;
}

void Transformer::decode(const int32_t* seqs, const int32_t* tokens, int64_t n, float* logits, const uint8_t* want) {
    if (n <= 0) throw_bad_input("nothing to decode: no sequences");
    if (n > n_batch_) throw_bad_input("%lld rows in one step; at most %lld", static_cast<long long>(n), static_cast<long long>(n_batch_));
    if (ggml_arith_) throw_bad_input("decode() does not run with ggml arithmetic");
    past_[static_cast<size_t>(slot_)] = n_past_;
    std::vector<int64_t>& pos = decode_pos_;
    pos.resize(static_cast<size_t>(n));
    std::vector<int64_t>& next = decode_next_;  // each sequence's next position in this step
    next.assign(static_cast<size_t>(n_seq_), -1);
    for (int64_t i = 0; i < n; ++i) {
        const int s = seqs[i];
        if (s < 0 || s >= n_seq_) throw_bad_input("sequence %d does not exist (0..%d)", s, n_seq_ - 1);
        int64_t& p = next[static_cast<size_t>(s)];
        if (p < 0) p = past_[static_cast<size_t>(s)];
        if (p >= n_ctx_) throw_bad_input("sequence %d has no room left in its context of %lld", s, static_cast<long long>(n_ctx_));
        pos[static_cast<size_t>(i)] = p++;
    }
    check_tokens(tokens, n, false);
    const Rows rows{seqs, pos.data()};
    forward(tokens, n, 0, logits, &rows, nullptr, want);
}

const std::vector<float>& Transformer::embed(const int32_t* tokens, int64_t n) {
    if (n <= 0) throw_bad_input("nothing to embed: no tokens");
    check_tokens(tokens, n, true);
    const int64_t C = cfg_.n_embd;
    hidden_.assign(static_cast<size_t>(n * C), 0.0f);
    for (int64_t done = 0; done < n;) {
        const int64_t m = std::min(n_batch_, n - done);
        forward(tokens + done, m, m, nullptr, nullptr, hidden_.data() + done * C);
        done += m;
    }
    return hidden_;
}

}  // namespace llmforge
