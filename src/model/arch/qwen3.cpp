// Qwen 3 (Qwen team 2025, "Qwen3 Technical Report"), the dense models.
//
// Qwen 2's block without the q/k/v biases and with QK-norm: each head's query and key RMS-normalised (weights
// [head_dim], the model's epsilon) after the projection and before RoPE. Heads are head_dim = 128 wide whatever
// hidden_size / num_attention_heads is, so the queries' width n_head · head_dim may differ from the model's width.
// GGUF names and keys follow llama.cpp's current source (src/models/qwen3.cpp: attn_q_norm / attn_k_norm,
// attention.key_length); RoPE pairs are half-split there as in Hugging Face's checkpoints (NEOX).
#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

class Qwen3 final : public Family {
public:
    const char* name() const override { return "qwen3"; }
    bool reads_hf_type(const std::string& t) const override { return t == "qwen3" || t == "Qwen3ForCausalLM"; }
    RopeStyle gguf_rope_style() const override { return RopeStyle::Half; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.norm_eps = 1e-6f;
        c.rope_theta = 1000000.0f;
        c.rope_style = RopeStyle::Half;
        c.qk_norm = true;
        c.mlp = MlpKind::SwiGLU;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("hidden_size");
        c.n_ff = j.integer("intermediate_size");
        c.n_layer = j.integer("num_hidden_layers");
        c.n_head = j.integer("num_attention_heads");
        c.n_head_kv = j.integer("num_key_value_heads", c.n_head);
        c.n_ctx = j.integer("max_position_embeddings", 40960);
        c.n_vocab = j.integer("vocab_size");
        c.norm_eps = static_cast<float>(j.number("rms_norm_eps", 1e-6));
        c.rope_theta = static_cast<float>(j.number("rope_theta", 1000000.0));
        c.tied_embeddings = j.boolean("tie_word_embeddings", false);
        const int64_t hd = j.integer("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
        if (!(c.n_head > 0 && c.n_embd % c.n_head == 0 && hd == c.n_embd / c.n_head)) c.n_head_dim = hd;
        // transformers' Qwen3 puts the bias (attention_bias) on q, k, v and o alike
        c.qkv_bias = c.out_bias = j.boolean("attention_bias", false);
        const std::string act = j.string("hidden_act", "silu");
        if (act != "silu" && act != "swish") j.refuse("hidden_act", "only SiLU gates");
        const bool swa = j.boolean("use_sliding_window", false);
        const int64_t window = j.integer("sliding_window", 0);
        j.integer("max_window_layers", 0);
        if (swa && window > 0 && window < c.n_ctx) j.refuse("sliding_window", "sliding-window attention on Qwen 3's layers");
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return {{"model_type", "qwen3"}, {"architectures", {"Qwen3ForCausalLM"}}, {"hidden_size", c.n_embd},
                {"intermediate_size", c.n_ff}, {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head},
                {"num_key_value_heads", c.n_head_kv}, {"head_dim", c.head_dim()}, {"max_position_embeddings", c.n_ctx},
                {"vocab_size", c.n_vocab}, {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta}, {"hidden_act", "silu"},
                {"attention_bias", c.qkv_bias}, {"use_sliding_window", false}, {"sliding_window", nullptr}, {"max_window_layers", c.n_layer},
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

    // Sizes from the published config.json files of Qwen/Qwen3-0.6B and Qwen/Qwen3-8B (Hugging Face): 128-wide heads,
    // 0.6B ties its output; qwen3-tiny (queries twice the model's width, as 0.6B's) for tests.
    std::vector<ModelConfig> presets() const override {
        auto q = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t hd, int64_t ctx, int64_t vocab, bool tied) {
            ModelConfig c = sized(*this, n, C, F, L, H, KV, ctx, vocab);
            c.n_head_dim = hd;
            c.tied_embeddings = tied;
            return c;
        };
        return {q("qwen3-0.6b", 1024, 3072, 28, 16, 8, 128, 40960, 151936, true), q("qwen3-8b", 4096, 12288, 36, 32, 8, 128, 40960, 151936, false),
                q("qwen3-tiny", 64, 160, 3, 4, 2, 32, 256, 512, true)};
    }
};

}  // namespace

const Family& family_qwen3() {
    static const Qwen3 f;
    return f;
}

}  // namespace llmforge::arch
