// Model configurations, presets and parameter counting.
#include <algorithm>

#include "llmforge/error.h"
#include "llmforge/model.h"

namespace llmforge {

const char* arch_name(Arch a) { return a == Arch::GPT2 ? "gpt2" : "llama"; }

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& c) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> t;
    const int64_t C = c.n_embd, F = c.n_ff, V = c.n_vocab, KV = c.kv_dim();
    t.push_back({"token_embd.weight", {V, C}});
    if (c.arch == Arch::GPT2) t.push_back({"position_embd.weight", {c.n_ctx, C}});
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        t.push_back({p + "attn_norm.weight", {C}});
        if (c.arch == Arch::GPT2) {
            t.push_back({p + "attn_norm.bias", {C}});
            t.push_back({p + "attn_qkv.weight", {3 * C, C}});
            t.push_back({p + "attn_qkv.bias", {3 * C}});
            t.push_back({p + "attn_output.weight", {C, C}});
            t.push_back({p + "attn_output.bias", {C}});
            t.push_back({p + "ffn_norm.weight", {C}});
            t.push_back({p + "ffn_norm.bias", {C}});
            t.push_back({p + "ffn_up.weight", {F, C}});
            t.push_back({p + "ffn_up.bias", {F}});
            t.push_back({p + "ffn_down.weight", {C, F}});
            t.push_back({p + "ffn_down.bias", {C}});
        } else {
            t.push_back({p + "attn_q.weight", {C, C}});
            t.push_back({p + "attn_k.weight", {KV, C}});
            t.push_back({p + "attn_v.weight", {KV, C}});
            t.push_back({p + "attn_output.weight", {C, C}});
            t.push_back({p + "ffn_norm.weight", {C}});
            t.push_back({p + "ffn_gate.weight", {F, C}});
            t.push_back({p + "ffn_up.weight", {F, C}});
            t.push_back({p + "ffn_down.weight", {C, F}});
        }
    }
    t.push_back({"output_norm.weight", {C}});
    if (c.arch == Arch::GPT2) t.push_back({"output_norm.bias", {C}});
    if (!c.tied_embeddings) t.push_back({"output.weight", {V, C}});
    return t;
}

int64_t ModelConfig::n_params() const {
    int64_t n = 0;
    for (const auto& [name, shape] : expected_tensors(*this)) {
        int64_t k = 1;
        for (int64_t d : shape) k *= d;
        n += k;
    }
    return n;
}

void ModelConfig::validate() const {
    auto bad = [&](const char* what, int64_t v) { throw_bad_input("model config: %s = %lld is not valid", what, static_cast<long long>(v)); };
    const int64_t kMax = int64_t(1) << 24;
    if (n_vocab <= 0 || n_vocab > kMax) bad("n_vocab", n_vocab);
    if (n_ctx <= 0 || n_ctx > kMax) bad("n_ctx", n_ctx);
    if (n_embd <= 0 || n_embd > kMax) bad("n_embd", n_embd);
    if (n_ff <= 0 || n_ff > kMax) bad("n_ff", n_ff);
    if (n_layer <= 0 || n_layer > 4096) bad("n_layer", n_layer);
    if (n_head <= 0 || n_embd % n_head != 0) bad("n_head (must divide n_embd)", n_head);
    if (n_head_kv <= 0 || n_head % n_head_kv != 0) bad("n_head_kv (must divide n_head)", n_head_kv);
    if (arch == Arch::Llama) {
        if (n_rot() <= 0 || n_rot() > head_dim() || n_rot() % 2) bad("rope dimension", n_rot());
        if (!(rope_theta > 0)) bad("rope_theta", static_cast<int64_t>(rope_theta));
    }
    if (arch == Arch::GPT2 && n_head_kv != n_head) bad("n_head_kv (GPT-2 has no grouped-query attention)", n_head_kv);
    if (!(norm_eps > 0) || norm_eps > 1) throw_bad_input("model config: norm epsilon %g is not valid", static_cast<double>(norm_eps));
}

namespace {
ModelConfig gpt2_like(const char* name, int64_t C, int64_t L, int64_t H, int64_t ctx, int64_t vocab = 50257) {
    ModelConfig c;
    c.arch = Arch::GPT2;
    c.name = name;
    c.n_vocab = vocab;
    c.n_ctx = ctx;
    c.n_embd = C;
    c.n_ff = 4 * C;
    c.n_layer = L;
    c.n_head = H;
    c.n_head_kv = H;
    c.norm_eps = 1e-5f;
    c.tied_embeddings = true;
    return c;
}
ModelConfig llama_like(const char* name, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab = 32000) {
    ModelConfig c;
    c.arch = Arch::Llama;
    c.name = name;
    c.n_vocab = vocab;
    c.n_ctx = ctx;
    c.n_embd = C;
    c.n_ff = F;
    c.n_layer = L;
    c.n_head = H;
    c.n_head_kv = KV;
    c.norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    return c;
}

// Sizes from the published configurations: GPT-2 (Radford et al. 2019, HF config.json), GPT-3 (Brown et al. 2020, table 2.1),
// TinyLlama-1.1B (its HF config.json), Llama 2 (Touvron et al. 2023, HF config.json).
const std::vector<ModelConfig>& presets() {
    static const std::vector<ModelConfig> p = {
        gpt2_like("gpt2", 768, 12, 12, 1024),
        gpt2_like("gpt2-medium", 1024, 24, 16, 1024),
        gpt2_like("gpt2-large", 1280, 36, 20, 1024),
        gpt2_like("gpt2-xl", 1600, 48, 25, 1024),
        gpt2_like("gpt3-175b", 12288, 96, 96, 2048),
        llama_like("tinyllama-1.1b", 2048, 5632, 22, 32, 4, 2048),
        llama_like("llama2-7b", 4096, 11008, 32, 32, 32, 4096),
        llama_like("llama2-13b", 5120, 13824, 40, 40, 40, 4096),
        llama_like("llama2-70b", 8192, 28672, 80, 64, 8, 4096),
        // small models for tests, demos and quick experiments
        llama_like("llama-tiny", 64, 172, 5, 8, 4, 512, 512),
        llama_like("llama-small", 288, 768, 6, 6, 6, 256, 32000),
        gpt2_like("gpt2-tiny", 64, 2, 4, 128, 512),
    };
    return p;
}
}  // namespace

std::vector<std::string> preset_names() {
    std::vector<std::string> n;
    for (const auto& c : presets()) n.push_back(c.name);
    return n;
}

ModelConfig preset(const std::string& name) {
    for (const auto& c : presets())
        if (c.name == name) return c;
    std::string known;
    for (const auto& c : presets()) known += (known.empty() ? "" : ", ") + c.name;
    throw_bad_input("unknown preset '%s' (known: %s)", name.c_str(), known.c_str());
}

// ---------------------------------------------------------------------------------- GGUF metadata
void config_to_gguf(const ModelConfig& c, gguf::Metadata& meta) {
    using gguf::Value;
    const std::string a = arch_name(c.arch);
    meta.set("general.architecture", Value::str(a));
    if (!c.name.empty() && !meta.find("general.name")) meta.set("general.name", Value::str(c.name));
    meta.set(a + ".context_length", Value::u32(static_cast<uint32_t>(c.n_ctx)));
    meta.set(a + ".embedding_length", Value::u32(static_cast<uint32_t>(c.n_embd)));
    meta.set(a + ".feed_forward_length", Value::u32(static_cast<uint32_t>(c.n_ff)));
    meta.set(a + ".block_count", Value::u32(static_cast<uint32_t>(c.n_layer)));
    meta.set(a + ".attention.head_count", Value::u32(static_cast<uint32_t>(c.n_head)));
    meta.set(a + ".attention.head_count_kv", Value::u32(static_cast<uint32_t>(c.n_head_kv)));
    meta.set(a + ".vocab_size", Value::u32(static_cast<uint32_t>(c.n_vocab)));
    if (c.arch == Arch::GPT2) {
        meta.set(a + ".attention.layer_norm_epsilon", Value::f32(c.norm_eps));
    } else {
        meta.set(a + ".attention.layer_norm_rms_epsilon", Value::f32(c.norm_eps));
        meta.set(a + ".rope.freq_base", Value::f32(c.rope_theta));
        meta.set(a + ".rope.dimension_count", Value::u32(static_cast<uint32_t>(c.n_rot())));
    }
}

namespace {

// Every key of the architecture's own namespace ("llama.…", "gpt2.…") changes what the model computes, so none may be
// ignored: a key we implement is read; a key with its neutral value (rope scaling "none", no experts, …) passes; any
// other is refused, naming it, rather than giving wrong logits (llama.cpp's llama-arch.cpp lists these keys).
void check_arch_keys(const gguf::Metadata& meta, const std::string& a, const std::string& path, int64_t head_dim) {
    static const std::vector<std::string> read_llama = {"context_length", "embedding_length", "feed_forward_length", "block_count",
                                                        "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon",
                                                        "rope.freq_base", "rope.dimension_count", "vocab_size"};
    static const std::vector<std::string> read_gpt2 = {"context_length", "embedding_length", "feed_forward_length", "block_count",
                                                       "attention.head_count", "attention.head_count_kv", "attention.layer_norm_epsilon",
                                                       "vocab_size"};
    const auto& read = a == "llama" ? read_llama : read_gpt2;
    for (const auto& [key, v] : meta.kv) {
        if (key.compare(0, a.size() + 1, a + ".") != 0) continue;
        const std::string k = key.substr(a.size() + 1);
        if (std::find(read.begin(), read.end(), k) != read.end()) continue;
        // informational, or neutral values
        if (k == "tensor_data_layout") continue;
        if (k == "rope.scaling.type" && v.type == gguf::Type::STRING && v.s == "none") continue;
        if ((k == "rope.scaling.factor" || k == "rope.scale_linear") && !v.is_int() && v.type != gguf::Type::ARRAY && (v.f == 0.0 || v.f == 1.0)) continue;
        if ((k == "expert_count" || k == "expert_used_count") && v.is_int() && v.i == 0) continue;
        if ((k == "attention.key_length" || k == "attention.value_length") && v.is_int() && v.i == head_dim) continue;
        if (k == "attention.causal" && v.type == gguf::Type::BOOL && v.b) continue;
        if (k == "rope.scaling.finetuned" || k == "rope.scaling.original_context_length") {
            if (meta.get_string(a + ".rope.scaling.type", "none") == "none") continue;  // only meaningful with a scaling type
        }
        throw_bad_input("'%s': metadata %s = %s changes the model's mathematics and is not supported yet", path.c_str(), key.c_str(),
                        v.to_string(4).c_str());
    }
}

}  // namespace

ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::string& path) {
    ModelConfig c;
    const std::string a = meta.get_string("general.architecture", "");
    if (a.empty()) throw_bad_input("'%s' has no general.architecture", path.c_str());
    if (a == "llama") c.arch = Arch::Llama;
    else if (a == "gpt2") c.arch = Arch::GPT2;
    else throw_bad_input("'%s': unknown architecture '%s' (supported: llama, gpt2)", path.c_str(), a.c_str());
    c.name = meta.get_string("general.name", "");
    auto need = [&](const std::string& key) {
        const int64_t v = meta.get_int(key, -1);
        if (v < 0) throw_bad_input("'%s' lacks the metadata key '%s'", path.c_str(), key.c_str());
        return v;
    };
    c.n_ctx = need(a + ".context_length");
    c.n_embd = need(a + ".embedding_length");
    c.n_ff = need(a + ".feed_forward_length");
    c.n_layer = need(a + ".block_count");
    c.n_head = need(a + ".attention.head_count");
    c.n_head_kv = meta.get_int(a + ".attention.head_count_kv", c.n_head);
    c.n_vocab = meta.get_int(a + ".vocab_size", 0);  // filled from the token embedding when absent
    if (c.arch == Arch::GPT2) {
        c.norm_eps = static_cast<float>(meta.get_float(a + ".attention.layer_norm_epsilon", 1e-5));
        c.tied_embeddings = true;  // updated by the loader if output.weight exists
    } else {
        c.norm_eps = static_cast<float>(meta.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5));
        c.rope_theta = static_cast<float>(meta.get_float(a + ".rope.freq_base", 10000.0));
        c.rope_dim = meta.get_int(a + ".rope.dimension_count", 0);
        if (c.n_head > 0 && c.rope_dim == c.n_embd / c.n_head) c.rope_dim = 0;
    }
    check_arch_keys(meta, a, path, c.n_head > 0 ? c.n_embd / c.n_head : 0);
    return c;
}

}  // namespace llmforge
