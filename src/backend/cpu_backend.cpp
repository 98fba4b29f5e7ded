// The CPU backend: today's kernels (core/kernels*.cpp: AVX-512, AVX2 or scalar, chosen at run time) behind the
// Backend operations, in one of three numerics fixed when it is made. Shapes in comments: n rows, C = heads · head_dim,
// KV = kv heads · head_dim.
#include "backend/backend.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "backend/train_ops.h"
#include "core/ggml_math.h"
#include "core/quants.h"
#include "core/kernels.h"
#include "core/kernels_impl.h"
#include "core/weight_types.h"
#include "llmforge/error.h"

namespace llmforge {

const char* numerics_name(Numerics n) {
    switch (n) {
        case Numerics::Fast: return "fast";
        case Numerics::BatchInvariant: return "batch-invariant";
        case Numerics::Ggml: return "ggml";
    }
    return "?";
}

}  // namespace llmforge

namespace llmforge::backend {

namespace {

// Row r of a 1-D or 2-D weight as f32 (its type's traits: where the row starts, how it converts).
void load_row(const Tensor& t, int64_t r, float* out) {
    const WeightType& wt = weight_type(t.dtype, t.name.c_str());
    const int64_t cols = t.cols();
    wt.to_f32(wt.row(t.data, r, cols), out, cols);
}

// GPT-2's GELU, the tanh approximation ("gelu_new").
inline float gelu1(float x) {
    const float k = 0.7978845608028654f;  // √(2/π)
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

template <class T>
T* grow(std::vector<T>& v, size_t n) {
    if (v.size() < n) v.resize(n);
    return v.data();
}

class CpuBackend final : public Backend {
public:
    CpuBackend(ThreadPool& pool, Numerics numerics) : pool_(pool), numerics_(numerics) {}
    Numerics numerics() const override { return numerics_; }

    // y = x Wᵀ: f32 panels (repack_for_cpu, batch-invariant already), interleaved Q4_0 (repack_for_cpu: ggml's order,
    // batch-invariant), ggml's summation order, the batch-invariant
    // row-wise products, or the cache-blocked GEMM; then the adapters' s · (x Aᵀ) Bᵀ and the bias.
    void linear(const float* x, float* y, int64_t n, const Linear& L) override {
        const Tensor& w = *L.w;
        const int64_t rows = w.shape[0], cols = w.cols();
        if (w.layout == Tensor::Layout::Panels) {
            if (numerics_ == Numerics::Ggml)
                throw_bad_input("ggml arithmetic needs row-major weights: load the model without repacking (without --no-mmap)");
            if (w.dtype == DType::F16) kernels::matmul_panels_f16(static_cast<const uint16_t*>(w.data), x, y, n, rows, cols, pool_);
            else kernels::matmul_panels(static_cast<const float*>(w.data), x, y, n, rows, cols, pool_);
        } else if (w.layout == Tensor::Layout::Interleaved8) {  // llama.cpp's digits and batch-invariant: every numerics
            weight_type(w.dtype, w.name.c_str()).matmul_interleaved(w.data, x, y, n, rows, cols, pool_);
        } else if (numerics_ == Numerics::Ggml) {
            weight_type(w.dtype, w.name.c_str()).matmul_ggml(w.data, x, y, n, rows, cols, pool_);
        } else if (numerics_ == Numerics::BatchInvariant) {
            weight_type(w.dtype, w.name.c_str()).matmul_rowwise(w.data, x, y, n, rows, cols, pool_);
        } else {
            weight_type(w.dtype, w.name.c_str()).matmul(w.data, x, y, n, rows, cols, pool_);
        }
        if (L.lora)
            for (const Lora& l : *L.lora) {  // y += s · (x Aᵀ) Bᵀ
                float* u = grow(lora_tmp_, static_cast<size_t>(n * l.rank));
                kernels::gemm(x, false, l.a.data(), false, u, n, l.rank, cols, false, kernels::Precision::F32, pool_);
                for (int64_t i = 0; i < n * l.rank; ++i) u[i] *= l.scale;
                kernels::gemm(u, false, l.b.data(), false, y, n, rows, l.rank, true, kernels::Precision::F32, pool_);
            }
        if (L.b) {
            float* bias = grow(row_, static_cast<size_t>(rows));
            load_row(*L.b, 0, bias);
            for (int64_t i = 0; i < n; ++i)
                for (int64_t r = 0; r < rows; ++r) y[i * rows + r] += bias[r];
        }
    }

    // RMSNorm(x) = x / √(mean(x²) + ε) · w          (f32 squares summed in f64, the mean and root in f32, as ggml's rms_norm)
    // LayerNorm(x) = (x − mean) / √(var + ε) · w + b
    void norm(const float* x, float* out, int64_t n, int64_t C, NormKind kind, float eps, const Tensor& w, const Tensor* b, float*, float*) override {
        float* wf = grow(row_, static_cast<size_t>(2 * C));
        float* bf = wf + C;
        load_row(w, 0, wf);
        if (b) load_row(*b, 0, bf);
        else std::fill(bf, bf + C, 0.0f);
        for (int64_t i = 0; i < n; ++i) {
            const float* xi = x + i * C;
            float* oi = out + i * C;
            if (kind == NormKind::RMSNorm) {
                double ss = 0;
                for (int64_t c = 0; c < C; ++c) ss += static_cast<double>(xi[c] * xi[c]);
                const float mean = static_cast<float>(ss / static_cast<double>(C));
                const float scale = 1.0f / std::sqrt(mean + eps);
                for (int64_t c = 0; c < C; ++c) oi[c] = xi[c] * scale * wf[c];
                if (b)
                    for (int64_t c = 0; c < C; ++c) oi[c] += bf[c];
            } else {
                double mean = 0, var = 0;
                for (int64_t c = 0; c < C; ++c) mean += xi[c];
                mean /= static_cast<double>(C);
                for (int64_t c = 0; c < C; ++c) var += (xi[c] - mean) * (xi[c] - mean);
                var /= static_cast<double>(C);
                const double inv = 1.0 / std::sqrt(var + static_cast<double>(eps));
                for (int64_t c = 0; c < C; ++c) oi[c] = static_cast<float>((xi[c] - mean) * inv) * wf[c] + bf[c];
            }
        }
    }

    void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t n_rot, RopeStyle style, const float* cos, const float* sin) override {
        kernels::active().rope(x, n, heads, head_dim, n_rot / 2, style == RopeStyle::Interleaved, cos, sin);
    }

    // Ggml: llama.cpp's order everywhere. Fast: several tokens of one sequence on 16-lane vectors take the llama.cpp-order
    // kernels too (V transposed once per layer, single-accumulator dot products: also the faster ones); otherwise the
    // vectorised form. BatchInvariant: each row alone, in the same order whatever else is in the pass.
    void attention(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t l, const AttentionShape& s) override {
        if (!s.causal && rows.seq) throw_bad_input("bidirectional attention runs one sequence at a time");
        // llama.cpp's order reads the cells in place: not once a sliding-window ring has wrapped
        const bool in_place = rows.seq || rows.pos0 + n <= kv.cells();
        if (numerics_ == Numerics::Ggml) {
            if (rows.seq) throw_bad_input("ggml arithmetic runs one sequence at a time");
            if (!in_place) throw_bad_input("ggml arithmetic needs every position in the KV cache, not a sliding-window ring");
            if (kv.type() != DType::F16 && kv.type() != DType::F32)
                throw_bad_input("ggml arithmetic runs with an f16 or f32 KV cache, not %s", kv.type().name().c_str());
            attention_ggml(q, out, n, rows, kv, l, s);
            return;
        }
        const kernels::KernelTable& kt = kernels::active();
        const bool fast16 = n >= 2 && kt.vec_width == ggml::kLanes && kt.softmax_exp_ggml != nullptr &&
                            (kv.type() == DType::F16 || kv.type() == DType::F32);  // (a prompt's rows over an f16/f32 cache)
        if (numerics_ == Numerics::Fast && !rows.seq && fast16 && in_place) attention_ggml(q, out, n, rows, kv, l, s);
        else attention_fast(q, out, n, rows, kv, l, s);
    }

    void attention_within(const float*, const float*, const float*, float*, float*, int64_t, int64_t, const AttentionShape&) override {
        throw_runtime("attention within a batch of sequences is the training backend's");
    }

    void swiglu(const float* gate, const float* b, float* a, int64_t n, int64_t F) override {
        if (numerics_ == Numerics::Ggml) {  // ggml's vectorised SiLU
            const auto silu = kernels::active().silu_ggml;
            for (int64_t i = 0; i < n; ++i) {
                if (silu) silu(a + i * F, gate + i * F, F);
                else ggml::silu_row(a + i * F, gate + i * F, F);
            }
            for (int64_t i = 0; i < n * F; ++i) a[i] *= b[i];
            return;
        }
        // silu(g) = g / (1 + e^−g) with libm's exp, except where e^−g leaves the float range: libm then takes a slow
        // path (errno), which the large gates of an untrained model hit often (measured at 14 % of a Q6_K decoding
        // step). Beyond ±80 the value is g itself (e^−g < 2e−35 vanishes beside 1) or 0 (it is under 2e−33 in size).
        // The rows across the threads in prompts.
        auto rows = [&](int64_t r0, int64_t r1) {
            for (int64_t i = r0 * F; i < r1 * F; ++i) {
                const float g = gate[i];
                a[i] = (g > 80.0f ? g : g < -80.0f ? 0.0f * g : g / (1.0f + std::exp(-g))) * b[i];
            }
        };
        if (n >= 8) pool_.parallel_for(n, rows);
        else rows(0, n);
    }

    // Ggml: ggml's GELU (an f16 table); otherwise the tanh approximation in f32
    void gelu(const float* x, float* out, float*, int64_t count) override {
        if (numerics_ == Numerics::Ggml)
            for (int64_t i = 0; i < count; ++i) out[i] = ggml::gelu(x[i]);
        else
            for (int64_t i = 0; i < count; ++i) out[i] = gelu1(x[i]);
    }

    void gelu_erf(const float* x, float* out, int64_t count) override {
        if (numerics_ == Numerics::Ggml) {
            for (int64_t i = 0; i < count; ++i) out[i] = ggml::gelu(x[i]);
            return;
        }
        auto part = [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * static_cast<float>(M_SQRT1_2)));
        };
        if (count >= 1 << 14) pool_.parallel_for(count, part);
        else part(0, count);
    }

    void geglu(const float* gate, const float* up, float* out, int64_t n, int64_t F) override {
        gelu(gate, out, nullptr, n * F);
        for (int64_t i = 0; i < n * F; ++i) out[i] *= up[i];
    }

    // cap · tanh(x · (1/cap)): ggml_scale, ggml_tanh, ggml_scale, as llama.cpp's graph applies it
    void softcap(float* x, int64_t count, float cap, float*) override {
        const float inv = 1.0f / cap;
        for (int64_t i = 0; i < count; ++i) x[i] = std::tanh(x[i] * inv) * cap;
    }

    void scale(float* x, float s, int64_t count) override {
        for (int64_t i = 0; i < count; ++i) x[i] *= s;
    }

    void add(float* x, const float* y, int64_t count) override {
        for (int64_t i = 0; i < count; ++i) x[i] += y[i];
    }

    void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out, bool accumulate) override {
        const int64_t C = table.cols();
        float* tmp = accumulate ? grow(row_, static_cast<size_t>(C)) : nullptr;
        for (int64_t i = 0; i < n; ++i) {
            if (!accumulate) {
                load_row(table, ids[i], out + i * C);
                continue;
            }
            load_row(table, ids[i], tmp);
            for (int64_t c = 0; c < C; ++c) out[i * C + c] += tmp[c];
        }
    }

private:
    void attention_ggml(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t l, const AttentionShape& s);
    void attention_fast(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t l, const AttentionShape& s);
    // per thread: a row of scores over the (32-padded) cache, the rounded query, 16 accumulator lanes per output
    float* attention_scratch(int64_t n_ctx, int64_t HD) {
        return grow(scores_, static_cast<size_t>(pool_.size()) * static_cast<size_t>(n_ctx + 32 + HD * (2 + 4 * ggml::kLanes)));
    }

    ThreadPool& pool_;
    const Numerics numerics_;
    std::vector<float> scores_, vt_, row_, lora_tmp_;
    std::vector<double> acc_;
};

// out = softmax(q Kᵀ / √d_k, masked to positions ≤ the query's) · V, for each head; query heads share KV heads in groups.
// attention_ggml: the sums run in the order llama.cpp's CPU backend runs them (model/ggml_math.h), so that an f16 cache rounds exactly
// as llama.cpp's does: scores over the cache padded to 32 cells (masked cells are −∞), exp and block sums as ggml's
// softmax, and the products q·k and p·v as ggml's matrix products take them — tinyBLAS order when several tokens are
// processed and the inner length is a multiple of 16, ggml_vec_dot order otherwise. With an f16 cache q and the
// attention weights are rounded to f16 first, as ggml converts them.
void CpuBackend::attention_ggml(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t layer,
                                const AttentionShape& s) {
    const int64_t H = s.n_head, HD = s.head_dim, KV = s.n_head_kv * HD, group = H / s.n_head_kv, C = H * HD;
    // With soft-capping llama.cpp scales the queries first and caps the products (its Gemma 2 graph): q · factor, then
    // cap · tanh(q·k · (1/cap)); otherwise the products are scaled (ggml_soft_max_ext's scale).
    const float scale = s.softcap > 0 ? 1.0f : s.factor(), qscale = s.softcap > 0 ? s.factor() : 1.0f;
    const float cap = s.softcap, inv_cap = cap > 0 ? 1.0f / cap : 0.0f;
    const bool f16 = kv.type() == DType::F16;
    const int64_t pos0 = rows.pos0, n_ctx_ = kv.n_ctx();
    const int seq = rows.seq0;
    float* const scratch = attention_scratch(n_ctx_, HD);
    const bool batched = n >= 2;  // llamafile's sgemm serves only prompt processing
    const int64_t n_kv = ggml::kv_cells(pos0 + n, (n_ctx_ + 31) / 32 * 32);
    // where this sequence's cells sit in llama.cpp's cache decides which 16-lane accumulator and which softmax block
    // each key falls in: key t is cell cell_offset_ + t
    const int64_t shift = kv.ggml_cell_offset % ggml::kLanes;
    const float* K = kv.k32(seq, layer);
    const float* Vc = kv.v32(seq, layer);
    const uint16_t* K16 = kv.k16(seq, layer);
    const uint16_t* V16 = kv.v16(seq, layer);
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
        float* const row = scratch + ith * per_thread;  // row[shift + t] is key t
        float* const scores = row + shift;
        float* qr = row + n_ctx_ + 32;  // the query rounded to f16
        float* lanes = qr + HD;            // [HD][4][16] accumulators of p·v
        float* kf = lanes + HD * 4 * ggml::kLanes;  // a key row widened to f32
        for (int64_t task = ith; task < n * H; task += nth) {
            const int64_t i = task / H, h = task % H, kvh = h / group;
            const int64_t n_keys = s.causal ? pos0 + i + 1 : pos0 + n;  // causal mask: keys at positions 0 .. pos0 + i
            const float* qi = q + i * C + h * HD;
            if (qscale != 1.0f) {  // the queries scaled (ggml_scale), then rounded to f16 below where the cache is f16
                for (int64_t d = 0; d < HD; ++d) qr[d] = qi[d] * qscale;
                qi = qr;
            }
            // scores = q·k · scale, −∞ where masked
            for (int64_t t = 0; t < shift; ++t) row[t] = -INFINITY;
            if (vec16) {
                if (f16) {
                    if (qi != qr) std::copy_n(qi, HD, qr);
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
            if (cap > 0)
                for (int64_t t = 0; t < n_keys; ++t) scores[t] = std::tanh(scores[t] * inv_cap) * cap;
            if (s.window > 0)  // the sliding window: keys before pos − window + 1 masked (−∞: weight exactly 0)
                for (int64_t t = 0; t < n_keys - s.window; ++t) scores[t] = -INFINITY;
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

// The fast form of attention(): vectorised products, f64 sums. Keys in f16: q rounded to f16 (as ggml converts it for
// its f16 products); values in f16: the weights rounded to f16. Keys of a block type: q quantised per block to the
// type's partner (q8_0 or q8_1, as ggml's vec_dot takes it) once per head, and each key's product in integers (the
// weights' SIMD block kernels, run over consecutive cells); values of a block type: each value row widened to f32 and
// added in f64.
void CpuBackend::attention_fast(const float* q, float* out, int64_t n, const Rows& rows, const KVCache& kv, int64_t layer,
                                const AttentionShape& s) {
    const int64_t H = s.n_head, HD = s.head_dim, group = H / s.n_head_kv, C = H * HD;
    const float scale = s.factor(), cap = s.softcap, inv_cap = cap > 0 ? 1.0f / cap : 0.0f;
    const DType tk = kv.type().k, tv = kv.type().v;
    const bool k16 = tk == DType::F16, v16 = tv == DType::F16, kq = quant::is_quantized(tk), vq = quant::is_quantized(tv);
    const DType qa = kq ? quant::activation_type(tk) : DType::F32;
    const WeightType* wk = kq ? &weight_type(tk, "the KV cache's keys") : nullptr;
    const WeightType* wv = vq ? &weight_type(tv, "the KV cache's values") : nullptr;
    const size_t krow = kv.k_row_bytes(), vrow = kv.v_row_bytes();
    const size_t khead = kq ? quant::row_bytes(tk, HD) : 0, vhead = vq ? quant::row_bytes(tv, HD) : 0;  // one head's bytes
    const int64_t n_ctx_ = kv.n_ctx();
    float* const scratch = attention_scratch(n_ctx_, HD);
    acc_.resize(std::max(acc_.size(), static_cast<size_t>(pool_.size() * HD)));
    pool_.run([&](int ith, int nth) {
        float* scores = scratch + ith * (n_ctx_ + 32 + HD * (2 + 4 * ggml::kLanes));
        float* qr = scores + n_ctx_;  // the query rounded to f16; a value row widened
        double* acc = acc_.data() + ith * HD;
        thread_local std::vector<uint8_t> qblocks;  // a query head quantised for block keys (kept between calls)
        if (kq) qblocks.resize(quant::row_bytes(qa, HD));
        for (int64_t task = ith; task < n * H; task += nth) {
            const int64_t i = task / H, h = task % H, kvh = h / group;
            // row i: its sequence's cache, causal mask over keys at positions lo .. its position (lo > 0: a sliding
            // window); position t in cell t mod cells (a ring)
            const int64_t pos = rows.pos_of(i);
            const int sq = rows.seq_of(i);
            const uint8_t* Kb = kv.k_bytes(sq, layer);
            const uint8_t* Vb = kv.v_bytes(sq, layer);
            const int64_t last = s.causal ? pos : rows.pos0 + n - 1;  // bidirectional: every key this pass stored
            const int64_t lo = s.window > 0 ? std::max<int64_t>(0, pos - s.window + 1) : 0, n_keys = last + 1 - lo;
            const float* qi = q + i * C + h * HD;
            if (k16) {
                for (int64_t d = 0; d < HD; ++d) qr[d] = f16_to_f32(f32_to_f16(qi[d]));
                qi = qr;
            } else if (kq) {
                quant::quantize_activations(qa, qi, qblocks.data(), HD);
            }
            auto cell_of = [&](int64_t t) { return static_cast<size_t>(kv.cell(lo + t)); };  // key t of the n_keys
            float mx = -INFINITY;
            if (kq) {
                // block keys: the SIMD block products over runs of consecutive cells (a ring wraps at most once)
                for (int64_t t = 0; t < n_keys;) {
                    const size_t c0 = cell_of(t);
                    int64_t len = 1;
                    while (t + len < n_keys && cell_of(t + len) == c0 + static_cast<size_t>(len)) ++len;
                    wk->dot_quantized_rows(Kb + c0 * krow + kvh * khead, krow, qblocks.data(), scores + t, len, HD);
                    t += len;
                }
                for (int64_t t = 0; t < n_keys; ++t) {
                    scores[t] *= scale;
                    mx = std::max(mx, scores[t]);
                }
            } else {
                for (int64_t t = 0; t < n_keys; ++t) {
                    const uint8_t* kr = Kb + cell_of(t) * krow;
                    const float dot = k16 ? kernels::dot_f16_acc64(reinterpret_cast<const uint16_t*>(kr) + kvh * HD, qi, HD)
                                          : kernels::dot(DType::F32, reinterpret_cast<const float*>(kr) + kvh * HD, qi, HD);
                    const float sc = dot * scale;
                    scores[t] = sc;
                    mx = std::max(mx, sc);
                }
            }
            if (cap > 0) {  // soft-capped scores (a model that has them; the loop above stays as lean as without)
                mx = -INFINITY;
                for (int64_t t = 0; t < n_keys; ++t) {
                    scores[t] = std::tanh(scores[t] * inv_cap) * cap;
                    mx = std::max(mx, scores[t]);
                }
            }
            double sum = 0;
            for (int64_t t = 0; t < n_keys; ++t) {
                scores[t] = std::exp(scores[t] - mx);
                sum += scores[t];
            }
            const float inv = static_cast<float>(1.0 / sum);
            float* o = out + i * C + h * HD;
            if (v16) {
                std::fill(acc, acc + HD, 0.0);
                for (int64_t t = 0; t < n_keys; ++t) {
                    const float p = f16_to_f32(f32_to_f16(scores[t] * inv));
                    kernels::axpy_f16_acc64(acc, p, reinterpret_cast<const uint16_t*>(Vb + cell_of(t) * vrow) + kvh * HD, HD);
                }
                for (int64_t d = 0; d < HD; ++d) o[d] = static_cast<float>(acc[d]);
            } else if (vq) {
                std::fill(acc, acc + HD, 0.0);
                for (int64_t t = 0; t < n_keys; ++t) {
                    wv->to_f32(Vb + cell_of(t) * vrow + kvh * vhead, qr, HD);
                    kernels::axpy_f32_acc64(acc, scores[t] * inv, qr, HD);
                }
                for (int64_t d = 0; d < HD; ++d) o[d] = static_cast<float>(acc[d]);
            } else {
                std::fill(o, o + HD, 0.0f);
                for (int64_t t = 0; t < n_keys; ++t) {
                    const float p = scores[t] * inv;
                    const float* vt = reinterpret_cast<const float*>(Vb + cell_of(t) * vrow) + kvh * HD;
                    for (int64_t d = 0; d < HD; ++d) o[d] += p * vt[d];
                }
            }
        }
    });
}

}  // namespace

// The backward operations of a backend that only runs inference.
namespace {
[[noreturn]] void no_gradients(const char* op) { throw_runtime("%s: this backend runs inference only (the training backend computes gradients)", op); }
}  // namespace
void Backend::matmul(const float*, bool, const float*, bool, float*, int64_t, int64_t, int64_t, bool) { no_gradients("matmul"); }
void Backend::linear_backward(const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t, int64_t, bool) {
    no_gradients("linear_backward");
}
void Backend::linear_backward_frozen(const float*, const Tensor&, float*, int64_t, bool) { no_gradients("linear_backward_frozen"); }
void Backend::norm_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t) {
    no_gradients("norm_backward");
}
void Backend::rope_backward(float*, int64_t, int64_t, int64_t, int64_t, RopeStyle, const float*, const float*) { no_gradients("rope_backward"); }
void Backend::attention_backward(const float*, const float*, const float*, const float*, const float*, float*, float*, float*, int64_t, int64_t,
                                 const AttentionShape&) {
    no_gradients("attention_backward");
}
void Backend::glu_backward(MlpKind, const float*, const float*, const float*, float*, float*, int64_t) { no_gradients("glu_backward"); }
void Backend::gelu_backward(const float*, const float*, const float*, float*, int64_t) { no_gradients("gelu_backward"); }
void Backend::gelu_erf_backward(const float*, const float*, float*, int64_t) { no_gradients("gelu_erf_backward"); }
void Backend::softcap_backward(float*, const float*, int64_t) { no_gradients("softcap_backward"); }
void Backend::embed_backward(const float*, const int32_t*, int64_t, int64_t, float, float*) { no_gradients("embed_backward"); }

namespace {

// The training forward (train_ops.h): f32 weights read in place, every statistic the backward pass needs kept.
class CpuTrainingBackend final : public Backend {
public:
    CpuTrainingBackend(ThreadPool& pool, kernels::Precision precision) : pool_(pool), prec_(precision) {}
    Numerics numerics() const override { return Numerics::Fast; }

    void linear(const float* x, float* y, int64_t n, const Linear& L) override {
        if (L.lora) throw_runtime("the training backend's adapters are the trainer's");
        if (L.w->dtype != DType::F32) return train_ops::linear_forward_frozen(pool_, prec_, x, *L.w, L.b ? f32(*L.b) : nullptr, y, n, tile_);
        train_ops::linear_forward(pool_, prec_, x, f32(*L.w), L.b ? f32(*L.b) : nullptr, y, n, L.w->cols(), L.w->shape[0]);
    }
    void norm(const float* x, float* y, int64_t n, int64_t C, NormKind kind, float eps, const Tensor& w, const Tensor* b, float* mean,
              float* rstd) override {
        if (kind == NormKind::LayerNorm) train_ops::layernorm_forward_par(pool_, x, f32(w), f32(*b), y, mean, rstd, n, C, eps);
        else train_ops::rmsnorm_forward_par(pool_, x, f32(w), y, rstd, n, C, eps);
    }
    void rope(float* x, int64_t n, int64_t heads, int64_t head_dim, int64_t n_rot, RopeStyle style, const float* cos, const float* sin) override {
        train_ops::rope_apply(x, 1, n, heads, head_dim, n_rot / 2, style == RopeStyle::Interleaved, cos, sin, 1.0f);
    }
    void attention(const float*, float*, int64_t, const Rows&, const KVCache&, int64_t, const AttentionShape&) override {
        throw_runtime("the training backend attends within its batch, not over a KV cache");
    }
    void attention_within(const float* q, const float* k, const float* v, float* probs, float* out, int64_t B, int64_t T,
                          const AttentionShape& s) override {
        train_ops::attention_forward(pool_, prec_, q, k, v, probs, out, B, T, s.n_head, s.n_head_kv, s.head_dim, s.factor(), s.window, s.softcap,
                                     s.causal, s.lengths);
    }
    void swiglu(const float* fa, const float* fb, float* fact, int64_t n, int64_t F) override {
        for (int64_t i = 0; i < n * F; ++i) fact[i] = fa[i] * train_ops::sigmoid(fa[i]) * fb[i];  // silu(gate) ⊙ up
    }
    void geglu(const float* fa, const float* fb, float* fact, int64_t n, int64_t F) override {
        pool_.parallel_for(n * F, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) fact[i] = fa[i] * (1.0f + 0.044715f * fa[i] * fa[i]);  // (the tanh's argument / √(2/π))
            for (int64_t i = b0; i < b1; ++i) fact[i] *= train_ops::kGeluK;
            kernels::tanh(fact + b0, fact + b0, b1 - b0);
            for (int64_t i = b0; i < b1; ++i) fact[i] = 0.5f * fa[i] * (1.0f + fact[i]) * fb[i];  // GELU(gate) ⊙ up
        });
    }
    void softcap(float* x, int64_t count, float cap, float* th) override {
        const float inv = 1.0f / cap;
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            float* t = th ? th : x;
            for (int64_t i = b0; i < b1; ++i) t[i] = x[i] * inv;
            kernels::tanh(t + b0, t + b0, b1 - b0);
            for (int64_t i = b0; i < b1; ++i) x[i] = t[i] * cap;
        });
    }
    void scale(float* x, float s, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) x[i] *= s;
        });
    }
    void gelu_erf(const float* x, float* out, int64_t count) override {  // x Φ(x) = x/2 · (1 + erf(x/√2))
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) out[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * static_cast<float>(M_SQRT1_2)));
        });
    }
    void gelu(const float* fa, float* fact, float* th, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) th[i] = train_ops::kGeluK * (fa[i] + 0.044715f * fa[i] * fa[i] * fa[i]);
            kernels::tanh(th + b0, th + b0, b1 - b0);
            for (int64_t i = b0; i < b1; ++i) fact[i] = 0.5f * fa[i] * (1.0f + th[i]);  // GELU, tanh approximation
        });
    }
    void add(float* x, const float* y, int64_t count) override { train_ops::add_into(pool_, x, y, count); }
    void embed(const Tensor& table, const int32_t* ids, int64_t n, float* out, bool accumulate) override {
        const int64_t C = table.cols();
        if (table.dtype != DType::F32) {  // a frozen table of another type (QLoRA): each row widened where it is read
            const WeightType& wt = weight_type(table.dtype, "an embedding table");
            std::vector<float> row(static_cast<size_t>(C));
            for (int64_t i = 0; i < n; ++i) {
                wt.to_f32(wt.row(table.data, ids[i], C), row.data(), C);
                for (int64_t c = 0; c < C; ++c) out[i * C + c] = accumulate ? out[i * C + c] + row[static_cast<size_t>(c)] : row[static_cast<size_t>(c)];
            }
            return;
        }
        const float* t = f32(table);
        for (int64_t i = 0; i < n; ++i) {
            const float* row = t + static_cast<int64_t>(ids[i]) * C;
            if (accumulate)
                for (int64_t c = 0; c < C; ++c) out[i * C + c] += row[c];
            else std::copy_n(row, C, out + i * C);
        }
    }

    // ---- the backward passes (train_ops.h)
    void matmul(const float* a, bool a_t, const float* b, bool b_t, float* c, int64_t n, int64_t rows, int64_t K, bool accumulate) override {
        kernels::gemm(a, a_t, b, b_t, c, n, rows, K, accumulate, prec_, pool_);
    }
    void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t n, int64_t in, int64_t out,
                         bool accumulate_dx) override {
        train_ops::linear_backward(pool_, prec_, dy, x, w, dx, dw, db, n, in, out, accumulate_dx);
    }
    void linear_backward_frozen(const float* dy, const Tensor& w, float* dx, int64_t n, bool accumulate_dx) override {
        train_ops::linear_backward_frozen(pool_, prec_, dy, w, dx, n, accumulate_dx, tile_);
    }
    void norm_backward(const float* dy, const float* x, const float* w, const float* mean, const float* rstd, float* dx, float* dw, float* db,
                       int64_t n, int64_t C) override {
        train_ops::norm_backward_par(pool_, dy, x, w, mean, rstd, dx, dw, db, n, C);
    }
    void rope_backward(float* dx, int64_t n, int64_t heads, int64_t head_dim, int64_t n_rot, RopeStyle style, const float* cos,
                       const float* sin) override {
        train_ops::rope_apply(dx, 1, n, heads, head_dim, n_rot / 2, style == RopeStyle::Interleaved, cos, sin, -1.0f);
    }
    void attention_backward(const float* dy, const float* q, const float* k, const float* v, const float* probs, float* dq, float* dk, float* dv,
                            int64_t B, int64_t T, const AttentionShape& s) override {
        train_ops::attention_backward(pool_, prec_, dy, q, k, v, probs, dq, dk, dv, B, T, s.n_head, s.n_head_kv, s.head_dim, s.factor(), s.softcap,
                                      s.causal, s.lengths);
    }
    void glu_backward(MlpKind kind, const float* dact, const float* gate, const float* up, float* dgate, float* dup, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            if (kind == MlpKind::GeGLU) {  // act = GELU(a) · b;  the tanh recomputed, in dgate's slots
                for (int64_t i = b0; i < b1; ++i) dgate[i] = train_ops::kGeluK * (gate[i] + 0.044715f * gate[i] * gate[i] * gate[i]);
                kernels::tanh(dgate + b0, dgate + b0, b1 - b0);
                for (int64_t i = b0; i < b1; ++i) {
                    const float g = dact[i], t = dgate[i];
                    dup[i] = g * 0.5f * gate[i] * (1.0f + t);
                    dgate[i] = g * up[i] * train_ops::gelu_grad(gate[i], t);
                }
            } else {  // act = silu(a) · b;  silu'(a) = σ(a)(1 + a(1 − σ(a)))
                for (int64_t i = b0; i < b1; ++i) {
                    const float s = train_ops::sigmoid(gate[i]), g = dact[i];
                    dgate[i] = g * up[i] * s * (1.0f + gate[i] * (1.0f - s));
                    dup[i] = g * gate[i] * s;
                }
            }
        });
    }
    void gelu_backward(const float* dact, const float* x, const float* th, float* dx, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) dx[i] = dact[i] * train_ops::gelu_grad(x[i], th[i]);
        });
    }
    void gelu_erf_backward(const float* dact, const float* x, float* dx, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) dx[i] = dact[i] * train_ops::gelu_erf_grad(x[i]);
        });
    }
    void softcap_backward(float* d, const float* th, int64_t count) override {
        pool_.parallel_for(count, [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) d[i] *= 1.0f - th[i] * th[i];
        });
    }
    void embed_backward(const float* dx, const int32_t* ids, int64_t n, int64_t C, float scale, float* dtable) override {
        for (int64_t i = 0; i < n; ++i) {  // (in row order: rows sharing a token add in the same order every time)
            float* row = dtable + static_cast<int64_t>(ids[i]) * C;
            for (int64_t c = 0; c < C; ++c) row[c] += dx[i * C + c] * scale;
        }
    }

private:
    static const float* f32(const Tensor& t) {
        if (t.dtype != DType::F32) throw_runtime("the training backend reads f32 weights, not %s ('%s')", dtype_name(t.dtype), t.name.c_str());
        return static_cast<const float*>(t.data);
    }
    ThreadPool& pool_;
    kernels::Precision prec_;
    std::vector<float> tile_;  // frozen weights of other types: the rows being multiplied, in f32
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend(ThreadPool& pool, Numerics numerics) { return std::make_unique<CpuBackend>(pool, numerics); }
std::unique_ptr<Backend> make_cpu_training_backend(ThreadPool& pool, kernels::Precision precision) {
    return std::make_unique<CpuTrainingBackend>(pool, precision);
}

}  // namespace llmforge::backend
