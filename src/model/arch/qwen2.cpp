// Qwen 2 and Qwen 2.5 (Qwen team 2024, "Qwen2 Technical Report" and "Qwen2.5 Technical Report").
//
// LLaMA's block (RMSNorm, RoPE, grouped-query attention, SwiGLU) with biases on the query, key and value projections
// (none on the output projection or the MLP); the small models tie the output to the token embedding. RoPE pairs
// dimensions half-split (rotate_half) in Hugging Face checkpoints and in llama.cpp's GGUF alike (its NEOX RoPE type):
// no row permutation between them. Checkpoints may enable sliding-window attention on upper layers
// (use_sliding_window); the released ones do not, and such a configuration is refused here.
#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

class Qwen2 final : public Family {
public:
    const char* name() const override { return "qwen2"; }
    bool reads_hf_type(const std::string& t) const override { return t == "qwen2" || t == "Qwen2ForCausalLM"; }
    RopeStyle gguf_rope_style() const override { return RopeStyle::Half; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.norm_eps = 1e-6f;
        c.rope_theta = 1000000.0f;
        c.rope_style = RopeStyle::Half;
        c.qkv_bias = true;
        c.mlp = MlpKind::SwiGLU;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("hidden_size");
        c.n_ff = j.integer("intermediate_size");
        c.n_layer = j.integer("num_hidden_layers");
        c.n_head = j.integer("num_attention_heads");
        c.n_head_kv = j.integer("num_key_value_heads", c.n_head);
        c.n_ctx = j.integer("max_position_embeddings", 32768);
        c.n_vocab = j.integer("vocab_size");
        c.norm_eps = static_cast<float>(j.number("rms_norm_eps", 1e-6));
        c.rope_theta = static_cast<float>(j.number("rope_theta", 1000000.0));
        c.tied_embeddings = j.boolean("tie_word_embeddings", false);
        const std::string act = j.string("hidden_act", "silu");
        if (act != "silu" && act != "swish") j.refuse("hidden_act", "only SiLU gates");
        // sliding windows only where use_sliding_window is true (transformers' Qwen2 ignores sliding_window otherwise)
        const bool swa = j.boolean("use_sliding_window", false);
        const int64_t window = j.integer("sliding_window", 0);
        j.integer("max_window_layers", 0);
        if (swa && window > 0 && window < c.n_ctx) j.refuse("sliding_window", "sliding-window attention on Qwen 2's upper layers");
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return {{"model_type", "qwen2"}, {"architectures", {"Qwen2ForCausalLM"}}, {"hidden_size", c.n_embd},
                {"intermediate_size", c.n_ff}, {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head},
                {"num_key_value_heads", c.n_head_kv}, {"max_position_embeddings", c.n_ctx}, {"vocab_size", c.n_vocab},
                {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta}, {"hidden_act", "silu"}, {"use_sliding_window", false},
                {"sliding_window", c.n_ctx}, {"max_window_layers", c.n_layer}, {"tie_word_embeddings", c.tied_embeddings},
                {"torch_dtype", "float32"}};
    }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        return llama_style_hf_name(g);
    }
    std::string gguf_tensor_name(const std::string& n, bool* transpose) const override {
        *transpose = false;
        return llama_style_gguf_name(n);
    }

    // Sizes from the published config.json files of Qwen/Qwen2.5-0.5B and Qwen/Qwen2.5-7B (Hugging Face); qwen2-tiny for
    // tests.
    std::vector<ModelConfig> presets() const override {
        auto q = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab, bool tied) {
            ModelConfig c = sized(*this, n, C, F, L, H, KV, ctx, vocab);
            c.tied_embeddings = tied;
            return c;
        };
        return {q("qwen2.5-0.5b", 896, 4864, 24, 14, 2, 32768, 151936, true), q("qwen2.5-7b", 3584, 18944, 28, 28, 4, 131072, 152064, false),
                q("qwen2-tiny", 64, 176, 3, 8, 2, 256, 512, true)};
    }
};

}  // namespace

const Family& family_qwen2() {
    static const Qwen2 f;
    return f;
}

}  // namespace llmforge::arch
