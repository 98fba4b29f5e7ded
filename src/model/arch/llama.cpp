// LLaMA (Touvron et al. 2023) and the models built on its block: Llama 2, TinyLlama, llama2.c's stories models.
//
// Block:  x = x + Attn(RMSNorm(x));  x = x + MLP(RMSNorm(x)),  MLP(h) = (silu(h W_gate) ⊙ h W_up) W_down
// Rotary positions on queries and keys, grouped-query attention (n_head_kv ≤ n_head), no biases, output untied.
// llama.cpp's converter permutes Wq/Wk rows to interleaved RoPE pairs in GGUF; Hugging Face keeps rotate_half's.
#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

class Llama final : public Family {
public:
    const char* name() const override { return "llama"; }
    bool reads_hf_type(const std::string& t) const override { return t == "llama" || t == "LlamaForCausalLM" || t == "mistral"; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.mlp = MlpKind::SwiGLU;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("hidden_size");
        c.n_ff = j.integer("intermediate_size");
        c.n_layer = j.integer("num_hidden_layers");
        c.n_head = j.integer("num_attention_heads");
        c.n_head_kv = j.integer("num_key_value_heads", c.n_head);
        c.n_ctx = j.integer("max_position_embeddings", 2048);
        c.n_vocab = j.integer("vocab_size");
        c.norm_eps = static_cast<float>(j.number("rms_norm_eps", 1e-6));
        c.rope_theta = static_cast<float>(j.number("rope_theta", 10000.0));
        c.tied_embeddings = j.boolean("tie_word_embeddings", false);
        c.rope_style = RopeStyle::Half;
        const std::string act = j.string("hidden_act", "silu");
        if (act != "silu" && act != "swish") j.refuse("hidden_act", "only SiLU gates");
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return {{"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"hidden_size", c.n_embd},
                {"intermediate_size", c.n_ff}, {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head},
                {"num_key_value_heads", c.n_head_kv}, {"max_position_embeddings", c.n_ctx}, {"vocab_size", c.n_vocab},
                {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta}, {"hidden_act", "silu"},
                {"tie_word_embeddings", c.tied_embeddings}, {"torch_dtype", "float32"}};
    }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        return llama_style_hf_name(g);
    }
    std::string gguf_tensor_name(const std::string& n, bool* transpose) const override {
        *transpose = false;
        return llama_style_gguf_name(n);
    }

    // Sizes from the published configurations: TinyLlama-1.1B (its HF config.json), Llama 2 (Touvron et al. 2023, HF
    // config.json); llama-tiny and llama-small (llama2.c's stories15M shape) for tests and demos.
    std::vector<ModelConfig> presets() const override {
        auto l = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab = 32000) {
            return sized(*this, n, C, F, L, H, KV, ctx, vocab);
        };
        return {l("tinyllama-1.1b", 2048, 5632, 22, 32, 4, 2048), l("llama2-7b", 4096, 11008, 32, 32, 32, 4096),
                l("llama2-13b", 5120, 13824, 40, 40, 40, 4096),   l("llama2-70b", 8192, 28672, 80, 64, 8, 4096),
                l("llama-tiny", 64, 172, 5, 8, 4, 512, 512),      l("llama-small", 288, 768, 6, 6, 6, 256, 32000)};
    }
};

}  // namespace

const Family& family_llama() {
    static const Llama f;
    return f;
}

}  // namespace llmforge::arch
