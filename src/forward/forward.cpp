// The one forward pass of the blocks (see forward.h). Shapes in comments: n rows, C = n_embd, KV = n_head_kv · d_head,
// F = n_ff.
#include "forward/forward.h"

#include <cmath>

#include "llmforge/error.h"

namespace llmforge {

ModelWeights bind_weights(const ModelConfig& c, const std::function<const Tensor*(const std::string&)>& get) {
    ModelWeights w{};
    auto bias = [&](bool has, const std::string& name) { return has ? get(name + ".bias") : nullptr; };
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        BlockWeights b{};
        if (c.post_ln) {
            b.attn_out_norm = get(p + "attn_output_norm.weight");
            b.attn_out_norm_b = bias(c.norm_bias(), p + "attn_output_norm");
            b.layer_out_norm = get(p + "layer_output_norm.weight");
            b.layer_out_norm_b = bias(c.norm_bias(), p + "layer_output_norm");
        } else {
            b.attn_norm = get(p + "attn_norm.weight");
            b.attn_norm_b = bias(c.norm_bias(), p + "attn_norm");
            b.ffn_norm = get(p + "ffn_norm.weight");
            b.ffn_norm_b = bias(c.norm_bias(), p + "ffn_norm");
        }
        if (c.fused_qkv) {
            b.wqkv = get(p + "attn_qkv.weight");
            b.bqkv = bias(c.qkv_bias, p + "attn_qkv");
        } else {
            b.wq = get(p + "attn_q.weight");
            b.wk = get(p + "attn_k.weight");
            b.wv = get(p + "attn_v.weight");
            b.bq = bias(c.qkv_bias, p + "attn_q");
            b.bk = bias(c.qkv_bias, p + "attn_k");
            b.bv = bias(c.qkv_bias, p + "attn_v");
        }
        if (c.qk_norm) {
            b.q_norm = get(p + "attn_q_norm.weight");
            b.k_norm = get(p + "attn_k_norm.weight");
        }
        b.wo = get(p + "attn_output.weight");
        b.bo = bias(c.out_bias, p + "attn_output");
        if (c.gated_mlp()) {
            b.w_gate = get(p + "ffn_gate.weight");
            b.b_gate = bias(c.mlp_bias, p + "ffn_gate");
        }
        b.w_up = get(p + "ffn_up.weight");
        b.b_up = bias(c.mlp_bias, p + "ffn_up");
        b.w_down = get(p + "ffn_down.weight");
        b.b_down = bias(c.mlp_bias, p + "ffn_down");
        if (c.post_norms) {
            b.attn_post_norm = get(p + "post_attention_norm.weight");
            b.ffn_post_norm = get(p + "post_ffw_norm.weight");
        }
        w.blocks.push_back(b);
    }
    w.tok_embd = get("token_embd.weight");
    w.pos_embd = c.learned_positions ? get("position_embd.weight") : nullptr;
    w.tok_types = c.n_token_types > 0 ? get("token_types.weight") : nullptr;
    if (c.embd_norm) {
        w.embd_norm = get("token_embd_norm.weight");
        w.embd_norm_b = bias(c.norm_bias(), "token_embd_norm");
    }
    if (!c.encoder) {
        w.out_norm = get("output_norm.weight");
        w.out_norm_b = bias(c.norm_bias(), "output_norm");
        w.output = c.tied_embeddings ? w.tok_embd : get("output.weight");
    }
    return w;
}

// θ_j = pos · base^(−2j/d), computed in float as successive powers, the way ggml computes it, so that rounding
// matches llama.cpp bit for bit where it matters (an f16 KV cache amplifies tiny differences); then, as ggml's
// rope_yarn: divided by the pair's frequency factor (Llama 3), multiplied by 1/factor (linear scaling, YaRN) and, for
// YaRN, blended back towards the unscaled angle by the ramp of pair j, cos and sin multiplied by the magnitude factor.
void rope_angles(const ModelConfig& c, int64_t n, const std::function<int64_t(int64_t)>& pos_of, float* cos, float* sin) {
    const int64_t half = c.n_rot() / 2;
    const float theta_scale = std::pow(c.rope_theta, -2.0f / static_cast<float>(c.n_rot()));
    const float* ff = c.rope_freq_factors.empty() ? nullptr : c.rope_freq_factors.data();
    const bool yarn = c.rope_scaling == RopeScaling::Yarn;
    const float freq_scale = c.rope_scaling == RopeScaling::Linear || yarn ? 1.0f / c.rope_scale : 1.0f;
    // YaRN: the pairs j in [low, high] are blended (ggml_rope_yarn_corr_dims: the pair whose wavelength fits β times
    // into the original context, d · ln(L / (β · 2π)) / (2 ln base), rounded outwards)
    float low = 0, high = 0, mscale = 1.0f;
    if (yarn) {
        const float d = static_cast<float>(c.n_rot()), L = static_cast<float>(c.rope_orig_ctx), pi = static_cast<float>(M_PI);
        auto corr = [&](float beta) { return d * std::log(L / (beta * 2 * pi)) / (2 * std::log(c.rope_theta)); };
        low = std::max(0.0f, std::floor(corr(c.rope_yarn_beta_fast)));
        high = std::min(d - 1, std::ceil(corr(c.rope_yarn_beta_slow)));
        mscale = c.rope_attn_factor * (1.0f + 0.1f * std::log(1.0f / freq_scale));
    }
    for (int64_t i = 0; i < n; ++i) {
        float theta = static_cast<float>(pos_of(i));
        for (int64_t j = 0; j < half; ++j) {
            const float extrap = ff ? theta / ff[j] : theta;
            float t = freq_scale * extrap;
            if (yarn) {  // the share of the unscaled angle: 1 below the ramp, 0 above it
                const float y = (static_cast<float>(j) - low) / std::max(0.001f, high - low);
                const float mix = 1 - std::min(1.0f, std::max(0.0f, y));
                t = t * (1 - mix) + extrap * mix;
            }
            cos[i * half + j] = std::cos(t) * mscale;
            sin[i * half + j] = std::sin(t) * mscale;
            theta *= theta_scale;
        }
    }
}

void embed_tokens(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const int32_t* tokens, const int32_t* positions, int64_t n,
                  float* x, float* pre, float* mean, float* rstd, const int32_t* types) {
    float* e = w.embd_norm && pre ? pre : x;  // the sum, normalised into x below where the model has an embedding norm
    be.embed(*w.tok_embd, tokens, n, e, false);
    if (c.embd_scale) be.scale(e, std::sqrt(static_cast<float>(c.n_embd)), n * c.n_embd);  // as ggml: x · sqrtf(C)
    if (w.pos_embd) be.embed(*w.pos_embd, positions, n, e, true);
    if (w.tok_types) {  // the segments given, else every token in segment A: type 0
        static thread_local std::vector<int32_t> zeros;
        if (!types) zeros.assign(static_cast<size_t>(n), 0);
        be.embed(*w.tok_types, types ? types : zeros.data(), n, e, true);
    }
    if (w.embd_norm) be.norm(e, x, n, c.n_embd, c.norm, c.norm_eps, *w.embd_norm, w.embd_norm_b, mean, rstd);
}

void output_logits(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const LinearFn& linear, const float* h, int64_t m,
                   float* logits, float* th) {
    linear(h, logits, m, w.output, nullptr);
    if (c.final_softcap > 0) be.softcap(logits, m * c.n_vocab, c.final_softcap, th);
}

void forward_blocks(const ModelConfig& c, const ModelWeights& w, backend::Backend& be, const LinearFn& linear, int64_t n,
                    const AttentionSource& att, const float* rope_cos, const float* rope_sin,
                    const std::function<LayerBuffers(int64_t layer)>& buffers, int64_t first, int64_t last) {
    const int64_t C = c.n_embd, Q = c.q_dim(), KV = c.kv_dim(), F = c.n_ff, QKV = Q + 2 * KV, HD = c.head_dim();
    backend::AttentionShape shape{c.n_head, c.n_head_kv, HD};
    shape.scale = c.attention_scale();
    shape.softcap = c.attn_softcap;
    shape.causal = c.causal;
    shape.lengths = att.lengths;
    // out = x + Post(in Wᵀ + b): in place (out == x, the product through the scratch h) or into out's own buffer. With a
    // post-norm the product goes to proj (kept for the backward pass; in place: h) and its RMSNorm is added.
    auto residual = [&](const float* in, const Tensor* W, const Tensor* bias, const Tensor* post, float* proj, float* rstd, float* x, float* out,
                        float* h) {
        if (post) {
            float* p = out == x ? h : proj;
            linear(in, p, n, W, bias);
            be.norm(p, out == x ? h : out, n, C, NormKind::RMSNorm, c.norm_eps, *post, nullptr, nullptr, rstd);
            if (out == x) be.add(x, h, n * C);
            else be.add(out, x, n * C);
        } else if (out == x) {
            linear(in, h, n, W, bias);
            be.add(x, h, n * C);
        } else {
            linear(in, out, n, W, bias);
            be.add(out, x, n * C);
        }
    };
    for (int64_t l = first; l < (last < 0 ? c.n_layer : last); ++l) {
        const BlockWeights& W = w.blocks[static_cast<size_t>(l)];
        const LayerBuffers b = buffers(l);
        shape.window = c.window_of(l);
        // ---- attention sub-layer: x_mid = x + W_o · softmax(q kᵀ / √d) v, q, k, v projections of Norm(x) (post-norm:
        // of x itself, and x_mid normalised after the add)
        const float* attn_in = b.x;
        if (!c.post_ln) {
            be.norm(b.x, b.ln1, n, C, c.norm, c.norm_eps, *W.attn_norm, W.attn_norm_b, b.mean1, b.rstd1);
            attn_in = b.ln1;
        }
        float* q = c.qk_norm ? b.q_raw : b.q;  // the projections (normalised into q, k below)
        float* k = c.qk_norm ? b.k_raw : b.k;
        if (c.fused_qkv) {
            linear(attn_in, b.qkv, n, W.wqkv, W.bqkv);  // [n, Q + 2KV] = q | k | v
            for (int64_t i = 0; i < n; ++i) {
                std::copy_n(b.qkv + i * QKV, Q, q + i * Q);
                std::copy_n(b.qkv + i * QKV + Q, KV, k + i * KV);
                std::copy_n(b.qkv + i * QKV + Q + KV, KV, b.v + i * KV);
            }
        } else {
            linear(attn_in, q, n, W.wq, W.bq);    // [n, Q]
            linear(attn_in, k, n, W.wk, W.bk);    // [n, KV]
            linear(attn_in, b.v, n, W.wv, W.bv);  // [n, KV]
        }
        if (c.qk_norm) {  // RMSNorm over each head's head_dim values: rows of HD
            be.norm(q, b.q, n * c.n_head, HD, NormKind::RMSNorm, c.norm_eps, *W.q_norm, nullptr, nullptr, b.rstd_q);
            be.norm(k, b.k, n * c.n_head_kv, HD, NormKind::RMSNorm, c.norm_eps, *W.k_norm, nullptr, nullptr, b.rstd_k);
        }
        if (c.uses_rope()) {
            be.rope(b.q, n, c.n_head, c.head_dim(), c.n_rot(), c.rope_style, rope_cos, rope_sin);
            be.rope(b.k, n, c.n_head_kv, c.head_dim(), c.n_rot(), c.rope_style, rope_cos, rope_sin);
        }
        if (att.cache) {
            // one sequence: n consecutive cells; several: each row's own cell
            const backend::Rows& r = att.rows;
            for (int64_t i = 0, m = r.seq ? 1 : n; i < n; i += m) att.cache->store(r.seq_of(i), l, r.pos_of(i), b.k + i * KV, b.v + i * KV, m);
            be.attention(b.q, b.atty, n, r, *att.cache, l, shape);
        } else {
            be.attention_within(b.q, b.k, b.v, b.probs, b.atty, att.B, att.T, shape);
        }
        // post-norm: the sum x + attention goes to ln1 (kept for the backward pass) unless the pass works in place
        float* sum1 = c.post_ln && b.x_mid != b.x ? b.ln1 : b.x_mid;
        residual(b.atty, W.wo, W.bo, W.attn_post_norm, b.attn_proj, b.rstd_pa, b.x, sum1, b.h);
        if (c.post_ln) be.norm(sum1, b.x_mid, n, C, c.norm, c.norm_eps, *W.attn_out_norm, W.attn_out_norm_b, b.mean1, b.rstd1);

        // ---- MLP sub-layer: x_out = x_mid + W_down · act(Norm(x_mid)) (post-norm: act(x_mid), then x_out normalised)
        const float* mlp_in = b.x_mid;
        if (!c.post_ln) {
            be.norm(b.x_mid, b.ln2, n, C, c.norm, c.norm_eps, *W.ffn_norm, W.ffn_norm_b, b.mean2, b.rstd2);
            mlp_in = b.ln2;
        }
        if (c.gated_mlp()) {  // SwiGLU: silu(h W_gate) ⊙ (h W_up);  GeGLU: GELU(h W_gate) ⊙ (h W_up)
            linear(mlp_in, b.fa, n, W.w_gate, W.b_gate);
            linear(mlp_in, b.fb, n, W.w_up, W.b_up);
            if (c.mlp == MlpKind::GeGLU) be.geglu(b.fa, b.fb, b.fact, n, F);
            else be.swiglu(b.fa, b.fb, b.fact, n, F);
        } else if (c.mlp == MlpKind::Gelu) {  // the exact GELU(h W_up)
            linear(mlp_in, b.fa, n, W.w_up, W.b_up);
            be.gelu_erf(b.fa, b.fact, n * F);
        } else {  // GELU(h W_up), tanh approximation
            linear(mlp_in, b.fa, n, W.w_up, W.b_up);
            be.gelu(b.fa, b.fact, b.fb, n * F);
        }
        float* sum2 = c.post_ln && b.x_out != b.x_mid ? b.ln2 : b.x_out;
        residual(b.fact, W.w_down, W.b_down, W.ffn_post_norm, b.mlp_proj, b.rstd_pf, b.x_mid, sum2, b.h);
        if (c.post_ln) be.norm(sum2, b.x_out, n, C, c.norm, c.norm_eps, *W.layer_out_norm, W.layer_out_norm_b, b.mean2, b.rstd2);
    }
}

}  // namespace llmforge
