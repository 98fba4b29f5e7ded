// Gemma 2 (Gemma Team 2024, "Gemma 2: Improving Open Language Models at a Practical Size").
//
// The block, as transformers' modeling_gemma2.py and llama.cpp's build_gemma2 compute it:
//  - the token embeddings multiplied by √n_embd;
//  - RMSNorm everywhere, also after each sub-layer ("sandwich" norms): x_mid = x + Norm(W_o · Attention(Norm(x))),
//    x_out = x_mid + Norm(MLP(Norm(x_mid)));
//  - Gemma's RMSNorm multiplies by (1 + w): Hugging Face stores w, GGUF (llama.cpp's converter) stores 1 + w, which is
//    what llmforge computes with — hf_tensor_offset() adds and removes the 1 when reading and writing checkpoints;
//  - grouped-query attention with RoPE (half-split pairs), heads head_dim wide (256 in 2B and 9B, whatever
//    hidden_size / heads is), scores scaled by query_pre_attn_scalar^(−1/2) and soft-capped: s → 50 · tanh(s / 50);
//  - local and global layers alternating: even layers attend within a sliding window of 4096 positions, odd ones to
//    the whole context (sliding_window_pattern 2);
//  - a GeGLU MLP: (GELU_tanh(x W_gate) ⊙ x W_up) W_down;
//  - the output tied to the token embedding, the logits soft-capped: z → 30 · tanh(z / 30).
//
// GGUF: llama.cpp's names and keys (general.architecture "gemma2"; attn_post_norm is blk.N.post_attention_norm and
// the MLP's post-norm blk.N.post_ffw_norm; gemma2.attn_logit_softcapping, gemma2.final_logit_softcapping,
// gemma2.attention.sliding_window). llama.cpp does not store query_pre_attn_scalar: it takes 1/√head_dim for its 2B and
// 9B models and 1/√(n_embd / n_head) for 27B (recognised by its 46 layers). llmforge reads it that way and writes
// gemma2.attention.query_pre_attn_scalar (a key of its own, ignored by llama.cpp) only where the scale differs from
// that rule.
#include <cmath>

#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

// per-layer GGUF name ↔ Hugging Face name (the rest is the LLaMA lineage's)
const std::pair<const char*, const char*> kNorms[] = {{"post_attention_norm", "post_attention_layernorm"},
                                                      {"ffn_norm", "pre_feedforward_layernorm"},
                                                      {"post_ffw_norm", "post_feedforward_layernorm"}};

// "blk.N.NAME.weight" → ("blk.N.", "NAME"), or ("", "") if not a layer's weight
std::pair<std::string, std::string> layer_part(const std::string& n, const char* prefix) {
    const size_t plen = std::char_traits<char>::length(prefix);
    if (n.compare(0, plen, prefix) != 0) return {};
    const size_t dot = n.find('.', plen);
    if (dot == std::string::npos || n.size() < dot + 8 || n.compare(n.size() - 7, 7, ".weight") != 0) return {};
    return {n.substr(0, dot + 1), n.substr(dot + 1, n.size() - 7 - dot - 1)};
}

// The scores' factor as the description keeps it: 0 where it is the usual 1/√head_dim.
void set_scale(ModelConfig& c, float scale) { c.attn_scale = scale == 1.0f / std::sqrt(static_cast<float>(c.head_dim())) ? 0.0f : scale; }

// llama.cpp's rule for the scores' factor of a GGUF without query_pre_attn_scalar (its 27B model: 46 layers)
float llamacpp_scale(const ModelConfig& c) {
    const float d = c.n_layer == 46 ? static_cast<float>(c.n_embd / c.n_head) : static_cast<float>(c.head_dim());
    return 1.0f / std::sqrt(d);
}

class Gemma2 final : public Family {
public:
    const char* name() const override { return "gemma2"; }
    bool reads_hf_type(const std::string& t) const override { return t == "gemma2" || t == "Gemma2ForCausalLM"; }
    RopeStyle gguf_rope_style() const override { return RopeStyle::Half; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.norm_eps = 1e-6f;
        c.rope_theta = 10000.0f;
        c.rope_style = RopeStyle::Half;
        c.mlp = MlpKind::GeGLU;
        c.post_norms = true;
        c.embd_scale = true;
        c.tied_embeddings = true;
        c.sliding_window = 4096;
        c.sliding_window_pattern = 2;
        c.attn_softcap = 50.0f;
        c.final_softcap = 30.0f;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("hidden_size");
        c.n_ff = j.integer("intermediate_size");
        c.n_layer = j.integer("num_hidden_layers");
        c.n_head = j.integer("num_attention_heads");
        c.n_head_kv = j.integer("num_key_value_heads", c.n_head);
        c.n_ctx = j.integer("max_position_embeddings", 8192);
        c.n_vocab = j.integer("vocab_size");
        c.norm_eps = static_cast<float>(j.number("rms_norm_eps", c.norm_eps));
        c.rope_theta = static_cast<float>(j.number("rope_theta", c.rope_theta));
        const int64_t hd = j.integer("head_dim", 256);
        c.n_head_dim = c.n_head > 0 && c.n_embd % c.n_head == 0 && hd == c.n_embd / c.n_head ? 0 : hd;
        read_rope_scaling(j, c);
        // transformers' Gemma2Config: hidden_activation (hidden_act in its first releases), the tanh approximation
        for (const char* key : {"hidden_activation", "hidden_act"}) {
            const std::string act = j.string(key, "gelu_pytorch_tanh");
            if (act != "gelu_pytorch_tanh" && act != "gelu_new") j.refuse(key, "only the tanh approximation of GELU");
        }
        if (!j.boolean("tie_word_embeddings", true)) j.refuse("tie_word_embeddings", "Gemma 2 ties its output to the token embedding");
        c.qkv_bias = c.out_bias = j.boolean("attention_bias", false);
        const double scalar = j.number("query_pre_attn_scalar", 256.0);
        if (!(scalar > 0)) j.refuse("query_pre_attn_scalar", "not a positive number");
        set_scale(c, static_cast<float>(1.0 / std::sqrt(scalar)));
        auto cap = [&](const char* key, double def) {  // null: no soft-cap
            if (j.present(key) && j.raw(key).is_null()) return 0.0f;
            const double v = j.number(key, def);
            if (!(v >= 0)) j.refuse(key, "not a non-negative number");
            return static_cast<float>(v);
        };
        c.attn_softcap = cap("attn_logit_softcapping", 50.0);
        c.final_softcap = cap("final_logit_softcapping", 30.0);
        const nlohmann::json& w = j.raw("sliding_window");
        if (j.present("sliding_window") && w.is_null()) c.sliding_window = 0;
        else c.sliding_window = j.integer("sliding_window", 4096);
        // newer transformers list each layer's kind; Gemma 2's alternate, starting with a windowed one
        const nlohmann::json& types = j.raw("layer_types");
        if (!types.is_null()) {
            if (!types.is_array() || static_cast<int64_t>(types.size()) != c.n_layer)
                j.refuse("layer_types", "not a list of one kind per layer");
            for (int64_t l = 0; l < c.n_layer; ++l) {
                const bool windowed = types[static_cast<size_t>(l)] == "sliding_attention";
                if (!windowed && types[static_cast<size_t>(l)] != "full_attention") j.refuse("layer_types", "an unknown kind of layer");
                if (windowed != (l % 2 == 0)) j.refuse("layer_types", "another order of windowed and global layers than Gemma 2's");
            }
        }
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        const float scale = c.attention_scale();
        nlohmann::json j = {{"model_type", "gemma2"},
                            {"architectures", {"Gemma2ForCausalLM"}},
                            {"hidden_size", c.n_embd},
                            {"intermediate_size", c.n_ff},
                            {"num_hidden_layers", c.n_layer},
                            {"num_attention_heads", c.n_head},
                            {"num_key_value_heads", c.n_head_kv},
                            {"head_dim", c.head_dim()},
                            {"max_position_embeddings", c.n_ctx},
                            {"vocab_size", c.n_vocab},
                            {"rms_norm_eps", c.norm_eps},
                            {"rope_theta", c.rope_theta},
                            {"hidden_activation", "gelu_pytorch_tanh"},
                            {"attention_bias", c.qkv_bias},
                            {"query_pre_attn_scalar", std::round(1.0 / (static_cast<double>(scale) * scale) * 1e4) / 1e4},
                            {"attn_logit_softcapping", c.attn_softcap > 0 ? nlohmann::json(c.attn_softcap) : nlohmann::json(nullptr)},
                            {"final_logit_softcapping", c.final_softcap > 0 ? nlohmann::json(c.final_softcap) : nlohmann::json(nullptr)},
                            {"sliding_window", c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr)},
                            {"tie_word_embeddings", true},
                            {"torch_dtype", "float32"}};
        write_rope_scaling(c, j);
        return j;
    }

    void from_gguf(GgufKeys& k, ModelConfig& c) const override {
        read_common_gguf(k, c);
        c.attn_softcap = static_cast<float>(k.number("attn_logit_softcapping", 50.0));
        c.final_softcap = static_cast<float>(k.number("final_logit_softcapping", 30.0));
        c.sliding_window = k.integer("attention.sliding_window", 4096);
        const double scalar = k.number("attention.query_pre_attn_scalar", 0.0);
        set_scale(c, scalar > 0 ? static_cast<float>(1.0 / std::sqrt(scalar)) : llamacpp_scale(c));
    }

    void to_gguf(const ModelConfig& c, gguf::Metadata& meta) const override {
        using gguf::Value;
        write_common_gguf(c, meta);
        meta.set("gemma2.attn_logit_softcapping", Value::f32(c.attn_softcap));
        meta.set("gemma2.final_logit_softcapping", Value::f32(c.final_softcap));
        meta.set("gemma2.attention.sliding_window", Value::u32(static_cast<uint32_t>(c.sliding_window)));
        if (c.attention_scale() != llamacpp_scale(c)) {
            const double s = c.attention_scale();
            meta.set("gemma2.attention.query_pre_attn_scalar", Value::f32(static_cast<float>(1.0 / (s * s))));
        }
    }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        const auto [prefix, part] = layer_part(g, "blk.");
        for (auto [gg, hf] : kNorms)
            if (part == gg) return "model.layers." + prefix.substr(4) + hf + ".weight";
        if (g == "output.weight") return "";
        return llama_style_hf_name(g);
    }

    std::string gguf_tensor_name(const std::string& n, bool* transpose) const override {
        *transpose = false;
        if (n == "lm_head.weight") return "";  // the tied output (some exports carry a copy; llama.cpp skips it too)
        const auto [prefix, part] = layer_part(n, "model.layers.");
        for (auto [gg, hf] : kNorms)
            if (part == hf) return "blk." + prefix.substr(13) + gg + ".weight";
        return llama_style_gguf_name(n);
    }

    // Gemma's RMSNorm multiplies by 1 + w: llama.cpp's converter stores 1 + w (every *norm.weight)
    float hf_tensor_offset(const std::string& gguf_name) const override {
        const std::string suffix = "norm.weight";
        return gguf_name.size() >= suffix.size() && gguf_name.compare(gguf_name.size() - suffix.size(), suffix.size(), suffix) == 0 ? 1.0f : 0.0f;
    }

    // Sizes from the published config.json files of google/gemma-2-2b, gemma-2-9b and gemma-2-27b (Hugging Face):
    // 256000 tokens, 8192 positions, window 4096, 256-wide heads (27B: 128, its scores scaled by 1/√144 =
    // 1/√(4608 / 32)). gemma2-tiny for tests: 26 layers (llama.cpp recognises Gemma 2 models by their layer count),
    // heads twice hidden / heads wide, window 128 in a context of 256.
    std::vector<ModelConfig> presets() const override {
        auto g = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t hd, int64_t ctx, int64_t vocab, int64_t window,
                     float scalar) {
            ModelConfig c = sized(*this, n, C, F, L, H, KV, ctx, vocab);
            c.n_head_dim = hd;
            c.sliding_window = window;
            set_scale(c, static_cast<float>(1.0 / std::sqrt(static_cast<double>(scalar))));
            return c;
        };
        return {g("gemma2-2b", 2304, 9216, 26, 8, 4, 256, 8192, 256000, 4096, 256), g("gemma2-9b", 3584, 14336, 42, 16, 8, 256, 8192, 256000, 4096, 256),
                g("gemma2-27b", 4608, 36864, 46, 32, 16, 128, 8192, 256000, 4096, 144), g("gemma2-tiny", 64, 128, 26, 4, 2, 32, 256, 512, 128, 32)};
    }
};

}  // namespace

const Family& family_gemma2() {
    static const Gemma2 f;
    return f;
}

}  // namespace llmforge::arch
