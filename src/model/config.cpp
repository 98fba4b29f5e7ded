// Model configurations: the tensors a block description implies, parameter counting, validation, presets and the GGUF
// metadata of every family (each family's own part lives in src/model/arch/<family>.cpp).
#include <algorithm>
#include <cmath>

#include "llmforge/error.h"
#include "llmforge/model.h"
#include "model/family.h"

namespace llmforge {

std::vector<std::string> family_names() {
    std::vector<std::string> n;
    for (const arch::Family* f : arch::families()) n.push_back(f->name());
    return n;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& c) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> t;
    const int64_t C = c.n_embd, F = c.n_ff, V = c.n_vocab, KV = c.kv_dim(), Q = c.q_dim(), HD = c.head_dim();
    // a weight (and its bias, where the description gives it one)
    auto add = [&](const std::string& name, std::vector<int64_t> shape, bool bias) {
        const int64_t rows = shape[0];
        t.push_back({name + ".weight", std::move(shape)});
        if (bias) t.push_back({name + ".bias", {rows}});
    };
    t.push_back({"token_embd.weight", {V, C}});
    if (c.learned_positions) t.push_back({"position_embd.weight", {c.n_ctx, C}});
    if (c.n_token_types > 0) t.push_back({"token_types.weight", {c.n_token_types, C}});
    if (c.embd_norm) add("token_embd_norm", {C}, c.norm_bias());
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        if (!c.post_ln) add(p + "attn_norm", {C}, c.norm_bias());
        if (c.fused_qkv) {
            add(p + "attn_qkv", {Q + 2 * KV, C}, c.qkv_bias);
        } else {
            add(p + "attn_q", {Q, C}, c.qkv_bias);
            add(p + "attn_k", {KV, C}, c.qkv_bias);
            add(p + "attn_v", {KV, C}, c.qkv_bias);
        }
        if (c.qk_norm) {
            add(p + "attn_q_norm", {HD}, false);
            add(p + "attn_k_norm", {HD}, false);
        }
        add(p + "attn_output", {C, Q}, c.out_bias);
        if (c.post_norms) add(p + "post_attention_norm", {C}, false);
        add(p + (c.post_ln ? "attn_output_norm" : "ffn_norm"), {C}, c.norm_bias());
        if (c.gated_mlp()) add(p + "ffn_gate", {F, C}, c.mlp_bias);
        add(p + "ffn_up", {F, C}, c.mlp_bias);
        add(p + "ffn_down", {C, F}, c.mlp_bias);
        if (c.post_norms) add(p + "post_ffw_norm", {C}, false);
        if (c.post_ln) add(p + "layer_output_norm", {C}, c.norm_bias());
    }
    if (c.encoder && c.pooling == Pooling::Rank) {  // a cross-encoder's head: BERT's pooler, then one score
        add("cls", {C, C}, true);
        add("cls.output", {1, C}, true);
    }
    if (c.encoder) return t;  // no output head
    add("output_norm", {C}, c.norm_bias());
    if (!c.tied_embeddings) t.push_back({"output.weight", {V, C}});
    return t;
}

int64_t ModelConfig::n_params() const {
    int64_t n = 0;
    for (const auto& [name, shape] : expected_tensors(*this)) {
        int64_t k = 1;
        for (int64_t d : shape) k *= d;
        n += k;
    }
    return n;
}

void ModelConfig::validate() const {
    arch::family(arch, "model config: ");
    auto bad = [&](const char* what, int64_t v) { throw_bad_input("model config: %s = %lld is not valid", what, static_cast<long long>(v)); };
    const int64_t kMax = int64_t(1) << 24;
    if (n_vocab <= 0 || n_vocab > kMax) bad("n_vocab", n_vocab);
    if (n_ctx <= 0 || n_ctx > kMax) bad("n_ctx", n_ctx);
    if (n_embd <= 0 || n_embd > kMax) bad("n_embd", n_embd);
    if (n_ff <= 0 || n_ff > kMax) bad("n_ff", n_ff);
    if (n_layer <= 0 || n_layer > 4096) bad("n_layer", n_layer);
    if (n_head <= 0 || (n_head_dim == 0 && n_embd % n_head != 0)) bad("n_head (must divide n_embd)", n_head);
    if (n_head_dim < 0 || n_head_dim > 4096) bad("head_dim", n_head_dim);
    if (n_head_kv <= 0 || n_head % n_head_kv != 0) bad("n_head_kv (must divide n_head)", n_head_kv);
    if (uses_rope()) {
        if (n_rot() <= 0 || n_rot() > head_dim() || n_rot() % 2) bad("rope dimension", n_rot());
        if (!(rope_theta > 0)) bad("rope_theta", static_cast<int64_t>(rope_theta));
    }
    if (rope_scaling != RopeScaling::None && !(rope_scale > 0)) throw_bad_input("model config: RoPE scaling factor %g is not valid", static_cast<double>(rope_scale));
    if (rope_scaling == RopeScaling::Yarn &&
        (rope_orig_ctx <= 0 || !(rope_yarn_beta_fast > 0) || !(rope_yarn_beta_slow > 0) || !(rope_attn_factor > 0) || !std::isfinite(rope_attn_factor)))
        throw_bad_input("model config: YaRN needs an original context, positive beta_fast and beta_slow and a positive attention factor");
    if (!rope_freq_factors.empty()) {
        if (static_cast<int64_t>(rope_freq_factors.size()) != n_rot() / 2)
            throw_bad_input("model config: %zu RoPE frequency factors for %lld rotated pairs", rope_freq_factors.size(), static_cast<long long>(n_rot() / 2));
        for (float f : rope_freq_factors)
            if (!(f > 0) || !std::isfinite(f)) throw_bad_input("model config: a RoPE frequency factor of %g is not valid", static_cast<double>(f));
    }
    if (fused_qkv && n_head_kv != n_head) bad("n_head_kv (a fused QKV projection has no grouped-query attention)", n_head_kv);
    if (!(norm_eps > 0) || norm_eps > 1) throw_bad_input("model config: norm epsilon %g is not valid", static_cast<double>(norm_eps));
    if (sliding_window < 0 || sliding_window > kMax) bad("sliding_window", sliding_window);
    if (post_norms && norm != NormKind::RMSNorm) throw_bad_input("model config: post-norms are RMSNorms; this model's norm is LayerNorm");
    if (post_ln && post_norms) throw_bad_input("model config: a block has either post-norms (Gemma 2) or norms after the residual adds (BERT), not both");
    if (n_token_types < 0 || n_token_types > 1024) bad("token_type_count", n_token_types);
    if (!causal && sliding_window > 0) throw_bad_input("model config: a sliding window needs causal attention");
    if (sliding_window_pattern < 0 || sliding_window_pattern > 4096) bad("sliding_window_pattern", sliding_window_pattern);
    auto positive = [&](const char* what, float v) {
        if (!(v >= 0) || !std::isfinite(v)) throw_bad_input("model config: %s = %g is not valid", what, static_cast<double>(v));
    };
    positive("attention scale", attn_scale);
    positive("attention soft-cap", attn_softcap);
    positive("final logit soft-cap", final_softcap);
}

// As llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel) computes rope_freqs: for each pair's base frequency
// f_j = θ^(−2j/d) and wavelength λ = 2π/f_j, the divisor is 1 where λ < L/high, the factor where λ > L/low, and
// 1 / ((1 − s)/factor + s) with s = (L/λ − low)/(high − low) between (L: the original context), in float32.
void set_llama3_rope(ModelConfig& c, float factor, float low, float high, int64_t orig) {
    if (!(factor > 0) || !(low > 0) || !(high > low) || orig <= 0)
        throw_bad_input("Llama 3 RoPE scaling: factor %g, low_freq_factor %g, high_freq_factor %g, original context %lld are not valid",
                        static_cast<double>(factor), static_cast<double>(low), static_cast<double>(high), static_cast<long long>(orig));
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_scale = factor;
    c.rope_low_freq = low;
    c.rope_high_freq = high;
    c.rope_orig_ctx = orig;
    const int64_t dim = c.n_rot();
    const float L = static_cast<float>(orig), low_wavelen = L / low, high_wavelen = L / high;
    const float two_pi = static_cast<float>(2.0 * 3.14159265358979323846);
    c.rope_freq_factors.assign(static_cast<size_t>(dim / 2), 1.0f);
    for (int64_t j = 0; j < dim / 2; ++j) {
        const float freq = 1.0f / std::pow(c.rope_theta, static_cast<float>(2 * j) / static_cast<float>(dim));
        const float wavelen = two_pi / freq;
        float& f = c.rope_freq_factors[static_cast<size_t>(j)];
        if (wavelen < high_wavelen) f = 1.0f;
        else if (wavelen > low_wavelen) f = factor;
        else {
            const float smooth = (L / wavelen - low) / (high - low);
            f = 1.0f / ((1.0f - smooth) / factor + smooth);
        }
    }
}

// Llama 3's parameters are recovered where some original context (a power of two, 8192 first: Llama 3.1's and 3.2's)
// with the factor max(divisors) and llama.cpp's default band (low 1, high 4) reproduces every divisor; the divisors
// alone decide the computation, so any such set describes the same model.
void set_rope_freq_factors(ModelConfig& c, std::vector<float> factors) {
    c.rope_scaling = RopeScaling::Llama3;
    c.rope_scale = *std::max_element(factors.begin(), factors.end());
    c.rope_low_freq = 1.0f;
    c.rope_high_freq = 4.0f;
    c.rope_orig_ctx = 0;  // unless recovered below: the divisors as given (config.json cannot express them)
    std::vector<int64_t> contexts = {8192};
    for (int64_t L = 16; L <= (int64_t(1) << 22); L *= 2)
        if (L != 8192) contexts.push_back(L);
    for (int64_t L : contexts) {
        ModelConfig t = c;
        set_llama3_rope(t, c.rope_scale, 1.0f, 4.0f, L);
        bool same = true;
        for (size_t j = 0; j < factors.size() && same; ++j) same = std::abs(t.rope_freq_factors[j] - factors[j]) <= 1e-6f * factors[j];
        if (same) {
            c.rope_orig_ctx = L;
            break;
        }
    }
    c.rope_freq_factors = std::move(factors);
}

std::vector<std::string> preset_names() {
    std::vector<std::string> n;
    for (const arch::Family* f : arch::families())
        for (const ModelConfig& c : f->presets()) n.push_back(c.name);
    return n;
}

ModelConfig preset(const std::string& name) {
    for (const arch::Family* f : arch::families())
        for (const ModelConfig& c : f->presets())
            if (c.name == name) return c;
    std::string known;
    for (const std::string& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw_bad_input("unknown preset '%s' (known: %s)", name.c_str(), known.c_str());
}

// ---------------------------------------------------------------------------------- GGUF metadata
RopeStyle gguf_rope_style(const ModelConfig& c) { return arch::family(c.arch).gguf_rope_style(); }

void config_to_gguf(const ModelConfig& c, gguf::Metadata& meta) {
    meta.set("general.architecture", gguf::Value::str(arch::family(c.arch).gguf_arch()));
    if (!c.name.empty() && !meta.find("general.name")) meta.set("general.name", gguf::Value::str(c.name));
    arch::family(c.arch).to_gguf(c, meta);
}

ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::string& path) {
    const std::string a = meta.get_string("general.architecture", "");
    if (a.empty()) throw_bad_input("'%s' has no general.architecture", path.c_str());
    const arch::Family& f = arch::family_for_gguf(a, meta, "'" + path + "': ");
    ModelConfig c = f.describe();
    c.name = meta.get_string("general.name", "");
    c.rope_style = f.gguf_rope_style();  // the rows as llama.cpp's converter wrote them
    arch::GgufKeys keys(meta, a, path);
    f.from_gguf(keys, c);
    keys.check_unread(c);
    return c;
}

ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::vector<Tensor>& tensors, const std::string& path) {
    ModelConfig c = config_from_gguf(meta, path);
    const Tensor *emb = nullptr, *out = nullptr, *rf = nullptr;
    for (const Tensor& t : tensors) {
        if (t.name == "token_embd.weight") emb = &t;
        if (t.name == "output.weight") out = &t;
        if (t.name == "rope_freqs.weight") rf = &t;
    }
    if (!emb) throw_bad_input("'%s': missing tensor 'token_embd.weight'", path.c_str());
    if (emb->shape.size() != 2) throw_bad_input("'%s': token_embd.weight must be 2-D", path.c_str());
    if (c.n_vocab == 0) c.n_vocab = emb->shape[0];
    c.tied_embeddings = out == nullptr;
    // Llama 3's RoPE scaling: one divisor per rotated pair (llama.cpp's rope_freqs tensor)
    if (rf) {
        const int64_t half = c.n_head > 0 ? c.n_rot() / 2 : 0;
        if (!c.uses_rope() || rf->dtype != DType::F32 || rf->shape.size() != 1 || rf->shape[0] != half || !rf->data)
            throw_bad_input("'%s': tensor 'rope_freqs.weight' has type %s and shape %s; a model with %lld rotated pairs needs f32 [%lld]", path.c_str(),
                            dtype_name(rf->dtype), rf->shape_str().c_str(), static_cast<long long>(half), static_cast<long long>(half));
        const float* f = static_cast<const float*>(rf->data);
        set_rope_freq_factors(c, std::vector<float>(f, f + half));
    }
    return c;
}

}  // namespace llmforge
