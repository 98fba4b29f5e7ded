// Mistral 7B (Jiang et al. 2023, "Mistral 7B").
//
// LLaMA's block (RMSNorm, RoPE, grouped-query attention, SwiGLU, no biases) with sliding-window attention: the query
// at position p sees the keys of positions p − W + 1 .. p only (W = sliding_window, 4096 in Mistral 7B v0.1; every
// layer). Stacked layers still carry information from further back (about L · W positions), and the KV cache needs no
// more than W positions per sequence (KVCache keeps a ring of them when the context is longer).
//
// Files: Hugging Face's config.json has model_type "mistral" with sliding_window (transformers' MistralConfig
// defaults it to 4096 when absent, and applies it whenever it is not null); llama.cpp's converter writes these models
// as general.architecture "llama" and drops the window (its snapshot of February 2025 then attends to the whole
// context: the same model for contexts within the window). llmforge writes the window as llama.attention.sliding_window
// (the key llama.cpp uses for the window of its other architectures), which llama.cpp ignores and llmforge reads back:
// a "llama" GGUF with that key is a Mistral model here.
#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

class Mistral final : public LlamaLineage {
public:
    const char* name() const override { return "mistral"; }
    const char* gguf_arch() const override { return "llama"; }
    bool claims_gguf(const gguf::Metadata& meta) const override { return meta.find("llama.attention.sliding_window") != nullptr; }
    bool reads_hf_type(const std::string& t) const override { return t == "mistral" || t == "MistralForCausalLM"; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::RMSNorm;
        c.norm_eps = 1e-6f;  // transformers' MistralConfig default
        c.mlp = MlpKind::SwiGLU;
        c.sliding_window = 4096;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        read_lineage_fields(j, c, 4096 * 32);
        read_head_dim(j, c);
        read_rope_scaling(j, c);  // (after the head width: Llama 3's divisors are per pair)
        // null: no window (Mistral 7B v0.2 and later); absent: transformers' default, 4096
        const nlohmann::json& w = j.raw("sliding_window");
        if (!j.present("sliding_window")) c.sliding_window = 4096;
        else if (w.is_null()) c.sliding_window = 0;
        else if (!w.is_number_integer() || w.get<int64_t>() < 0) j.refuse("sliding_window", "not a non-negative integer");
        else c.sliding_window = w.get<int64_t>();
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        nlohmann::json j = lineage_fields(c, "mistral", "MistralForCausalLM");
        j["head_dim"] = c.head_dim();
        j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
        return j;
    }

    void from_gguf(GgufKeys& k, ModelConfig& c) const override {
        read_common_gguf(k, c);
        c.sliding_window = k.integer("attention.sliding_window", 0);
    }

    void to_gguf(const ModelConfig& c, gguf::Metadata& meta) const override {
        write_common_gguf(c, meta);
        meta.set("llama.attention.sliding_window", gguf::Value::u32(static_cast<uint32_t>(c.sliding_window)));
    }

    // Mistral 7B v0.1's published config.json (mistralai/Mistral-7B-v0.1 on Hugging Face: 4096 wide, 14336 in the MLP,
    // 32 layers, 32 query and 8 KV heads, θ = 10000, window 4096, 32768 positions, 32000 tokens); mistral-tiny for
    // tests, its window (128) half its context.
    std::vector<ModelConfig> presets() const override {
        auto m = [&](const char* n, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab, int64_t window) {
            ModelConfig c = sized(*this, n, C, F, L, H, KV, ctx, vocab);
            c.sliding_window = window;
            return c;
        };
        return {m("mistral-7b", 4096, 14336, 32, 32, 8, 32768, 32000, 4096), m("mistral-tiny", 64, 176, 3, 4, 2, 256, 512, 128)};
    }
};

}  // namespace

const Family& family_mistral() {
    static const Mistral f;
    return f;
}

}  // namespace llmforge::arch
