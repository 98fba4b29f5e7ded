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

class Qwen3 final : public LlamaLineage {
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
        read_lineage_fields(j, c, 40960);
        read_head_dim(j, c);
        read_rope_scaling(j, c);  // (after the head width: Llama 3's divisors are per pair)
        // transformers' Qwen3 puts the bias (attention_bias) on q, k, v and o alike
        c.qkv_bias = c.out_bias = j.boolean("attention_bias", false);
        read_qwen_window(j, c);
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        nlohmann::json j = lineage_fields(c, "qwen3", "Qwen3ForCausalLM");
        j.update({{"head_dim", c.head_dim()}, {"attention_bias", c.qkv_bias}, {"use_sliding_window", false}, {"sliding_window", nullptr},
                  {"max_window_layers", c.n_layer}});
        return j;
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
