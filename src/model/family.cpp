// The registry of architecture families, and what they share: config.json and GGUF readers that refuse what a family
// does not implement, llama.cpp's common GGUF keys, and the LLaMA lineage's Hugging Face tensor names.
#include "model/family.h"

#include <algorithm>
#include <cstring>

#include "llmforge/error.h"

namespace llmforge::arch {

// Every file in src/model/arch/ defines family_<file name>(); CMake writes the list (families.inc).
#define LLMFORGE_FAMILY(f) const Family& family_##f();
#include "families.inc"
#undef LLMFORGE_FAMILY

const std::vector<const Family*>& families() {
#define LLMFORGE_FAMILY(f) &family_##f(),
    static const std::vector<const Family*> all = {
#include "families.inc"
    };
#undef LLMFORGE_FAMILY
    return all;
}

namespace {
std::string supported() {
    std::string s;
    for (const Family* f : families()) s += (s.empty() ? "" : ", ") + std::string(f->name());
    return s;
}
}  // namespace

const Family& family(const std::string& name, const std::string& where) {
    for (const Family* f : families())
        if (name == f->name()) return *f;
    throw_bad_input("%sunknown architecture '%s' (supported: %s)", where.c_str(), name.c_str(), supported().c_str());
}

const Family& family_for_gguf(const std::string& gguf_arch, const gguf::Metadata& meta, const std::string& where) {
    for (const Family* f : families())
        if (gguf_arch == f->gguf_arch() && gguf_arch != f->name() && f->claims_gguf(meta)) return *f;
    for (const Family* f : families())
        if (gguf_arch == f->name()) return *f;
    throw_bad_input("%sunknown architecture '%s' (supported: %s)", where.c_str(), gguf_arch.c_str(), supported().c_str());
}

const Family* family_for_hf_type(const std::string& type) {
    for (const Family* f : families())
        if (f->reads_hf_type(type)) return f;
    return nullptr;
}

// ---- config.json -----------------------------------------------------------------------------------------------------

int64_t HfConfig::integer(const char* key, int64_t def) {
    read_.insert(key);
    if (!has(key)) {
        if (def >= 0) return def;
        throw_bad_input("'%s': config.json lacks '%s'", path_.c_str(), key);
    }
    if (!j_[key].is_number_integer()) throw_bad_input("'%s': config.json '%s' must be an integer", path_.c_str(), key);
    return j_[key].get<int64_t>();
}

double HfConfig::number(const char* key, double def) {
    read_.insert(key);
    if (!has(key)) return def;
    if (!j_[key].is_number()) throw_bad_input("'%s': config.json '%s' must be a number", path_.c_str(), key);
    return j_[key].get<double>();
}

bool HfConfig::boolean(const char* key, bool def) {
    read_.insert(key);
    if (!has(key)) return def;
    if (!j_[key].is_boolean()) throw_bad_input("'%s': config.json '%s' must be true or false", path_.c_str(), key);
    return j_[key].get<bool>();
}

std::string HfConfig::string(const char* key, const std::string& def) {
    read_.insert(key);
    if (!has(key)) return def;
    if (!j_[key].is_string()) throw_bad_input("'%s': config.json '%s' must be a string", path_.c_str(), key);
    return j_[key].get<std::string>();
}

const nlohmann::json& HfConfig::raw(const char* key) {
    static const nlohmann::json null;
    read_.insert(key);
    return has(key) ? j_[key] : null;
}

void HfConfig::refuse(const char* key, const char* why) const {
    throw_bad_input("'%s': config.json \"%s\": %s is not supported (%s)", path_.c_str(), key, has(key) ? j_[key].dump().c_str() : "null", why);
}

void HfConfig::check_unread(const ModelConfig& c) const {
    // The config.json fields of transformers' decoder models that change the mathematics, each with its neutral value:
    // a field at its neutral value passes; any other value is refused unless the family read (implements) it.
    // (Fields outside this list — dropout, initializer_range, torch_dtype, token ids, ... — do not change the logits.)
    using json = nlohmann::json;
    struct Field {
        const char* key;
        const char* why;
        bool (*neutral)(const json& v, const json& all, const ModelConfig& c);
    };
    static const Field fields[] = {
        {"rope_scaling", "scaled rotary positions, as Llama 3.x and long-context models use",
         [](const json& v, const json&, const ModelConfig&) { return v.is_null() || (v.is_object() && v.value("rope_type", v.value("type", "")) == "default"); }},
        {"sliding_window", "attention limited to a window shorter than the context",
         [](const json& v, const json& all, const ModelConfig& c) {
             return v.is_null() || !all.value("use_sliding_window", true) || (v.is_number_integer() && v.get<int64_t>() >= c.n_ctx);
         }},
        {"attention_bias", "biases in the attention projections", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"mlp_bias", "biases in the MLP projections", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"hidden_act", "another activation than this family's", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"activation_function", "another activation than this family's", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"head_dim", "heads narrower or wider than hidden_size / num_attention_heads",
         [](const json& v, const json&, const ModelConfig& c) { return v.is_number_integer() && v.get<int64_t>() == c.head_dim(); }},
        {"partial_rotary_factor", "rotary embedding on part of each head",
         [](const json& v, const json&, const ModelConfig&) { return v.is_number() && v.get<double>() == 1.0; }},
        {"rotary_pct", "rotary embedding on part of each head", [](const json& v, const json&, const ModelConfig&) { return v.is_number() && v.get<double>() == 1.0; }},
        {"num_local_experts", "mixture-of-experts MLPs", [](const json& v, const json&, const ModelConfig&) { return v == json(0); }},
        {"num_experts", "mixture-of-experts MLPs", [](const json& v, const json&, const ModelConfig&) { return v == json(0); }},
        {"attn_logit_softcapping", "soft-capped attention scores", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"final_logit_softcapping", "soft-capped logits", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"query_pre_attn_scalar", "attention scaled by another constant than 1/√head_dim", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"qk_layernorm", "normalised queries and keys", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"use_qk_norm", "normalised queries and keys", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"embedding_multiplier", "scaled embeddings", [](const json& v, const json&, const ModelConfig&) { return v == json(1) || v == json(1.0); }},
        {"logits_scaling", "scaled logits", [](const json& v, const json&, const ModelConfig&) { return v == json(1) || v == json(1.0); }},
        {"residual_multiplier", "scaled residual branches", [](const json& v, const json&, const ModelConfig&) { return v == json(1) || v == json(1.0); }},
        {"attention_multiplier", "attention scaled by another constant than 1/√head_dim", [](const json&, const json&, const ModelConfig&) { return false; }},
        {"layer_types", "layers of different attention kinds",
         [](const json& v, const json&, const ModelConfig&) {
             if (!v.is_array()) return false;
             for (const json& t : v)
                 if (t != json("full_attention")) return false;
             return true;
         }},
        {"use_parallel_residual", "attention and MLP in parallel", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"alibi", "ALiBi position biases", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"scale_attn_by_inverse_layer_idx", "attention scaled per layer", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"scale_attn_weights", "attention without 1/√d", [](const json& v, const json&, const ModelConfig&) { return v == json(true); }},
        {"reorder_and_upcast_attn", "attention computed in another order",
         [](const json&, const json&, const ModelConfig&) { return true; }},  // the same values, in f32 (GPT-2)
        {"add_cross_attention", "an encoder-decoder model", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
        {"is_encoder_decoder", "an encoder-decoder model", [](const json& v, const json&, const ModelConfig&) { return v == json(false); }},
    };
    for (const Field& f : fields) {
        if (read_.count(f.key) || !has(f.key)) continue;
        if (f.neutral(j_[f.key], j_, c)) continue;
        refuse(f.key, f.why);
    }
}

// ---- GGUF metadata ---------------------------------------------------------------------------------------------------

int64_t GgufKeys::integer(const std::string& key, int64_t def) {
    read_.insert(key);
    const gguf::Value* v = meta_.find(arch_ + "." + key);
    if (!v) {
        if (def >= 0) return def;
        throw_bad_input("'%s' lacks the metadata key '%s.%s'", path_.c_str(), arch_.c_str(), key.c_str());
    }
    if (!v->is_int() || v->i < 0) throw_bad_input("'%s': metadata %s.%s must be a non-negative integer", path_.c_str(), arch_.c_str(), key.c_str());
    return v->i;
}

bool GgufKeys::boolean(const std::string& key, bool def) {
    read_.insert(key);
    const gguf::Value* v = meta_.find(arch_ + "." + key);
    if (!v) return def;
    if (v->type != gguf::Type::BOOL) throw_bad_input("'%s': metadata %s.%s must be a boolean", path_.c_str(), arch_.c_str(), key.c_str());
    return v->b;
}

std::string GgufKeys::string(const std::string& key, const std::string& def) {
    read_.insert(key);
    const gguf::Value* v = meta_.find(arch_ + "." + key);
    if (!v) return def;
    if (v->type != gguf::Type::STRING) throw_bad_input("'%s': metadata %s.%s must be a string", path_.c_str(), arch_.c_str(), key.c_str());
    return v->s;
}

void GgufKeys::refuse(const std::string& key) const {
    const gguf::Value* v = meta_.find(arch_ + "." + key);
    throw_bad_input("'%s': metadata %s.%s = %s changes the model's mathematics and is not supported yet", path_.c_str(), arch_.c_str(), key.c_str(),
                    v ? v->to_string(4).c_str() : "(absent)");
}

double GgufKeys::number(const std::string& key, double def) {
    read_.insert(key);
    const gguf::Value* v = meta_.find(arch_ + "." + key);
    if (!v) return def;
    if (v->is_int()) return static_cast<double>(v->i);
    if (v->type == gguf::Type::ARRAY || v->type == gguf::Type::STRING || v->type == gguf::Type::BOOL)
        throw_bad_input("'%s': metadata %s.%s must be a number", path_.c_str(), arch_.c_str(), key.c_str());
    return v->f;
}

void GgufKeys::check_unread(const ModelConfig& c) const {
    const std::string a = arch_ + ".";
    for (const auto& [key, v] : meta_.kv) {
        if (key.compare(0, a.size(), a) != 0) continue;
        const std::string k = key.substr(a.size());
        if (read_.count(k)) continue;
        // informational, or neutral values
        if (k == "tensor_data_layout") continue;
        if (k == "rope.scaling.type" && v.type == gguf::Type::STRING && v.s == "none") continue;
        if ((k == "rope.scaling.factor" || k == "rope.scale_linear") && !v.is_int() && v.type != gguf::Type::ARRAY && (v.f == 0.0 || v.f == 1.0)) continue;
        if ((k == "expert_count" || k == "expert_used_count") && v.is_int() && v.i == 0) continue;
        if ((k == "attention.key_length" || k == "attention.value_length") && v.is_int() && v.i == c.head_dim()) continue;
        if (k == "attention.causal" && v.type == gguf::Type::BOOL && v.b) continue;
        if (k == "rope.scaling.finetuned") continue;  // informational
        if (k == "rope.scaling.original_context_length") {
            if (meta_.get_string(a + "rope.scaling.type", "none") == "none") continue;  // only meaningful with a scaling type
        }
        throw_bad_input("'%s': metadata %s = %s changes the model's mathematics and is not supported yet", path_.c_str(), key.c_str(),
                        v.to_string(4).c_str());
    }
}

void read_common_gguf(GgufKeys& k, ModelConfig& c) {
    c.n_ctx = k.integer("context_length");
    c.n_embd = k.integer("embedding_length");
    c.n_ff = k.integer("feed_forward_length");
    c.n_layer = k.integer("block_count");
    c.n_head = k.integer("attention.head_count");
    c.n_head_kv = k.integer("attention.head_count_kv", c.n_head);
    c.n_vocab = k.integer("vocab_size", 0);  // filled from the token embedding when absent
    // a head's width where it is not n_embd / n_head (llama.cpp: attention.key_length = value_length)
    const int64_t kl = k.integer("attention.key_length", 0), vl = k.integer("attention.value_length", kl);
    if (kl != vl) throw_bad_input("'%s': keys of %lld and values of %lld dimensions per head are not supported", k.path().c_str(), static_cast<long long>(kl),
                                  static_cast<long long>(vl));
    if (kl > 0 && !(c.n_head > 0 && c.n_embd % c.n_head == 0 && kl == c.n_embd / c.n_head)) c.n_head_dim = kl;
    if (c.norm == NormKind::LayerNorm) c.norm_eps = static_cast<float>(k.number("attention.layer_norm_epsilon", 1e-5));
    else c.norm_eps = static_cast<float>(k.number("attention.layer_norm_rms_epsilon", 1e-5));
    if (c.uses_rope()) {
        c.rope_theta = static_cast<float>(k.number("rope.freq_base", 10000.0));
        c.rope_dim = k.integer("rope.dimension_count", 0);
        if (c.n_head > 0 && c.rope_dim == c.head_dim()) c.rope_dim = 0;
        // linear position interpolation (llama.cpp: freq_scale = 1 / factor) and YaRN (its original context: the
        // model's when absent; ggml's β defaults, which llama.cpp's GGUF does not carry); other types are refused
        const std::string type = k.string("rope.scaling.type", "none");
        if (type == "linear") {
            c.rope_scaling = RopeScaling::Linear;
            c.rope_scale = static_cast<float>(k.number("rope.scaling.factor", 1.0));
        } else if (type == "yarn") {
            c.rope_scaling = RopeScaling::Yarn;
            c.rope_scale = static_cast<float>(k.number("rope.scaling.factor", 1.0));
            c.rope_orig_ctx = k.integer("rope.scaling.original_context_length", c.n_ctx);
            c.rope_attn_factor = static_cast<float>(k.number("rope.scaling.attn_factor", 1.0));
        } else if (type != "none") {
            k.refuse("rope.scaling.type");
        }
    }
}

void write_common_gguf(const ModelConfig& c, gguf::Metadata& meta) {
    using gguf::Value;
    const std::string a = std::string(family(c.arch).gguf_arch()) + ".";
    meta.set(a + "context_length", Value::u32(static_cast<uint32_t>(c.n_ctx)));
    meta.set(a + "embedding_length", Value::u32(static_cast<uint32_t>(c.n_embd)));
    meta.set(a + "feed_forward_length", Value::u32(static_cast<uint32_t>(c.n_ff)));
    meta.set(a + "block_count", Value::u32(static_cast<uint32_t>(c.n_layer)));
    meta.set(a + "attention.head_count", Value::u32(static_cast<uint32_t>(c.n_head)));
    meta.set(a + "attention.head_count_kv", Value::u32(static_cast<uint32_t>(c.n_head_kv)));
    meta.set(a + "vocab_size", Value::u32(static_cast<uint32_t>(c.n_vocab)));
    if (c.n_head_dim) {
        meta.set(a + "attention.key_length", Value::u32(static_cast<uint32_t>(c.n_head_dim)));
        meta.set(a + "attention.value_length", Value::u32(static_cast<uint32_t>(c.n_head_dim)));
    }
    if (c.norm == NormKind::LayerNorm) meta.set(a + "attention.layer_norm_epsilon", Value::f32(c.norm_eps));
    else meta.set(a + "attention.layer_norm_rms_epsilon", Value::f32(c.norm_eps));
    if (c.uses_rope()) {
        meta.set(a + "rope.freq_base", Value::f32(c.rope_theta));
        meta.set(a + "rope.dimension_count", Value::u32(static_cast<uint32_t>(c.n_rot())));
        if (c.rope_scaling == RopeScaling::Linear) {
            meta.set(a + "rope.scaling.type", Value::str("linear"));
            meta.set(a + "rope.scaling.factor", Value::f32(c.rope_scale));
        }
        if (c.rope_scaling == RopeScaling::Yarn) {  // as llama.cpp's converter writes Qwen 2.5's
            if (c.rope_yarn_beta_fast != 32.0f || c.rope_yarn_beta_slow != 1.0f)
                throw_bad_input("GGUF cannot carry YaRN's beta_fast %g and beta_slow %g (llama.cpp uses 32 and 1): keep the model as safetensors",
                                static_cast<double>(c.rope_yarn_beta_fast), static_cast<double>(c.rope_yarn_beta_slow));
            meta.set(a + "rope.scaling.type", Value::str("yarn"));
            meta.set(a + "rope.scaling.factor", Value::f32(c.rope_scale));
            meta.set(a + "rope.scaling.original_context_length", Value::u32(static_cast<uint32_t>(c.rope_orig_ctx)));
            if (c.rope_attn_factor != 1.0f) meta.set(a + "rope.scaling.attn_factor", Value::f32(c.rope_attn_factor));
        }  // Llama 3's divisors travel as the tensor rope_freqs.weight, as llama.cpp's converter writes them
    }
}

void Family::from_gguf(GgufKeys& k, ModelConfig& c) const { read_common_gguf(k, c); }
void Family::to_gguf(const ModelConfig& c, gguf::Metadata& meta) const { write_common_gguf(c, meta); }

// ---- the LLaMA lineage's Hugging Face names --------------------------------------------------------------------------

namespace {
// per-layer GGUF name (without "blk.N." and the ".weight"/".bias" suffix) ↔ Hugging Face name (without
// "model.layers.N." and the suffix)
const std::pair<const char*, const char*> kLlamaLayerNames[] = {
    {"attn_norm", "input_layernorm"}, {"attn_q", "self_attn.q_proj"},   {"attn_k", "self_attn.k_proj"},
    {"attn_v", "self_attn.v_proj"},   {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},    {"ffn_up", "mlp.up_proj"},         {"ffn_down", "mlp.down_proj"},
    {"attn_q_norm", "self_attn.q_norm"}, {"attn_k_norm", "self_attn.k_norm"}};
}  // namespace

std::pair<std::string, std::string> split_suffix(const std::string& n) {
    for (const char* suf : {".weight", ".bias"}) {
        const size_t k = std::strlen(suf);
        if (n.size() > k && n.compare(n.size() - k, k, suf) == 0) return {n.substr(0, n.size() - k), suf};
    }
    return {n, ""};
}

std::string llama_style_hf_name(const std::string& g) {
    if (g == "token_embd.weight") return "model.embed_tokens.weight";
    if (g == "output_norm.weight") return "model.norm.weight";
    if (g == "output.weight") return "lm_head.weight";
    if (g.rfind("blk.", 0) != 0) return "";
    const size_t dot = g.find('.', 4);
    if (dot == std::string::npos) return "";
    const std::string l = g.substr(4, dot - 4);
    const auto [base, suffix] = split_suffix(g.substr(dot + 1));
    for (auto [gg, hf] : kLlamaLayerNames)
        if (base == gg) return "model.layers." + l + "." + hf + suffix;
    return "";
}

std::string llama_style_gguf_name(const std::string& n) {
    if (n == "model.embed_tokens.weight") return "token_embd.weight";
    if (n == "model.norm.weight") return "output_norm.weight";
    if (n == "lm_head.weight") return "output.weight";
    if (n.rfind("model.layers.", 0) == 0) {
        const size_t dot = n.find('.', 13);
        if (dot == std::string::npos) return "?" + n;
        const std::string l = n.substr(13, dot - 13);
        const std::string rest = n.substr(dot + 1);
        if (rest == "self_attn.rotary_emb.inv_freq") return "";  // a buffer of old checkpoints, recomputed
        const auto [base, suffix] = split_suffix(rest);
        for (auto [gg, hf] : kLlamaLayerNames)
            if (base == hf && !suffix.empty()) return "blk." + l + "." + gg + suffix;
    }
    return "?" + n;
}

std::string LlamaLineage::hf_tensor_name(const std::string& g, bool* transpose) const {
    *transpose = false;
    return llama_style_hf_name(g);
}

std::string LlamaLineage::gguf_tensor_name(const std::string& n, bool* transpose) const {
    *transpose = false;
    return llama_style_gguf_name(n);
}

void LlamaLineage::read_lineage_fields(HfConfig& j, ModelConfig& c, int64_t default_ctx) {
    c.n_embd = j.integer("hidden_size");
    c.n_ff = j.integer("intermediate_size");
    c.n_layer = j.integer("num_hidden_layers");
    c.n_head = j.integer("num_attention_heads");
    c.n_head_kv = j.integer("num_key_value_heads", c.n_head);
    c.n_ctx = j.integer("max_position_embeddings", default_ctx);
    c.n_vocab = j.integer("vocab_size");
    c.norm_eps = static_cast<float>(j.number("rms_norm_eps", c.norm_eps));
    c.rope_theta = static_cast<float>(j.number("rope_theta", c.rope_theta));
    c.tied_embeddings = j.boolean("tie_word_embeddings", false);
    c.rope_style = RopeStyle::Half;  // transformers' rotate_half
    const std::string act = j.string("hidden_act", "silu");
    if (act != "silu" && act != "swish") j.refuse("hidden_act", "only SiLU gates");
}

void LlamaLineage::read_head_dim(HfConfig& j, ModelConfig& c) {
    const int64_t hd = j.integer("head_dim", c.n_head > 0 ? c.n_embd / c.n_head : 0);
    if (!(c.n_head > 0 && c.n_embd % c.n_head == 0 && hd == c.n_embd / c.n_head)) c.n_head_dim = hd;
}

nlohmann::json LlamaLineage::lineage_fields(const ModelConfig& c, const char* model_type, const char* architecture) {
    nlohmann::json j = {{"model_type", model_type}, {"architectures", {architecture}}, {"hidden_size", c.n_embd}, {"intermediate_size", c.n_ff},
                        {"num_hidden_layers", c.n_layer}, {"num_attention_heads", c.n_head}, {"num_key_value_heads", c.n_head_kv},
                        {"max_position_embeddings", c.n_ctx}, {"vocab_size", c.n_vocab}, {"rms_norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta},
                        {"hidden_act", "silu"}, {"tie_word_embeddings", c.tied_embeddings}, {"torch_dtype", "float32"}};
    write_rope_scaling(c, j);
    return j;
}

void write_rope_scaling(const ModelConfig& c, nlohmann::json& j) {
    if (c.rope_scaling == RopeScaling::Linear) j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_scale}};
    if (c.rope_scaling == RopeScaling::Llama3) {
        if (c.rope_orig_ctx <= 0)
            throw_bad_input("this model's RoPE frequency factors are not Llama 3's form: config.json cannot express them (keep it as GGUF)");
        j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", c.rope_scale}, {"low_freq_factor", c.rope_low_freq},
                             {"high_freq_factor", c.rope_high_freq}, {"original_max_position_embeddings", c.rope_orig_ctx}};
    }
    if (c.rope_scaling == RopeScaling::Yarn) {
        j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", c.rope_scale}, {"original_max_position_embeddings", c.rope_orig_ctx},
                             {"beta_fast", c.rope_yarn_beta_fast}, {"beta_slow", c.rope_yarn_beta_slow}};
        if (c.rope_attn_factor != 1.0f)  // transformers' attention_factor is the whole magnitude factor
            j["rope_scaling"]["attention_factor"] = c.rope_attn_factor * (1.0f + 0.1f * std::log(c.rope_scale));
    }
}

void read_rope_scaling(HfConfig& j, ModelConfig& c) {
    const nlohmann::json& rs = j.raw("rope_scaling");
    if (rs.is_null()) return;
    if (!rs.is_object()) j.refuse("rope_scaling", "not an object");
    const std::string type = rs.value("rope_type", rs.value("type", std::string()));
    auto num = [&](const char* key, double def) {
        if (!rs.contains(key) || rs[key].is_null()) return def;
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
    } else if (type == "yarn") {
        // the factor as given, original_max_position_embeddings for the ramp (as llama.cpp and vLLM read Qwen 2.5's
        // YaRN; transformers did the same once its issue 38224 was fixed)
        const double factor = num("factor", 0), orig = num("original_max_position_embeddings", static_cast<double>(c.n_ctx));
        if (!(factor >= 1) || !(orig >= 1)) j.refuse("rope_scaling", "YaRN without a factor ≥ 1 and an original context");
        if (rs.contains("truncate") && rs["truncate"] != true) j.refuse("rope_scaling", "YaRN's ramp without rounding (truncate false)");
        c.rope_scaling = RopeScaling::Yarn;
        c.rope_scale = static_cast<float>(factor);
        c.rope_orig_ctx = static_cast<int64_t>(orig);
        c.rope_yarn_beta_fast = static_cast<float>(num("beta_fast", 32));
        c.rope_yarn_beta_slow = static_cast<float>(num("beta_slow", 1));
        // the magnitude factor: attention_factor as given; DeepSeek's mscale / mscale_all_dim ratio; else 1 + 0.1 ln s
        auto get_mscale = [&](double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; };
        double total = get_mscale(1.0);
        if (rs.contains("attention_factor") && !rs["attention_factor"].is_null()) total = num("attention_factor", total);
        else if (num("mscale", 0) != 0 && num("mscale_all_dim", 0) != 0) total = get_mscale(num("mscale", 0)) / get_mscale(num("mscale_all_dim", 0));
        c.rope_attn_factor = static_cast<float>(total / get_mscale(1.0));
        if (std::abs(c.rope_attn_factor - 1.0f) < 1e-7f) c.rope_attn_factor = 1.0f;
    } else {
        j.refuse("rope_scaling", "scaled rotary positions of this type (linear, llama3 and yarn are supported)");
    }
}

void LlamaLineage::read_qwen_window(HfConfig& j, const ModelConfig& c) {
    // transformers' Qwen models ignore sliding_window unless use_sliding_window is true
    const bool swa = j.boolean("use_sliding_window", false);
    const int64_t window = j.integer("sliding_window", 0);
    j.integer("max_window_layers", 0);
    if (swa && window > 0 && window < c.n_ctx) j.refuse("sliding_window", "sliding-window attention");
}

ModelConfig sized(const Family& f, const char* name, int64_t C, int64_t F, int64_t L, int64_t H, int64_t KV, int64_t ctx, int64_t vocab) {
    ModelConfig c = f.describe();
    c.name = name;
    c.n_embd = C;
    c.n_ff = F;
    c.n_layer = L;
    c.n_head = H;
    c.n_head_kv = KV;
    c.n_ctx = ctx;
    c.n_vocab = vocab;
    return c;
}

void read_encoder_gguf(GgufKeys& k, ModelConfig& c, Pooling dflt) {
    read_common_gguf(k, c);
    if (k.boolean("attention.causal", false)) k.refuse("attention.causal");
    const int64_t p = k.integer("pooling_type", static_cast<int64_t>(dflt));
    if (p < 0 || p > 4)
        throw_bad_input("'%s': pooling type %lld is not supported (0 none, 1 mean, 2 cls, 3 last, 4 rank are)", k.path().c_str(), static_cast<long long>(p));
    c.pooling = static_cast<Pooling>(p);
    c.n_token_types = k.meta().get_int("tokenizer.ggml.token_type_count", 2);
}

void write_encoder_gguf(const ModelConfig& c, gguf::Metadata& meta) {
    write_common_gguf(c, meta);
    const std::string ns = family(c.arch).gguf_arch();
    meta.set(ns + ".attention.causal", gguf::Value::boolean(false));
    meta.set(ns + ".pooling_type", gguf::Value::u32(static_cast<uint32_t>(c.pooling)));
    meta.set("tokenizer.ggml.token_type_count", gguf::Value::u32(static_cast<uint32_t>(c.n_token_types)));
}

std::string hf_name_by_table(const std::string& g, const NameTable& top, const NameTable& layers, const std::string& hf_layers) {
    const auto [base, suffix] = split_suffix(g);
    for (auto [gg, hf] : top)
        if (base == gg) return std::string(hf) + suffix;
    if (g.rfind("blk.", 0) != 0) return "";
    const size_t dot = base.find('.', 4);
    if (dot == std::string::npos) return "";
    const std::string l = base.substr(4, dot - 4), rest = base.substr(dot + 1);
    for (auto [gg, hf] : layers)
        if (rest == gg) return hf_layers + l + "." + hf + suffix;
    return "";
}

std::string gguf_name_by_table(const std::string& n, const NameTable& top, const NameTable& layers, const std::string& hf_layers) {
    const auto [base, suffix] = split_suffix(n);
    for (auto [gg, hf] : top)
        if (base == hf) return std::string(gg) + suffix;
    if (base.rfind(hf_layers, 0) == 0) {
        const size_t dot = base.find('.', hf_layers.size());
        if (dot != std::string::npos) {
            const std::string l = base.substr(hf_layers.size(), dot - hf_layers.size()), rest = base.substr(dot + 1);
            for (auto [gg, hf] : layers)
                if (rest == hf) return "blk." + l + "." + gg + suffix;
        }
    }
    return "";
}

}  // namespace llmforge::arch
