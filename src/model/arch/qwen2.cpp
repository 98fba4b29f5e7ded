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

class Qwen2 final : public LlamaLineage {
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
        read_lineage_fields(j, c, 32768);
        read_rope_scaling(j, c);  // Qwen 2.5's long-context YaRN
        read_qwen_window(j, c);
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        nlohmann::json j = lineage_fields(c, "qwen2", "Qwen2ForCausalLM");
        j.update({{"use_sliding_window", false}, {"sliding_window", c.n_ctx}, {"max_window_layers", c.n_layer}});
        return j;
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
