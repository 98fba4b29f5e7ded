// GPT-2 (Radford et al. 2019), and GPT-3's dense shape (Brown et al. 2020).
//
// Block:  x = x + Attn(LayerNorm(x));  x = x + MLP(LayerNorm(x)),  MLP(h) = GELU_tanh(h W_up + b) W_down + b
// Learned absolute positions added to the token embedding; one fused QKV projection; every projection and norm has a
// bias; the output is tied to the token embedding. Hugging Face stores the projections as Conv1D, [in, out].
#include <cstring>

#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

// GGUF per-layer name (without "blk.N.") ↔ Hugging Face's (without "h.N."); the suffix .weight/.bias follows
const std::pair<const char*, const char*> kLayerNames[] = {
    {"attn_norm.", "ln_1."}, {"attn_qkv.", "attn.c_attn."}, {"attn_output.", "attn.c_proj."},
    {"ffn_norm.", "ln_2."},  {"ffn_up.", "mlp.c_fc."},      {"ffn_down.", "mlp.c_proj."}};

bool is_norm(const char* gguf) { return std::strcmp(gguf, "attn_norm.") == 0 || std::strcmp(gguf, "ffn_norm.") == 0; }

class Gpt2 final : public Family {
public:
    const char* name() const override { return "gpt2"; }
    bool reads_hf_type(const std::string& t) const override { return t == "gpt2" || t == "GPT2LMHeadModel"; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::LayerNorm;
        c.learned_positions = true;
        c.fused_qkv = true;
        c.qkv_bias = c.out_bias = c.mlp_bias = true;
        c.mlp = MlpKind::GeluTanh;
        c.tied_embeddings = true;  // the loaders untie it when the file has output.weight
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("n_embd");
        c.n_layer = j.integer("n_layer");
        c.n_head = j.integer("n_head");
        c.n_head_kv = c.n_head;
        c.n_ctx = j.integer("n_positions", j.integer("n_ctx", 1024));
        c.n_ff = j.integer("n_inner", 4 * c.n_embd);
        c.n_vocab = j.integer("vocab_size");
        c.norm_eps = static_cast<float>(j.number("layer_norm_epsilon", 1e-5));
        c.tied_embeddings = j.boolean("tie_word_embeddings", true);
        const std::string act = j.string("activation_function", "gelu_new");
        if (act != "gelu_new" && act != "gelu_pytorch_tanh") j.refuse("activation_function", "only GPT-2's tanh GELU");
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return {{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}, {"n_embd", c.n_embd}, {"n_layer", c.n_layer},
                {"n_head", c.n_head}, {"n_positions", c.n_ctx}, {"n_ctx", c.n_ctx}, {"n_inner", c.n_ff}, {"vocab_size", c.n_vocab},
                {"layer_norm_epsilon", c.norm_eps}, {"activation_function", "gelu_new"}, {"tie_word_embeddings", c.tied_embeddings}};
    }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        if (g == "token_embd.weight") return "wte.weight";
        if (g == "position_embd.weight") return "wpe.weight";
        if (g == "output_norm.weight") return "ln_f.weight";
        if (g == "output_norm.bias") return "ln_f.bias";
        if (g == "output.weight") return "lm_head.weight";
        if (g.rfind("blk.", 0) != 0) return "";
        const size_t dot = g.find('.', 4);
        const std::string l = g.substr(4, dot - 4), rest = g.substr(dot + 1);
        for (auto [gg, hf] : kLayerNames) {
            const size_t k = std::strlen(gg);
            if (rest.compare(0, k, gg) == 0) {
                const std::string suffix = rest.substr(k);
                *transpose = suffix == "weight" && !is_norm(gg);
                return "h." + l + "." + hf + suffix;
            }
        }
        return "";
    }

    std::string gguf_tensor_name(const std::string& hf_name, bool* transpose) const override {
        *transpose = false;
        std::string n = hf_name;
        if (n.rfind("transformer.", 0) == 0) n = n.substr(12);
        if (n == "wte.weight") return "token_embd.weight";
        if (n == "wpe.weight") return "position_embd.weight";
        if (n == "ln_f.weight") return "output_norm.weight";
        if (n == "ln_f.bias") return "output_norm.bias";
        if (n == "lm_head.weight") return "output.weight";
        if (n.rfind("h.", 0) == 0) {
            const size_t dot = n.find('.', 2);
            const std::string l = n.substr(2, dot - 2), rest = n.substr(dot + 1);
            for (auto [gg, hf] : kLayerNames) {
                const size_t k = std::strlen(hf);
                if (rest.compare(0, k, hf) == 0) {
                    const std::string suffix = rest.substr(k);
                    *transpose = suffix == "weight" && !is_norm(gg);
                    return "blk." + l + "." + gg + suffix;
                }
            }
            if (rest == "attn.bias" || rest == "attn.masked_bias") return "";  // causal-mask buffers of old checkpoints
        }
        return "?" + n;
    }

    // Sizes from the published configurations: GPT-2 (Radford et al. 2019, HF config.json), GPT-3 (Brown et al. 2020,
    // table 2.1); gpt2-tiny for tests, gpt2-mini (rows multiples of 256, as the K-quants need; untied) for the quantisation tests.
    std::vector<ModelConfig> presets() const override {
        auto g = [&](const char* n, int64_t C, int64_t L, int64_t H, int64_t ctx, int64_t vocab = 50257) {
            return sized(*this, n, C, 4 * C, L, H, H, ctx, vocab);
        };
        ModelConfig mini = g("gpt2-mini", 256, 4, 4, 256, 512);
        mini.tied_embeddings = false;  // its own output.weight, as llama.cpp's converter writes GPT-2 (and llama.cpp needs)
        return {g("gpt2", 768, 12, 12, 1024),      g("gpt2-medium", 1024, 24, 16, 1024), g("gpt2-large", 1280, 36, 20, 1024),
                g("gpt2-xl", 1600, 48, 25, 1024),  g("gpt3-175b", 12288, 96, 96, 2048),  g("gpt2-tiny", 64, 2, 4, 128, 512), mini};
    }
};

}  // namespace

const Family& family_gpt2() {
    static const Gpt2 f;
    return f;
}

}  // namespace llmforge::arch
