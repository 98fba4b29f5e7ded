// nomic-bert (Nussbaum et al. 2024, "Nomic Embed: Training a Reproducible Long Context Text Embedder"): BERT's
// post-norm encoder with rotary positions instead of learned ones, SwiGLU instead of GELU, and no biases on the
// attention or MLP projections.
//
// Embeddings:  x = LayerNorm(E_token[t] + E_type[0])            (no position embedding)
// Block (post-norm, bidirectional attention; RoPE on q and k, base 1000, NeoX's half-split pairs):
//   x = LayerNorm(x + Attn(x) W_o);   x = LayerNorm(x + (SiLU(x W_gate) ⊙ x W_up) W_down)
// One fused QKV projection; mean pooling, then L2 normalisation.
// GGUF names are llama.cpp's ("nomic-bert": attn_qkv, attn_output, attn_output_norm, ffn_up, ffn_gate, ffn_down,
// layer_output_norm); Hugging Face names are nomic-ai's NomicBertModel (attn.Wqkv, attn.out_proj, norm1, mlp.fc11 =
// up, mlp.fc12 = gate, mlp.fc2, norm2, emb_ln), as llama.cpp's converter maps them.
#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

const NameTable kLayerNames = {
    {"attn_qkv", "attn.Wqkv"}, {"attn_output", "attn.out_proj"}, {"attn_output_norm", "norm1"},
    {"ffn_up", "mlp.fc11"},    {"ffn_gate", "mlp.fc12"},         {"ffn_down", "mlp.fc2"},      {"layer_output_norm", "norm2"}};
const NameTable kTopNames = {
    {"token_embd", "embeddings.word_embeddings"}, {"token_types", "embeddings.token_type_embeddings"}, {"token_embd_norm", "emb_ln"}};

class NomicBert final : public Family {
public:
    const char* name() const override { return "nomic-bert"; }
    bool reads_hf_type(const std::string& t) const override { return t == "nomic_bert" || t == "NomicBertModel"; }
    RopeStyle gguf_rope_style() const override { return RopeStyle::Half; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::LayerNorm;
        c.norm_eps = 1e-12f;
        c.learned_positions = false;
        c.rope_theta = 1000.0f;
        c.rope_style = RopeStyle::Half;
        c.fused_qkv = true;
        c.qkv_bias = c.out_bias = c.mlp_bias = false;
        c.mlp = MlpKind::SwiGLU;
        c.causal = false;
        c.post_ln = true;
        c.embd_norm = true;
        c.n_token_types = 2;
        c.encoder = true;
        c.pooling = Pooling::Mean;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("n_embd");
        c.n_layer = j.integer("n_layer");
        c.n_head = j.integer("n_head");
        c.n_head_kv = c.n_head;
        c.n_ff = j.integer("n_inner", 4 * c.n_embd);
        c.n_ctx = j.integer("n_positions", 2048);  // then capped at max_trained_positions (below)
        c.n_vocab = j.integer("vocab_size");
        c.n_token_types = j.integer("type_vocab_size", 2);
        c.norm_eps = static_cast<float>(j.number("layer_norm_epsilon", 1e-12));
        c.rope_theta = static_cast<float>(j.number("rotary_emb_base", 1000.0));
        if (j.number("rotary_emb_fraction", 1.0) != 1.0) j.refuse("rotary_emb_fraction", "only RoPE over the whole head (1.0)");
        if (j.string("activation_function", "swiglu") != "swiglu") j.refuse("activation_function", "only SwiGLU");
        for (const char* k : {"qkv_proj_bias", "mlp_fc1_bias", "mlp_fc2_bias"})
            if (j.boolean(k, false)) j.refuse(k, "only projections without biases");
        if (j.boolean("prenorm", false)) j.refuse("prenorm", "only post-norm blocks");
        if (j.boolean("rotary_emb_interleaved", false)) j.refuse("rotary_emb_interleaved", "only half-split rotary pairs");
        // rotary_scaling_factor (dynamic NTK beyond the trained length) is not implemented: the context stops at the
        // trained length instead
        const int64_t trained = j.integer("max_trained_positions", c.n_ctx);
        if (trained < c.n_ctx) c.n_ctx = trained;
        if (j.boolean("causal", false)) j.refuse("causal", "only bidirectional attention");
        c.pooling = Pooling::Mean;
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        return {{"model_type", "nomic_bert"}, {"architectures", {"NomicBertModel"}}, {"n_embd", c.n_embd}, {"n_layer", c.n_layer},
                {"n_head", c.n_head}, {"n_inner", c.n_ff}, {"n_positions", c.n_ctx}, {"vocab_size", c.n_vocab},
                {"type_vocab_size", c.n_token_types}, {"layer_norm_epsilon", c.norm_eps}, {"rotary_emb_base", c.rope_theta},
                {"rotary_emb_fraction", 1.0}, {"activation_function", "swiglu"}, {"qkv_proj_bias", false}, {"mlp_fc1_bias", false},
                {"mlp_fc2_bias", false}, {"prenorm", false}, {"causal", false}, {"pad_token_id", 0}};
    }

    void from_gguf(GgufKeys& k, ModelConfig& c) const override { read_encoder_gguf(k, c, Pooling::Mean); }
    void to_gguf(const ModelConfig& c, gguf::Metadata& meta) const override { write_encoder_gguf(c, meta); }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        return hf_name_by_table(g, kTopNames, kLayerNames, "encoder.layers.");
    }

    std::string gguf_tensor_name(const std::string& hf_name, bool* transpose) const override {
        *transpose = false;
        const std::string g = gguf_name_by_table(hf_name, kTopNames, kLayerNames, "encoder.layers.");
        return g.empty() ? "?" + hf_name : g;
    }

    // nomic-embed-text-v1.5's shape (nomic-ai's config.json: 12 layers, 768 wide, 12 heads, 3072 inner, trained at 2048
    // positions — max_trained_positions; n_positions says 8192 with rotary scaling), and a tiny one for tests.
    std::vector<ModelConfig> presets() const override {
        return {sized(*this, "nomic-embed-text", 768, 3072, 12, 12, 12, 2048, 30528), sized(*this, "nomic-bert-tiny", 128, 256, 2, 2, 2, 512, 30522)};
    }
};

}  // namespace

const Family& family_nomic_bert() {
    static const NomicBert f;
    return f;
}

}  // namespace llmforge::arch
