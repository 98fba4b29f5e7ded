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

    // rope_scaling: Llama 3's (rope_type "llama3") and linear interpolation; others are refused
    static void read_rope_scaling(HfConfig& j, ModelConfig& c) {
        const nlohmann::json& rs = j.raw("rope_scaling");
        if (rs.is_null()) return;
        if (!rs.is_object()) j.refuse("rope_scaling", "not an object");
        const std::string type = rs.value("rope_type", rs.value("type", std::string()));
        auto num = [&](const char* key, double def) {
            if (!rs.contains(key)) return def;
            if (!rs[key].is_number()) j.refuse("rope_scaling", "a field that is not a number");
            return rs[key].get<double>();
        };
        if (type == "default") return;
        if (type == "linear") {
            c.rope_scaling = RopeScaling::Linear;
            c.rope_scale = static_cast<float>(num("factor", 0));
            if (!(c.rope_scale > 0)) j.refuse("rope_scaling", "a linear scaling without a positive factor");
        } else if (type == "llama3") {
            const double orig = num("original_max_position_embeddings", 8192);
            try {
                set_llama3_rope(c, static_cast<float>(num("factor", 8)), static_cast<float>(num("low_freq_factor", 1)),
                                static_cast<float>(num("high_freq_factor", 4)), static_cast<int64_t>(orig));
            } catch (const Error&) {
                j.refuse("rope_scaling", "Llama 3 scaling with invalid factors");
            }
        } else {
            j.refuse("rope_scaling", "scaled rotary positions of this type (linear and llama3 are supported)");
        }
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        nlohmann::json j = lineage_fields(c, "llama", "LlamaForCausalLM");
        if (c.rope_scaling == RopeScaling::Linear) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scale}};
        if (c.rope_scaling == RopeScaling::Llama3) {
            if (c.rope_orig_ctx <= 0)
                throw_bad_input("this model's RoPE frequency factors are not Llama 3's form: config.json cannot express them (keep it as GGUF)");
            j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", c.rope_scale}, {"low_freq_factor", c.rope_low_freq},
                                 {"high_freq_factor", c.rope_high_freq}, {"original_max_position_embeddings", c.rope_orig_ctx}};
        }
        return j;
    }

    // Sizes from the published configurations: TinyLlama-1.1B (its HF config.json), Llama 2 (Touvron et al. 2023, HF
    // config.json), Llama 3.1 8B and Llama 3.2 1B/3B (meta-llama's config.json files: θ = 500000, rope_scaling llama3
    // with factor 8 (3.1) or 32 (3.2), low 1, high 4, 8192 original positions; 3.2 ties the output); llama-tiny and
    // llama-small (llama2.c's stories15M shape) for tests and demos, llama3-tiny with Llama 3's scaling for tests.
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
                l3("llama3-tiny", 64, 172, 3, 4, 2, 256, 512, 10000.0f, true, 4.0f, 32)};
    }
};

}  // namespace

const Family& family_llama() {
    static const Llama f;
    return f;
}

}  // namespace llmforge::arch
