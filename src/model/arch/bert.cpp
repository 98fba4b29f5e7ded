// BERT (Devlin et al. 2018) as the encoder of embedding models (bge, e5, MiniLM: BertModel with a pooling).
//
// Embeddings:  x = LayerNorm(E_token[t] + E_position[p] + E_type[0])
// Block (post-norm, bidirectional attention over the whole sequence):
//   x = LayerNorm(x + Attn(x));   x = LayerNorm(x + GELU(x W_up + b) W_down + b)
// Separate Q, K, V projections; every projection and norm has a bias; GELU is the exact one (erf); no output head.
// A sentence embedding pools the last hidden states: [CLS]'s (bge) or their mean (MiniLM, e5), then L2-normalises.
// GGUF names are llama.cpp's (its "bert" architecture): token_types, token_embd_norm, attn_output_norm,
// layer_output_norm.
#include <cstring>

#include "llmforge/error.h"
#include "model/family.h"

namespace llmforge::arch {

namespace {

// GGUF per-layer name (without "blk.N." and the .weight/.bias suffix) ↔ Hugging Face's (without "encoder.layer.N.")
const NameTable kLayerNames = {
    {"attn_q", "attention.self.query"},         {"attn_k", "attention.self.key"},   {"attn_v", "attention.self.value"},
    {"attn_output", "attention.output.dense"},  {"attn_output_norm", "attention.output.LayerNorm"},
    {"ffn_up", "intermediate.dense"},           {"ffn_down", "output.dense"},       {"layer_output_norm", "output.LayerNorm"}};
const NameTable kTopNames = {
    {"token_embd", "embeddings.word_embeddings"}, {"position_embd", "embeddings.position_embeddings"},
    {"token_types", "embeddings.token_type_embeddings"}, {"token_embd_norm", "embeddings.LayerNorm"},
    {"cls", "pooler.dense"}, {"cls.output", "classifier"}};  // a cross-encoder's head (BertForSequenceClassification)

class Bert final : public Family {
public:
    const char* name() const override { return "bert"; }
    bool reads_hf_type(const std::string& t) const override { return t == "bert" || t == "BertModel" || t == "BertForSequenceClassification"; }

    ModelConfig describe() const override {
        ModelConfig c;
        c.arch = name();
        c.norm = NormKind::LayerNorm;
        c.norm_eps = 1e-12f;
        c.learned_positions = true;
        c.qkv_bias = c.out_bias = c.mlp_bias = true;
        c.mlp = MlpKind::Gelu;
        c.causal = false;
        c.post_ln = true;
        c.embd_norm = true;
        c.n_token_types = 2;
        c.encoder = true;
        c.pooling = Pooling::Cls;
        return c;
    }

    void from_hf(HfConfig& j, ModelConfig& c) const override {
        c.n_embd = j.integer("hidden_size");
        c.n_layer = j.integer("num_hidden_layers");
        c.n_head = j.integer("num_attention_heads");
        c.n_head_kv = c.n_head;
        c.n_ff = j.integer("intermediate_size");
        c.n_ctx = j.integer("max_position_embeddings", 512);
        c.n_vocab = j.integer("vocab_size");
        c.n_token_types = j.integer("type_vocab_size", 2);
        c.norm_eps = static_cast<float>(j.number("layer_norm_eps", 1e-12));
        if (j.string("hidden_act", "gelu") != "gelu") j.refuse("hidden_act", "only BERT's exact GELU");
        if (j.string("position_embedding_type", "absolute") != "absolute") j.refuse("position_embedding_type", "only absolute positions");
        // config.json does not say how sentence-transformers pools; a directory's 1_Pooling/config.json does (the loader
        // reads it). Without it: the mean over the tokens. A BertForSequenceClassification with one label is a
        // cross-encoder (sentence-transformers' CrossEncoder: a reranker).
        c.pooling = Pooling::Mean;
        const nlohmann::json& arch = j.raw("architectures");
        if (arch.is_array() && !arch.empty() && arch[0] == "BertForSequenceClassification") {
            const nlohmann::json& labels = j.raw("id2label");  // transformers' default: two labels
            const int64_t n = labels.is_object() ? static_cast<int64_t>(labels.size()) : 2;
            if (j.integer("num_labels", n) != 1 || n != 1) j.refuse("id2label", "only one label: a reranker's single relevance score");
            j.raw("label2id");
            j.raw("problem_type");
            c.pooling = Pooling::Rank;
        }
    }

    nlohmann::json to_hf(const ModelConfig& c) const override {
        if (c.pooling == Pooling::Rank) {
            nlohmann::json j = to_hf_base(c);
            j["architectures"] = {"BertForSequenceClassification"};
            j["id2label"] = {{"0", "LABEL_0"}};
            j["label2id"] = {{"LABEL_0", 0}};
            return j;
        }
        return to_hf_base(c);
    }

    static nlohmann::json to_hf_base(const ModelConfig& c) {
        return {{"model_type", "bert"}, {"architectures", {"BertModel"}}, {"hidden_size", c.n_embd}, {"num_hidden_layers", c.n_layer},
                {"num_attention_heads", c.n_head}, {"intermediate_size", c.n_ff}, {"max_position_embeddings", c.n_ctx},
                {"vocab_size", c.n_vocab}, {"type_vocab_size", c.n_token_types}, {"layer_norm_eps", c.norm_eps}, {"hidden_act", "gelu"},
                {"position_embedding_type", "absolute"}, {"pad_token_id", 0}};
    }

    void from_gguf(GgufKeys& k, ModelConfig& c) const override { read_encoder_gguf(k, c, Pooling::Cls); }
    void to_gguf(const ModelConfig& c, gguf::Metadata& meta) const override { write_encoder_gguf(c, meta); }

    std::string hf_tensor_name(const std::string& g, bool* transpose) const override {
        *transpose = false;
        return hf_name_by_table(g, kTopNames, kLayerNames, "encoder.layer.");
    }

    std::string gguf_tensor_name(const std::string& hf_name, bool* transpose) const override {
        *transpose = false;
        std::string n = hf_name;
        if (n.rfind("bert.", 0) == 0) n = n.substr(5);  // BertFor… checkpoints
        if (n == "embeddings.position_ids") return "";  // a buffer, not a weight
        if (n.rfind("cls.", 0) == 0) return "";          // BertForPreTraining's heads
        const std::string g = gguf_name_by_table(n, kTopNames, kLayerNames, "encoder.layer.");
        return g.empty() ? "?" + n : g;
    }

    // Sizes: BERT-base (Devlin et al. 2018), BERT-Tiny (Turc et al. 2019: 2 layers, 128 wide, 2 heads), and the
    // shapes of BAAI/bge-small-en-v1.5 (CLS pooling) and sentence-transformers/all-MiniLM-L6-v2 (mean pooling) from their
    // config.json files.
    std::vector<ModelConfig> presets() const override {
        auto b = [&](const char* n, int64_t C, int64_t L, int64_t H, Pooling pool) {
            ModelConfig c = sized(*this, n, C, 4 * C, L, H, H, 512, 30522);
            c.pooling = pool;
            return c;
        };
        // bert-tiny/mini/small/medium: the shapes of Google's compact BERTs (Turc et al. 2019, "Well-Read Students Learn
        // Better"): L layers of H wide, H/64 heads
        return {b("bert-tiny", 128, 2, 2, Pooling::Cls),     b("bert-mini", 256, 4, 4, Pooling::Cls),    b("bert-small", 512, 4, 8, Pooling::Cls),
                b("bert-medium", 512, 8, 8, Pooling::Cls),  b("bert-base", 768, 12, 12, Pooling::Cls),  b("bge-small", 384, 12, 12, Pooling::Cls),
                b("minilm-l6", 384, 6, 12, Pooling::Mean)};
    }
};

}  // namespace

const Family& family_bert() {
    static const Bert f;
    return f;
}

}  // namespace llmforge::arch
