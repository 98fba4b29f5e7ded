// LLaMA (Touvron et al. 2023) and the models built on its block: Llama 2, TinyLlama, llama2.c's stories models.
//
// Block:  x = x + Attn(RMSNorm(x));  x = x + MLP(RMSNorm(x)),  MLP(h) = (silu(h W_gate) ⊙ h W_up) W_down
// Rotary positions on queries and keys, grouped-query attention (n_head_kv ≤ n_head), no biases, output untied.
// llama.cpp's converter permutes Wq/Wk rows to interleaved RoPE pairs in GGUF; Hugging Face keeps rotate_half's.
#include "llmforge/error.h"
#include "llmforge/model.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

class Llama final : public LlamaLineage {
public:
    const char* name() const override { return "llama"; }
    bool reads_hf_type(const std::string& t) const override { return t == "llama" || t == "LlamaForCausalLM"; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.mlp = MlpKind::SwiGLU;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.norm_eps = 1e-6f;  // transformers' LlamaConfig default
        read_lineage_fields(j, c, 2048);
        read_rope_scaling(j, c);
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return lineage_fields(c, "llama", "LlamaForCausalLM");
    }

    // Sizes from the published configurations: TinyLlama-1.1B (its HF config.json), Llama 2 (Touvron et al. 2023, HF
    // config.json), Llama 3.1 8B and Llama 3.2 1B/3B (meta-llama's config.json files: θ = 500000, rope_scaling llama3
    // with factor 8 (3.1) or 32 (3.2), low 1, high 4, 8192 original positions; 3.2 ties the output); llama-tiny and
    // llama-small (llama2.c's stories15M shape) for tests and demos, tinyllama-mini (TinyLlama's grouped-query attention,
    // 22 layers → 16, every row a multiple of 256 as the K-quants need) for the quantisation tests, llama3-tiny with Llama 3's scaling for tests.
    std::vector<ModelConfig> presets() const override {
        auto l = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab = 32000) {
            return sized(*this, n, C, F, L, H, KV, ctx, vocab);
        };
        auto l3 = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab, float theta, bool tied,
                      float factor, int64_t orig) {
            ModelConfig c = sized(*this, n, C, F, L, H, KV, ctx, vocab);
            c.rope_theta = theta;
            c.tied_embeddings = tied;
            set_llama3_rope(c, factor, 1.0f, 4.0f, orig);
            return c;
        };
        return {l("tinyllama-1.1b", 2048, 5632, 22, 32, 4, 2048),
                l("llama2-7b", 4096, 11008, 32, 32, 32, 4096),
                l("llama2-13b", 5120, 13824, 40, 40, 40, 4096),
                l("llama2-70b", 8192, 28672, 80, 64, 8, 4096),
                l3("llama3.1-8b", 4096, 14336, 32, 32, 8, 131072, 128256, 500000.0f, false, 8.0f, 8192),
                l3("llama3.2-1b", 2048, 8192, 16, 32, 8, 131072, 128256, 500000.0f, true, 32.0f, 8192),
                l3("llama3.2-3b", 3072, 8192, 28, 24, 8, 131072, 128256, 500000.0f, true, 32.0f, 8192),
                l("llama-tiny", 64, 172, 5, 8, 4, 512, 512),
                l("llama-small", 288, 768, 6, 6, 6, 256, 32000),
                l("tinyllama-mini", 256, 768, 16, 4, 1, 512, 4096),
                l3("llama3-tiny", 64, 172, 3, 4, 2, 256, 512, 10000.0f, true, 4.0f, 32)};
    }
};

}  // namespace

const Family& family_llama() {
    static const Llama f;
    return f;
}

}  // namespace llmforge::arch
