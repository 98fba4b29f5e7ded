// Model configurations: the tensors a block description implies, parameter counting, validation, presets and the GGUF
// metadata of every family (each family's own part lives in src/model/arch/<family>.cpp).
#include <algorithm>

#include "llmforge/error.h"
#include "llmforge/model.h"
#include "model/family.h"

namespace llmforge {

std::vector<std::string> family_names() {
    std::vector<std::string> n;
    for (const arch::Family* f : arch::families()) n.push_back(f->name());
    return n;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_tensors(const ModelConfig& c) {
    std::vector<std::pair<std::string, std::vector<int64_t>>> t;
    const int64_t C = c.n_embd, F = c.n_ff, V = c.n_vocab, KV = c.kv_dim();
    // a weight (and its bias, where the description gives it one)
    auto add = [&](const std::string& name, std::vector<int64_t> shape, bool bias) {
        const int64_t rows = shape[0];
        t.push_back({name + ".weight", std::move(shape)});
        if (bias) t.push_back({name + ".bias", {rows}});
    };
    t.push_back({"token_embd.weight", {V, C}});
    if (c.learned_positions) t.push_back({"position_embd.weight", {c.n_ctx, C}});
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm", {C}, c.norm_bias());
        if (c.fused_qkv) {
            add(p + "attn_qkv", {C + 2 * KV, C}, c.qkv_bias);
        } else {
            add(p + "attn_q", {C, C}, c.qkv_bias);
            add(p + "attn_k", {KV, C}, c.qkv_bias);
            add(p + "attn_v", {KV, C}, c.qkv_bias);
        }
        add(p + "attn_output", {C, C}, c.out_bias);
        add(p + "ffn_norm", {C}, c.norm_bias());
        if (c.gated_mlp()) add(p + "ffn_gate", {F, C}, c.mlp_bias);
        add(p + "ffn_up", {F, C}, c.mlp_bias);
        add(p + "ffn_down", {C, F}, c.mlp_bias);
    }
    add("output_norm", {C}, c.norm_bias());
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
    arch::family(arch, "model config: ");
    auto bad = [&](const char* what, int64_t v) { throw_bad_input("model config: %s = %lld is not valid", what, static_cast<long long>(v)); };
    const int64_t kMax = int64_t(1) << 24;
    if (n_vocab <= 0 || n_vocab > kMax) bad("n_vocab", n_vocab);
    if (n_ctx <= 0 || n_ctx > kMax) bad("n_ctx", n_ctx);
    if (n_embd <= 0 || n_embd > kMax) bad("n_embd", n_embd);
    if (n_ff <= 0 || n_ff > kMax) bad("n_ff", n_ff);
    if (n_layer <= 0 || n_layer > 4096) bad("n_layer", n_layer);
    if (n_head <= 0 || n_embd % n_head != 0) bad("n_head (must divide n_embd)", n_head);
    if (n_head_kv <= 0 || n_head % n_head_kv != 0) bad("n_head_kv (must divide n_head)", n_head_kv);
    if (uses_rope()) {
        if (n_rot() <= 0 || n_rot() > head_dim() || n_rot() % 2) bad("rope dimension", n_rot());
        if (!(rope_theta > 0)) bad("rope_theta", static_cast<int64_t>(rope_theta));
    }
    if (fused_qkv && n_head_kv != n_head) bad("n_head_kv (a fused QKV projection has no grouped-query attention)", n_head_kv);
    if (!(norm_eps > 0) || norm_eps > 1) throw_bad_input("model config: norm epsilon %g is not valid", static_cast<double>(norm_eps));
}

std::vector<std::string> preset_names() {
    std::vector<std::string> n;
    for (const arch::Family* f : arch::families())
        for (const ModelConfig& c : f->presets()) n.push_back(c.name);
    return n;
}

ModelConfig preset(const std::string& name) {
    for (const arch::Family* f : arch::families())
        for (const ModelConfig& c : f->presets())
            if (c.name == name) return c;
    std::string known;
    for (const std::string& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw_bad_input("unknown preset '%s' (known: %s)", name.c_str(), known.c_str());
}

// ---------------------------------------------------------------------------------- GGUF metadata
RopeStyle gguf_rope_style(const ModelConfig& c) { return arch::family(c.arch).gguf_rope_style(); }

void config_to_gguf(const ModelConfig& c, gguf::Metadata& meta) {
    meta.set("general.architecture", gguf::Value::str(c.arch));
    if (!c.name.empty() && !meta.find("general.name")) meta.set("general.name", gguf::Value::str(c.name));
    arch::family(c.arch).to_gguf(c, meta);
}

ModelConfig config_from_gguf(const gguf::Metadata& meta, const std::string& path) {
    const std::string a = meta.get_string("general.architecture", "");
    if (a.empty()) throw_bad_input("'%s' has no general.architecture", path.c_str());
    const arch::Family& f = arch::family(a, "'" + path + "': ");
    ModelConfig c = f.describe();
    c.name = meta.get_string("general.name", "");
    c.rope_style = f.gguf_rope_style();  // the rows as llama.cpp's converter wrote them
    arch::GgufKeys keys(meta, a, path);
    f.from_gguf(keys, c);
    keys.check_unread(c);
    return c;
}

}  // namespace llmforge
